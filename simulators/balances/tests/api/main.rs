//! HTTP tests: each test spawns its own simulator on 127.0.0.1:0 and talks to it
//! with reqwest, through the front door.

mod admin;
mod concurrency;
mod faults;
mod fixtures;
mod helpers;
mod holds;
mod idempotency;
mod settlements;
