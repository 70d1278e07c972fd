//! Reconciliation: a job run from the page, its run and findings shown,
//! and what is left pending or unresolved.

use crate::browser::Browser;
use crate::support::TestStack;
use crate::{ADMIN, parked_order, parks_fast};

#[tokio::test]
async fn a_job_run_from_the_page_shows_its_run_and_findings() {
    let stack = TestStack::spawn_with(parks_fast).await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let parked = parked_order(&stack, &trader).await;

    let browser = Browser::start(stack.app.addr).await;
    browser.login(ADMIN, "alice").await;
    browser.goto("/console/reconciliation").await;
    browser.wait_text("#jobs-table", "unknown_outcomes").await;
    browser.click("#run-unknown_outcomes").await;
    browser.wait_text("h1", "of unknown_outcomes").await;
    let findings = browser.wait_text("table.findings", "parked_order").await;
    assert!(findings.contains("unresolvable"), "{findings}");
    assert!(
        findings.contains(&parked[24..]),
        "links the order: {findings}"
    );
    browser.screenshot("reconcile-run").await;

    browser.goto("/console/reconciliation").await;
    let runs = browser.wait_text("#runs", "unknown_outcomes").await;
    assert!(runs.contains("manual"), "{runs}");
    browser.wait_text("#pending", "parked_order").await;
    browser.screenshot("reconcile-runs").await;
    browser.close().await;
}
