//! Admin API: ground truth, reset, stats, prices; the binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn ground_truth_lists_every_order_with_fills_and_placement_counts() {
    let sim = start().await;
    let id = id_of(&sim.place("gt-1", "AAPL", "buy", "ioc", "5", None).await);
    sim.place("gt-1", "AAPL", "buy", "ioc", "5", None).await;
    sim.place("gt-2", "AAPL", "buy", "gtc", "5", Some("100"))
        .await;
    let truth = sim.admin_get("/admin/ground-truth").await.body;
    let orders = truth["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[0]["id"], id.as_str());
    assert_eq!(orders[0]["fills"].as_array().expect("fills").len(), 1);
    assert_eq!(orders[0]["fills"][0]["qty"], "5");
    assert_eq!(orders[0]["placement_requests"], 2);
    assert_eq!(truth["placement_requests"], json!({"gt-1": 2, "gt-2": 1}));
    assert_eq!(truth["orders_created"], json!({"gt-1": 1, "gt-2": 1}));
    assert_eq!(sim.handle.ground_truth().orders.len(), 2);
    let s = sim.admin_get("/admin/stats").await.body;
    assert_eq!(s["orders"], 2);
    assert_eq!(s["open_orders"], 1);
    assert_eq!(s["placement_requests"], 3);
}

#[tokio::test]
async fn reset_clears_orders_and_keeps_config() {
    let sim = start().await;
    sim.put_faults(json!({"drop_report": 0.5})).await;
    sim.place("rs-1", "AAPL", "buy", "gtc", "5", Some("100"))
        .await;
    let reply = sim
        .http
        .post(sim.url("/admin/reset"))
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    let truth = sim.admin_get("/admin/ground-truth").await.body;
    assert_eq!(truth["orders"], json!([]));
    assert_eq!(truth["placement_requests"], json!({}));
    assert_eq!(
        sim.admin_get("/admin/faults").await.body["drop_report"],
        0.5
    );
    // The client_order_id may be used again after a reset.
    sim.put_faults(json!({})).await;
    assert_eq!(
        sim.place("rs-1", "AAPL", "buy", "gtc", "5", Some("100"))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn admin_prices_validate_input() {
    let sim = start().await;
    assert_eq!(
        sim.admin_post("/admin/prices", &json!({"symbol": "NOPE", "price": "1"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        sim.admin_post("/admin/prices", &json!({"symbol": "AAPL", "price": "-1"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.admin_post("/admin/prices", &json!({"symbol": "AAPL"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let q = sim
        .admin_post("/admin/prices", &json!({"symbol": "AAPL", "price": 0.5}))
        .await
        .body;
    assert_eq!(q["symbol"], "AAPL");
    assert_eq!(sim.get("/v1/quotes/AAPL").await.body["last"], "0.5");
}

#[tokio::test]
async fn handle_shutdown_stops_the_server() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let addr = sim.handle.addr();
    sim.handle.shutdown().await.expect("clean shutdown");
    assert!(stream.next_json().await.is_none(), "stream closed");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn binary_prints_the_bound_address_and_exits_cleanly_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_exchange-sim"))
        .args(["--listen", "127.0.0.1:0", "--seed", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn binary");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let addr: std::net::SocketAddr = addr.parse().expect("address");
    assert_ne!(addr.port(), 0);
    std::net::TcpStream::connect(addr).expect("accepting");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert_eq!(exit.code(), Some(0));
}
