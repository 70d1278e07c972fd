-- Replace (PATCH /v2/orders/{id}): a replacement is an order of its own
-- whose placement is the venue's cancel/replace request.
--
-- * status gains pending_replace (an order whose replacement is on its way
--   to the venue) and replaced (the venue replaced it; terminal). The
--   loosened constraint is added NOT VALID: every existing row satisfies
--   it, and no scan runs under the table lock.
-- * replaces: on a replacement, the order it replaces; replaced_by: on an
--   order being (or once) replaced, its replacement. Set together in the
--   replacement's accept; replaced_by is cleared again if the replacement
--   ends without reaching the venue (the original works on).
-- * carried_qty: what the replaced chain had filled, carried into the
--   replacement (the venue's word); qty is the replacement's own. Until
--   the venue has said (qty_confirmed false), qty is orderd's estimate,
--   an upper bound of the venue's.
-- * replaced_at: when it became replaced (as filled_at, canceled_at, ...).
-- * hold_raise: what the replacement added to the hold it shares with the
--   order it replaces, recorded before the keyed increase is asked for (a
--   retry asks for the identical amount), 0 when nothing was needed.
--
-- * hold_id is no longer unique: a replacement takes over the hold of the
--   order it replaces (one hold per chain).
--
-- Nullable columns and a constant default rewrite nothing. No index: every
-- read of a chain goes by order_id. An instance older than this migration
-- cannot read the new statuses: lifecycle.replace_orders stays off until
-- every instance runs this release (an older instance skips such rows as
-- unreadable; it never drives them).

ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending_new', 'accepted', 'new', 'partially_filled', 'filled',
                      'pending_cancel', 'pending_replace', 'canceled', 'expired',
                      'rejected', 'replaced')) NOT VALID;

ALTER TABLE orders
    ADD COLUMN replaces      uuid REFERENCES orders (order_id),
    ADD COLUMN replaced_by   uuid,
    ADD COLUMN carried_qty   numeric NOT NULL DEFAULT 0,
    ADD COLUMN qty_confirmed boolean NOT NULL DEFAULT true,
    ADD COLUMN hold_raise    numeric,
    ADD COLUMN replaced_at   timestamptz;

-- A chain shares one hold: hold_id is no longer one order's.
ALTER TABLE orders DROP CONSTRAINT orders_hold_id_key;
