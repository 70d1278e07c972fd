-- Stop, stop-limit and trailing-stop orders.
--
-- * order_type gains stop, stop_limit and trailing_stop (the loosened
--   constraint is added NOT VALID: every existing row satisfies it, and no
--   scan runs under the table lock);
-- * stop_price (stop, stop_limit), trail_price or trail_percent
--   (trailing_stop): the trader's terms, sent to the venue, which triggers
--   the order. Nullable columns without defaults: adding them rewrites
--   nothing, and an older binary that does not name them keeps working.

ALTER TABLE orders DROP CONSTRAINT orders_order_type_check;
ALTER TABLE orders ADD CONSTRAINT orders_order_type_check
    CHECK (order_type IN ('market', 'limit', 'stop', 'stop_limit', 'trailing_stop')) NOT VALID;

ALTER TABLE orders
    ADD COLUMN stop_price    numeric CHECK (stop_price > 0),
    ADD COLUMN trail_price   numeric CHECK (trail_price > 0),
    ADD COLUMN trail_percent numeric CHECK (trail_percent > 0 AND trail_percent < 100);
