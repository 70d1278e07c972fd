//! Simulator configuration: every interval, size and limit of the venue, with
//! the documented defaults. Deserializes from TOML (all fields optional).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::clock::{ClockMode, Phase, ScheduleSpec};
use crate::faults::FaultProfile;
use crate::market::Exchange;

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
    /// Accelerated clock: length of the continuous `open` phase of each
    /// compressed day (DAY orders expire at the close, one
    /// `closing_auction_secs` later). Default 6.5 h.
    pub session_secs: u64,
    /// The trading day: clock mode, phase lengths or local times, calendar.
    pub clock: ClockConfig,
    /// Largest move of an auction price from the reference, in basis points
    /// (uniform in `[-auction_step_bps, +auction_step_bps]`, seeded).
    pub auction_step_bps: Decimal,
    /// Largest move of the reopening print after a halt, in basis points.
    pub halt_reopen_bps: Decimal,
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
    /// Period of the market task that fires due fills, cancels, halts and
    /// the session's phases.
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
    /// Listing exchange; NASDAQ when absent.
    #[serde(default)]
    pub exchange: Option<Exchange>,
    /// Shown in the asset (also as `easy_to_borrow`); default true.
    #[serde(default = "default_true")]
    pub shortable: bool,
    /// Smallest order qty in shares; default 1.
    #[serde(default = "default_min_qty")]
    pub min_qty: u64,
    /// Takes fractional quantities (market orders for the day); by
    /// default when `min_qty` is 1, and only then.
    #[serde(default)]
    pub fractionable: Option<bool>,
}

impl SymbolConfig {
    /// Whether the symbol takes fractional quantities.
    pub fn is_fractionable(&self) -> bool {
        self.fractionable.unwrap_or(self.min_qty == 1)
    }
}

fn default_true() -> bool {
    true
}

fn default_min_qty() -> u64 {
    1
}

impl SymbolConfig {
    /// A symbol with the defaults (NASDAQ, shortable, min qty 1).
    pub fn new(symbol: &str, name: &str, price: Decimal) -> SymbolConfig {
        SymbolConfig {
            symbol: symbol.to_owned(),
            name: name.to_owned(),
            price,
            exchange: None,
            shortable: true,
            min_qty: 1,
            fractionable: None,
        }
    }
}

/// `[clock]`: how the trading day is placed in time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    /// `accelerated` (a compressed day repeating from start-up) or `wall`.
    pub mode: ClockMode,
    /// Accelerated: phase lengths; the `open` phase is `session_secs`.
    pub pre_open_secs: u64,
    pub opening_auction_secs: u64,
    pub closing_auction_secs: u64,
    pub closed_secs: u64,
    /// Accelerated: start-up is the start of this phase of day 0.
    pub start_phase: Phase,
    /// IANA time zone of the local times and of the dates.
    pub timezone: String,
    /// Wall: local times `HH:MM`.
    pub pre_open_time: String,
    pub open_time: String,
    pub close_time: String,
    /// Wall: the close on the calendar's early-close days.
    pub early_close_time: String,
    /// Wall: the opening_auction phase is the last N minutes before the open.
    pub opening_auction_mins: u64,
    /// Wall: the closing_auction phase is the last N minutes before the close.
    pub closing_auction_mins: u64,
    /// A TOML calendar (`holidays`, `early_closes`) replacing the built-in
    /// NYSE 2026–2027 one.
    pub calendar_file: Option<PathBuf>,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            mode: ClockMode::Accelerated,
            pre_open_secs: 1,
            opening_auction_secs: 1,
            closing_auction_secs: 1,
            closed_secs: 1,
            start_phase: Phase::Open,
            timezone: "America/New_York".to_owned(),
            pre_open_time: "04:00".to_owned(),
            open_time: "09:30".to_owned(),
            close_time: "16:00".to_owned(),
            early_close_time: "13:00".to_owned(),
            opening_auction_mins: 2,
            closing_auction_mins: 10,
            calendar_file: None,
        }
    }
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
            clock: ClockConfig::default(),
            auction_step_bps: Decimal::new(10, 0),
            halt_reopen_bps: Decimal::new(50, 0),
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
        // SPY trades on NYSE Arca; the others are NASDAQ listings.
        exchange: Some(if symbol == "SPY" {
            Exchange::Arca
        } else {
            Exchange::Nasdaq
        }),
        ..SymbolConfig::new(symbol, name, Decimal::from(price))
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
        anyhow::ensure!(
            !self.auction_step_bps.is_sign_negative(),
            "auction_step_bps must be >= 0"
        );
        anyhow::ensure!(
            !self.halt_reopen_bps.is_sign_negative(),
            "halt_reopen_bps must be >= 0"
        );
        anyhow::ensure!(!self.symbols.is_empty(), "at least one symbol is required");
        let mut seen = std::collections::HashSet::new();
        for symbol in &self.symbols {
            anyhow::ensure!(
                symbol.price > Decimal::ZERO,
                "price of {} must be > 0",
                symbol.symbol
            );
            anyhow::ensure!(
                seen.insert(symbol.symbol.as_str()),
                "symbol {} is listed twice",
                symbol.symbol
            );
            anyhow::ensure!(
                (1..=crate::market::MAX_ORDER_QTY).contains(&symbol.min_qty),
                "min_qty of {} must be 1..={}",
                symbol.symbol,
                crate::market::MAX_ORDER_QTY
            );
            anyhow::ensure!(
                !(symbol.fractionable == Some(true) && symbol.min_qty != 1),
                "{} cannot be fractionable with min_qty {}: fractionable symbols take whole orders from one share",
                symbol.symbol,
                symbol.min_qty
            );
        }
        self.faults.validate().map_err(anyhow::Error::msg)?;
        // The calendar file is read at start-up (`load_calendar`).
        ScheduleSpec::new(&self.clock, self.session_secs, Calendar::builtin())
            .map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// The trading calendar: `clock.calendar_file` if set, else the
    /// built-in NYSE 2026–2027 calendar.
    pub fn load_calendar(&self) -> anyhow::Result<Calendar> {
        match &self.clock.calendar_file {
            None => Ok(Calendar::builtin()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading calendar {}", path.display()))?;
                Calendar::parse(&text)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("parsing calendar {}", path.display()))
            }
        }
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
        assert_eq!(config.symbols[0].exchange, None);
        assert!(config.symbols[0].shortable);
        assert_eq!(config.symbols[0].min_qty, 1);
        assert_eq!(config.clock, ClockConfig::default());
    }

    #[test]
    fn clock_and_symbol_settings_from_toml() {
        let config = Config::from_toml(
            r#"
            [clock]
            mode = "wall"
            timezone = "Europe/London"
            open_time = "08:00"
            close_time = "16:30"
            early_close_time = "12:30"
            pre_open_time = "07:00"
            [[symbols]]
            symbol = "VOD"
            price = 0.7
            exchange = "NYSE"
            shortable = false
            min_qty = 100
            "#,
        )
        .expect("valid config");
        assert_eq!(config.clock.mode, ClockMode::Wall);
        assert_eq!(config.clock.closing_auction_mins, 10);
        assert_eq!(config.symbols[0].exchange, Some(Exchange::Nyse));
        assert!(!config.symbols[0].shortable);
        assert_eq!(config.symbols[0].min_qty, 100);
        let spy = Config::default().symbols.into_iter().last().expect("SPY");
        assert_eq!(
            (spy.symbol.as_str(), spy.exchange),
            ("SPY", Some(Exchange::Arca))
        );
    }

    #[test]
    fn a_calendar_file_replaces_the_builtin_one() {
        let dir = std::env::temp_dir().join(format!("exchange-sim-cal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("calendar.toml");
        std::fs::write(&path, "holidays = [\"2026-12-01\"]\n").expect("write");
        let mut config = Config::default();
        config.clock.calendar_file = Some(path.clone());
        let calendar = config.load_calendar().expect("calendar");
        let date = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
        assert!(!calendar.is_trading_day(date));
        assert!(calendar.is_trading_day(date.succ_opt().expect("date")));
        std::fs::write(&path, "holidays = [\"soon\"]\n").expect("write");
        assert!(config.load_calendar().is_err());
        config.clock.calendar_file = Some(dir.join("missing.toml"));
        assert!(config.load_calendar().is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert!(Config::from_toml("fill_chunks_min = 0").is_err());
        assert!(Config::from_toml("no_such_field = 1").is_err());
        assert!(Config::from_toml("[faults]\nreject = 1.5").is_err());
        assert!(Config::from_toml("[clock]\nstart_phase = \"lunch\"").is_err());
        assert!(Config::from_toml("auction_step_bps = -1").is_err());
        assert_eq!(Config::default().listen.to_string(), DEFAULT_LISTEN);
    }
}
