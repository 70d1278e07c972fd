//! The operator CLI's commands, on the same settings as `serve`: each
//! renders a readable table, or JSON with `--json`. Kept in the library so
//! tests and the binary share them.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Settings;
use crate::engine::Engine;
use crate::reconcile::{Job, Reconciler};
use crate::store::{events, executions, operator, orders};

/// Rows `orders list` shows at most.
pub const LIST_LIMIT: i64 = 200;

fn age(since: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (chrono::Utc::now() - since).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Lays rows out in left-aligned columns under a header.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.clone()));
        out.push('\n');
    }
    out
}

/// `orderd orders list [--status S] [--stuck] [--json]`.
pub async fn orders_list(
    pool: &PgPool,
    settings: &Settings,
    status: Option<&str>,
    stuck: bool,
    json_output: bool,
) -> anyhow::Result<String> {
    let stuck_after = stuck.then_some(settings.reconcile.stale_after_ms);
    let status = status
        .map(|text| {
            crate::domain::lifecycle::Status::parse(text).ok_or_else(|| {
                anyhow::anyhow!(
                    "no status {text:?}; statuses: {}",
                    <crate::domain::lifecycle::Status as crate::domain::TextEnum>::spellings()
                )
            })
        })
        .transpose()?;
    let rows = operator::orders(pool, status, stuck_after, LIST_LIMIT).await?;
    if json_output {
        return Ok(serde_json::to_string_pretty(&rows)?);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|o| {
            vec![
                o.order_id.to_string(),
                o.account.clone(),
                o.symbol.clone(),
                o.side.to_string(),
                format!("{}/{}", o.filled_qty.normalize(), o.qty.normalize()),
                o.status.to_string(),
                if o.step_state == crate::domain::lifecycle::StepState::Unknown {
                    format!("{} (unknown)", o.step)
                } else {
                    o.step.to_string()
                },
                o.attempts.to_string(),
                age(o.updated_at),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ORDER", "ACCOUNT", "SYMBOL", "SIDE", "FILLED", "STATUS", "STEP", "ATTEMPTS", "QUIET",
        ],
        &cells,
    );
    let _ = write!(out, "{} order(s)", rows.len());
    Ok(out)
}

/// `orderd orders show ID [--json]`: the order, its timeline, its fills.
pub async fn orders_show(pool: &PgPool, id: &str, json_output: bool) -> anyhow::Result<String> {
    let order_id = Uuid::parse_str(id).map_err(|_| anyhow::anyhow!("{id:?} is not an order id"))?;
    let order = orders::load(pool, order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no order {order_id}"))?;
    let events = events::events_of(pool, order_id).await?;
    let fills = executions::fills_of(pool, order_id).await?;
    let quarantined =
        crate::store::quarantine::of_order(pool, &order.venue_client_order_id, order_id).await?;
    if json_output {
        return Ok(serde_json::to_string_pretty(&json!({
            "order": crate::http::alpaca::order_json(&order),
            "step": order.step,
            "step_state": order.step_state,
            "attempts": order.attempts,
            "next_attempt_at": order.next_attempt_at,
            "hold_id": order.hold_id,
            "venue_order_id": order.venue_order_id,
            "parked_step": order.parked_step,
            "events": events,
            "fills": fills,
            "quarantined_reports": quarantined,
        }))?);
    }
    let mut out = String::new();
    let _ = writeln!(out, "order          {}", order.order_id);
    let _ = writeln!(
        out,
        "client id      {} (venue: {})",
        order.client_order_id, order.venue_client_order_id
    );
    let _ = writeln!(
        out,
        "order          {} {} {} {}{} {}",
        order.side,
        order.qty.normalize(),
        order.symbol,
        order.order_type,
        order
            .limit_price
            .map(|p| format!(" @ {}", p.normalize()))
            .unwrap_or_default(),
        order.time_in_force
    );
    let _ = writeln!(out, "status         {}", order.status);
    let _ = writeln!(
        out,
        "recovery point {} ({}), attempts {}, next attempt {}{}",
        order.step,
        order.step_state,
        order.attempts,
        order.next_attempt_at,
        order
            .parked_step
            .map(|s| format!(
                ", parked at {s}: `orderd orders resume {}` goes on",
                order.order_id
            ))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "filled         {} @ {}",
        order.filled_qty.normalize(),
        order
            .filled_avg_price
            .map(|p| p.normalize().to_string())
            .unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(
        out,
        "hold           {}",
        order.hold_id.as_ref().map_or("-", |h| h.as_str())
    );
    let _ = writeln!(
        out,
        "venue order    {}",
        order.venue_order_id.as_ref().map_or("-", |v| v.as_str())
    );
    out.push_str("\ntimeline\n");
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.created_at.format("%H:%M:%S%.3f").to_string(),
                e.step.to_string(),
                e.state.to_string(),
                e.detail.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(&["TIME", "STEP", "STATE", "DETAIL"], &rows));
    out.push_str("\nfills\n");
    let rows: Vec<Vec<String>> = fills
        .iter()
        .map(|f| {
            vec![
                f.exec_id.to_string(),
                f.qty.normalize().to_string(),
                f.price.normalize().to_string(),
                f.source.to_string(),
                f.settlement_state.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["EXEC", "QTY", "PRICE", "SOURCE", "SETTLEMENT"],
        &rows,
    ));
    if !quarantined.is_empty() {
        out.push_str("\nquarantined venue reports (refused, kept for you)\n");
        let rows: Vec<Vec<String>> = quarantined
            .iter()
            .map(|q| {
                vec![
                    q.received_at.format("%H:%M:%S%.3f").to_string(),
                    q.source.clone(),
                    q.exec_id
                        .as_ref()
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                    q.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&table(&["TIME", "SOURCE", "EXEC", "REASON"], &rows));
    }
    Ok(out)
}

/// `orderd orders resume|cancel ID [--operator NAME]`: the action,
/// recorded on the order's timeline under the operator's name; a running
/// `serve` drives the order from there.
pub async fn orders_act(
    pool: &PgPool,
    id: &str,
    operator: &str,
    cancel: bool,
) -> anyhow::Result<String> {
    use crate::store::recovery::{self, OperatorAction};
    let order_id = Uuid::parse_str(id).map_err(|_| anyhow::anyhow!("{id:?} is not an order id"))?;
    let updates = crate::store::trade_updates::TradeUpdates::start(pool.clone());
    let actor = Uuid::nil();
    let done = if cancel {
        recovery::operator_cancel(pool, &updates, order_id, operator, actor, None).await?
    } else {
        recovery::resume(pool, &updates, order_id, operator, actor, None).await?
    };
    match done {
        OperatorAction::NotFound => anyhow::bail!("no order {order_id}"),
        OperatorAction::Refused(why) => anyhow::bail!("refused: {why}"),
        OperatorAction::Done(order) => Ok(format!(
            "order {} {} by {operator}: now {} at step {} ({})",
            order.order_id,
            if cancel { "canceled" } else { "resumed" },
            order.status,
            order.step,
            order.step_state
        )),
    }
}

async fn account_named(pool: &PgPool, account: &str) -> anyhow::Result<uuid::Uuid> {
    crate::store::accounts::find_account(pool, account.trim())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account named {account:?} (a name or an account id)"))
}

/// `orderd account keys create --account A`: one JSON line.
pub async fn keys_create(pool: &PgPool, account: &str) -> anyhow::Result<String> {
    let account_id = account_named(pool, account).await?;
    let key = crate::store::accounts::create_key(pool, account_id).await?;
    Ok(serde_json::to_string(&key)?)
}

/// `orderd account keys list --account A [--json]`.
pub async fn keys_list(pool: &PgPool, account: &str, json_output: bool) -> anyhow::Result<String> {
    let account_id = account_named(pool, account).await?;
    let keys = crate::store::accounts::list_keys(pool, account_id).await?;
    if json_output {
        return Ok(serde_json::to_string_pretty(&keys)?);
    }
    let cells: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.key_id.clone(),
                k.created_at.to_rfc3339(),
                k.revoked_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "live".into()),
            ]
        })
        .collect();
    Ok(table(&["KEY", "CREATED", "REVOKED"], &cells))
}

/// `orderd account keys revoke KEY_ID`.
pub async fn keys_revoke(pool: &PgPool, key_id: &str) -> anyhow::Result<String> {
    match crate::store::accounts::revoke_key(pool, key_id.trim()).await? {
        Some(key) => Ok(format!(
            "revoked {} at {}",
            key.key_id,
            key.revoked_at.map(|t| t.to_rfc3339()).unwrap_or_default()
        )),
        None => anyhow::bail!("no API key {key_id:?}"),
    }
}

/// `orderd accounts list [--json]`.
pub async fn accounts_list(pool: &PgPool, json_output: bool) -> anyhow::Result<String> {
    let rows = operator::accounts(pool).await?;
    if json_output {
        return Ok(serde_json::to_string_pretty(&rows)?);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|a| {
            vec![
                a.account_id.to_string(),
                a.name.clone(),
                a.balances_account_id.clone(),
                a.api_keys.to_string(),
                a.orders.to_string(),
                a.open_orders.to_string(),
            ]
        })
        .collect();
    Ok(table(
        &[
            "ACCOUNT",
            "NAME",
            "BALANCES ACCOUNT",
            "KEYS",
            "ORDERS",
            "OPEN",
        ],
        &cells,
    )
    .trim_end()
    .to_string())
}

/// `orderd reconcile run [JOB] [--json]`: runs one job (or all) now, as
/// this CLI process (registered as an instance for the duration), and
/// prints the findings.
pub async fn reconcile_run(
    pool: &PgPool,
    settings: &Settings,
    job: Option<&str>,
    json_output: bool,
) -> anyhow::Result<String> {
    let jobs: Vec<Job> = match job {
        Some(name) => vec![Job::parse(name).ok_or_else(|| {
            anyhow::anyhow!(
                "no job {name:?}; jobs: {}",
                Job::ALL
                    .iter()
                    .map(|j| j.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?],
        None => Job::ALL.to_vec(),
    };
    let name = format!(
        "cli:{}:{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let instance_id = crate::instance::register(pool, &name).await?.instance_id;
    let engine = Engine::new(pool.clone(), settings, instance_id);
    let reference =
        crate::reference::ReferenceData::new(pool.clone(), engine.exchange.clone(), settings);
    reference.reload().await?;
    let reconciler: Arc<Reconciler> =
        Reconciler::new(engine, reference, settings.reconcile.clone());
    let mut summaries = Vec::new();
    for job in jobs {
        summaries.push(reconciler.run_job(job).await?);
    }
    crate::instance::mark_stopped(pool, instance_id).await;
    if json_output {
        let value: Vec<_> = summaries
            .iter()
            .map(|s| {
                json!({
                    "run_id": s.run_id,
                    "job": s.job.as_str(),
                    "examined": s.examined,
                    "errors": s.errors,
                    "findings": s.findings.iter().map(|f| json!({
                        "kind": f.finding.kind,
                        "classification": f.finding.classification.as_str(),
                        "order_id": f.order_id,
                        "subject": f.subject,
                        "detail": f.finding.detail,
                        "action": f.action,
                        "action_ok": f.action_ok,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&value)?);
    }
    let mut out = String::new();
    for s in &summaries {
        let _ = writeln!(
            out,
            "run {} {}: examined {}, {} finding(s), {} error(s)",
            s.run_id,
            s.job.as_str(),
            s.examined,
            s.findings.len(),
            s.errors.len()
        );
        for f in &s.findings {
            let _ = writeln!(
                out,
                "  {} [{}] {} {}: {} -> {}",
                f.finding.kind,
                f.finding.classification.as_str(),
                f.order_id.map(|o| o.to_string()).unwrap_or_default(),
                f.subject.as_deref().unwrap_or(""),
                f.finding.detail,
                f.action
            );
        }
        for e in &s.errors {
            let _ = writeln!(out, "  error: {e}");
        }
    }
    Ok(out.trim_end().to_string())
}
