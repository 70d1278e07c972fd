//! The domain core: order values, the lifecycle transition table, the fold
//! of fills. Plain functions over plain types with `now` passed in.
//!
//! Architecture invariant: this module imports no I/O crate (no tokio,
//! sqlx, reqwest, axum) and reads no clock.

pub mod fills;
pub mod lifecycle;
pub mod order;
pub mod reconcile;
pub mod schedule;
