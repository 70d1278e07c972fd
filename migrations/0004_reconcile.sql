-- Reconciliation: one row per cron tick (the at-most-once guard across
-- instances), auditable runs with their findings, and named leases with
-- fencing tokens (the venue stream is held by one instance at a time).

CREATE TABLE reconcile_ticks (
    job            text        NOT NULL,
    scheduled_for  timestamptz NOT NULL,
    instance_id    uuid        NOT NULL,
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, scheduled_for)
);

CREATE TABLE reconciliation_runs (
    run_id         bigserial   PRIMARY KEY,
    job            text        NOT NULL,
    -- The cron tick it ran for; NULL when run by hand.
    scheduled_for  timestamptz,
    trigger        text        NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    instance_id    uuid        NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at    timestamptz,
    examined       integer     NOT NULL DEFAULT 0,
    findings       integer     NOT NULL DEFAULT 0,
    repaired       integer     NOT NULL DEFAULT 0,
    errors         jsonb       NOT NULL DEFAULT '[]'
);
CREATE INDEX reconciliation_runs_job ON reconciliation_runs (job, started_at DESC);

CREATE TABLE reconciliation_findings (
    finding_id      bigserial   PRIMARY KEY,
    run_id          bigint      NOT NULL REFERENCES reconciliation_runs,
    kind            text        NOT NULL,
    classification  text        NOT NULL CHECK (classification IN ('pending', 'resolvable', 'unresolvable')),
    order_id        uuid,
    subject         text,
    detail          text        NOT NULL,
    -- What was done about it, and whether that worked.
    action          text        NOT NULL,
    action_ok       boolean,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX reconciliation_findings_run ON reconciliation_findings (run_id);

CREATE TABLE leases (
    name           text        PRIMARY KEY,
    owner          uuid        NOT NULL,
    -- Grows by one at every change of owner; a holder that finds a larger
    -- token than its own has been replaced and must stop.
    fencing_token  bigint      NOT NULL,
    expires_at     timestamptz NOT NULL
);
