//! Accessibility, checked by a tool on every kind of page: axe-core
//! (pinned; `scripts/axe-core` installs it from the npm registry on first
//! use, under a lock) is injected into the page and runs the WCAG 2.1 A
//! and AA rules and axe's best practices (labels, names of links and
//! buttons, contrast, landmarks, headings, tables); then every link,
//! button and field must be reached by the Tab key alone.

use fantoccini::key::Key;
use serde_json::Value;

use crate::browser::Browser;
use crate::support::TestStack;
use crate::{ADMIN, parked_order, parks_fast};

/// axe.min.js, installed on first use.
async fn axe_source() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let installed = tokio::process::Command::new(format!("{root}/scripts/axe-core"))
        .output()
        .await
        .expect("run scripts/axe-core");
    assert!(
        installed.status.success(),
        "scripts/axe-core: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let path = String::from_utf8_lossy(&installed.stdout)
        .trim()
        .to_string();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const RUN_AXE: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
}).then(
    (result) => done(result.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => n.target.join(' ') + ': ' + n.failureSummary),
    }))),
    (error) => done([{ id: 'axe-failed', help: String(error) }]),
);
"#;

/// What axe finds wrong with the page shown now.
async fn violations(browser: &Browser, axe: &str) -> Vec<Value> {
    browser
        .client
        .execute(axe, vec![])
        .await
        .expect("inject axe-core");
    let found = browser
        .client
        .execute_async(RUN_AXE, vec![])
        .await
        .expect("run axe-core");
    found.as_array().cloned().unwrap_or_default()
}

/// Marks every control a person may use on the page shown now (links,
/// buttons, fields, shown and enabled) with its index; how many.
const MARK_CONTROLS: &str = r#"
const controls = [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]')]
    // A programmatic focus target (the skip link's) is not a control.
    .filter((e) => e.getAttribute('tabindex') !== '-1' || e.matches('a[href], button, input, select, textarea'))
    .filter((e) => !e.disabled && e.getClientRects().length > 0);
controls.forEach((e, i) => e.setAttribute('data-control', String(i)));
document.activeElement && document.activeElement.blur();
return controls.length;
"#;

const FOCUSED: &str = r#"
const e = document.activeElement;
return e && e.hasAttribute('data-control') ? Number(e.getAttribute('data-control')) : null;
"#;

const DESCRIBE: &str = r#"
return [...document.querySelectorAll('[data-control]')]
    .filter((e) => arguments[0].indexOf(Number(e.getAttribute('data-control'))) < 0)
    .map((e) => e.outerHTML.slice(0, 120));
"#;

/// The controls of the page shown now that the Tab key never reaches.
async fn unreachable_by_tab(browser: &Browser) -> Vec<String> {
    let client = &browser.client;
    let controls = client.execute(MARK_CONTROLS, vec![]).await.expect("mark");
    let controls = controls.as_u64().expect("a count") as usize;
    let mut reached: Vec<u64> = Vec::new();
    let tab = Key::Tab.to_string();
    // Once round the page, and a few more (the browser's own stops).
    for _ in 0..controls + 3 {
        match client.active_element().await {
            Ok(focused) => {
                let _ = focused.send_keys(&tab).await;
            }
            Err(_) => browser
                .find("body")
                .await
                .send_keys(&tab)
                .await
                .expect("Tab"),
        }
        if let Some(index) = client
            .execute(FOCUSED, vec![])
            .await
            .expect("focus")
            .as_u64()
            && !reached.contains(&index)
        {
            reached.push(index);
        }
    }
    let missed = client
        .execute(DESCRIBE, vec![serde_json::json!(reached)])
        .await
        .expect("describe");
    serde_json::from_value(missed).expect("a list")
}

/// Checks the page shown now; `name` says which it is.
async fn check(browser: &Browser, axe: &str, name: &str) -> Vec<String> {
    browser.screenshot(&format!("accessibility-{name}")).await;
    let mut problems: Vec<String> = violations(browser, axe)
        .await
        .into_iter()
        .map(|v| format!("{name}: {v}"))
        .collect();
    problems.extend(
        unreachable_by_tab(browser)
            .await
            .into_iter()
            .map(|c| format!("{name}: not reached by Tab: {c}")),
    );
    problems
}

#[tokio::test]
async fn every_page_passes_axe_core_and_every_control_is_reached_by_tab() {
    let axe = axe_source().await;
    let stack = TestStack::spawn_with(parks_fast).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let parked = parked_order(&stack, &trader).await;

    let browser = Browser::start(stack.app.addr).await;
    let mut problems = Vec::new();
    browser.goto("/console/login").await;
    browser.find("#token").await;
    problems.extend(check(&browser, &axe, "login").await);
    // The checks can fail: a field without a label and a link taken out
    // of the Tab order are found.
    browser
        .client
        .execute(
            "document.querySelector('form').insertAdjacentHTML('beforeend', \
             '<input id=\"probe\"><a id=\"hidden-link\" href=\"/console\" tabindex=\"-1\">x</a>')",
            vec![],
        )
        .await
        .unwrap();
    let found = check(&browser, &axe, "login-broken").await.join("\n");
    assert!(found.contains("\"label\""), "{found}");
    assert!(
        found.contains("not reached by Tab: <a id=\"hidden-link\""),
        "{found}"
    );
    browser.login(ADMIN, "alice").await;

    browser.wait_text(".summary", "parked").await;
    problems.extend(check(&browser, &axe, "blotter").await);

    browser.goto(&format!("/console/orders/{parked}")).await;
    browser.wait_text("#timeline", "reserve").await;
    problems.extend(check(&browser, &axe, "order").await);

    browser
        .goto(&format!("/console/orders/{parked}/resume"))
        .await;
    browser.find("#confirm").await;
    problems.extend(check(&browser, &axe, "confirm").await);

    browser.goto("/console/reconciliation").await;
    browser.wait_text("#jobs-table", "unknown_outcomes").await;
    problems.extend(check(&browser, &axe, "reconciliation").await);
    browser.click("#run-unknown_outcomes").await;
    browser.wait_text("table.findings", "parked_order").await;
    problems.extend(check(&browser, &axe, "reconciliation-run").await);

    browser.goto("/console/health").await;
    browser.wait_text("#instances", "alive").await;
    problems.extend(check(&browser, &axe, "health").await);

    browser.goto("/console/orders/not-an-id").await;
    problems.extend(check(&browser, &axe, "error").await);
    browser.close().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
