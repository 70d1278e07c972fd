-- Fills exactly once, their settlement, and cancels.

ALTER TABLE orders DROP CONSTRAINT orders_step_check;
ALTER TABLE orders ADD CONSTRAINT orders_step_check
    CHECK (step IN ('reserve', 'place', 'working', 'cancel', 'release', 'closed', 'parked'));
ALTER TABLE orders ADD COLUMN cancel_requested_at timestamptz;
-- The venue's last word on the order (status and cumulative quantity),
-- kept to tell "all fills are in" from "a fill report is missing".
ALTER TABLE orders ADD COLUMN venue_status text;
ALTER TABLE orders ADD COLUMN venue_cum_qty numeric NOT NULL DEFAULT 0;

DROP INDEX orders_driven_due;
CREATE INDEX orders_driven_due ON orders (next_attempt_at)
    WHERE step IN ('reserve', 'place', 'cancel', 'release');
-- Orders the venue still works: what a stream gap or reconnect catches up.
CREATE INDEX orders_at_venue ON orders (order_id)
    WHERE venue_order_id IS NOT NULL AND step IN ('working', 'cancel');

-- One row per venue execution. The primary key on the venue's exec_id is
-- what makes a replayed, duplicated or re-fetched execution a no-op.
CREATE TABLE fills (
    exec_id              text        PRIMARY KEY,
    order_id             uuid        NOT NULL REFERENCES orders,
    qty                  numeric     NOT NULL CHECK (qty > 0),
    price                numeric     NOT NULL CHECK (price > 0),
    transact_time        timestamptz NOT NULL,
    -- How orderd learned of it: the stream, REST catch-up, reconciliation.
    source               text        NOT NULL CHECK (source IN ('stream', 'rest', 'reconcile')),
    -- Settlement at the balances service, keyed by exec_id.
    settlement_state     text        NOT NULL DEFAULT 'pending'
                             CHECK (settlement_state IN ('pending', 'unknown', 'settled', 'failed')),
    settlement_attempts  integer     NOT NULL DEFAULT 0,
    next_settle_at       timestamptz NOT NULL DEFAULT now(),
    settle_lease_until   timestamptz,
    settlement_id        text,
    settlement_flagged   boolean,
    settled_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX fills_order ON fills (order_id);
CREATE INDEX fills_unsettled ON fills (next_settle_at)
    WHERE settlement_state IN ('pending', 'unknown');
