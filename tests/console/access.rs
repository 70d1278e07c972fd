//! Who gets in: the admin token logs in as an operator, a viewer token
//! read-only; a wrong token, a trader's API key, a foreign page's POST or
//! a missing CSRF token get nothing.

use reqwest::StatusCode;
use reqwest::redirect::Policy;

use crate::browser::Browser;
use crate::support::TestStack;
use crate::{ADMIN, parked_order, parks_fast};

/// A client that keeps cookies and shows redirects as they are.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// A form body, percent-encoded.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", orderd::console::layout::encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// POSTs a form with the session `cookie`, as from a page of `origin`.
async fn post(url: &str, cookie: &str, origin: &str, pairs: &[(&str, &str)]) -> StatusCode {
    client()
        .post(url)
        .header("Cookie", cookie)
        .header("Origin", origin)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .unwrap()
        .status()
}

/// The page at `url`, as the session `cookie` sees it.
async fn page_of(url: &str, cookie: &str) -> String {
    client()
        .get(url)
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Logs in over HTTP; the session cookie's `name=value`.
async fn login(base: &str, token: &str, operator: &str) -> (StatusCode, Option<String>) {
    let response = client()
        .post(format!("{base}/console/login"))
        .header("Origin", base)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("token", token), ("operator", operator)]))
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    (response.status(), cookie)
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..at + 64].to_string()
}

#[tokio::test]
async fn only_the_operator_and_viewer_tokens_log_in_and_actions_need_csrf_and_the_operator_role() {
    let stack = TestStack::spawn_with(|s| {
        parks_fast(s);
        s.console.viewer_token = Some("viewer-token-for-tests".into());
    })
    .await;
    let base = format!("http://{}", stack.app.addr);
    let trader = stack.trader(&[("USD", "100000")]).await;
    let parked = parked_order(&stack, &trader).await;

    // A trader's API key opens nothing: not as headers, not as a token.
    let response = client()
        .get(format!("{base}/console/orders"))
        .header("APCA-API-KEY-ID", &trader.key_id)
        .header("APCA-API-SECRET-KEY", &trader.secret_key)
        .header("Authorization", format!("Bearer {}", trader.secret_key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/console/login"),
        "to the login page"
    );
    let (status, cookie) = login(&base, &trader.secret_key, "mallory").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(cookie.is_none());
    let (status, _) = login(&base, &trader.key_id, "mallory").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The operator's cookie: HttpOnly, SameSite=Strict, the console's path.
    let (status, cookie) = login(&base, ADMIN, "alice").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("a session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    let confirm = format!("{base}/console/orders/{parked}/resume");
    let page = page_of(&confirm, &session).await;
    let csrf = csrf_of(&page);
    // No CSRF token, a wrong one, or another site's page: refused.
    for (origin, token) in [
        (base.as_str(), ""),
        (base.as_str(), "0".repeat(64).as_str()),
        ("http://evil.example", csrf.as_str()),
    ] {
        let status = post(&confirm, &session, origin, &[("csrf", token)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin} {token}");
    }
    assert_eq!(
        stack.order_row(&parked).await.step,
        orderd::domain::lifecycle::Step::Parked,
        "nothing was done"
    );

    // A viewer sees no action and is refused one with a valid token.
    let (status, viewer) = login(&base, "viewer-token-for-tests", "victor").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let viewer = viewer.unwrap().split(';').next().unwrap().to_string();
    let order_page = page_of(&format!("{base}/console/orders/{parked}"), &viewer).await;
    assert!(order_page.contains("victor · viewer"), "{order_page}");
    assert!(!order_page.contains("Resume…"), "no buttons for a viewer");
    let csrf = csrf_of(&order_page);
    let refused = [
        confirm.clone(),
        format!("{base}/console/reconciliation/run/gc"),
    ];
    for url in &refused {
        let status = post(url, &viewer, &base, &[("csrf", csrf.as_str())]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url}");
    }

    // In a browser: a wrong token is said so; the right one opens the blotter.
    let browser = Browser::start(stack.app.addr).await;
    browser.goto("/console/orders").await;
    assert_eq!(browser.path().await, "/console/login", "a login first");
    browser.login("not-the-token", "alice").await;
    browser.wait_text("[role=alert]", "does not log in").await;
    browser.screenshot("login-refused").await;
    browser.login(ADMIN, "alice").await;
    browser.wait_text("h1", "Blotter").await;
    browser.wait_text("header .who", "alice · operator").await;
    browser.screenshot("login-blotter").await;
    // Logging out ends the session.
    browser.click("header .who button").await;
    browser.wait_text("h1", "Log in").await;
    browser.goto("/console/orders").await;
    assert_eq!(browser.path().await, "/console/login");
    browser.close().await;
}

#[tokio::test]
async fn logins_are_rate_limited_and_bad_input_gets_a_page_that_says_why() {
    let stack = TestStack::spawn_with(|s| s.console.login_attempts_per_minute = 3).await;
    let base = format!("http://{}", stack.app.addr);
    for _ in 0..2 {
        assert_eq!(login(&base, "wrong", "x").await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, cookie) = login(&base, ADMIN, "alice").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        login(&base, ADMIN, "alice").await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "the fourth attempt in a minute"
    );
    let session = cookie.unwrap().split(';').next().unwrap().to_string();
    for (path, status, says) in [
        (
            "/console/orders/not-an-id",
            StatusCode::NOT_FOUND,
            "is not an order id",
        ),
        (
            "/console/orders/00000000-0000-0000-0000-000000000000",
            StatusCode::NOT_FOUND,
            "no order",
        ),
        (
            "/console/orders?sort=sideways",
            StatusCode::BAD_REQUEST,
            "newest or oldest",
        ),
        (
            "/console/orders?after=garbage",
            StatusCode::BAD_REQUEST,
            "cursor",
        ),
        (
            "/console/reconciliation/runs/x",
            StatusCode::NOT_FOUND,
            "no reconciliation run",
        ),
        (
            "/console/reconciliation?job=nope",
            StatusCode::NOT_FOUND,
            "no reconciliation job",
        ),
    ] {
        let response = client()
            .get(format!("{base}{path}"))
            .header("Cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        let page = response.text().await.unwrap();
        assert!(page.contains(says), "{path}: {page}");
        assert!(page.contains("<!DOCTYPE html>"), "{path}: an HTML page");
    }
}
