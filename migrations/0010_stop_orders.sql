-- Stop, stop-limit and trailing-stop orders.
--
-- * order_type gains stop, stop_limit and trailing_stop (the loosened
--   constraint is added NOT VALID: every existing row satisfies it, and no
--   scan runs under the table lock);
-- * stop_price (stop, stop_limit), trail_price or trail_percent
--   (trailing_stop): the trader's terms, sent to the venue, which triggers
--   the order. Nullable columns without defaults rewrite nothing; their
--   checks are added NOT VALID (no scan under the exclusive lock) and then
--   validated under a lock that lets writes go on.
--
-- An instance older than this migration cannot read a row of the new
-- types: upgrade every instance before the first stop order is taken.

ALTER TABLE orders DROP CONSTRAINT orders_order_type_check;
ALTER TABLE orders ADD CONSTRAINT orders_order_type_check
    CHECK (order_type IN ('market', 'limit', 'stop', 'stop_limit', 'trailing_stop')) NOT VALID;

ALTER TABLE orders
    ADD COLUMN stop_price    numeric,
    ADD COLUMN trail_price   numeric,
    ADD COLUMN trail_percent numeric;
ALTER TABLE orders
    ADD CONSTRAINT orders_stop_price_check CHECK (stop_price > 0) NOT VALID,
    ADD CONSTRAINT orders_trail_price_check CHECK (trail_price > 0) NOT VALID,
    ADD CONSTRAINT orders_trail_percent_check
        CHECK (trail_percent > 0 AND trail_percent < 100) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_stop_price_check;
ALTER TABLE orders VALIDATE CONSTRAINT orders_trail_price_check;
ALTER TABLE orders VALIDATE CONSTRAINT orders_trail_percent_check;
