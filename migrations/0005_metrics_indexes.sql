-- /metrics counts orders that are not closed by step on every scrape.
CREATE INDEX orders_not_closed ON orders (step, step_state) WHERE step <> 'closed';
