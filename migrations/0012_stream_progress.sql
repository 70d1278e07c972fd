-- The venue stream's progress, written by the lease holder with its
-- renewal (once a second, never per report) so that any instance's
-- console shows it: the fencing token it was written under (a value
-- written under an older token is a former holder's), when (the
-- database's clock), how long ago the holder last received a report,
-- and the lag of the last report it applied (the venue's timestamp to
-- the commit). Nullable columns only: safe while an older version runs
-- (it neither reads nor writes them; its renewals leave them as they are,
-- and the token tells they are stale).
ALTER TABLE leases
    ADD COLUMN progress_token     bigint,
    ADD COLUMN progress_at        timestamptz,
    ADD COLUMN last_report_age_ms double precision,
    ADD COLUMN report_lag_ms      double precision;
