-- Trader accounts, API keys, orders with their recovery point, the
-- append-only action timeline, and idempotency records.

CREATE TABLE accounts (
    account_id           uuid        PRIMARY KEY,
    name                 text        NOT NULL UNIQUE,
    -- The account at the balances service that holds this trader's money.
    balances_account_id  text        NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);

-- Secrets are random 256-bit values, so one SHA-256 is enough (a slow
-- password hash would protect nothing more and cost every request).
CREATE TABLE api_keys (
    key_id         text        PRIMARY KEY,
    account_id     uuid        NOT NULL REFERENCES accounts,
    secret_sha256  bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);

CREATE TABLE orders (
    order_id               uuid        PRIMARY KEY,
    account_id             uuid        NOT NULL REFERENCES accounts,
    client_order_id        text        NOT NULL,
    -- The id the venue knows the order by, derived from order_id; the
    -- venue refuses a second order with it, so re-sending is safe (I1).
    venue_client_order_id  text        NOT NULL UNIQUE,
    request_fingerprint    text        NOT NULL,
    symbol                 text        NOT NULL,
    side                   text        NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type             text        NOT NULL CHECK (order_type IN ('market', 'limit')),
    time_in_force          text        NOT NULL CHECK (time_in_force IN ('day', 'gtc', 'ioc', 'fok')),
    qty                    numeric     NOT NULL CHECK (qty > 0),
    limit_price            numeric     CHECK (limit_price > 0),

    -- Trader-visible projection (Alpaca vocabulary).
    status                 text        NOT NULL CHECK (status IN ('pending_new', 'new', 'partially_filled',
                               'filled', 'pending_cancel', 'canceled', 'expired', 'rejected')),
    -- Recovery point: the step to run next and whether its last call's
    -- outcome is unknown. recovery_version lets a newer binary finish what
    -- an older one started.
    step                   text        NOT NULL CHECK (step IN ('reserve', 'place', 'working', 'release', 'closed', 'parked')),
    step_state             text        NOT NULL DEFAULT 'pending' CHECK (step_state IN ('pending', 'unknown')),
    recovery_version       smallint    NOT NULL DEFAULT 1,
    attempts               integer     NOT NULL DEFAULT 0,
    -- Durable retry timer.
    next_attempt_at        timestamptz NOT NULL DEFAULT now(),
    -- Who drives the order now; expired or dead-owner leases are free.
    lease_owner            uuid,
    lease_expires_at       timestamptz,

    -- What is reserved: asset, amount, and the per-share rate a fill
    -- consumes (the limit or collared reference price for buys, 1 share
    -- for sells). NULL until known (a market buy needs a quote).
    hold_asset             text,
    hold_amount            numeric     CHECK (hold_amount > 0),
    hold_rate              numeric     CHECK (hold_rate > 0),
    hold_id                text        UNIQUE,
    venue_order_id         text        UNIQUE,

    filled_qty             numeric     NOT NULL DEFAULT 0 CHECK (filled_qty >= 0 AND filled_qty <= qty),
    filled_avg_price       numeric,
    reject_reason          jsonb,

    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    submitted_at           timestamptz,
    filled_at              timestamptz,
    canceled_at            timestamptz,
    expired_at             timestamptz,
    failed_at              timestamptz,
    -- Bumped by every change; writers check it (optimistic concurrency).
    version                bigint      NOT NULL DEFAULT 1,

    UNIQUE (account_id, client_order_id)
);

-- The completer's queue: orders orderd must drive, by due time.
CREATE INDEX orders_driven_due ON orders (next_attempt_at)
    WHERE step IN ('reserve', 'place', 'release');
CREATE INDEX orders_account_created ON orders (account_id, created_at DESC, order_id DESC);
CREATE INDEX orders_open_status ON orders (status)
    WHERE status NOT IN ('filled', 'canceled', 'expired', 'rejected');

-- Every action state of every step, append-only.
CREATE TABLE order_events (
    event_id     bigserial   PRIMARY KEY,
    order_id     uuid        NOT NULL REFERENCES orders,
    step         text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('requested', 'succeeded', 'failed', 'unknown')),
    detail       jsonb       NOT NULL DEFAULT '{}',
    instance_id  uuid,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX order_events_order ON order_events (order_id, event_id);

-- Idempotency-Key records (IETF draft semantics), per account.
CREATE TABLE idempotency_keys (
    account_id           uuid        NOT NULL REFERENCES accounts,
    idempotency_key      text        NOT NULL,
    request_fingerprint  text        NOT NULL,
    order_id             uuid        REFERENCES orders,
    -- NULL while the first request is in flight; set once its outcome is
    -- final. An internal error is never stored: the retry resumes.
    response_status      smallint,
    response_body        jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    expires_at           timestamptz NOT NULL,
    PRIMARY KEY (account_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
