//! Simulator configuration: defaults, and the TOML file given with `--config`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::faults::FaultConfig;
use crate::wire::Amount;

/// Default listen address (orderd's default `balances.url` points here).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9200";

/// Everything the simulator can be configured with. Every field has a default, so an
/// empty TOML file (or `Config::default()`) is a valid configuration.
///
/// ```toml
/// listen = "127.0.0.1:9200"
/// seed = 0
///
/// [faults]            # same fields as GET/PUT /admin/faults
/// latency = 0.1
/// latency_ms_min = 1
/// latency_ms_max = 20
///
/// [[accounts]]        # created at start and again on /admin/reset
/// account_id = "alice"
/// balances = { USD = "100000", AAPL = "50" }
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to bind; port 0 picks a free port (see `Handle::addr`).
    pub listen: SocketAddr,
    /// Seeds the fault dice, so a fault sequence is reproducible.
    pub seed: u64,
    /// The fault profile at start and after `/admin/reset`.
    pub faults: FaultConfig,
    /// Accounts to create at start and after `/admin/reset`.
    pub accounts: Vec<AccountSeed>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSeed {
    pub account_id: String,
    #[serde(default)]
    pub balances: BTreeMap<String, Amount>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            seed: 0,
            faults: FaultConfig::default(),
            accounts: Vec::new(),
        }
    }
}

impl Config {
    pub fn from_toml_str(text: &str) -> anyhow::Result<Self> {
        let config: Config = toml::from_str(text).context("invalid balances-sim configuration")?;
        config
            .faults
            .validate()
            .map_err(|(field, reason)| anyhow::anyhow!("faults.{field}: {reason}"))?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_toml_str(&text).with_context(|| format!("in {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_is_the_default() {
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
    }

    #[test]
    fn full_toml() {
        let config = Config::from_toml_str(
            r#"
            listen = "127.0.0.1:0"
            seed = 9
            [faults]
            error_5xx = 0.5
            response_lost_mode = "timeout_504"
            [[accounts]]
            account_id = "alice"
            balances = { USD = "100000", AAPL = "50" }
            "#,
        )
        .unwrap();
        assert_eq!(config.seed, 9);
        assert_eq!(config.faults.error_5xx, 0.5);
        assert_eq!(config.faults.response_lost_delay_ms, 200);
        assert_eq!(config.accounts[0].balances["AAPL"].0, 50.into());
        assert!(Config::from_toml_str("nope = 1").is_err());
        assert!(Config::from_toml_str("[faults]\nlatency = 2.0").is_err());
    }
}
