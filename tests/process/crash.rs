//! Crash recovery: orderd as a real child process, killed with SIGKILL at
//! failpoints between an external call and the record of its outcome, then
//! restarted. Every accepted order survives (I5), no order gets two holds
//! or two venue orders (I1), and all reach `new`.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Orderd, start_command, wait_exit};
use crate::support::{TestDatabase, balances_config, exchange_config};

struct Venues {
    exchange: exchange_sim::Handle,
    balances: balances_sim::Handle,
    http: reqwest::Client,
}

impl Venues {
    async fn spawn() -> Self {
        orderd::install_crypto_provider();
        let exchange = exchange_sim::spawn(exchange_config())
            .await
            .expect("exchange-sim");
        let balances = balances_sim::spawn(balances_config())
            .await
            .expect("balances-sim");
        Self {
            exchange,
            balances,
            http: reqwest::Client::new(),
        }
    }

    async fn fund(&self, account_id: &str, usd: &str) {
        let response = self
            .http
            .post(format!("http://{}/admin/accounts", self.balances.addr()))
            .json(&json!({"account_id": account_id, "balances": {"USD": usd}}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    async fn get(&self, url: String) -> Value {
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Starts orderd over `db`, talking to `venues`, with `failpoints` armed.
async fn start_orderd(db: &TestDatabase, venues: &Venues, failpoints: &str) -> Orderd {
    start_orderd_on(&db.url(), &db.name, venues, failpoints).await
}

/// Starts orderd over the database at `url` under the instance name of
/// `name`, talking to `venues`, with `failpoints` armed.
async fn start_orderd_on(url: &str, name: &str, venues: &Venues, failpoints: &str) -> Orderd {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderd"));
    command
        .env("ORDERD__HTTP__LISTEN", "127.0.0.1:0")
        .env("ORDERD__DATABASE__URL", url)
        .env(
            "ORDERD__EXCHANGE__URL",
            format!("http://{}", venues.exchange.addr()),
        )
        .env(
            "ORDERD__BALANCES__URL",
            format!("http://{}", venues.balances.addr()),
        )
        .env("ORDERD_FAILPOINTS", failpoints)
        // One identity across the restart: the new generation fences the
        // dead one at once.
        .env("ORDERD__INSTANCE__NAME", format!("crash-{name}"))
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null());
    tokio::task::spawn_blocking(move || start_command(command))
        .await
        .expect("start orderd")
}

/// Waits for `orderd` to exit and checks it was killed by SIGKILL (its
/// failpoint `at` fired).
async fn killed_at(mut orderd: Orderd, at: &str) {
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut orderd.child, Duration::from_secs(30)))
            .await
            .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL at {at}");
}

/// Submits `order` to `orderd`, which dies at its failpoint `at` before
/// answering.
async fn submit_and_die(
    venues: &Venues,
    orderd: Orderd,
    credentials: &orderd::store::accounts::NewCredentials,
    order: &Value,
    at: &str,
) {
    let answer = venues
        .http
        .post(format!("http://{}/v2/orders", orderd.addr))
        .header("APCA-API-KEY-ID", &credentials.key_id)
        .header("APCA-API-SECRET-KEY", &credentials.secret_key)
        .json(order)
        .send()
        .await;
    assert!(answer.is_err(), "orderd died before answering: {answer:?}");
    killed_at(orderd, at).await;
}

/// Polls `GET /v2/orders/{order_id}` on `addr` as `credentials` until the
/// order is `status` (for up to `limit`); the order as last answered.
async fn wait_order_status(
    venues: &Venues,
    addr: &str,
    credentials: &orderd::store::accounts::NewCredentials,
    order_id: &str,
    status: &str,
    limit: Duration,
) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let body: Value = venues
            .http
            .get(format!("http://{addr}/v2/orders/{order_id}"))
            .header("APCA-API-KEY-ID", &credentials.key_id)
            .header("APCA-API-SECRET-KEY", &credentials.secret_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["status"] == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not {status} in time: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `pool`'s orders are quiet, then runs the checker over them
/// and the venues' ground truth; panics, naming `context`, if any
/// invariant is broken.
async fn assert_invariants(pool: &sqlx::PgPool, venues: &Venues, context: &str) {
    crate::support::wait_quiet(pool, Duration::from_secs(30)).await;
    let snapshot = orderd::check::collect(
        pool,
        &format!("http://{}", venues.exchange.addr()),
        &format!("http://{}", venues.balances.addr()),
    )
    .await
    .expect("ground truth");
    let report = orderd::check::check(&snapshot);
    let broken: Vec<_> = report.invariants.iter().filter(|i| !i.holds()).collect();
    assert!(broken.is_empty(), "{context}: {broken:?}");
}

/// Kills orderd at `failpoint` while it handles one order, restarts it,
/// and checks the order is finished exactly once.
async fn crash_at(failpoint: &'static str) {
    let venues = Venues::spawn().await;
    let db = TestDatabase::fresh().await;
    let balances_account = format!("bal-{}", uuid::Uuid::new_v4().simple());
    venues.fund(&balances_account, "100000").await;
    let credentials = orderd::store::accounts::create_account(&db.pool, "crash", &balances_account)
        .await
        .unwrap();

    let first = start_orderd(&db, &venues, failpoint).await;

    let order = json!({"symbol": "AAPL", "qty": "4", "side": "buy", "type": "limit",
                       "time_in_force": "gtc", "limit_price": "100.00",
                       "client_order_id": format!("crash-{failpoint}")});
    submit_and_die(&venues, first, &credentials, &order, failpoint).await;

    // The accept committed before every failpoint: the order is durable.
    let order_id: uuid::Uuid =
        sqlx::query_scalar("SELECT order_id FROM orders WHERE client_order_id = $1")
            .bind(format!("crash-{failpoint}"))
            .fetch_one(&db.pool)
            .await
            .expect("I5: the accepted order survived");

    // Restart without failpoints; the completer finishes the work.
    let second = start_orderd(&db, &venues, "").await;
    let body = wait_order_status(
        &venues,
        &second.addr,
        &credentials,
        &order_id.to_string(),
        "new",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(body["qty"], "4");

    // I1: one venue order under the derived id; one hold for the order.
    let venue_client_order_id = orderd::engine::keys::venue_client_order_id(order_id);
    let truth = venues
        .get(format!(
            "http://{}/admin/ground-truth",
            venues.exchange.addr()
        ))
        .await;
    let venue_orders = truth["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["client_order_id"] == venue_client_order_id.as_str())
        .count();
    assert_eq!(
        venue_orders, 1,
        "one venue order after a crash at {failpoint}"
    );
    let holds = venues
        .get(format!(
            "http://{}/v1/holds?order_id={order_id}",
            venues.balances.addr()
        ))
        .await;
    assert_eq!(
        holds["holds"].as_array().unwrap().len(),
        1,
        "one hold: {holds}"
    );
    drop(second);
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_after_accept_commits() {
    crash_at(orderd::failpoints::AFTER_ACCEPT_COMMIT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_after_the_hold_is_created_before_it_is_recorded() {
    crash_at(orderd::failpoints::AFTER_HOLD_CREATED).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_after_the_placement_is_sent_before_it_is_recorded() {
    crash_at(orderd::failpoints::AFTER_PLACE_SENT).await;
}

/// The request that was interrupted by the crash, retried with its
/// Idempotency-Key right after the restart, gets the order (200), not a
/// 409 for work that nothing is doing any more.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_right_after_a_restart_gets_the_order_not_409() {
    let venues = Venues::spawn().await;
    let db = TestDatabase::fresh().await;
    let balances_account = format!("bal-{}", uuid::Uuid::new_v4().simple());
    venues.fund(&balances_account, "100000").await;
    let credentials = orderd::store::accounts::create_account(&db.pool, "retry", &balances_account)
        .await
        .unwrap();
    let order = json!({"symbol": "AAPL", "qty": "4", "side": "buy", "type": "limit",
                       "time_in_force": "gtc", "limit_price": "100.00"});
    let post = |addr: String| {
        let http = venues.http.clone();
        let order = order.clone();
        let credentials = credentials.clone();
        async move {
            http.post(format!("http://{addr}/v2/orders"))
                .header("APCA-API-KEY-ID", &credentials.key_id)
                .header("APCA-API-SECRET-KEY", &credentials.secret_key)
                .header("Idempotency-Key", "interrupted-1")
                .json(&order)
                .send()
                .await
        }
    };
    let mut first = start_orderd(&db, &venues, orderd::failpoints::AFTER_PLACE_SENT).await;
    assert!(post(first.addr.clone()).await.is_err(), "orderd died first");
    tokio::task::spawn_blocking(move || wait_exit(&mut first.child, Duration::from_secs(10)))
        .await
        .unwrap();

    let second = start_orderd(&db, &venues, "").await;
    let retry = post(second.addr.clone()).await.expect("an answer");
    assert_eq!(retry.status(), 200, "not 409: nothing works on it any more");
    let body: Value = retry.json().await.unwrap();
    let order_id: uuid::Uuid = sqlx::query_scalar("SELECT order_id FROM orders")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(body["id"], order_id.to_string());
    assert_eq!(body["status"], "new", "{body}");
    drop(second);
}

/// A close-all with `cancel_orders` killed between its cancels and its
/// sells (`after_close_all_cancels`): the request was not answered, so
/// its outcome is unknown to the client, and what it committed stands.
/// After a restart the canceled order ends canceled and nothing was sold;
/// the client's retry closes every position once, with one sell each, and
/// the checker's invariants hold.
#[tokio::test(flavor = "multi_thread")]
async fn a_close_all_killed_between_its_cancels_and_its_sells_is_finished_by_its_retry() {
    let venues = Venues::spawn().await;
    let db = TestDatabase::fresh().await;
    let balances_account = format!("bal-{}", uuid::Uuid::new_v4().simple());
    let funded = venues
        .http
        .post(format!("http://{}/admin/accounts", venues.balances.addr()))
        .json(&json!({"account_id": balances_account,
                      "balances": {"USD": "100000", "AAPL": "10", "MSFT": "5"}}))
        .send()
        .await
        .unwrap();
    assert!(funded.status().is_success());
    let credentials =
        orderd::store::accounts::create_account(&db.pool, "close-all", &balances_account)
            .await
            .unwrap();
    let request = |method: reqwest::Method, addr: &str, path: &str| {
        venues
            .http
            .request(method, format!("http://{addr}{path}"))
            .header("APCA-API-KEY-ID", &credentials.key_id)
            .header("APCA-API-SECRET-KEY", &credentials.secret_key)
    };

    let first = start_orderd(&db, &venues, orderd::failpoints::AFTER_CLOSE_ALL_CANCELS).await;
    // A resting sell holds 4 of the 10 AAPL: close-all must cancel it first.
    let resting: Value = request(reqwest::Method::POST, &first.addr, "/v2/orders")
        .json(
            &json!({"symbol": "AAPL", "qty": "4", "side": "sell", "type": "limit",
                      "limit_price": "100000.00", "time_in_force": "gtc"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resting["status"], "new", "{resting}");
    let interrupted = request(
        reqwest::Method::DELETE,
        &first.addr,
        "/v2/positions?cancel_orders=true",
    )
    .send()
    .await;
    assert!(
        interrupted.is_err(),
        "orderd died before answering: {interrupted:?}"
    );
    killed_at(first, orderd::failpoints::AFTER_CLOSE_ALL_CANCELS).await;

    let second = start_orderd(&db, &venues, "").await;
    let resting_id = resting["id"].as_str().unwrap();
    wait_order_status(
        &venues,
        &second.addr,
        &credentials,
        resting_id,
        "canceled",
        Duration::from_secs(20),
    )
    .await;
    let sells: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE order_type = 'market'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(sells, 0, "nothing was sold before the crash");

    // The client's retry of the request it got no answer to.
    let retry = request(
        reqwest::Method::DELETE,
        &second.addr,
        "/v2/positions?cancel_orders=true",
    )
    .send()
    .await
    .expect("an answer");
    assert_eq!(retry.status(), 207);
    let closes: Value = retry.json().await.unwrap();
    let mut symbols: Vec<&str> = closes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["status"], 200, "{c}");
            c["symbol"].as_str().unwrap()
        })
        .collect();
    symbols.sort();
    assert_eq!(symbols, ["AAPL", "MSFT"], "{closes}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let balances = venues
            .get(format!(
                "http://{}/v1/accounts/{balances_account}/balances",
                venues.balances.addr()
            ))
            .await;
        let total = |asset: &str| {
            balances["balances"][asset]["total"]
                .as_str()
                .map(str::to_owned)
        };
        let closed = |asset: &str| {
            total(asset).is_none_or(|t| t.parse::<rust_decimal::Decimal>().unwrap().is_zero())
        };
        if closed("AAPL") && closed("MSFT") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the positions were not closed: {balances}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sold: Vec<(String, rust_decimal::Decimal)> = sqlx::query_as(
        "SELECT symbol, qty FROM orders WHERE order_type = 'market' ORDER BY symbol",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        sold,
        [
            ("AAPL".to_string(), 10.into()),
            ("MSFT".to_string(), 5.into())
        ],
        "one sell per position, of all of it"
    );
    assert_invariants(&db.pool, &venues, "after a close-all and its retry").await;
    drop(second);
}

/// A primary and its standby that are stopped when the test ends, passed
/// or failed (a failed assertion must not leave two clusters running).
struct PairGuard(Option<orderd::harness::failover::Replicated>);

impl Drop for PairGuard {
    fn drop(&mut self) {
        if let Some(pair) = self.0.take() {
            pair.stop();
        }
    }
}

/// Kills orderd at `failpoint` while it handles one order and, right after
/// it, the primary's machine; the synchronous standby is promoted (as an
/// HA manager would) and orderd restarts over the two-host URL. What the
/// crash left (an intent, or a call whose outcome was not recorded) must
/// be on the standby, since every commit waited for it, and the restarted
/// orderd must find the new primary and finish the order once. The
/// explorer crashes orderd with the database up and the failover run
/// kills the database with orderd up: this is both in one schedule.
async fn crash_and_failover_at(failpoint: &'static str) {
    use orderd::harness::failover::{DETECTION_DELAY, Replicated};
    let work_dir = std::env::temp_dir().join(format!(
        "orderd-crash-failover-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let dir = work_dir.clone();
    let pair = tokio::task::spawn_blocking(move || Replicated::start(&dir))
        .await
        .unwrap()
        .expect("a primary and its synchronous standby");
    let url = pair.url();
    let mut pair = PairGuard(Some(pair));
    let hosts = orderd::db::hosts::candidates(&url).expect("two hosts");
    let name = format!("failover-{failpoint}");
    let venues = Venues::spawn().await;
    let balances_account = format!("bal-{}", uuid::Uuid::new_v4().simple());
    venues.fund(&balances_account, "100000").await;

    let first = start_orderd_on(&url, &name, &venues, failpoint).await;
    let primary = sqlx::PgPool::connect_with(hosts[0].clone()).await.unwrap();
    let credentials = orderd::store::accounts::create_account(&primary, "crash", &balances_account)
        .await
        .unwrap();
    primary.close().await;
    let order = json!({"symbol": "AAPL", "qty": "4", "side": "buy", "type": "limit",
                       "time_in_force": "gtc", "limit_price": "100.00"});
    submit_and_die(&venues, first, &credentials, &order, failpoint).await;
    let placed_before = venue_orders(&venues).await;
    assert_eq!(
        placed_before,
        usize::from(failpoint == "after_place_call"),
        "the venue has the order only if the call was made"
    );
    let replicated = pair.0.as_mut().expect("the pair");
    assert!(
        replicated.kill_primary().unwrap() > 0,
        "the primary's processes died"
    );
    let promoting = pair.0.take().expect("the pair");
    pair.0 = Some(
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(DETECTION_DELAY);
            promoting.promote_standby().map(|()| promoting)
        })
        .await
        .unwrap()
        .expect("the standby is promoted"),
    );

    // Before orderd comes back: the intent the crash left is on the
    // promoted standby (I5, and what the restart resolves by evidence).
    let standby = sqlx::PgPool::connect_with(hosts[1].clone()).await.unwrap();
    let (order_id, step, state, placement_sent): (uuid::Uuid, String, String, bool) =
        sqlx::query_as(
            "SELECT order_id, step, step_state, placement_sent_at IS NOT NULL FROM orders",
        )
        .fetch_one(&standby)
        .await
        .expect("I5: the accepted order is on the promoted standby");
    assert_eq!(
        (step.as_str(), state.as_str(), placement_sent),
        ("place", "sent", true),
        "the placement's intent survived the failover"
    );

    let second = start_orderd_on(&url, &name, &venues, "").await;
    wait_order_status(
        &venues,
        &second.addr,
        &credentials,
        &order_id.to_string(),
        "new",
        Duration::from_secs(30),
    )
    .await;
    // I1 and the rest: one venue order, one hold, the ledger conserved.
    assert_invariants(
        &standby,
        &venues,
        &format!("after {failpoint} and a failover"),
    )
    .await;
    assert_eq!(venue_orders(&venues).await, 1, "placed once");
    standby.close().await;
    drop(second);
    tokio::task::spawn_blocking(move || drop(pair))
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&work_dir);
}

/// How many orders the venue has.
async fn venue_orders(venues: &Venues) -> usize {
    venues
        .get(format!(
            "http://{}/admin/ground-truth",
            venues.exchange.addr()
        ))
        .await["orders"]
        .as_array()
        .expect("the venue's orders")
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_the_placement_intent_and_a_failover_at_once_place_the_order_once() {
    crash_and_failover_at("before_place_call").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_the_placement_call_and_a_failover_at_once_place_the_order_once() {
    crash_and_failover_at("after_place_call").await;
}
