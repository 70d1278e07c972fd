//! Shared test support: a fresh database per test in the throwaway cluster
//! that `scripts/test` starts, and an orderd app spawned on port 0.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::str::FromStr;

use orderd::config::Settings;
use orderd::startup::Application;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::oneshot;

/// Set by `scripts/test` to the throwaway cluster's admin URL.
pub const TEST_DATABASE_URL_VAR: &str = "ORDERD_TEST_DATABASE_URL";

/// Connection options of the test cluster's `postgres` database.
pub fn admin_options() -> PgConnectOptions {
    let url = std::env::var(TEST_DATABASE_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{TEST_DATABASE_URL_VAR} is not set: run the suite with `scripts/test`, which starts \
             a throwaway PostgreSQL cluster (or point the variable at a server you run)"
        )
    });
    PgConnectOptions::from_str(&url).expect("ORDERD_TEST_DATABASE_URL is a valid URL")
}

/// A database of its own for one test, migrated.
pub struct TestDatabase {
    pub name: String,
    pub options: PgConnectOptions,
    pub pool: PgPool,
}

impl TestDatabase {
    pub async fn fresh() -> Self {
        let db = Self::fresh_unmigrated().await;
        orderd::db::migrate(&db.pool)
            .await
            .expect("migrations apply");
        db
    }

    pub async fn fresh_unmigrated() -> Self {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_options();
        orderd::db::create_database_if_missing(&admin, &name)
            .await
            .expect("create test database");
        let options = admin.database(&name);
        let settings = test_settings();
        let pool = orderd::db::build_pool(options.clone(), &settings.database);
        Self {
            name,
            options,
            pool,
        }
    }

    /// The URL form, for a child process's `ORDERD__DATABASE__URL`.
    pub fn url(&self) -> String {
        let base = std::env::var(TEST_DATABASE_URL_VAR).expect("test database URL");
        // The admin URL ends in `/postgres?host=...` (embedded cluster) or
        // `/postgres`; swap the database name.
        match base.split_once('?') {
            Some((path, query)) => format!(
                "{}/{}?{}",
                path.rsplit_once('/').map(|(p, _)| p).unwrap_or(path),
                self.name,
                query
            ),
            None => format!(
                "{}/{}",
                base.rsplit_once('/').map(|(p, _)| p).unwrap_or(&base),
                self.name
            ),
        }
    }
}

/// Settings for an in-process app: defaults, port 0, no environment.
pub fn test_settings() -> Settings {
    let mut settings = Settings::load_without_env(None).expect("default settings");
    settings.http.listen = "127.0.0.1:0".parse().expect("address");
    settings.database.max_connections = 8;
    settings
}

/// An orderd serving on port 0 over a fresh database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDatabase,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(test_settings()).await
    }

    pub async fn spawn_with(settings: Settings) -> Self {
        orderd::install_crypto_provider();
        let db = TestDatabase::fresh().await;
        let app = Application::build_with_pool(settings, db.pool.clone())
            .await
            .expect("app builds");
        let addr = app.local_addr();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            db,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful stop; returns what `run_until` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("app task"),
            None => Ok(()),
        }
    }
}
