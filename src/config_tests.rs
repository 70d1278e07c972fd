//! Tests of `src/config.rs`.

use super::*;

fn load_from(toml: &str) -> Result<Settings, ConfigError> {
    let dir = std::env::temp_dir().join(format!("orderd-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("c.toml");
    std::fs::write(&path, toml).expect("write config");
    let result = Settings::load_without_env(Some(&path));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn defaults_load_and_agree_with_the_simulators() {
    let settings = Settings::load_without_env(None).expect("defaults are valid");
    assert_eq!(settings.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.exchange.url, "http://127.0.0.1:9100");
    assert_eq!(settings.balances.url, "http://127.0.0.1:9200");
    assert!(settings.database.url.is_none(), "embedded by default");
}

#[test]
fn the_default_admin_token_is_refused_off_loopback() {
    let public = load_from("[http]\nlisten = \"0.0.0.0:8080\"\n");
    match public {
        Err(ConfigError::Invalid { key, problem }) => {
            assert_eq!(key, "admin.token");
            assert!(problem.contains("0.0.0.0:8080"), "{problem}");
        }
        other => panic!("accepted the default token on 0.0.0.0: {other:?}"),
    }
    assert!(load_from("[http]\nlisten = \"[::1]:8080\"\n").is_ok());
    assert!(
        load_from("[http]\nlisten = \"0.0.0.0:8080\"\n[admin]\ntoken = \"a-secret-of-our-own\"\n")
            .is_ok()
    );
    assert!(load_from("[http]\nauth_cache_ms = 1001\n").is_err());
    let settings = load_from("[admin]\ntoken = \"a-secret-of-our-own\"\n").unwrap();
    assert!(!format!("{settings:?}").contains("a-secret-of-our-own"));
}

#[test]
fn a_file_overrides_defaults() {
    let settings = load_from("[http]\nlisten = \"127.0.0.1:0\"\n").expect("valid");
    assert_eq!(settings.http.listen.port(), 0);
    assert_eq!(settings.http.body_limit_bytes, 65536, "untouched default");
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
fn environment_overrides_file() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("ORDERD__HTTP__LISTEN", "127.0.0.1:9999");
        jail.set_env("ORDERD__DATABASE__URL", "postgres://u@h/db");
        let settings =
            Settings::load_with_env(None, Env::prefixed(ENV_PREFIX).split("__")).unwrap();
        assert_eq!(settings.http.listen.port(), 9999);
        assert_eq!(settings.database.url.as_deref(), Some("postgres://u@h/db"));
        Ok(())
    });
}

#[test]
fn a_bad_value_names_its_key() {
    let error = load_from("[http]\nlisten = \"not an address\"\n").unwrap_err();
    assert!(error.to_string().contains("`http.listen`"), "{error}");

    let error = load_from("[database]\nmax_connections = 0\n").unwrap_err();
    assert!(
        error.to_string().contains("`database.max_connections`"),
        "{error}"
    );

    let error = load_from("[reconcile]\ngc = \"every minute\"\n").unwrap_err();
    assert!(error.to_string().contains("`reconcile.gc`"), "{error}");

    let error = load_from("[exchange]\nurl = \"ftp://x\"\n").unwrap_err();
    assert!(error.to_string().contains("`exchange.url`"), "{error}");
}

#[test]
fn an_unknown_key_is_refused() {
    let error = load_from("[http]\nlisten_port = 1\n").unwrap_err();
    assert!(error.to_string().contains("listen_port"), "{error}");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let error =
        Settings::load_without_env(Some(Path::new("/nonexistent/orderd.toml"))).unwrap_err();
    assert!(matches!(error, ConfigError::File { .. }), "{error}");
}

#[test]
fn stream_rendering_needs_some_concurrency() {
    let settings = load_from("").expect("defaults");
    assert_eq!(settings.http.stream_render_concurrency, 8);
    let error = load_from("[http]\nstream_render_concurrency = 0\n").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("`http.stream_render_concurrency`"),
        "{error}"
    );
}
