-- Reference data and the trading day.
--
-- * time_in_force gains opg and cls (the opening and closing auctions);
--   status gains accepted (the venue holds the order without working it:
--   entered outside the session, or waiting for its auction). Loosened
--   constraints are added NOT VALID: every existing row satisfies them, and
--   no scan runs under the table lock.
-- * assets: the venue's instruments, synced by the `reference` job; intake
--   validates against them (held in memory, reloaded from here).
--   asset_id is orderd's own stable id for the symbol (what orders and
--   positions show); venue_asset_id the venue's.
-- * trading_sessions: the venue's calendar, synced likewise; the clock,
--   the calendar endpoint and every expires_at come from it.

ALTER TABLE orders DROP CONSTRAINT orders_time_in_force_check;
ALTER TABLE orders ADD CONSTRAINT orders_time_in_force_check
    CHECK (time_in_force IN ('day', 'gtc', 'ioc', 'fok', 'opg', 'cls')) NOT VALID;

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending_new', 'accepted', 'new', 'partially_filled', 'filled',
                      'pending_cancel', 'canceled', 'expired', 'rejected')) NOT VALID;

CREATE TABLE assets (
    symbol                text        PRIMARY KEY,
    asset_id              uuid        NOT NULL UNIQUE,
    venue_asset_id        text        NOT NULL,
    name                  text        NOT NULL,
    exchange              text        NOT NULL,
    asset_class           text        NOT NULL,
    status                text        NOT NULL CHECK (status IN ('active', 'inactive')),
    tradable              boolean     NOT NULL,
    shortable             boolean     NOT NULL,
    easy_to_borrow        boolean     NOT NULL,
    fractionable          boolean     NOT NULL,
    marginable            boolean     NOT NULL,
    halted                boolean     NOT NULL,
    tick_size             numeric     NOT NULL CHECK (tick_size > 0),
    sub_dollar_tick_size  numeric     NOT NULL CHECK (sub_dollar_tick_size > 0),
    tick_threshold        numeric     NOT NULL CHECK (tick_threshold >= 0),
    lot_size              numeric     NOT NULL CHECK (lot_size > 0),
    min_qty               numeric     NOT NULL CHECK (min_qty > 0),
    max_qty               numeric     NOT NULL CHECK (max_qty >= min_qty),
    synced_at             timestamptz NOT NULL,
    changed_at            timestamptz NOT NULL
);

CREATE TABLE trading_sessions (
    session_date     date        PRIMARY KEY,
    pre_open         timestamptz NOT NULL,
    open             timestamptz NOT NULL,
    closing_auction  timestamptz NOT NULL,
    close            timestamptz NOT NULL,
    early_close      boolean     NOT NULL,
    synced_at        timestamptz NOT NULL,
    CHECK (pre_open <= open AND open <= closing_auction AND closing_auction <= close)
);
CREATE INDEX trading_sessions_close ON trading_sessions (close);

-- A run of a job at an instance's start (the first sync of reference data).
ALTER TABLE reconciliation_runs DROP CONSTRAINT reconciliation_runs_trigger_check;
ALTER TABLE reconciliation_runs ADD CONSTRAINT reconciliation_runs_trigger_check
    CHECK (trigger IN ('schedule', 'manual', 'startup')) NOT VALID;
