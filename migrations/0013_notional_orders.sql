-- Notional orders: cash to trade instead of a quantity; the venue decides
-- the quantity when it executes the order.
--
-- * notional: the trader's cash amount; null for every other order. A
--   nullable column without a default rewrites nothing.
-- * qty is 0 for a notional order until the venue reports it filled, and
--   then what was filled (orderd never learns it earlier from the stream);
--   meanwhile its fills are bounded by nothing but the report bounds. The
--   qty checks are loosened for exactly those rows. The loosened checks
--   are added NOT VALID (every existing row satisfies them, and no scan
--   runs under the table lock) and validated by 0014, a migration of its
--   own.
--
-- An instance older than this migration cannot drive a notional order's
-- row: lifecycle.notional_orders stays off until every instance runs this
-- release.

ALTER TABLE orders ADD COLUMN notional numeric;
ALTER TABLE orders
    DROP CONSTRAINT orders_qty_check,
    DROP CONSTRAINT orders_check,
    ADD CONSTRAINT orders_qty_check
        CHECK (qty > 0 OR (qty = 0 AND notional > 0)) NOT VALID,
    ADD CONSTRAINT orders_check
        CHECK (filled_qty >= 0 AND (filled_qty <= qty OR (qty = 0 AND notional > 0))) NOT VALID,
    ADD CONSTRAINT orders_notional_check CHECK (notional > 0) NOT VALID;
