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
    // Canceled orders keep their hold for late fills this long: short, so
    // tests that wait for a release do not wait for it.
    settings.lifecycle.late_fill_window_ms = 200;
    // Tests drive traders far past 200 requests a minute; the rate limit's
    // own test turns it on.
    settings.http.rate_limit_per_minute = 0;
    // Tests read gauges right after changing what they count.
    settings.http.metrics_gauges_ms = 0;
    // Every instance of a test runs this release: notional orders are taken.
    settings.lifecycle.notional_orders = true;
    settings.lifecycle.replace_orders = true;
    settings
}

/// An orderd serving on port 0 over a fresh database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDatabase,
    pub engine: std::sync::Arc<orderd::engine::Engine>,
    pub reconciler: std::sync::Arc<orderd::reconcile::Reconciler>,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(test_settings()).await
    }

    /// Another instance over an existing database (scale-out tests).
    pub async fn spawn_on(settings: Settings, db: &TestDatabase) -> Self {
        let shared = TestDatabase {
            name: db.name.clone(),
            options: db.options.clone(),
            pool: orderd::db::build_pool(db.options.clone(), &settings.database),
        };
        Self::spawn_over(settings, shared).await
    }

    pub async fn spawn_with(settings: Settings) -> Self {
        Self::spawn_over(settings, TestDatabase::fresh().await).await
    }

    async fn spawn_over(settings: Settings, db: TestDatabase) -> Self {
        orderd::install_crypto_provider();
        let app = Application::build_with_pool(settings, db.pool.clone())
            .await
            .expect("app builds");
        let addr = app.local_addr();
        let engine = app.state().app.engine.clone();
        let reconciler = app.state().app.reconciler.clone();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            db,
            engine,
            reconciler,
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

/// orderd with both simulators, all in-process on port 0.
pub struct TestStack {
    pub app: TestApp,
    pub exchange: exchange_sim::Handle,
    pub balances: balances_sim::Handle,
    pub http: reqwest::Client,
}

/// A provisioned trader: funded at the balances service, with orderd keys.
#[derive(Clone)]
pub struct Trader {
    pub account_id: String,
    pub balances_account_id: String,
    pub key_id: String,
    pub secret_key: String,
    base: String,
    http: reqwest::Client,
}

/// A response as tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Trader {
    fn auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .header("APCA-API-KEY-ID", &self.key_id)
            .header("APCA-API-SECRET-KEY", &self.secret_key)
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn post_order(&self, order: serde_json::Value) -> Reply {
        self.post_order_with_key(order, None).await
    }

    pub async fn post_order_with_key(&self, order: serde_json::Value, key: Option<&str>) -> Reply {
        let mut request = self
            .auth(self.http.post(format!("{}/v2/orders", self.base)))
            .json(&order);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        Self::reply(request.send().await.expect("POST /v2/orders")).await
    }

    /// `PATCH /v2/orders/{id}` (replace).
    pub async fn replace(&self, id: &str, patch: serde_json::Value) -> Reply {
        Self::reply(
            self.auth(self.http.patch(format!("{}/v2/orders/{id}", self.base)))
                .json(&patch)
                .send()
                .await
                .expect("PATCH /v2/orders/{id}"),
        )
        .await
    }

    /// `DELETE /v2/orders/{id}`; the status code.
    pub async fn cancel(&self, id: &str) -> u16 {
        self.auth(self.http.delete(format!("{}/v2/orders/{id}", self.base)))
            .send()
            .await
            .expect("DELETE /v2/orders/{id}")
            .status()
            .as_u16()
    }

    /// `DELETE /v2/orders`.
    pub async fn cancel_all(&self) -> Reply {
        Self::reply(
            self.auth(self.http.delete(format!("{}/v2/orders", self.base)))
                .send()
                .await
                .expect("DELETE /v2/orders"),
        )
        .await
    }

    /// `DELETE` of `path` (with its query).
    pub async fn delete(&self, path: &str) -> Reply {
        self.delete_with_key(path, None).await
    }

    /// `DELETE` of `path`, under an Idempotency-Key if given.
    pub async fn delete_with_key(&self, path: &str, key: Option<&str>) -> Reply {
        let mut request = self.auth(self.http.delete(format!("{}{}", self.base, path)));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        Self::reply(request.send().await.expect("DELETE")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        Self::reply(
            self.auth(self.http.get(format!("{}{}", self.base, path)))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }
}

/// A test venue config: fast fills, fixed seed.
pub fn exchange_config() -> exchange_sim::Config {
    exchange_sim::Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        seed: 7,
        ..Default::default()
    }
}

/// A test ledger config: port 0.
pub fn balances_config() -> balances_sim::Config {
    balances_sim::Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        ..Default::default()
    }
}

impl TestStack {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(customize: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_with_venue(customize, |_| {}).await
    }

    /// A stack whose exchange simulator is configured by `venue` too.
    pub async fn spawn_with_venue(
        customize: impl FnOnce(&mut Settings),
        venue: impl FnOnce(&mut exchange_sim::Config),
    ) -> Self {
        let (settings, exchange, balances) = Self::simulators(customize, venue).await;
        let app = TestApp::spawn_with(settings).await;
        Self {
            app,
            exchange,
            balances,
            http: reqwest::Client::new(),
        }
    }

    /// A stack whose orderd reaches its database through a [`DbProxy`],
    /// so a test can take the database away and give it back.
    pub async fn spawn_behind_proxy() -> (Self, DbProxy) {
        Self::spawn_behind_proxy_with(|_| {}).await
    }

    /// [`Self::spawn_behind_proxy`] with settings of the test's own.
    pub async fn spawn_behind_proxy_with(customize: impl FnOnce(&mut Settings)) -> (Self, DbProxy) {
        let (settings, exchange, balances) = Self::simulators(customize, |_| {}).await;
        let db = TestDatabase::fresh().await;
        let proxy = DbProxy::start(&db.options).await;
        let options = proxy.options(&db.options);
        let proxied = TestDatabase {
            name: db.name.clone(),
            pool: orderd::db::build_pool(options.clone(), &settings.database),
            options,
        };
        let app = TestApp::spawn_over(settings, proxied).await;
        let stack = Self {
            app,
            exchange,
            balances,
            http: reqwest::Client::new(),
        };
        (stack, proxy)
    }

    async fn simulators(
        customize: impl FnOnce(&mut Settings),
        venue: impl FnOnce(&mut exchange_sim::Config),
    ) -> (Settings, exchange_sim::Handle, balances_sim::Handle) {
        orderd::install_crypto_provider();
        let mut venue_config = exchange_config();
        venue(&mut venue_config);
        let exchange = exchange_sim::spawn(venue_config)
            .await
            .expect("exchange-sim");
        let balances = balances_sim::spawn(balances_config())
            .await
            .expect("balances-sim");
        let mut settings = test_settings();
        settings.exchange.url = format!("http://{}", exchange.addr());
        settings.balances.url = format!("http://{}", balances.addr());
        customize(&mut settings);
        (settings, exchange, balances)
    }

    /// Moves `symbol`'s price at the venue by hand.
    pub async fn set_price(&self, symbol: &str, price: &str) {
        let response = self
            .http
            .post(self.exchange_url("/admin/prices"))
            .json(&serde_json::json!({"symbol": symbol, "price": price}))
            .send()
            .await
            .expect("set a price");
        assert!(response.status().is_success(), "{}", response.status());
    }

    pub fn exchange_url(&self, path: &str) -> String {
        format!("http://{}{}", self.exchange.addr(), path)
    }

    pub fn balances_url(&self, path: &str) -> String {
        format!("http://{}{}", self.balances.addr(), path)
    }

    /// Funds a balances account (e.g. `[("USD", "100000"), ("AAPL", "50")]`)
    /// and creates an orderd account for it.
    pub async fn trader(&self, funds: &[(&str, &str)]) -> Trader {
        let balances_account_id = format!("bal-{}", uuid::Uuid::new_v4().simple());
        let balances: serde_json::Map<String, serde_json::Value> = funds
            .iter()
            .map(|(asset, amount)| {
                (
                    asset.to_string(),
                    serde_json::Value::String(amount.to_string()),
                )
            })
            .collect();
        let response = self
            .http
            .post(self.balances_url("/admin/accounts"))
            .json(&serde_json::json!({ "account_id": balances_account_id, "balances": balances }))
            .send()
            .await
            .expect("fund account");
        assert!(
            response.status().is_success(),
            "funding: {}",
            response.status()
        );
        let name = format!("trader-{}", uuid::Uuid::new_v4().simple());
        let credentials =
            orderd::store::accounts::create_account(&self.app.db.pool, &name, &balances_account_id)
                .await
                .expect("create account");
        Trader {
            account_id: credentials.account_id.to_string(),
            balances_account_id,
            key_id: credentials.key_id,
            secret_key: credentials.secret_key,
            base: format!("http://{}", self.app.addr),
            http: self.http.clone(),
        }
    }

    pub async fn put_exchange_faults(&self, faults: serde_json::Value) {
        let response = self
            .http
            .put(self.exchange_url("/admin/faults"))
            .json(&faults)
            .send()
            .await
            .expect("PUT faults");
        assert!(
            response.status().is_success(),
            "exchange faults: {}",
            response.status()
        );
    }

    pub async fn put_balances_faults(&self, faults: serde_json::Value) {
        let response = self
            .http
            .put(self.balances_url("/admin/faults"))
            .json(&faults)
            .send()
            .await
            .expect("PUT faults");
        assert!(
            response.status().is_success(),
            "balances faults: {}",
            response.status()
        );
    }

    pub async fn exchange_truth(&self) -> serde_json::Value {
        self.http
            .get(self.exchange_url("/admin/ground-truth"))
            .send()
            .await
            .expect("ground truth")
            .json()
            .await
            .expect("ground truth json")
    }

    pub async fn balances_of(&self, trader: &Trader) -> serde_json::Value {
        self.http
            .get(self.balances_url(&format!(
                "/v1/accounts/{}/balances",
                trader.balances_account_id
            )))
            .send()
            .await
            .expect("balances")
            .json()
            .await
            .expect("balances json")
    }

    pub fn engine(&self) -> std::sync::Arc<orderd::engine::Engine> {
        self.app.engine.clone()
    }
}

/// Waits until no order in `pool` is mid-step and every fill is settled.
pub async fn wait_quiet(pool: &PgPool, limit: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM orders WHERE step IN ('reserve', 'place', 'cancel', 'release'))
                  + (SELECT count(*) FROM fills WHERE settlement_state <> 'settled')",
        )
        .fetch_one(pool)
        .await
        .expect("busy count");
        if busy == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{busy} items still busy after {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl TestStack {
    /// Runs the invariant checker over this stack and panics, listing the
    /// violations, if any invariant it can check is broken.
    pub async fn assert_invariants(&self) -> orderd::check::Report {
        let snapshot = orderd::check::collect(
            &self.app.db.pool,
            &format!("http://{}", self.exchange.addr()),
            &format!("http://{}", self.balances.addr()),
        )
        .await
        .expect("collect ground truth");
        let report = orderd::check::check(&snapshot);
        let broken: Vec<String> = report
            .invariants
            .iter()
            .filter(|i| !i.holds())
            .map(|i| format!("{} {}: {:?}", i.name, i.description, i.violations))
            .collect();
        assert!(
            broken.is_empty(),
            "invariants violated:\n{}",
            broken.join("\n")
        );
        report
    }

    /// Waits until no order is mid-step and every fill is settled.
    pub async fn wait_quiet(&self, limit: std::time::Duration) {
        wait_quiet(&self.app.db.pool, limit).await;
    }

    /// Waits until every order of the stack is terminal and quiet.
    pub async fn wait_all_terminal(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let open: i64 =
                sqlx::query_scalar("SELECT count(*) FROM orders WHERE step <> 'closed'")
                    .fetch_one(&self.app.db.pool)
                    .await
                    .expect("open count");
            if open == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{open} orders not closed after {limit:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.wait_quiet(limit).await;
    }
}

impl TestStack {
    /// Runs a reconciliation job now, as the scheduler would.
    pub async fn reconcile(&self, job: orderd::reconcile::Job) -> orderd::reconcile::RunSummary {
        self.app
            .reconciler
            .run_job(job)
            .await
            .expect("reconciliation run")
    }

    /// The kinds of a run's findings, with their classification.
    pub fn finding_kinds(summary: &orderd::reconcile::RunSummary) -> Vec<(String, String)> {
        summary
            .findings
            .iter()
            .map(|f| {
                (
                    f.finding.kind.to_string(),
                    f.finding.classification.as_str().to_string(),
                )
            })
            .collect()
    }
}

impl TestStack {
    /// The order's row as stored.
    pub async fn order_row(&self, id: &str) -> orderd::store::orders::OrderRecord {
        orderd::store::orders::load(&self.app.db.pool, id.parse().expect("an order id"))
            .await
            .expect("read the order")
            .expect("the order exists")
    }

    /// Waits (up to 30 s) until the order's row passes `done`.
    pub async fn wait_order_row(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&orderd::store::orders::OrderRecord) -> bool,
    ) -> orderd::store::orders::OrderRecord {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let order = self.order_row(id).await;
            if done(&order) {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {what}: {order:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Settings under which only reconciliation repairs: no venue stream, a
/// completer that (practically) never polls.
pub fn reconciliation_only(settings: &mut Settings) {
    settings.exchange.stream_enabled = false;
    settings.lifecycle.completer_interval_ms = 3_600_000;
    settings.reconcile.stale_after_ms = 100;
    settings.reconcile.settle_time_ms = 100;
    // Keep the scheduler from running jobs by itself during the test.
    for schedule in [
        &mut settings.reconcile.open_orders,
        &mut settings.reconcile.unknown_outcomes,
        &mut settings.reconcile.balances,
        &mut settings.reconcile.orphans,
        &mut settings.reconcile.gc,
        &mut settings.reconcile.reference,
        &mut settings.reconcile.session_close,
    ] {
        *schedule = "0 0 0 1 1 * 2099".to_string();
    }
}

/// The python of the compatibility venv (alpaca-py, schemathesis), created
/// on first use by `scripts/python-venv`.
/// The directory whose node_modules holds the official TypeScript SDK,
/// installed on first use by `scripts/node-sdk`.
pub async fn compat_node() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let sdk = tokio::process::Command::new(format!("{root}/scripts/node-sdk"))
        .output()
        .await
        .expect("run scripts/node-sdk");
    assert!(
        sdk.status.success(),
        "node-sdk: {}",
        String::from_utf8_lossy(&sdk.stderr)
    );
    String::from_utf8_lossy(&sdk.stdout).trim().to_string()
}

pub async fn compat_python() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let venv = tokio::process::Command::new(format!("{root}/scripts/python-venv"))
        .output()
        .await
        .expect("run scripts/python-venv");
    assert!(
        venv.status.success(),
        "python-venv: {}",
        String::from_utf8_lossy(&venv.stderr)
    );
    String::from_utf8_lossy(&venv.stdout).trim().to_string()
}

/// A TCP proxy in front of the test cluster: `cut` drops every connection
/// through it and refuses new ones (the database is gone, as far as the
/// app can tell), `restore` lets them through again;
/// `lose_commit_replies` passes a commit (`COMMIT`, or an autocommitted
/// write) to the server and drops the connection before its answer comes
/// back (the commit happened; the app cannot know).
pub struct DbProxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    epoch: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
    commits: std::sync::Arc<CommitLoss>,
}

/// What [`DbProxy`] does to commits: one in `every` loses its reply while
/// `remaining` lasts.
#[derive(Default)]
struct CommitLoss {
    every: std::sync::atomic::AtomicU32,
    remaining: std::sync::atomic::AtomicU32,
    seen: std::sync::atomic::AtomicU32,
    lost: std::sync::atomic::AtomicU32,
}

impl CommitLoss {
    /// Whether this commit's reply is lost.
    fn take(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let every = self.every.load(SeqCst);
        if every == 0 || self.seen.fetch_add(1, SeqCst) % every != every - 1 {
            return false;
        }
        let taken = self
            .remaining
            .fetch_update(SeqCst, SeqCst, |r| r.checked_sub(1))
            .is_ok();
        if taken {
            self.lost.fetch_add(1, SeqCst);
        }
        taken
    }
}

/// Forwards the frontend's messages to the server, reading each one (the
/// untyped start-up messages, then type + length + body) to tell when an
/// answer carries a commit: a simple-query `COMMIT`, or the `Sync` that
/// ends a write statement run outside a transaction block (autocommit).
/// When `commits` says that answer is lost, the message goes to the server
/// and the connection is dropped a moment later, before the answer can be
/// relayed.
async fn forward_frontend(
    mut client: impl tokio::io::AsyncRead + Unpin,
    mut server: impl tokio::io::AsyncWrite + Unpin,
    commits: &CommitLoss,
    mute: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SSL_REQUEST: u32 = 80_877_103;
    const GSSENC_REQUEST: u32 = 80_877_104;
    /// What a statement does to the transaction: 0 nothing, 1 writes,
    /// 2 begins a block, 3 commits, 4 rolls back.
    fn kind_of(sql: &[u8]) -> u8 {
        let sql = String::from_utf8_lossy(sql)
            .trim_start()
            .to_ascii_uppercase();
        if sql.starts_with("BEGIN") || sql.starts_with("START TRANSACTION") {
            2
        } else if sql.starts_with("COMMIT") {
            3
        } else if sql.starts_with("ROLLBACK") {
            4
        } else if ["INSERT", "UPDATE", "DELETE"]
            .iter()
            .any(|w| sql.starts_with(w) || (sql.starts_with("WITH") && sql.contains(w)))
        {
            1
        } else {
            0
        }
    }
    /// Applies `kind` to the block state; whether it commits something.
    fn ends_in_commit(kind: u8, in_block: &mut bool) -> bool {
        match kind {
            1 => !*in_block,
            2 => {
                *in_block = true;
                false
            }
            3 => {
                *in_block = false;
                true
            }
            4 => {
                *in_block = false;
                false
            }
            _ => false,
        }
    }
    fn cstrings(body: &[u8]) -> Vec<&[u8]> {
        body.split(|b| *b == 0).collect()
    }
    loop {
        let length = client.read_u32().await?;
        let mut body = vec![0u8; (length as usize).saturating_sub(4)];
        client.read_exact(&mut body).await?;
        server.write_u32(length).await?;
        server.write_all(&body).await?;
        server.flush().await?;
        let code = body
            .get(..4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        if !matches!(code, Some(SSL_REQUEST | GSSENC_REQUEST)) {
            break;
        }
    }
    let mut statements: std::collections::HashMap<Vec<u8>, u8> = Default::default();
    let mut in_block = false;
    let mut bound: Vec<u8> = Vec::new();
    loop {
        let kind = client.read_u8().await?;
        let length = client.read_u32().await?;
        let mut body = vec![0u8; (length as usize).saturating_sub(4)];
        client.read_exact(&mut body).await?;
        let commits_now = match kind {
            b'Q' => ends_in_commit(kind_of(&body), &mut in_block),
            b'P' => {
                if let [name, sql, ..] = cstrings(&body).as_slice() {
                    statements.insert(name.to_vec(), kind_of(sql));
                }
                false
            }
            b'B' => {
                if let [_portal, statement, ..] = cstrings(&body).as_slice() {
                    bound.push(statements.get(*statement).copied().unwrap_or(0));
                }
                false
            }
            // The answers of what was bound since the last Sync arrive
            // after it.
            b'S' => std::mem::take(&mut bound)
                .into_iter()
                .fold(false, |any, k| ends_in_commit(k, &mut in_block) | any),
            _ => false,
        };
        let lose = commits_now && commits.take();
        if lose {
            // Nothing the server says from here on reaches the client.
            mute.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        server.write_u8(kind).await?;
        server.write_u32(length).await?;
        server.write_all(&body).await?;
        server.flush().await?;
        if lose {
            // Time for the server to commit, then the connection drops.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            return Err(std::io::Error::other("commit reply lost on purpose"));
        }
    }
}

/// Relays the server's answers to the client until `mute` is set; from
/// then on they are read and dropped.
async fn forward_backend(
    mut server: impl tokio::io::AsyncRead + Unpin,
    mut client: impl tokio::io::AsyncWrite + Unpin,
    mute: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = server.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        if !mute.load(std::sync::atomic::Ordering::SeqCst) {
            client.write_all(&buffer[..n]).await?;
        }
    }
}

/// Relays one connection until either side ends or `dropped` fires.
async fn relay<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(
    client: tokio::net::TcpStream,
    server: S,
    commits: &CommitLoss,
    mut dropped: tokio::sync::watch::Receiver<u64>,
) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = tokio::io::split(server);
    let mute = std::sync::atomic::AtomicBool::new(false);
    tokio::select! {
        _ = forward_frontend(client_read, server_write, commits, &mute) => {}
        _ = forward_backend(server_read, client_write, &mute) => {}
        _ = dropped.changed() => {}
    }
}

impl DbProxy {
    /// Listens on 127.0.0.1 and forwards to where `options` points.
    pub async fn start(options: &PgConnectOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy listens");
        let port = listener.local_addr().expect("proxy address").port();
        let socket = options
            .get_socket()
            .map(|dir| dir.join(format!(".s.PGSQL.{}", options.get_port())));
        let tcp = format!("{}:{}", options.get_host(), options.get_port());
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (epoch, _) = tokio::sync::watch::channel(0u64);
        let commits = std::sync::Arc::new(CommitLoss::default());
        let task = {
            let cut = cut.clone();
            let epoch = epoch.clone();
            let commits = commits.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut.load(std::sync::atomic::Ordering::SeqCst) {
                        // A reset, as from a host whose database is down.
                        let _ = client.set_zero_linger();
                        drop(client);
                        continue;
                    }
                    let dropped = epoch.subscribe();
                    let (socket, tcp) = (socket.clone(), tcp.clone());
                    let commits = commits.clone();
                    tokio::spawn(async move {
                        match socket {
                            Some(path) => {
                                if let Ok(server) = tokio::net::UnixStream::connect(path).await {
                                    relay(client, server, &commits, dropped).await;
                                }
                            }
                            None => {
                                if let Ok(server) = tokio::net::TcpStream::connect(tcp).await {
                                    relay(client, server, &commits, dropped).await;
                                }
                            }
                        }
                    });
                }
            })
        };
        Self {
            port,
            cut,
            epoch,
            task,
            commits,
        }
    }

    /// From now on, one commit in `every` loses its reply (the commit is
    /// done, the connection dropped before the answer), `count` times.
    pub fn lose_commit_replies(&self, every: u32, count: u32) {
        use std::sync::atomic::Ordering::SeqCst;
        self.commits.remaining.store(count, SeqCst);
        self.commits.seen.store(0, SeqCst);
        self.commits.every.store(every, SeqCst);
    }

    /// How many commit replies were lost so far.
    pub fn commit_replies_lost(&self) -> u32 {
        self.commits.lost.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Connection options that go through the proxy.
    pub fn options(&self, options: &PgConnectOptions) -> PgConnectOptions {
        let through = PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.port)
            .username(options.get_username());
        match options.get_database() {
            Some(database) => through.database(database),
            None => through,
        }
    }

    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestStack {
    /// GETs `url` (a simulator's admin endpoint, orderd's document) as JSON.
    pub async fn get_json(&self, url: impl reqwest::IntoUrl) -> serde_json::Value {
        self.http
            .get(url)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("a JSON body")
    }
}

/// A `/stream` connection listening to trade updates.
pub type TradeUpdateSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl TestStack {
    /// Opens `/stream` as `trader`, authenticated and listening to
    /// `trade_updates`.
    pub async fn trade_updates(&self, trader: &Trader) -> TradeUpdateSocket {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let (mut socket, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/stream", self.app.addr))
                .await
                .expect("connect /stream");
        socket
            .send(Message::text(
                serde_json::json!({"action": "authenticate",
                    "data": {"key_id": trader.key_id, "secret_key": trader.secret_key}})
                .to_string(),
            ))
            .await
            .expect("authenticate");
        let auth: serde_json::Value =
            serde_json::from_str(&socket.next().await.unwrap().unwrap().into_text().unwrap())
                .unwrap();
        assert_eq!(auth["data"]["status"], "authorized");
        socket
            .send(Message::text(
                serde_json::json!({"action": "listen", "data": {"streams": ["trade_updates"]}})
                    .to_string(),
            ))
            .await
            .expect("listen");
        let listening: serde_json::Value =
            serde_json::from_str(&socket.next().await.unwrap().unwrap().into_text().unwrap())
                .unwrap();
        assert_eq!(listening["stream"], "listening");
        socket
    }
}

/// The events of `order_id` on `socket` until `until` is among them (or
/// the deadline passes: a panic naming what came).
pub async fn trade_events_until(
    socket: &mut TradeUpdateSocket,
    order_id: &str,
    until: &str,
    limit: std::time::Duration,
) -> Vec<String> {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + limit;
    let mut events = Vec::new();
    while !events.iter().any(|e| e == until) {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no {until:?} for {order_id} in time; got {events:?}"));
        let text = next.unwrap().unwrap().into_text().unwrap();
        let message: serde_json::Value = serde_json::from_str(&text).unwrap();
        if message["data"]["order"]["id"] == order_id {
            events.push(
                message["data"]["event"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    events
}
