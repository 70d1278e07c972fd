-- Every orderd process registers itself here at start-up and refreshes
-- last_seen_at while it lives. Leases (completer work, the venue stream)
-- name their owner by instance_id, so an operator can tell which process
-- holds what and whether it is still alive.
CREATE TABLE instances (
    instance_id   uuid        PRIMARY KEY,
    hostname      text        NOT NULL,
    pid           integer     NOT NULL,
    version       text        NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz
);
