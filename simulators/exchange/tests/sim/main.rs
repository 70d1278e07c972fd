//! Integration tests: the venue spawned on 127.0.0.1:0, driven over real
//! HTTP and websocket connections.

mod admin;
mod faults;
mod fixtures;
mod helpers;
mod orders;
mod replace;
mod session;
mod stops;
mod stream;
