//! `exchange-sim`: a simulated equity venue for orderd — REST order entry,
//! a websocket execution-report stream, a moving market, and fault injection
//! that is seeded and switchable at runtime.
//!
//! Code map:
//! - [`market`]: the pure core (prices, orders, matching, the trading day's
//!   phases and auctions, halts); no I/O, `now` passed in.
//! - [`clock`]: phases and sessions in time (accelerated and wall clocks);
//!   [`calendar`]: trading days, holidays, early closes. Pure.
//! - [`wire`]: JSON types of the REST API, stream and admin API (the contract;
//!   `fixtures/` holds golden examples).
//! - [`faults`]: the fault profile and its counters.
//! - `app`: shared state, the market task, [`spawn`] and [`Handle`].
//! - `api`: HTTP handlers (`/v1` and `/admin`); `stream`: the websocket.
//!
//! Architecture invariant: the market knows nothing about HTTP, websockets,
//! the real clock, or faults other than the cancel mode and the halt
//! probability it is handed.

mod api;
mod app;
pub mod calendar;
pub mod clock;
pub mod config;
pub mod faults;
pub mod market;
mod stream;
pub mod wire;

pub use app::{Handle, spawn};
pub use clock::{ClockMode, Phase};
pub use config::{ClockConfig, Config, SymbolConfig};
pub use faults::FaultProfile;
