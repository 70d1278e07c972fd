-- expires_at: when the order expires, computed at intake from the trading
-- day (`[market]`: the next session close for day, IOC and FOK orders, the
-- close after the GTC horizon) and shown as Alpaca's expires_at. Orders
-- entered before this migration have none stored; they show the expiry
-- computed from their created_at by the same rule.

ALTER TABLE orders ADD COLUMN expires_at timestamptz;
