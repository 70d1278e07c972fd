//! Rolling upgrades: rows a newer version wrote with values this one does
//! not know are never claimed, and no bulk read fails because of them.
//! The "newer schema" is simulated in the test's own database by dropping
//! the CHECK constraints that name today's spellings.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{TestDatabase, TestStack};

/// Drops the checks a newer version would have loosened.
async fn loosen_checks(pool: &PgPool) {
    for constraint in [
        "orders_status_check",
        "orders_step_state_check",
        "orders_order_type_check",
        "orders_side_check",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE orders DROP CONSTRAINT {constraint}"
        )))
        .execute(pool)
        .await
        .expect("drop constraint");
    }
}

async fn account(pool: &PgPool) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO accounts (account_id, name, balances_account_id) VALUES ($1, $2, $2)")
        .bind(id)
        .bind(format!("acct-{}", id.simple()))
        .execute(pool)
        .await
        .expect("account");
    id
}

/// One order row as a newer (or this) version could have written it, due
/// a second ago.
#[derive(Clone, Copy)]
struct Row<'a> {
    status: &'a str,
    step: &'a str,
    step_state: &'a str,
    side: &'a str,
    order_type: &'a str,
    recovery_version: i16,
    venue_order: bool,
    reject_reason: Option<&'a str>,
}

const NORMAL: Row<'static> = Row {
    status: "pending_new",
    step: "place",
    step_state: "unknown",
    side: "buy",
    order_type: "limit",
    recovery_version: 2,
    venue_order: false,
    reject_reason: None,
};

async fn insert(pool: &PgPool, account_id: Uuid, row: Row<'_>) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO orders (order_id, account_id, client_order_id, venue_client_order_id,
                             request_fingerprint, symbol, side, order_type, time_in_force, qty,
                             limit_price, status, step, step_state, recovery_version,
                             venue_order_id, reject_reason, hold_id, next_attempt_at, updated_at)
         VALUES ($1, $2, $3, $4, 'fp', 'AAPL', $5, $6, 'gtc', 1, 1.00, $7, $8, $9, $10,
                 CASE WHEN $11 THEN $3 END, $12::jsonb, 'hold-' || $3,
                 now() - interval '1 second', now() - interval '1 hour')",
    )
    .bind(id)
    .bind(account_id)
    .bind(id.simple().to_string())
    .bind(format!("od-{}", id.simple()))
    .bind(row.side)
    .bind(row.order_type)
    .bind(row.status)
    .bind(row.step)
    .bind(row.step_state)
    .bind(row.recovery_version)
    .bind(row.venue_order)
    .bind(row.reject_reason)
    .execute(pool)
    .await
    .expect("insert order");
    id
}

/// `(lease_owner, lease_token, version, step_state)` of `order_id`.
async fn lease_of(pool: &PgPool, order_id: Uuid) -> (Option<Uuid>, Option<i64>, i64, String) {
    sqlx::query_as(
        "SELECT lease_owner, lease_token, version, step_state FROM orders WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_one(pool)
    .await
    .expect("lease")
}

fn unreadable_count(query: &str) -> f64 {
    let text = orderd::metrics::handle().render();
    let series = format!("orderd_rows_unreadable_total{{query=\"{query}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn claims_take_only_rows_this_version_can_read_and_every_scan_still_works() {
    orderd::metrics::handle();
    let db = TestDatabase::fresh().await;
    let pool = &db.pool;
    loosen_checks(pool).await;
    let account_id = account(pool).await;

    let normal = insert(pool, account_id, NORMAL).await;
    let working = insert(
        pool,
        account_id,
        Row {
            status: "new",
            step: "working",
            step_state: "pending",
            venue_order: true,
            ..NORMAL
        },
    )
    .await;
    // Newer spellings, each in a driven step and due.
    let newer = [
        insert(
            pool,
            account_id,
            Row {
                status: "held",
                ..NORMAL
            },
        )
        .await,
        insert(
            pool,
            account_id,
            Row {
                step_state: "acknowledged",
                ..NORMAL
            },
        )
        .await,
        insert(
            pool,
            account_id,
            Row {
                order_type: "stop_on_quote",
                ..NORMAL
            },
        )
        .await,
        insert(
            pool,
            account_id,
            Row {
                side: "sell_short",
                ..NORMAL
            },
        )
        .await,
        // Known spellings, a newer recovery encoding: readable, not drivable.
        insert(
            pool,
            account_id,
            Row {
                recovery_version: 99,
                ..NORMAL
            },
        )
        .await,
        // At the venue, with a status this version does not know.
        insert(
            pool,
            account_id,
            Row {
                status: "done_for_day",
                step: "working",
                step_state: "pending",
                venue_order: true,
                ..NORMAL
            },
        )
        .await,
    ];
    let before: Vec<_> =
        futures_util::future::join_all(newer.iter().map(|id| lease_of(pool, *id))).await;

    let instance = Uuid::new_v4();
    let claimed = orderd::store::recovery::claim_due(pool, instance, 100, 60_000, 60_000)
        .await
        .expect("claim_due does not fail on unreadable rows");
    let ids: Vec<Uuid> = claimed.iter().map(|c| c.order.order_id).collect();
    assert_eq!(ids, vec![normal], "only the row this version can read");
    for id in newer {
        assert!(
            orderd::store::recovery::claim(pool, id, instance, 60_000, 60_000)
                .await
                .expect("claim")
                .is_none(),
            "{id} is never claimed here"
        );
    }
    let after: Vec<_> =
        futures_util::future::join_all(newer.iter().map(|id| lease_of(pool, *id))).await;
    assert_eq!(before, after, "unleased and untouched");
    assert!(
        after
            .iter()
            .all(|(owner, token, ..)| owner.is_none() && token.is_none())
    );

    // A row that passes the filter and still cannot be decoded (a reject
    // reason of a newer shape) is given back at once, and counted.
    let odd = insert(
        pool,
        account_id,
        Row {
            status: "rejected",
            step: "release",
            step_state: "pending",
            reject_reason: Some(r#"{"kind": "margin_call"}"#),
            ..NORMAL
        },
    )
    .await;
    let counted = unreadable_count("claim_due");
    let claimed = orderd::store::recovery::claim_due(pool, instance, 100, 60_000, 60_000)
        .await
        .expect("claim_due");
    assert!(claimed.is_empty(), "{claimed:?}");
    let (owner, token, ..) = lease_of(pool, odd).await;
    assert!(
        owner.is_none() && token.is_none(),
        "its lease was given back"
    );
    assert!(unreadable_count("claim_due") >= counted + 1.0);

    // Every listing and scan answers, with the rows it can read.
    let counted = unreadable_count("orders_list");
    let listed = orderd::store::orders::list(
        pool,
        &orderd::store::orders::ListFilter {
            account_id,
            statuses: None,
            symbols: None,
            after: None,
            until: None,
            ascending: true,
            limit: 100,
        },
    )
    .await
    .expect("list");
    let mut listed: Vec<Uuid> = listed.iter().map(|o| o.order_id).collect();
    listed.sort();
    let mut readable = vec![normal, working, newer[4]];
    readable.sort();
    assert_eq!(listed, readable);
    assert!(unreadable_count("orders_list") >= counted + 5.0);

    let page = orderd::store::orders::at_venue(pool, Uuid::nil(), 100)
        .await
        .expect("at_venue");
    assert_eq!(
        page.rows.iter().map(|o| o.order_id).collect::<Vec<_>>(),
        vec![working]
    );
    let open = orderd::store::orders::open_orders(pool, account_id, None, 100)
        .await
        .expect("open_orders");
    assert!(
        open.iter().any(|(_, id)| *id == newer[0]),
        "cancel-all still sees it, to report it"
    );
    use orderd::store::{operator, scans, settlements};
    let quiet = scans::quiet_at_venue(pool, 0, 0.0, 100)
        .await
        .expect("quiet");
    assert_eq!(
        quiet.iter().map(|o| o.order_id).collect::<Vec<_>>(),
        vec![working]
    );
    scans::stuck(pool, 0, 100).await.expect("stuck");
    scans::past_their_session(pool, 0, 100)
        .await
        .expect("past_their_session");
    scans::terminal_with_holds(pool, chrono::DateTime::UNIX_EPOCH, 100)
        .await
        .expect("terminal_with_holds");
    scans::unsettled_fills(pool, 0, 100)
        .await
        .expect("unsettled_fills");
    operator::orders(pool, None, None, 100)
        .await
        .expect("operator orders");
    operator::gauges(pool).await.expect("gauges");

    // Settlement claims: a fill of an order whose side is unknown is left.
    for (exec_id, order_id) in [("x-normal", working), ("x-short", newer[3])] {
        sqlx::query(
            "INSERT INTO fills (exec_id, order_id, qty, price, transact_time, source)
             VALUES ($1, $2, 1, 1.00, now(), 'stream')",
        )
        .bind(exec_id)
        .bind(order_id)
        .execute(pool)
        .await
        .expect("fill");
    }
    let work = settlements::claim_settlements(pool, 100, 60_000)
        .await
        .expect("claim_settlements");
    assert_eq!(
        work.iter().map(|w| w.exec_id.as_str()).collect::<Vec<_>>(),
        vec!["x-normal"]
    );
}

#[tokio::test]
async fn a_stack_lists_and_cancels_around_an_order_it_cannot_read() {
    let stack = TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "100000")]).await;
    let resting = trader
        .post_order(
            json!({"symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit",
            "time_in_force": "gtc", "limit_price": "1.00"}),
        )
        .await;
    assert_eq!(resting.body["status"], "new", "{}", resting.body);
    let pool = &stack.app.db.pool;
    loosen_checks(pool).await;
    let account_id: Uuid = trader.account_id.parse().unwrap();
    let newer = insert(
        pool,
        account_id,
        Row {
            status: "held",
            ..NORMAL
        },
    )
    .await;
    let before = lease_of(pool, newer).await;

    let listed = trader.get("/v2/orders?status=all").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let ids: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![resting.body["id"].as_str().unwrap()]);

    // The cancel-all cancels what it can and says which one it could not.
    let canceled = trader.cancel_all().await;
    assert_eq!(canceled.status, 207, "{}", canceled.body);
    let entries = canceled.body.as_array().unwrap();
    let status_of = |id: String| {
        entries
            .iter()
            .find(|e| e["id"] == json!(id))
            .map(|e| e["status"].clone())
    };
    assert_eq!(
        status_of(resting.body["id"].as_str().unwrap().to_string()),
        Some(json!(200))
    );
    assert_eq!(status_of(newer.to_string()), Some(json!(500)));

    // The completer runs on (several passes) and never leases it.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        lease_of(pool, newer).await,
        before,
        "unleased and untouched"
    );
    stack.app.stop().await.expect("stop");
}

/// A newer version may add a column to any table while this one runs.
/// sqlx keeps each statement prepared per connection, and PostgreSQL
/// refuses to run a prepared statement whose result columns would change
/// (`0A000 cached plan must not change result type`): a statement that
/// returns a whole row (`*`) would fail on every pooled connection until
/// the instance restarts, as 3dd1c1b's do (`orderd db upgrade-drill`).
#[tokio::test]
async fn no_statement_changes_its_result_when_a_newer_version_adds_a_column() {
    use sqlx::{Column, Connection, Executor, Statement};
    let db = TestDatabase::fresh().await;
    let shape = |statement: &sqlx::postgres::PgStatement| -> Vec<String> {
        statement
            .columns()
            .iter()
            .map(|c| format!("{} {}", c.name(), sqlx::TypeInfo::name(c.type_info())))
            .collect()
    };
    let mut before = sqlx::PgConnection::connect_with(&db.options)
        .await
        .expect("connect");
    let mut shapes = Vec::new();
    for (name, sql) in orderd::store::statements() {
        let prepared = before
            .prepare(sqlx::SqlSafeStr::into_sql_str(sql))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        shapes.push((name, sql, shape(&prepared)));
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables
          WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("tables");
    assert!(tables.len() > 10, "{tables:?}");
    for table in &tables {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} ADD COLUMN added_by_a_newer_version integer"
        )))
        .execute(&db.pool)
        .await
        .expect("add column");
    }
    let mut after = sqlx::PgConnection::connect_with(&db.options)
        .await
        .expect("connect");
    let mut changed = Vec::new();
    for (name, sql, columns) in shapes {
        let prepared = after
            .prepare(sqlx::SqlSafeStr::into_sql_str(sql))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if shape(&prepared) != columns {
            changed.push(name);
        }
    }
    assert!(
        changed.is_empty(),
        "statements whose result a new column changes (name the columns): {changed:?}"
    );
    let _ = before.close().await;
    let _ = after.close().await;
}
