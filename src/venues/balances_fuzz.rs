//! Fuzz target: what orderd decodes from the ledger's answers. A hold's
//! (create: `hold_result`; release: `checked`; look-up: `hold_lookup`), a
//! settlement's, and an account's balances (`checked`), each after
//! `decode_answer`, with any status and a body near the ledger's
//! (amounts negative, huge, with thirty places, as numbers, remaining
//! above the amount, unknown statuses, missing fields, wrong types, text
//! cut short). Whatever arrives: no panic; an error classified by its
//! status; or values within the ledger's contract (`Bounded`), from
//! which what orderd computes (a position's cost and value, an account's
//! equity) cannot overflow. See `crate::fuzz_json` for why proptest and
//! how to run it longer.

use std::str::FromStr;

use proptest::prelude::*;
use reqwest::StatusCode;
use rust_decimal::Decimal;

use super::{
    Balances, Hold, HoldResult, LEDGER_AMOUNT_MAX, LEDGER_DP, Settlement, Settlements,
    available_from, checked, hold_lookup, hold_result,
};
use crate::domain::fills::REPORT_PRICE_MAX;
use crate::domain::position::Lot;
use crate::fuzz_json::{
    Json, any_json, any_text, bytes_of, classified_by_status, config, near, status_code,
    wrong_number,
};
use crate::venues::{CallError, decode_answer};

const HOLD_KEYS: &[&str] = &["id", "account_id", "asset", "amount", "remaining", "status"];
const BALANCE_KEYS: &[&str] = &["total", "held", "available"];
const SETTLEMENT_KEYS: &[&str] = &["id", "idempotency_key", "flagged", "flag_reason"];

/// An amount as the ledger writes it, or on an edge of its bounds.
fn amount() -> BoxedStrategy<String> {
    const EDGES: &[&str] = &[
        "0",
        "-0",
        "-1",
        "0.00000001",
        "0.000000001",
        "1000000000000",
        "1000000000000000",
        "1000000000000000.1",
        "-1000000000000001",
        "79228162514264337593543950335",
        "0.123456789012345678901234567890",
        "1e3",
        "100.50",
    ];
    prop_oneof![
        6 => "(0|[1-9][0-9]{0,9})(\\.[0-9]{1,8})?",
        1 => prop::sample::select(EDGES).prop_map(str::to_string),
    ]
    .boxed()
}

fn any_value() -> BoxedStrategy<Json> {
    prop_oneof![
        3 => wrong_number(),
        1 => prop::sample::select(&["open", "closed", "released", "", "OPEN"][..]).prop_map(Json::str),
        1 => any_json(),
    ]
    .boxed()
}

fn valid_hold() -> BoxedStrategy<Vec<(String, Json)>> {
    (amount(), amount(), any::<bool>())
        .prop_map(|(amount, remaining, open)| {
            let status = if open { "open" } else { "closed" };
            vec![
                (
                    "id".into(),
                    Json::str("9bcd74e9-66cc-4c81-963a-6c25b5f0fc03"),
                ),
                ("account_id".into(), Json::str("acct")),
                ("asset".into(), Json::str("USD")),
                ("amount".into(), Json::Str(amount)),
                ("remaining".into(), Json::Str(remaining)),
                ("consumed".into(), Json::str("0")),
                ("status".into(), Json::str(status)),
            ]
        })
        .boxed()
}

/// A balance, mostly consistent (`available = total − held`).
fn balance() -> BoxedStrategy<Json> {
    let consistent = (amount(), amount()).prop_map(|(total, held)| {
        let available = match (Decimal::from_str(&total), Decimal::from_str(&held)) {
            (Ok(t), Ok(h)) => t.checked_sub(h).map_or(total.clone(), |a| a.to_string()),
            _ => total.clone(),
        };
        vec![
            ("total".into(), Json::Str(total)),
            ("held".into(), Json::Str(held)),
            ("available".into(), Json::Str(available)),
        ]
    });
    let any = (amount(), amount(), amount()).prop_map(|(total, held, available)| {
        vec![
            ("total".into(), Json::Str(total)),
            ("held".into(), Json::Str(held)),
            ("available".into(), Json::Str(available)),
        ]
    });
    near(
        prop_oneof![3 => consistent, 1 => any].boxed(),
        BALANCE_KEYS,
        any_value(),
    )
}

fn balances_body() -> BoxedStrategy<Json> {
    let asset = prop_oneof![
        4 => prop::sample::select(&["USD", "AAPL", "MSFT", "BRK.B"][..]).prop_map(str::to_string),
        1 => any_text(),
    ];
    prop::collection::vec((asset, balance()), 0..4)
        .prop_map(|balances| {
            Json::Obj(vec![
                ("account_id".into(), Json::str("acct")),
                ("balances".into(), Json::Obj(balances)),
            ])
        })
        .boxed()
}

fn valid_settlement() -> BoxedStrategy<Vec<(String, Json)>> {
    (any::<bool>(), any_text())
        .prop_map(|(flagged, reason)| {
            vec![
                (
                    "id".into(),
                    Json::str("7c05e180-5853-4a86-9293-21bcf6e9e4aa"),
                ),
                ("idempotency_key".into(), Json::str("exec-1")),
                ("flagged".into(), Json::raw(flagged.to_string())),
                (
                    "flag_reason".into(),
                    if flagged {
                        Json::Str(reason)
                    } else {
                        Json::raw("null")
                    },
                ),
            ]
        })
        .boxed()
}

/// An answer: a status and a body near the ledger's (its error bodies
/// included, `insufficient_funds` with what is available).
fn answer(valid: BoxedStrategy<Json>) -> BoxedStrategy<(StatusCode, Vec<u8>)> {
    let code = prop_oneof![
        3 => Just(Json::str("insufficient_funds")),
        1 => prop::sample::select(&["idempotency_key_reused", "hold_not_found", "invalid_field"][..])
            .prop_map(Json::str),
        1 => any_json(),
    ];
    let message = prop_oneof![
        2 => (amount(), "[A-Z]{3}").prop_map(|(a, asset)| {
            format!("insufficient funds: {asset} available {a}, requested 1000000")
        }),
        1 => "available[-: .,0-9a-z]{0,20}",
        1 => any_text(),
    ];
    let error = (code, message).prop_map(|(code, message)| {
        Json::Obj(vec![
            ("code".into(), code),
            ("message".into(), Json::Str(message)),
        ])
    });
    let status = prop_oneof![3 => status_code(), 1 => Just(StatusCode::UNPROCESSABLE_ENTITY)];
    (status, prop_oneof![5 => valid, 2 => error, 1 => any_json()])
        .prop_flat_map(|(status, json)| (Just(status), bytes_of(json.render())))
        .boxed()
}

/// `value` is an amount within the ledger's contract.
fn is_amount(value: Decimal, signed: bool) -> bool {
    value.abs() <= LEDGER_AMOUNT_MAX
        && (signed || value >= Decimal::ZERO)
        && value.normalize().scale() <= LEDGER_DP
}

fn hold_is_valid(hold: &Hold) -> Result<(), TestCaseError> {
    prop_assert!(
        is_amount(hold.amount, false) && hold.amount > Decimal::ZERO,
        "{:?}",
        hold
    );
    prop_assert!(
        is_amount(hold.remaining, false) && hold.remaining <= hold.amount,
        "{:?}",
        hold
    );
    prop_assert!(
        hold.status == "open" || hold.status == "closed",
        "{:?}",
        hold
    );
    Ok(())
}

/// A hold's answer, as each of the three calls that get one reads it.
fn hold_answer_holds((status, body): (StatusCode, Vec<u8>)) -> Result<(), TestCaseError> {
    let decoded = || decode_answer::<Hold>("balances", status, None, &body);
    // Create.
    match hold_result(decoded()) {
        Ok(HoldResult::Created(hold)) => {
            prop_assert!(status.is_success());
            hold_is_valid(&hold)?;
        }
        Ok(HoldResult::InsufficientFunds { available }) => {
            prop_assert!(!status.is_success() && !status.is_server_error());
            if let Some(text) = available {
                let value = Decimal::from_str(&text);
                prop_assert!(
                    value.is_ok_and(|v| is_amount(v, true)),
                    "available {:?}",
                    text
                );
            }
        }
        Ok(HoldResult::Refused { code, .. }) => {
            prop_assert!(code != "insufficient_funds");
            let definitive = matches!(decoded(), Err(CallError::Definitive { .. }));
            prop_assert!(definitive);
        }
        Err(error) => classified_by_status(status, &error)?,
    }
    // Release, and look-up.
    match decoded().and_then(checked) {
        Ok(hold) => hold_is_valid(&hold)?,
        Err(error) => classified_by_status(status, &error)?,
    }
    match hold_lookup(decoded()) {
        Ok(Some(hold)) => hold_is_valid(&hold)?,
        Ok(None) => prop_assert_eq!(status, StatusCode::NOT_FOUND),
        Err(error) => classified_by_status(status, &error)?,
    }
    Ok(())
}

/// An account's balances, as `/v2/account` and `/v2/positions` read them:
/// accepted ones are within bounds, and the account's value and each
/// position's cost at the dearest price a venue may quote compute without
/// overflow.
fn balances_answer_holds((status, body): (StatusCode, Vec<u8>)) -> Result<(), TestCaseError> {
    let balances =
        match decode_answer::<Balances>("balances", status, None, &body).and_then(checked) {
            Ok(balances) => balances,
            Err(error) => return classified_by_status(status, &error),
        };
    let price = REPORT_PRICE_MAX;
    let mut equity = Decimal::ZERO;
    for (asset, b) in &balances.balances {
        prop_assert!(
            is_amount(b.total, true) && is_amount(b.held, false) && is_amount(b.available, true),
            "{asset}: {b:?}"
        );
        prop_assert_eq!(b.total - b.held, b.available, "{}", asset);
        let value = b.total.checked_mul(price);
        prop_assert!(value.is_some(), "{asset}: {b:?}");
        equity = equity
            .checked_add(value.unwrap_or_default())
            .unwrap_or(Decimal::MAX);
        let costed = Lot::fold_with_opening(b.total, Some(price), &[]).costed(b.total, Some(price));
        let _ = costed.unrealized(price);
    }
    prop_assert!(equity < Decimal::MAX, "{:?}", balances);
    Ok(())
}

fn settlement_answer_holds((status, body): (StatusCode, Vec<u8>)) -> Result<(), TestCaseError> {
    if let Err(error) = decode_answer::<Settlement>("balances", status, None, &body) {
        classified_by_status(status, &error)?;
    }
    let listed = format!("{{\"settlements\":[{}]}}", String::from_utf8_lossy(&body));
    if let Err(error) = decode_answer::<Settlements>("balances", status, None, listed.as_bytes()) {
        classified_by_status(status, &error)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn fuzz_ledger_hold_answers(answer in answer(near(valid_hold(), HOLD_KEYS, any_value()))) {
        hold_answer_holds(answer)?;
    }

    #[test]
    fn fuzz_ledger_balances_answers(answer in answer(balances_body())) {
        balances_answer_holds(answer)?;
    }

    #[test]
    fn fuzz_ledger_settlement_answers(answer in answer(near(valid_settlement(), SETTLEMENT_KEYS, any_value()))) {
        settlement_answer_holds(answer)?;
    }
}

fn ok(body: &str) -> (StatusCode, Vec<u8>) {
    (StatusCode::OK, body.as_bytes().to_vec())
}

/// Cases the fuzzer found, or that sit on its edges, kept as they are.
#[test]
fn fuzz_ledger_regressions() {
    // The ledger's numbers were taken unchecked: a hold of a negative
    // amount, more remaining than held, a balance past `Decimal`'s reach
    // at a price (its value overflowed: a panic in `/v2/account`), an
    // amount with thirty places.
    for hold in [
        r#"{"id":"h","account_id":"a","asset":"USD","amount":"-5","remaining":"-5","status":"open"}"#,
        r#"{"id":"h","account_id":"a","asset":"USD","amount":"5","remaining":"6","status":"open"}"#,
        r#"{"id":"h","account_id":"a","asset":"USD","amount":"0.123456789012345678901234567890","remaining":"0","status":"closed"}"#,
        r#"{"id":"h","account_id":"a","asset":"USD","amount":"5","remaining":"0","status":"gone"}"#,
    ] {
        hold_answer_holds(ok(hold)).unwrap_or_else(|e| panic!("{hold}: {e}"));
        let decoded = decode_answer::<Hold>("balances", StatusCode::OK, None, hold.as_bytes());
        assert!(
            matches!(hold_result(decoded), Err(CallError::Unexpected { .. })),
            "{hold}"
        );
    }
    for balances in [
        r#"{"account_id":"a","balances":{"AAPL":{"total":"79228162514264337593543950335","held":"0","available":"79228162514264337593543950335"}}}"#,
        r#"{"account_id":"a","balances":{"USD":{"total":"10","held":"-1","available":"11"}}}"#,
        r#"{"account_id":"a","balances":{"USD":{"total":"10","held":"1","available":"10"}}}"#,
        r#"{"account_id":"a","balances":{"USD":{"total":"-79228162514264337593543950335","held":"79228162514264337593543950335","available":"0"}}}"#,
    ] {
        balances_answer_holds(ok(balances)).unwrap_or_else(|e| panic!("{balances}: {e}"));
        let decoded =
            decode_answer::<Balances>("balances", StatusCode::OK, None, balances.as_bytes());
        assert!(decoded.and_then(checked).is_err(), "{balances}");
    }
    // A balance after a flagged settlement: negative available is the
    // ledger's contract, not an error.
    let flagged =
        r#"{"account_id":"a","balances":{"USD":{"total":"-5","held":"0","available":"-5"}}}"#;
    let decoded = decode_answer::<Balances>("balances", StatusCode::OK, None, flagged.as_bytes());
    assert!(decoded.and_then(checked).is_ok());
    // What was available was taken as all the message's text after the
    // word: "98994.5, requested 1000000".
    let message = "insufficient funds: USD available 98994.5, requested 1000000";
    assert_eq!(available_from(message).as_deref(), Some("98994.5"));
    assert_eq!(
        available_from("USD available -12.5").as_deref(),
        Some("-12.5")
    );
    assert_eq!(available_from("available: 7.").as_deref(), Some("7"));
    for junk in [
        "available",
        "available soon 5",
        "available 01",
        "available 1.1234567890123456",
        "no word",
    ] {
        assert_eq!(available_from(junk), None, "{junk}");
    }
}
