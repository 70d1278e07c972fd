//! No input reaches a 500: for every operation in `/openapi.json`, a
//! property test puts generated hostile text (NUL and other control
//! characters, bytes that are not UTF-8, lone surrogates, over-long values,
//! quotes and SQL) into each path, query and header parameter, each JSON
//! string of the order request, and the credentials, and requires a 2xx
//! or an Alpaca-style 4xx `{code, message}` every time. Nothing the
//! trader had is lost along the way.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::support::{TestStack, Trader};

/// Cases per input (each a request).
const CASES_PER_INPUT: u32 = 48;

/// Raw bytes a client could put in a request: fixed hostile values, any
/// bytes, any printable text, long runs.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let fixed: Vec<Vec<u8>> = [
        &b"\0"[..],
        b"a\0b",
        b"\x01\x02\x1b[31m",
        b"\x7f",
        "\u{85}\u{2028}\u{202e}".as_bytes(),
        b"\xff\xfe",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"'; DROP TABLE orders; --",
        b"%00",
        b"\\u0000",
        b" ",
        b"",
        b"\t\r\n",
        "\u{1f600}".as_bytes(),
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    prop_oneof![
        proptest::sample::select(fixed),
        proptest::collection::vec(any::<u8>(), 0..48),
        "\\PC{0,48}".prop_map(String::into_bytes),
        (any::<u8>(), 60usize..20_000).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// An input of an operation to put a hostile value in.
#[derive(Debug, Clone)]
enum Slot {
    Path(String),
    Query(String),
    Header(String),
    /// A string field of the JSON body (raw JSON text is spliced in, so a
    /// lone surrogate `\ud800` can be sent too).
    BodyField(String),
}

#[derive(Debug, Clone)]
struct Operation {
    method: reqwest::Method,
    path: String,
    slots: Vec<Slot>,
    path_params: Vec<String>,
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let method: reqwest::Method = method.to_uppercase().parse().expect("method");
            let mut slots = Vec::new();
            let mut path_params = Vec::new();
            for parameter in op["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().expect("name").to_string();
                match parameter["in"].as_str() {
                    Some("path") => {
                        path_params.push(name.clone());
                        slots.push(Slot::Path(name));
                    }
                    Some("query") => slots.push(Slot::Query(name)),
                    Some("header") => slots.push(Slot::Header(name)),
                    _ => {}
                }
            }
            if op.get("requestBody").is_some() {
                for field in [
                    "symbol",
                    "qty",
                    "side",
                    "type",
                    "time_in_force",
                    "limit_price",
                    "client_order_id",
                    "order_class",
                ] {
                    slots.push(Slot::BodyField(field.to_string()));
                }
            }
            // Everyone's credentials.
            slots.push(Slot::Header("APCA-API-KEY-ID".into()));
            slots.push(Slot::Header("APCA-API-SECRET-KEY".into()));
            found.push(Operation {
                method,
                path: path.clone(),
                slots,
                path_params,
            });
        }
    }
    found
}

/// A valid value of each path parameter, so one hostile value at a time
/// reaches the handler.
fn valid_path_value(name: &str, order_id: &str) -> String {
    match name {
        "order_id" => order_id.to_string(),
        "symbol_or_asset_id" => "AAPL".into(),
        "job" => "gc".into(),
        "run_id" => "1".into(),
        "activity_type" => "FILL".into(),
        other => panic!("no valid value known for path parameter {other}"),
    }
}

struct Target {
    stack_base: String,
    trader: Trader,
    order_id: String,
    http: reqwest::Client,
}

impl Target {
    async fn send(&self, op: &Operation, slot: &Slot, hostile: &[u8]) -> (u16, String, String) {
        let mut path = op.path.clone();
        for name in &op.path_params {
            let value = match slot {
                Slot::Path(target) if target == name => percent_encode(hostile),
                _ => valid_path_value(name, &self.order_id),
            };
            path = path.replace(&format!("{{{name}}}"), &value);
        }
        let mut url = format!("{}{}", self.stack_base, path);
        if let Slot::Query(name) = slot {
            url.push_str(&format!("?{name}={}", percent_encode(hostile)));
        }
        let mut request = self
            .http
            .request(op.method.clone(), &url)
            .header("Authorization", "Bearer orderd-admin");
        let mut key_id = self.trader.key_id.clone().into_bytes();
        let mut secret = self.trader.secret_key.clone().into_bytes();
        let mut sent = format!("{} {url}", op.method);
        if let Slot::Header(name) = slot {
            match name.as_str() {
                "APCA-API-KEY-ID" => key_id = hostile.to_vec(),
                "APCA-API-SECRET-KEY" => secret = hostile.to_vec(),
                _ => {}
            }
            sent.push_str(&format!(
                " with {name}: {:?}",
                String::from_utf8_lossy(hostile)
            ));
        }
        for (name, value) in [
            ("APCA-API-KEY-ID", &key_id),
            ("APCA-API-SECRET-KEY", &secret),
        ] {
            if let Ok(value) = reqwest::header::HeaderValue::from_bytes(value) {
                request = request.header(name, value);
            }
        }
        if let Slot::Header(name) = slot
            && !name.starts_with("APCA")
            && let Ok(value) = reqwest::header::HeaderValue::from_bytes(hostile)
        {
            request = request.header(name.as_str(), value);
        }
        if op.method == reqwest::Method::POST && op.path == "/v2/orders" {
            let mut body = json!({"symbol": "AAPL", "qty": "1", "side": "buy",
                "type": "limit", "time_in_force": "day", "limit_price": "1.00"});
            let text = match slot {
                Slot::BodyField(field) => {
                    // Splice the text in raw: the JSON may be invalid (a 400)
                    // or carry what serde would escape differently.
                    let marker = "\u{1}HOSTILE\u{1}";
                    body[field.as_str()] = json!(marker);
                    let raw = String::from_utf8_lossy(hostile)
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"");
                    let raw = if hostile == b"\\u0000" {
                        "\\ud800".to_string()
                    } else {
                        raw
                    };
                    body.to_string()
                        .replace(&json!(marker).to_string(), &format!("\"{raw}\""))
                }
                _ => body.to_string(),
            };
            sent.push_str(&format!(" body {text:?}"));
            request = request
                .header("content-type", "application/json")
                .body(text);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        (status, body, sent)
    }
}

fn check(status: u16, body: &str, sent: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{sent} answered {status}: {body}");
    if status >= 400 {
        let error: Value = serde_json::from_str(body).map_err(|_| {
            TestCaseError::fail(format!(
                "{sent} answered {status} with a non-JSON body: {body}"
            ))
        })?;
        prop_assert!(
            error["code"].as_u64().is_some() && error["message"].as_str().is_some(),
            "{sent} answered {status} without Alpaca's {{code, message}}: {body}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_generated_input_reaches_a_server_error_on_any_route() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000000"), ("AAPL", "100")]).await;
    let resting = trader
        .post_order(
            json!({"symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit",
            "time_in_force": "gtc", "limit_price": "1.00", "client_order_id": "keep-me"}),
        )
        .await;
    assert_eq!(resting.status, 200, "{:?}", resting.body);
    let order_id = resting.body["id"].as_str().expect("order id").to_string();
    let base = format!("http://{}", stack.app.addr);
    let doc: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let target = Arc::new(Target {
        stack_base: base.clone(),
        trader,
        order_id: order_id.clone(),
        http: reqwest::Client::new(),
    });
    let handle = tokio::runtime::Handle::current();
    let ops = operations(&doc);
    assert!(
        ops.len() >= 17,
        "every operation is in the document: {}",
        ops.len()
    );
    let mut inputs = 0;
    for op in &ops {
        for slot in &op.slots {
            // DELETE /v2/orders would cancel the order the test keeps.
            if op.method == reqwest::Method::DELETE
                && op.path == "/v2/orders"
                && !matches!(slot, Slot::Header(_))
            {
                continue;
            }
            inputs += 1;
            let mut runner = TestRunner::new_with_rng(
                Config {
                    cases: CASES_PER_INPUT,
                    failure_persistence: None,
                    ..Config::default()
                },
                proptest::test_runner::TestRng::deterministic_rng(
                    proptest::test_runner::RngAlgorithm::ChaCha,
                ),
            );
            let target = target.clone();
            let result = tokio::task::block_in_place(|| {
                runner.run(&hostile_bytes(), |hostile| {
                    let (status, body, sent) = handle.block_on(target.send(op, slot, &hostile));
                    check(status, &body, &sent)
                })
            });
            if let Err(failure) = result {
                panic!("{} {} {slot:?}: {failure}", op.method, op.path);
            }
        }
    }
    assert!(inputs > 40, "inputs exercised: {inputs}");

    // Nothing the trader had was lost or changed by any of it.
    let kept = target
        .http
        .get(format!("{base}/v2/orders/{order_id}"))
        .header("APCA-API-KEY-ID", &target.trader.key_id)
        .header("APCA-API-SECRET-KEY", &target.trader.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 200);
    let kept: Value = kept.json().await.unwrap();
    assert_eq!(kept["client_order_id"], "keep-me");
    assert_eq!(kept["qty"], "1");
}
