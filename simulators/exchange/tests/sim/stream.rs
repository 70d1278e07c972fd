//! Stream protocol: auth, seqs, heartbeats, fan-out, slow consumers.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test]
async fn wrong_key_gets_an_error_and_a_close() {
    let sim = start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(sim.handle.stream_url())
        .await
        .expect("connect");
    ws.send(Message::text(
        json!({"action": "auth", "key": "nope"}).to_string(),
    ))
    .await
    .expect("send");
    let mut stream = Stream { ws };
    let msg = stream.next_json().await.expect("error message");
    assert_eq!(msg["type"], "error");
    assert_eq!(msg["code"], 40110000);
    assert!(stream.next_json().await.is_none());
}

#[tokio::test]
async fn heartbeats_carry_the_last_assigned_seq() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let first = stream.next_json().await.expect("heartbeat");
    assert_eq!(first["type"], "heartbeat");
    assert_eq!(first["seq"], 0);
    sim.place("hb-1", "AAPL", "buy", "ioc", "1", None).await;
    let a = stream.next_report().await;
    let b = stream.next_report().await;
    assert_eq!((a["seq"].as_u64(), b["seq"].as_u64()), (Some(1), Some(2)));
    loop {
        let msg = stream.next_json().await.expect("open");
        if msg["type"] == "heartbeat" {
            assert_eq!(msg["seq"], 2);
            break;
        }
    }
}

#[tokio::test]
async fn every_connection_gets_every_report_with_its_own_seqs() {
    let sim = start().await;
    let mut one = sim.stream().await;
    sim.place("fan-0", "AAPL", "buy", "ioc", "1", None).await;
    let _ = one.next_report().await;
    let _ = one.next_report().await;
    let mut two = sim.stream().await;
    let id = id_of(&sim.place("fan-1", "AMZN", "sell", "day", "20", None).await);
    let a = one.reports_until_terminal(&id).await;
    let b = two.reports_until_terminal(&id).await;
    let ids =
        |v: &Vec<serde_json::Value>| v.iter().map(|r| r["exec_id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    let seqs = |v: &Vec<serde_json::Value>| {
        v.iter()
            .map(|r| r["seq"].as_u64().expect("seq"))
            .collect::<Vec<_>>()
    };
    let n = a.len() as u64;
    assert_eq!(seqs(&a), (3..3 + n).collect::<Vec<_>>());
    assert_eq!(seqs(&b), (1..1 + n).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_and_the_venue_keeps_going() {
    let sim = start_with(exchange_sim::Config {
        stream_queue_len: 1,
        ..test_config()
    })
    .await;
    let mut slow = sim.stream().await;
    // One IOC publishes three reports at once: more than the queue holds.
    let reply = sim
        .place("slow-1", "AAPL", "buy", "ioc", "1500", None)
        .await;
    assert_eq!(reply.body["status"], "expired");
    let messages = slow.collect_for(Duration::from_millis(300)).await;
    let last = messages.last().expect("an error before the close");
    assert_eq!(last["type"], "error");
    assert!(
        last["message"]
            .as_str()
            .expect("m")
            .contains("slow consumer")
    );
    assert_eq!(
        sim.admin_get("/admin/stats").await.body["slow_consumer_disconnects"],
        1
    );
    assert_eq!(
        sim.place("slow-2", "AAPL", "buy", "ioc", "1", None)
            .await
            .body["status"],
        "filled"
    );
}

#[tokio::test]
async fn exec_ids_are_unique_across_orders() {
    let sim = start().await;
    let mut stream = sim.stream().await;
    let mut all = Vec::new();
    for i in 0..5 {
        let id = id_of(
            &sim.place(&format!("u-{i}"), "SPY", "buy", "day", "9", None)
                .await,
        );
        all.extend(stream.reports_until_terminal(&id).await);
    }
    let mut ids: Vec<_> = all
        .iter()
        .map(|r| r["exec_id"].as_str().expect("id").to_owned())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
}
