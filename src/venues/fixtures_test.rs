//! orderd's wire types against the simulators' golden fixtures: every
//! response orderd reads parses, every request it sends has exactly the
//! fields the simulator's request fixture has. The simulators' own tests
//! assert their side against the same files, so the two cannot drift.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::balances::{
    Balances, Bounded, CreateHoldRequest, Hold, HoldReference, ReleaseRequest, Settlement,
    SettlementReference, SettlementRequest, Settlements,
};
use super::exchange::{
    PlaceOrderRequest, Quote, StreamMessage, VenueFill, VenueOrder, is_duplicate_client_order_id,
};

fn fixture(service: &str, name: &str) -> Value {
    let path = format!(
        "{}/simulators/{service}/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parses<T: DeserializeOwned>(service: &str, name: &str) -> T {
    serde_json::from_value(fixture(service, name))
        .unwrap_or_else(|e| panic!("{service}/{name}: {e}"))
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// orderd's request has the fixture's fields (optional ones it leaves out
/// are listed in `optional`), and no field the simulator does not know.
fn same_fields(ours: Value, service: &str, name: &str, optional: &[&str]) {
    let theirs = fixture(service, name);
    let (ours, theirs) = (keys(&ours), keys(&theirs));
    let unknown: Vec<_> = ours.difference(&theirs).collect();
    assert!(
        unknown.is_empty(),
        "{name}: orderd sends fields the simulator lacks: {unknown:?}"
    );
    let missing: Vec<_> = theirs
        .difference(&ours)
        .filter(|k| !optional.contains(&k.as_str()))
        .collect();
    assert!(missing.is_empty(), "{name}: orderd omits {missing:?}");
}

#[test]
fn exchange_responses_parse() {
    let order: VenueOrder = parses("exchange", "order.response.json");
    assert!(!order.id.as_str().is_empty());
    let filled: VenueOrder = parses("exchange", "order.filled.response.json");
    assert_eq!(filled.status, "filled");
    let rejected: VenueOrder = parses("exchange", "order.rejected.response.json");
    assert!(rejected.reject_reason.is_some());
    let _: Vec<VenueOrder> = parses("exchange", "orders.list.response.json");
    // A notional order before the venue decides its qty.
    let mut notional = fixture("exchange", "order.response.json");
    notional["qty"] = serde_json::Value::Null;
    notional["notional"] = serde_json::json!("1000");
    let notional: VenueOrder = serde_json::from_value(notional).unwrap();
    assert_eq!(
        (notional.qty, notional.notional),
        (None, Some(Decimal::from(1000)))
    );
    let _: Vec<VenueFill> = parses("exchange", "fills.response.json");
    let quote: Quote = parses("exchange", "quote.json");
    assert!(quote.ask >= quote.bid);
    assert_eq!(quote.check(), Ok(()));
    let duplicate = fixture("exchange", "error.duplicate_client_order_id.json");
    assert!(is_duplicate_client_order_id(
        duplicate["message"].as_str().unwrap()
    ));
    let rejection = fixture("exchange", "error.venue_rejected.json");
    assert!(!is_duplicate_client_order_id(
        rejection["message"].as_str().unwrap()
    ));
}

#[test]
fn every_stream_message_parses() {
    for name in [
        "stream.auth.json",
        "stream.error.json",
        "stream.heartbeat.json",
        "stream.execution_report.new.json",
        "stream.execution_report.partial_fill.json",
        "stream.execution_report.fill.json",
        "stream.execution_report.canceled.json",
        "stream.execution_report.expired.json",
        "stream.execution_report.rejected.json",
        "stream.execution_report.cancel_rejected.json",
    ] {
        let _: StreamMessage = parses("exchange", name);
    }
    match parses::<StreamMessage>("exchange", "stream.execution_report.fill.json") {
        StreamMessage::ExecutionReport(report) => {
            assert!(report.last_qty > Decimal::ZERO && report.last_px.is_some());
            assert!(report.qty.is_some_and(|qty| qty >= report.cum_qty));
        }
        other => panic!("{other:?}"),
    }
    let auth = super::exchange::stream_auth_message("sim-venue-key");
    same_fields(
        serde_json::from_str(&auth).unwrap(),
        "exchange",
        "stream.auth.request.json",
        &[],
    );
}

#[test]
fn exchange_requests_have_the_venues_fields() {
    let limit = PlaceOrderRequest {
        client_order_id: "od-1".into(),
        symbol: "AAPL".into(),
        side: "buy".to_string(),
        order_type: "limit".into(),
        time_in_force: "day".into(),
        qty: Some(Decimal::from(10)),
        notional: None,
        prices: crate::venues::exchange::VenuePrices {
            limit_price: Some(Decimal::new(18550, 2)),
            ..Default::default()
        },
        timestamp: 1_764_504_000_000,
        recv_window_ms: 5000,
    };
    same_fields(
        serde_json::to_value(&limit).unwrap(),
        "exchange",
        "place_order.request.json",
        &[],
    );
    let replace = crate::venues::exchange::ReplaceOrderRequest {
        client_order_id: "od-1-r".into(),
        qty: Decimal::from(12),
        time_in_force: "day".into(),
        prices: crate::venues::exchange::VenuePrices {
            limit_price: Some(Decimal::new(18525, 2)),
            ..Default::default()
        },
        timestamp: 1_764_504_000_000,
        recv_window_ms: 5000,
    };
    same_fields(
        serde_json::to_value(&replace).unwrap(),
        "exchange",
        "replace_order.request.json",
        &[],
    );
    let market = PlaceOrderRequest {
        prices: Default::default(),
        order_type: "market".into(),
        ..limit
    };
    same_fields(
        serde_json::to_value(&market).unwrap(),
        "exchange",
        "place_order.market.request.json",
        &["limit_price"],
    );
}

#[test]
fn balances_responses_parse() {
    // Within the bounds orderd holds the ledger's answers to, too.
    let hold: Hold = parses("balances", "hold.response.json");
    assert_eq!((hold.status.as_str(), hold.check()), ("open", Ok(())));
    let held: Hold = parses("balances", "get_hold.response.json");
    assert_eq!(held.check(), Ok(()));
    let released: Hold = parses("balances", "release_full.response.json");
    assert_eq!(
        (released.status.as_str(), released.check()),
        ("closed", Ok(()))
    );
    let balances: Balances = parses("balances", "balances.response.json");
    assert_eq!(balances.check(), Ok(()));
    let settlement: Settlement = parses("balances", "settlement.response.json");
    assert!(!settlement.flagged);
    let flagged: Settlement = parses("balances", "settlement_flagged.response.json");
    assert!(flagged.flagged && flagged.flag_reason.is_some());
    let _: Settlements = parses("balances", "settlements.response.json");
    let insufficient = fixture("balances", "error.insufficient_funds.json");
    assert_eq!(insufficient["code"], "insufficient_funds");
    assert_eq!(
        fixture("balances", "error.idempotency_key_reused.json")["code"],
        "idempotency_key_reused"
    );
}

#[test]
fn balances_requests_have_the_ledgers_fields() {
    let hold = CreateHoldRequest {
        idempotency_key: "hold-1".into(),
        account_id: "acct".into(),
        asset: "USD".into(),
        amount: Decimal::from(100),
        reference: HoldReference {
            order_id: "o".into(),
            client_order_id: "c".into(),
        },
    };
    let hold = serde_json::to_value(&hold).unwrap();
    assert!(hold["amount"].is_string(), "amounts are strings");
    same_fields(hold, "balances", "create_hold.request.json", &[]);
    let release = ReleaseRequest {
        idempotency_key: "release-1".into(),
        amount: None,
    };
    same_fields(
        serde_json::to_value(&release).unwrap(),
        "balances",
        "release_full.request.json",
        &[],
    );
    let part = ReleaseRequest {
        idempotency_key: "release-1".into(),
        amount: Some(rust_decimal::Decimal::new(2500, 2)),
    };
    same_fields(
        serde_json::to_value(&part).unwrap(),
        "balances",
        "release.request.json",
        &[],
    );
    let increase = crate::venues::balances::IncreaseHoldRequest {
        idempotency_key: "raise-1".into(),
        amount: rust_decimal::Decimal::new(2500, 2),
    };
    same_fields(
        serde_json::to_value(&increase).unwrap(),
        "balances",
        "increase.request.json",
        &[],
    );
    let settlement = SettlementRequest {
        idempotency_key: "exec-1".into(),
        account_id: "acct".into(),
        hold_id: Some("h".into()),
        side: crate::domain::order::Side::Buy,
        symbol: "AAPL".into(),
        qty: Decimal::from(5),
        price: Decimal::new(9980, 2),
        fee: Decimal::ZERO,
        hold_amount: Some(Decimal::from(500)),
        reference: SettlementReference {
            order_id: "o".into(),
            exec_id: "exec-1".into(),
        },
    };
    let settlement = serde_json::to_value(&settlement).unwrap();
    assert!(settlement["qty"].is_string() && settlement["hold_amount"].is_string());
    same_fields(settlement, "balances", "settlement.request.json", &[]);
}

#[test]
fn the_venues_reference_data_and_session_reports_parse() {
    use super::reference::{VenueAsset, VenueClock, VenueSession};
    let asset: VenueAsset = parses("exchange", "asset.json");
    assert_eq!(asset.symbol, "AAPL");
    assert_eq!(asset.status, "active");
    let assets: Vec<VenueAsset> = parses("exchange", "assets.json");
    assert!(assets.iter().any(|a| a.symbol == "SPY"));
    let calendar: Vec<VenueSession> = parses("exchange", "calendar.json");
    assert!(!calendar.is_empty());
    let clock: VenueClock = parses("exchange", "clock.json");
    assert!(clock.is_open);
    let accepted: VenueOrder = parses("exchange", "order.accepted.response.json");
    assert_eq!(accepted.status, "accepted");
    for (name, exec_type) in [
        ("stream.execution_report.accepted.json", "accepted"),
        ("stream.execution_report.done_for_day.json", "done_for_day"),
    ] {
        match parses::<StreamMessage>("exchange", name) {
            StreamMessage::ExecutionReport(report) => assert_eq!(report.exec_type, exec_type),
            other => panic!("{name}: {other:?}"),
        }
    }
}
