-- Validates the checks 0013 added NOT VALID, under a lock that lets
-- reads and writes go on (SHARE UPDATE EXCLUSIVE), in a migration of its
-- own (ARCHITECTURE.md, rules for migrations, 4).

ALTER TABLE orders VALIDATE CONSTRAINT orders_qty_check;
ALTER TABLE orders VALIDATE CONSTRAINT orders_check;
ALTER TABLE orders VALIDATE CONSTRAINT orders_notional_check;
