//! Simulator configuration: every interval, size and limit of the venue, with
//! the documented defaults. Deserializes from TOML (all fields optional).

use std::net::SocketAddr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::faults::FaultProfile;

/// The venue's settings. `Config::default()` is exactly what the binary runs
/// with when given no `--config` file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to bind; port 0 picks a free port (see `Handle::addr`).
    pub listen: SocketAddr,
    /// Seed of the market model (price walk, fill chunking) and of fault rolls.
    pub seed: u64,
    /// The one venue account's API key (`Authorization: Bearer <api_key>`,
    /// and the websocket `auth` message).
    pub api_key: String,
    /// Tradable universe with starting reference prices.
    pub symbols: Vec<SymbolConfig>,
    /// Length of a simulated trading session; DAY orders expire at its end and
    /// a new session starts at once. Default 6.5 h.
    pub session_secs: u64,
    /// Resting (DAY/GTC) orders fill in between `fill_chunks_min` and
    /// `fill_chunks_max` chunks (never more chunks than shares).
    pub fill_chunks_min: u32,
    pub fill_chunks_max: u32,
    /// Time between two fill chunks of one order; the first chunk is due at once.
    pub fill_interval_ms: u64,
    /// Shares available at the touch for one immediate attempt (IOC and FOK):
    /// an IOC larger than this fills this many and expires the rest, a FOK
    /// larger than this expires with nothing filled.
    pub immediate_liquidity_qty: u64,
    /// Period of the market task that fires due fills, cancels and session
    /// closes.
    pub market_tick_ms: u64,
    /// Period of the reference-price random walk.
    pub walk_interval_ms: u64,
    /// Largest move of one walk step, in basis points of the price (uniform in
    /// `[-walk_step_bps, +walk_step_bps]`). 0 freezes prices.
    pub walk_step_bps: Decimal,
    /// Quoted spread (ask - bid) in basis points of the reference price; never
    /// less than one tick each side.
    pub spread_bps: Decimal,
    /// Delay between `DELETE /v1/orders/{id}` and the cancel taking effect
    /// (fills due meanwhile still happen).
    pub cancel_latency_ms: u64,
    /// Interval of websocket heartbeats.
    pub heartbeat_ms: u64,
    /// Reports a websocket connection may fall behind before it is closed as a
    /// slow consumer.
    pub stream_queue_len: usize,
    /// Fault profile in effect at start (replaceable via `PUT /admin/faults`).
    pub faults: FaultProfile,
}

/// One tradable symbol.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SymbolConfig {
    pub symbol: String,
    #[serde(default)]
    pub name: String,
    /// Starting reference price (rounded to the tick).
    pub price: Decimal,
}

/// Default address of the venue; orderd's default `exchange.url` points here.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9100";
/// Default API key; orderd's default `exchange.api_key` is the same string.
pub const DEFAULT_API_KEY: &str = "sim-venue-key";

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            seed: 1,
            api_key: DEFAULT_API_KEY.to_owned(),
            symbols: default_symbols(),
            session_secs: 23_400,
            fill_chunks_min: 2,
            fill_chunks_max: 4,
            fill_interval_ms: 100,
            immediate_liquidity_qty: 1_000,
            market_tick_ms: 5,
            walk_interval_ms: 250,
            walk_step_bps: Decimal::new(2, 0),
            spread_bps: Decimal::new(2, 0),
            cancel_latency_ms: 0,
            heartbeat_ms: 1_000,
            stream_queue_len: 16_384,
            faults: FaultProfile::default(),
        }
    }
}

fn default_symbols() -> Vec<SymbolConfig> {
    [
        ("AAPL", "Apple Inc.", 190),
        ("MSFT", "Microsoft Corporation", 420),
        ("AMZN", "Amazon.com, Inc.", 185),
        ("NVDA", "NVIDIA Corporation", 120),
        ("GOOGL", "Alphabet Inc. Class A", 170),
        ("TSLA", "Tesla, Inc.", 250),
        ("META", "Meta Platforms, Inc.", 500),
        ("SPY", "SPDR S&P 500 ETF Trust", 550),
    ]
    .into_iter()
    .map(|(symbol, name, price)| SymbolConfig {
        symbol: symbol.to_owned(),
        name: name.to_owned(),
        price: Decimal::from(price),
    })
    .collect()
}

impl Config {
    /// Parses a TOML document; missing fields keep their defaults.
    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects settings the venue cannot run with.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.fill_chunks_min >= 1, "fill_chunks_min must be >= 1");
        anyhow::ensure!(
            self.fill_chunks_max >= self.fill_chunks_min,
            "fill_chunks_max must be >= fill_chunks_min"
        );
        anyhow::ensure!(self.session_secs >= 1, "session_secs must be >= 1");
        anyhow::ensure!(self.market_tick_ms >= 1, "market_tick_ms must be >= 1");
        anyhow::ensure!(self.walk_interval_ms >= 1, "walk_interval_ms must be >= 1");
        anyhow::ensure!(self.heartbeat_ms >= 1, "heartbeat_ms must be >= 1");
        anyhow::ensure!(self.stream_queue_len >= 1, "stream_queue_len must be >= 1");
        anyhow::ensure!(
            !self.walk_step_bps.is_sign_negative(),
            "walk_step_bps must be >= 0"
        );
        anyhow::ensure!(
            !self.spread_bps.is_sign_negative(),
            "spread_bps must be >= 0"
        );
        anyhow::ensure!(!self.symbols.is_empty(), "at least one symbol is required");
        for symbol in &self.symbols {
            anyhow::ensure!(
                symbol.price > Decimal::ZERO,
                "price of {} must be > 0",
                symbol.symbol
            );
        }
        self.faults.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_some_fields_and_keeps_the_defaults() {
        let config = Config::from_toml(
            r#"
            listen = "127.0.0.1:0"
            seed = 42
            session_secs = 5
            walk_step_bps = 0
            [[symbols]]
            symbol = "PENNY"
            price = 0.5
            [faults]
            drop_report = 0.1
            "#,
        )
        .expect("valid config");
        assert_eq!(config.seed, 42);
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.session_secs, 5);
        assert_eq!(config.symbols.len(), 1);
        assert_eq!(config.symbols[0].price, Decimal::new(5, 1));
        assert_eq!(config.faults.drop_report, 0.1);
        assert_eq!(config.faults.response_lost_delay_ms, 200);
        assert_eq!(config.api_key, DEFAULT_API_KEY);
        assert_eq!(config.fill_interval_ms, Config::default().fill_interval_ms);
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert!(Config::from_toml("fill_chunks_min = 0").is_err());
        assert!(Config::from_toml("no_such_field = 1").is_err());
        assert!(Config::from_toml("[faults]\nreject = 1.5").is_err());
        assert_eq!(Config::default().listen.to_string(), DEFAULT_LISTEN);
    }
}
