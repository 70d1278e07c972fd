//! A trading session of simulated traders against a stack: market and
//! limit, buys and sells, cancels, every request under an Idempotency-Key.
//! A request that gets no answer (orderd killed, 5xx, 409) is sent again
//! later with the same key and body; the outcome each key finally got is
//! kept to check I5 (every acknowledged order survives) and I7 (a retry
//! gets the same outcome).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::time::Instant;

/// Symbols the session trades (all in the venue's default universe).
pub const SYMBOLS: [&str; 4] = ["AAPL", "MSFT", "NVDA", "AMZN"];
/// Shares of each symbol every trader starts with.
pub const STARTING_SHARES: &str = "10000";
pub const STARTING_CASH: &str = "5000000";
/// Requests in flight at most (the rest wait for the next tick).
pub const MAX_IN_FLIGHT: usize = 256;
/// One request's deadline.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// An unanswered request is sent again this long after its last attempt
/// (longer than orderd's submit deadline, so an attempt in flight is not
/// duplicated).
pub const RETRY_AFTER: Duration = Duration::from_secs(4);

#[derive(Debug, Clone)]
pub struct Trader {
    pub name: String,
    pub key_id: String,
    pub secret_key: String,
    /// orderd's account id (the invariant checker's key for it).
    pub account_id: String,
}

/// One request and the outcome it finally got.
#[derive(Debug, Clone)]
pub struct Ack {
    pub trader: usize,
    pub body: Value,
    pub status: u16,
    pub order_id: Option<String>,
}

#[derive(Debug, Default)]
pub struct Tally {
    pub submitted: u64,
    pub acknowledged: u64,
    pub refused_insufficient: u64,
    pub rejected_invalid: u64,
    pub retries: u64,
    pub no_answer: u64,
    pub cancels: u64,
    /// Replaces sent (`PATCH`), and those answered with a replacement.
    pub replaces: u64,
    pub replaced: u64,
    /// key → its final outcome.
    pub acks: HashMap<String, Ack>,
    /// key → (trader, body, last attempt): still without a final answer.
    pub pending: HashMap<String, (usize, Value, Instant)>,
    /// Resting orders, by trader, that the session may cancel or replace.
    pub resting: Vec<(usize, String)>,
}

/// What the session shares with whoever restarts orderd.
#[derive(Debug, Clone)]
pub struct Shared {
    /// orderd's base URL; `None` while it is down.
    pub orderd: Arc<RwLock<Option<String>>>,
    pub tally: Arc<Mutex<Tally>>,
}

impl Shared {
    pub fn new(url: Option<String>) -> Self {
        Self {
            orderd: Arc::new(RwLock::new(url)),
            tally: Arc::new(Mutex::new(Tally::default())),
        }
    }

    pub fn set_url(&self, url: Option<String>) {
        if let Ok(mut current) = self.orderd.write() {
            *current = url;
        }
    }

    fn url(&self) -> Option<String> {
        self.orderd.read().ok().and_then(|u| u.clone())
    }
}

fn random_order(rng: &mut ChaCha8Rng) -> Value {
    let symbol = SYMBOLS[rng.random_range(0..SYMBOLS.len())];
    let qty = rng.random_range(1..=20).to_string();
    match rng.random_range(0..10) {
        0..=3 => {
            json!({"symbol": symbol, "qty": qty, "side": "buy", "type": "market", "time_in_force": "day"})
        }
        4..=5 => {
            json!({"symbol": symbol, "qty": qty, "side": "sell", "type": "market", "time_in_force": "day"})
        }
        6 => {
            json!({"symbol": symbol, "qty": qty, "side": "buy", "type": "market", "time_in_force": "ioc"})
        }
        // Resting far below the market: canceled later, or (day) expired
        // at the session's close.
        7 => json!({"symbol": symbol, "qty": qty, "side": "buy", "type": "limit",
                    "time_in_force": "gtc", "limit_price": "1.00"}),
        8 => json!({"symbol": symbol, "qty": qty, "side": "buy", "type": "limit",
                    "time_in_force": "day", "limit_price": "1.00"}),
        // Marketable limit sells.
        _ => json!({"symbol": symbol, "qty": qty, "side": "sell", "type": "limit",
                    "time_in_force": "day", "limit_price": "1.00"}),
    }
}

/// Sends one keyed order request; records the outcome or leaves it
/// pending.
async fn submit(
    http: reqwest::Client,
    shared: Shared,
    traders: Arc<Vec<Trader>>,
    trader: usize,
    key: String,
    body: Value,
) {
    let Some(url) = shared.url() else {
        return;
    };
    let t = &traders[trader];
    let response = http
        .post(format!("{url}/v2/orders"))
        .header("APCA-API-KEY-ID", &t.key_id)
        .header("APCA-API-SECRET-KEY", &t.secret_key)
        .header("Idempotency-Key", &key)
        .json(&body)
        .send()
        .await;
    let answer = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let reply: Value = response.json().await.unwrap_or(Value::Null);
            Some((status, reply))
        }
        Err(_) => None,
    };
    let Ok(mut tally) = shared.tally.lock() else {
        return;
    };
    match answer {
        Some((status, reply)) if status == 200 || status == 403 || status == 422 => {
            tally.pending.remove(&key);
            let order_id = reply["id"].as_str().map(str::to_string);
            // Count each request once, however many attempts it took.
            if !tally.acks.contains_key(&key) {
                match status {
                    200 => tally.acknowledged += 1,
                    403 => tally.refused_insufficient += 1,
                    _ => tally.rejected_invalid += 1,
                }
            }
            if status == 200
                && body["limit_price"] == "1.00"
                && body["side"] == "buy"
                && let Some(id) = &order_id
            {
                tally.resting.push((trader, id.clone()));
            }
            tally.acks.insert(
                key,
                Ack {
                    trader,
                    body,
                    status,
                    order_id,
                },
            );
        }
        // No answer, a 5xx, or 409 (the first attempt still running):
        // the same request again later.
        _ if tally.acks.contains_key(&key) => {}
        _ => {
            tally.no_answer += 1;
            tally.pending.insert(key, (trader, body, Instant::now()));
        }
    }
}

async fn cancel(
    http: reqwest::Client,
    shared: Shared,
    traders: Arc<Vec<Trader>>,
    trader: usize,
    order_id: String,
) {
    let Some(url) = shared.url() else { return };
    let t = &traders[trader];
    let _ = http
        .delete(format!("{url}/v2/orders/{order_id}"))
        .header("APCA-API-KEY-ID", &t.key_id)
        .header("APCA-API-SECRET-KEY", &t.secret_key)
        .send()
        .await;
}

/// Replaces a resting order with another that rests (a new size, a new
/// price far below the market, its own client_order_id): the replacement
/// rests in its place. Sent once; whatever became of one without an
/// answer, the checker holds it to the invariants like any order.
async fn replace(
    http: reqwest::Client,
    shared: Shared,
    traders: Arc<Vec<Trader>>,
    trader: usize,
    order_id: String,
    patch: Value,
) {
    let Some(url) = shared.url() else { return };
    let t = &traders[trader];
    let answer = http
        .patch(format!("{url}/v2/orders/{order_id}"))
        .header("APCA-API-KEY-ID", &t.key_id)
        .header("APCA-API-SECRET-KEY", &t.secret_key)
        .json(&patch)
        .send()
        .await;
    let Ok(response) = answer else { return };
    if response.status().as_u16() != 200 {
        return;
    }
    let reply: Value = response.json().await.unwrap_or(Value::Null);
    if let (Some(id), Ok(mut tally)) = (reply["id"].as_str(), shared.tally.lock()) {
        tally.replaced += 1;
        tally.resting.push((trader, id.to_string()));
    }
}

/// Runs the session for `duration` at about `rate_per_sec` new orders a
/// second, then keeps retrying unanswered requests until `drain_limit`.
pub async fn run(
    shared: Shared,
    traders: Arc<Vec<Trader>>,
    seed: u64,
    duration: Duration,
    rate_per_sec: u32,
    drain_limit: Duration,
) {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap_or_default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tick = Duration::from_millis(50);
    let per_tick = (f64::from(rate_per_sec) * tick.as_secs_f64()).max(1.0);
    let started = Instant::now();
    let mut owed = 0.0;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut interval = tokio::time::interval(tick);
    loop {
        interval.tick().await;
        let generating = started.elapsed() < duration;
        if !generating && started.elapsed() > duration + drain_limit {
            break;
        }
        // Retry what got no answer (and is not still in flight), a few per
        // tick, while orderd is up.
        let (retries, waiting): (Vec<(String, usize, Value)>, usize) = shared
            .tally
            .lock()
            .map(|mut t| {
                let waiting = t.pending.len();
                let due: Vec<(String, usize, Value)> = t
                    .pending
                    .iter()
                    .filter(|(_, (_, _, at))| at.elapsed() > RETRY_AFTER)
                    .take(32)
                    .map(|(k, (tr, b, _))| (k.clone(), *tr, b.clone()))
                    .collect();
                for (key, _, _) in &due {
                    if let Some(entry) = t.pending.get_mut(key) {
                        entry.2 = Instant::now();
                    }
                }
                (due, waiting)
            })
            .unwrap_or_default();
        if !generating && waiting == 0 {
            break;
        }
        if shared.url().is_none() {
            continue;
        }
        for (key, trader, body) in retries {
            if let Ok(mut t) = shared.tally.lock() {
                t.retries += 1;
            }
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                break;
            };
            let (http, shared, traders) = (http.clone(), shared.clone(), traders.clone());
            tokio::spawn(async move {
                submit(http, shared, traders, trader, key, body).await;
                drop(permit);
            });
        }
        if !generating {
            continue;
        }
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            let trader = rng.random_range(0..traders.len());
            // Now and then, cancel or replace a resting order instead.
            let instead = rng.random_range(0..10);
            if instead < 3 {
                let target = shared.tally.lock().ok().and_then(|mut t| {
                    (!t.resting.is_empty()).then(|| {
                        let i = rng.random_range(0..t.resting.len());
                        if instead < 2 {
                            t.cancels += 1;
                        } else {
                            t.replaces += 1;
                        }
                        t.resting.swap_remove(i)
                    })
                });
                if let Some((owner, order_id)) = target {
                    if instead < 2 {
                        tokio::spawn(cancel(
                            http.clone(),
                            shared.clone(),
                            traders.clone(),
                            owner,
                            order_id,
                        ));
                    } else {
                        let price = ["1.00", "1.50", "2.00"][rng.random_range(0..3)];
                        let patch = json!({
                            "qty": rng.random_range(1..=25).to_string(),
                            "limit_price": price,
                            "client_order_id":
                                format!("rp-{}", uuid::Uuid::from_u128(rng.random()).simple()),
                        });
                        tokio::spawn(replace(
                            http.clone(),
                            shared.clone(),
                            traders.clone(),
                            owner,
                            order_id,
                            patch,
                        ));
                    }
                    continue;
                }
            }
            let body = random_order(&mut rng);
            let key = uuid::Uuid::from_u128(rng.random()).to_string();
            if let Ok(mut t) = shared.tally.lock() {
                t.submitted += 1;
                t.pending
                    .insert(key.clone(), (trader, body.clone(), Instant::now()));
            }
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                continue;
            };
            let (http, shared, traders) = (http.clone(), shared.clone(), traders.clone());
            tokio::spawn(async move {
                submit(http, shared, traders, trader, key, body).await;
                drop(permit);
            });
        }
    }
}
