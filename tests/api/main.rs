//! Tests of orderd in-process, through its HTTP front door, each over its
//! own fresh database.

#[path = "../support/mod.rs"]
mod support;

mod alpaca_py;
mod alpaca_ts;
mod bounds;
mod database;
mod exactly_once;
mod fills;
mod fractional;
mod health;
mod hostile_input;
mod lost_commit;
mod market;
mod notional;
mod openapi;
mod operator;
mod orders;
mod positions;
mod reconcile;
mod replace;
mod request_ids;
mod stops;
mod stream;
mod upgrade;
