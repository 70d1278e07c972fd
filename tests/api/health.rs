use crate::support::{TestApp, TestDatabase};

#[tokio::test]
async fn healthz_answers_while_the_process_is_up() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn readyz_is_200_on_a_migrated_database() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn readyz_is_503_when_the_database_goes_away() {
    let app = TestApp::spawn().await;
    app.db.pool.close().await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn migration_state_is_detected() {
    let db = TestDatabase::fresh_unmigrated().await;
    assert!(!orderd::db::is_migrated(&db.pool).await.unwrap());
    orderd::db::migrate(&db.pool).await.unwrap();
    assert!(orderd::db::is_migrated(&db.pool).await.unwrap());
    // Twice is a no-op, as when several instances start together.
    orderd::db::migrate(&db.pool).await.unwrap();
}

#[tokio::test]
async fn the_instance_registers_and_marks_itself_stopped() {
    let app = TestApp::spawn().await;
    let pool = app.db.pool.clone();
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM instances WHERE stopped_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(live, 1);
    app.stop().await.expect("clean stop");
    let stopped: i64 =
        sqlx::query_scalar("SELECT count(*) FROM instances WHERE stopped_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stopped, 1);
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = TestApp::spawn().await;
    let big = vec![b'x'; 70_000];
    // No POST route exists yet at this layer; the limit applies to any
    // route that reads a body, and an unknown route is a 404 either way.
    let response = app
        .client
        .post(app.url("/healthz"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    app.stop().await.expect("clean stop");
}

/// Every secured operation of the document, with a valid request for it.
fn secured_requests(
    doc: &serde_json::Value,
    order_id: &str,
) -> Vec<(reqwest::Method, String, bool)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("security").is_none() {
                continue;
            }
            let path = path
                .replace("{order_id}", order_id)
                .replace("{symbol_or_asset_id}", "AAPL")
                .replace("{run_id}", "1")
                .replace("{job}", "gc")
                .replace("{activity_type}", "FILL");
            let path = if path.ends_with(":by_client_order_id") {
                format!("{path}?client_order_id=before-the-outage")
            } else {
                path
            };
            // Whether it takes an Idempotency-Key (sent only where it does).
            let takes_key = op["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "Idempotency-Key"));
            found.push((method.to_uppercase().parse().unwrap(), path, takes_key));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn while_the_database_is_away_every_secured_route_answers_503_with_retry_after_and_all_recovers()
 {
    let (stack, proxy) = crate::support::TestStack::spawn_behind_proxy().await;
    let trader = stack.trader(&[("USD", "1000000"), ("AAPL", "100")]).await;
    let before = trader
        .post_order(
            serde_json::json!({"symbol": "AAPL", "qty": "2", "side": "buy",
            "type": "market", "time_in_force": "day", "client_order_id": "before-the-outage"}),
        )
        .await;
    assert_eq!(before.status, 200, "{:?}", before.body);
    let order_id = before.body["id"].as_str().unwrap().to_string();
    let doc: serde_json::Value = stack.get_json(stack.app.url("/openapi.json")).await;
    let requests = secured_requests(&doc, &order_id);
    assert!(requests.len() >= 14, "{requests:?}");

    proxy.cut();
    let order = serde_json::json!({"symbol": "AAPL", "qty": "1", "side": "buy",
        "type": "limit", "time_in_force": "day", "limit_price": "10"});
    for (method, path, takes_key) in &requests {
        let mut request = stack
            .http
            .request(method.clone(), stack.app.url(path))
            .header("APCA-API-KEY-ID", &trader.key_id)
            .header("APCA-API-SECRET-KEY", &trader.secret_key)
            .header("Authorization", "Bearer orderd-admin");
        if *takes_key {
            request = request.header("Idempotency-Key", "during-the-outage");
        }
        if method == reqwest::Method::POST && path == "/v2/orders" {
            request = request.json(&order);
        }
        if method == reqwest::Method::PATCH {
            request = request.json(&serde_json::json!({"qty": "2"}));
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        // What needs the database says so; what the ledger (the account's
        // cash) or the reference data in memory (assets, clock, calendar)
        // can answer alone may still answer.
        let from_memory = path == "/v2/account"
            || path.starts_with("/v2/assets")
            || path == "/v2/clock"
            || path == "/v2/calendar";
        if status.is_success() && from_memory {
            continue;
        }
        assert_eq!(status, 503, "{method} {path}: {body}");
        assert!(retry_after.is_some(), "{method} {path} has no Retry-After");
        assert_eq!(body["code"], 50310000, "{method} {path}: {body}");
    }
    let status = |path: &'static str| {
        let request = stack.http.get(stack.app.url(path));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status("/readyz").await, 503);
    assert_eq!(
        status("/healthz").await,
        200,
        "the process stays up through the outage"
    );

    proxy.restore();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if status("/readyz").await == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not ready again");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Nothing was accepted during the outage: the retry under the same key
    // is a fresh acceptance, not a replay.
    let retried = trader
        .post_order_with_key(order, Some("during-the-outage"))
        .await;
    assert_eq!(retried.status, 200, "{:?}", retried.body);
    assert!(retried.headers.get("idempotent-replayed").is_none());
    // And what was in flight when the database went away is finished: the
    // fills the venue sent meanwhile are found (stream catch-up, or the
    // open-orders reconciliation) and applied.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(45);
    loop {
        let finished = trader.get(&format!("/v2/orders/{order_id}")).await;
        if finished.body["status"] == "filled" {
            assert_eq!(finished.body["filled_qty"], "2");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not finished after the outage: {:?}",
            finished.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    stack.wait_quiet(std::time::Duration::from_secs(30)).await;
}

#[tokio::test]
async fn past_its_rate_an_account_gets_429_with_retry_after_and_others_do_not() {
    let stack = crate::support::TestStack::spawn_with(|s| s.http.rate_limit_per_minute = 5).await;
    let busy = stack.trader(&[("USD", "1000")]).await;
    let quiet = stack.trader(&[("USD", "1000")]).await;
    for remaining in (0..5).rev() {
        let reply = busy.get("/v2/orders").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.headers["x-ratelimit-limit"], "5");
        assert_eq!(
            reply.headers["x-ratelimit-remaining"],
            remaining.to_string().as_str()
        );
        let reset: i64 = reply.headers["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(reset >= chrono::Utc::now().timestamp());
    }
    let refused = busy.get("/v2/account").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["code"], 42910000);
    assert_eq!(refused.body["message"], "rate limit exceeded");
    // One request's worth comes back every 12 s at 5 a minute.
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&wait), "{wait}");
    assert_eq!(refused.headers["x-ratelimit-remaining"], "0");
    // Another account has its own allowance; bad keys are not counted
    // against anyone.
    assert_eq!(quiet.get("/v2/orders").await.status, 200);
    let anonymous = stack
        .http
        .get(stack.app.url("/v2/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().get("x-ratelimit-limit").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_read_the_database_at_most_once_a_window_and_can_require_a_token() {
    let (stack, proxy) = crate::support::TestStack::spawn_behind_proxy_with(|s| {
        s.http.metrics_gauges_ms = 1500;
        s.http.metrics_token = Some("scrape-secret".to_string());
    })
    .await;
    let scrape = |token: Option<&'static str>| {
        let mut request = stack.http.get(stack.app.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(scrape(None).await, 401);
    assert_eq!(scrape(Some("wrong")).await, 401);
    assert_eq!(scrape(Some("scrape-secret")).await, 200);
    // The database goes away: within the window the gauges are not read
    // again, so scrapes still answer; past it, they say so.
    proxy.cut();
    assert_eq!(scrape(Some("scrape-secret")).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert_eq!(scrape(Some("scrape-secret")).await, 503);
    proxy.restore();
}
