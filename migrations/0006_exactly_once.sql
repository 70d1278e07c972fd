-- Exactly once under adversarial schedules.
--
-- * step_state 'sent': the intent of the step's external call is recorded
--   (the call may have left the process). A new claim turns it into
--   'unknown', which only evidence resolves.
-- * lease_token: one token per claim (from a sequence), checked by every
--   write a driver makes; two drivers of one order cannot both record.
-- * placement_sent_at / placement_last_sent_at: when orderd first and last
--   recorded the intent to place the order; from the first on the venue
--   may have it, and a cancel looks it up instead of abandoning it; past
--   the last one's receive window nothing sent can still arrive.
-- * parked_step: the step an order was parked at, where resume continues.
-- * instances: a stable name per process identity and a generation; a new
--   generation fences its predecessors at once.
-- * fills.settle_token: one token per settlement claim; a late answer of
--   an earlier claim cannot overwrite a later outcome.
-- * quarantined_reports: venue news orderd refused to apply (numbers out of
--   bounds, more than ordered, an unknown status), kept for operators.

ALTER TABLE orders DROP CONSTRAINT orders_step_state_check;
ALTER TABLE orders ADD CONSTRAINT orders_step_state_check
    CHECK (step_state IN ('pending', 'sent', 'unknown')) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_step_state_check;

CREATE SEQUENCE lease_tokens;
ALTER TABLE orders ADD COLUMN lease_token bigint;
ALTER TABLE orders ADD COLUMN placement_sent_at timestamptz;
-- The latest placement intent: every placement carries it as its
-- timestamp with a receive window, so once the window has passed no
-- earlier send can still reach the venue.
ALTER TABLE orders ADD COLUMN placement_last_sent_at timestamptz;
ALTER TABLE orders ADD COLUMN parked_step text;

-- Rows written by an older binary: any placement attempted (placed, or an
-- attempt on record) may exist at the venue.
UPDATE orders SET placement_sent_at = COALESCE(submitted_at, updated_at),
                  placement_last_sent_at = COALESCE(submitted_at, updated_at)
 WHERE placement_sent_at IS NULL
   AND (venue_order_id IS NOT NULL OR (step = 'place' AND (step_state = 'unknown' OR attempts > 0)));

ALTER TABLE instances ADD COLUMN name text;
ALTER TABLE instances ADD COLUMN generation bigint NOT NULL DEFAULT 1;
ALTER TABLE instances ADD COLUMN fenced_at timestamptz;
CREATE INDEX instances_name ON instances (name, generation DESC);

ALTER TABLE fills ADD COLUMN settle_token bigint;
-- A fill that arrived after its order's hold was released (settled from
-- free balance; counted and reported by reconciliation).
ALTER TABLE fills ADD COLUMN late boolean NOT NULL DEFAULT false;
CREATE INDEX fills_late ON fills (created_at) WHERE late;

CREATE TABLE quarantined_reports (
    quarantine_id          bigserial   PRIMARY KEY,
    received_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    source                 text        NOT NULL,
    venue_client_order_id  text,
    order_id               uuid,
    exec_id                text,
    reason                 text        NOT NULL,
    report                 jsonb       NOT NULL
);
CREATE INDEX quarantined_reports_order ON quarantined_reports (venue_client_order_id);
