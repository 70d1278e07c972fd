//! orderd: an equity-trading order-lifecycle daemon.
//!
//! Start at [`startup::Application`]; ARCHITECTURE.md has the map.

#[macro_use]
pub mod domain;

pub mod app;
pub mod check;
pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod embedded_postgres;
pub mod engine;
pub mod failpoints;
#[cfg(test)]
mod fuzz_json;
pub mod harness;
pub mod http;
pub mod instance;
pub mod metrics;
pub mod reconcile;
pub mod reference;
pub mod startup;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod venues;

/// Installs the process-wide rustls crypto provider (ring). Exactly one
/// provider is compiled in; installing it explicitly keeps a dependency that
/// enables another from making the first TLS connect panic.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
