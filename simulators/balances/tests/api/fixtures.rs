//! Golden fixtures: every request body in `fixtures/` is sent as is (hold ids patched
//! in), and every response is compared with its fixture after normalizing ids and
//! timestamps. Each fixture also round-trips through its `balances_sim::wire` type.
//!
//! `BLESS_FIXTURES=1 cargo test -p balances-sim --test api fixtures` rewrites the
//! response fixtures from a real run (review the diff!).

use std::path::PathBuf;
use std::time::Duration;

use balances_sim::wire;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, spawn_app};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Replaces UUIDs and RFC 3339 timestamps by placeholders, recursively.
fn normalize(value: &Value) -> Value {
    match value {
        Value::String(s) if uuid::Uuid::parse_str(s).is_ok() && s.len() == 36 => json!("<uuid>"),
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => json!("<time>"),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        other => other.clone(),
    }
}

/// The fixture must parse into `T` and serialize back to the same JSON.
fn round_trips<T: DeserializeOwned + Serialize>(name: &str, fixture: &Value) {
    let typed: T = serde_json::from_value(fixture.clone())
        .unwrap_or_else(|e| panic!("{name} vs wire type: {e}"));
    assert_eq!(
        &serde_json::to_value(&typed).unwrap(),
        fixture,
        "{name} does not round-trip"
    );
}

/// Compares (or, when blessing, writes) a response fixture.
#[track_caller]
fn golden<T: DeserializeOwned + Serialize>(name: &str, actual: &Value) {
    if std::env::var_os("BLESS_FIXTURES").is_some() {
        let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
        std::fs::write(path(name), text).unwrap();
    }
    let fixture = load(name);
    assert_eq!(
        normalize(actual),
        normalize(&fixture),
        "response differs from fixtures/{name}"
    );
    round_trips::<T>(name, &fixture);
}

fn request<T: DeserializeOwned + Serialize>(name: &str) -> Value {
    let fixture = load(name);
    round_trips::<T>(name, &fixture);
    fixture
}

async fn post(app: &TestApp, path: &str, body: &Value, status: u16) -> Value {
    let reply: Reply = app.post(path, body).await;
    reply.expect(status)
}

#[tokio::test]
async fn fixtures_match_the_wire() {
    let app = spawn_app().await;

    let account = request::<wire::CreateAccountRequest>("admin_account.request.json");
    golden::<wire::BalancesResponse>(
        "admin_account.response.json",
        &post(&app, "/admin/accounts", &account, 201).await,
    );
    golden::<wire::ErrorBody>(
        "error.account_exists.json",
        &post(&app, "/admin/accounts", &account, 409).await,
    );

    let create_hold = request::<wire::CreateHoldRequest>("create_hold.request.json");
    let hold = post(&app, "/v1/holds", &create_hold, 201).await;
    golden::<wire::Hold>("hold.response.json", &hold);
    let hold_id = hold["id"].as_str().unwrap().to_owned();
    golden::<wire::HoldsResponse>(
        "holds.response.json",
        &app.get("/v1/holds?order_id=ord-0001").await.expect(200),
    );
    golden::<wire::Hold>(
        "get_hold.response.json",
        &app.get(&format!("/v1/holds/{hold_id}")).await.expect(200),
    );

    let insufficient = request::<wire::CreateHoldRequest>("create_hold_insufficient.request.json");
    golden::<wire::ErrorBody>(
        "error.insufficient_funds.json",
        &post(&app, "/v1/holds", &insufficient, 422).await,
    );
    let mut reused = create_hold.clone();
    reused["amount"] = json!("1");
    golden::<wire::ErrorBody>(
        "error.idempotency_key_reused.json",
        &post(&app, "/v1/holds", &reused, 422).await,
    );
    let mut number = create_hold.clone();
    number["idempotency_key"] = json!("hold-ord-0003");
    number["amount"] = json!(10);
    golden::<wire::ErrorBody>(
        "error.invalid_field.json",
        &post(&app, "/v1/holds", &number, 422).await,
    );
    let nil = "00000000-0000-0000-0000-000000000000";
    golden::<wire::ErrorBody>(
        "error.hold_not_found.json",
        &app.get(&format!("/v1/holds/{nil}")).await.expect(404),
    );
    golden::<wire::ErrorBody>(
        "error.account_not_found.json",
        &app.get("/v1/accounts/nobody/balances").await.expect(404),
    );

    let mut settlement = request::<wire::SettlementRequest>("settlement.request.json");
    settlement["hold_id"] = json!(hold_id);
    golden::<wire::Settlement>(
        "settlement.response.json",
        &post(&app, "/v1/settlements", &settlement, 201).await,
    );
    golden::<wire::SettlementsResponse>(
        "settlements.response.json",
        &app.get("/v1/settlements?idempotency_key=exec-0001")
            .await
            .expect(200),
    );

    let release = request::<wire::ReleaseRequest>("release.request.json");
    let release_path = format!("/v1/holds/{hold_id}/release");
    golden::<wire::Hold>(
        "release.response.json",
        &post(&app, &release_path, &release, 200).await,
    );
    let release_full = request::<wire::ReleaseRequest>("release_full.request.json");
    golden::<wire::Hold>(
        "release_full.response.json",
        &post(&app, &release_path, &release_full, 200).await,
    );

    let mut flagged = request::<wire::SettlementRequest>("settlement_flagged.request.json");
    flagged["hold_id"] = json!(hold_id);
    golden::<wire::Settlement>(
        "settlement_flagged.response.json",
        &post(&app, "/v1/settlements", &flagged, 201).await,
    );

    golden::<wire::BalancesResponse>(
        "balances.response.json",
        &app.get("/v1/accounts/acct-fixture/balances")
            .await
            .expect(200),
    );
    golden::<wire::LedgerResponse>(
        "ledger.response.json",
        &app.get("/v1/ledger?account_id=acct-fixture&after_seq=0&limit=100")
            .await
            .expect(200),
    );
    golden::<wire::GroundTruth>("ground_truth.response.json", &app.ground_truth().await);

    // Faults: the fixture is accepted and read back unchanged.
    let faults = request::<wire::Faults>("faults.json");
    assert_eq!(app.put_faults(faults.clone()).await, faults);
    assert_eq!(app.get("/admin/faults").await.expect(200), faults);

    app.put_faults(json!({"http_429": 1.0})).await;
    golden::<wire::ErrorBody>(
        "error.rate_limited.json",
        &app.get("/v1/ledger").await.expect(429),
    );
    app.put_faults(json!({"latency": 1.0, "latency_ms_min": 300, "latency_ms_max": 300}))
        .await;
    let slow = {
        let client = app.client.clone();
        let url = app.url("/v1/holds");
        let mut body = create_hold.clone();
        body["idempotency_key"] = json!("hold-ord-0004");
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status() })
    };
    tokio::time::sleep(Duration::from_millis(80)).await;
    let mut same = create_hold.clone();
    same["idempotency_key"] = json!("hold-ord-0004");
    golden::<wire::ErrorBody>(
        "error.request_in_flight.json",
        &post(&app, "/v1/holds", &same, 409).await,
    );
    assert_eq!(slow.await.unwrap().as_u16(), 201);
    app.put_faults(json!({})).await;

    golden::<wire::Stats>("stats.response.json", &app.stats().await);
}

/// The raise of a hold, and the refusal to raise a closed one.
#[tokio::test]
async fn a_raise_matches_its_fixtures() {
    let app = spawn_app().await;
    let account = request::<wire::CreateAccountRequest>("admin_account.request.json");
    post(&app, "/admin/accounts", &account, 201).await;
    let create_hold = request::<wire::CreateHoldRequest>("create_hold.request.json");
    let hold = post(&app, "/v1/holds", &create_hold, 201).await;
    let increase_path = format!("/v1/holds/{}/increase", hold["id"].as_str().unwrap());
    let increase = request::<wire::IncreaseRequest>("increase.request.json");
    golden::<wire::Hold>(
        "increase.response.json",
        &post(&app, &increase_path, &increase, 200).await,
    );
    let release_path = format!("/v1/holds/{}/release", hold["id"].as_str().unwrap());
    post(
        &app,
        &release_path,
        &json!({"idempotency_key": "close"}),
        200,
    )
    .await;
    let mut again = increase.clone();
    again["idempotency_key"] = json!("increase-ord-0001-closed");
    golden::<wire::ErrorBody>(
        "error.hold_closed.json",
        &post(&app, &increase_path, &again, 409).await,
    );
}
