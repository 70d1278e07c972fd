//! The pool's defence against sqlx issue #4393.

use sqlx::{Executor, Row};

use crate::support::{TestDatabase, test_settings};

/// Reproduces the state a cancelled `begin()` leaves behind — a pooled
/// connection inside an open transaction that sqlx does not know about —
/// and checks the next borrower's write is committed, not swallowed.
#[tokio::test]
async fn a_connection_left_inside_a_transaction_is_rolled_back_before_reuse() {
    let db = TestDatabase::fresh().await;
    let mut settings = test_settings();
    settings.database.max_connections = 1;
    let pool = orderd::db::build_pool(db.options.clone(), &settings.database);
    pool.execute("CREATE TABLE t (v int)").await.unwrap();

    {
        let mut conn = pool.acquire().await.unwrap();
        // A raw BEGIN bypasses sqlx's depth tracking, as the bug does.
        conn.execute("BEGIN").await.unwrap();
        conn.execute("INSERT INTO t VALUES (1)").await.unwrap();
    } // returned to the pool inside the transaction

    // The one connection is reused; its stray transaction must be gone.
    pool.execute("INSERT INTO t VALUES (2)").await.unwrap();
    pool.close().await;

    let check = orderd::db::build_pool(db.options.clone(), &settings.database);
    let rows = sqlx::query("SELECT v FROM t ORDER BY v")
        .fetch_all(&check)
        .await
        .unwrap();
    let values: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        values,
        vec![2],
        "the stray insert is rolled back, ours is committed"
    );
}

#[tokio::test]
async fn server_side_timeouts_are_set_on_every_connection() {
    let db = TestDatabase::fresh().await;
    let settings = test_settings();
    let pool = orderd::db::build_pool(db.options.clone(), &settings.database);
    for (name, expected_ms) in [
        ("statement_timeout", settings.database.statement_timeout_ms),
        ("lock_timeout", settings.database.lock_timeout_ms),
        (
            "idle_in_transaction_session_timeout",
            settings.database.idle_in_transaction_session_timeout_ms,
        ),
    ] {
        let value: String = sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = $1")
            .bind(name)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(value, expected_ms.to_string(), "{name}");
    }
}

#[tokio::test]
async fn a_statement_over_the_timeout_is_cancelled_by_the_server() {
    let db = TestDatabase::fresh().await;
    let mut settings = test_settings();
    settings.database.statement_timeout_ms = 200;
    let pool = orderd::db::build_pool(db.options.clone(), &settings.database);
    let error = sqlx::query("SELECT pg_sleep(2)")
        .execute(&pool)
        .await
        .unwrap_err();
    let code = error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.to_string());
    assert_eq!(code.as_deref(), Some("57014"), "query_canceled: {error}");
}

/// Every statement orderd runs (`orderd::store::statements`) is prepared
/// against the migrated schema: a column renamed, a type changed or a
/// parameter that no longer fits fails here, whether or not another test
/// happens to run that statement.
#[tokio::test]
async fn every_statement_prepares_against_the_migrated_schema() {
    let db = TestDatabase::fresh().await;
    let mut conn = db.pool.acquire().await.unwrap();
    let statements = orderd::store::statements();
    assert!(statements.len() > 50, "the registry lists every statement");
    let mut failures = Vec::new();
    for (name, sql) in statements {
        if let Err(error) = conn.prepare(sqlx::SqlSafeStr::into_sql_str(sql)).await {
            failures.push(format!("{name}: {error}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn migrations_run_without_the_applications_timeouts() {
    let db = TestDatabase::fresh_unmigrated().await;
    let mut settings = test_settings();
    // Far too short for any migration, as a large table's would be for 5 s.
    settings.database.statement_timeout_ms = 1;
    let pool = orderd::db::build_pool(db.options.clone(), &settings.database);
    let slow = sqlx::query("SELECT pg_sleep(0.05)").execute(&pool).await;
    assert!(slow.is_err(), "the pool's own statements do time out");
    orderd::db::migrate(&pool)
        .await
        .expect("migrated all the same");
    // Read back through a pool with the usual timeouts (under load even a
    // one-row read can take a millisecond).
    assert!(orderd::db::is_migrated(&db.pool).await.unwrap());
}

#[tokio::test]
async fn a_soak_sees_each_growing_table_with_its_exact_rows() {
    let stack = crate::support::TestStack::spawn().await;
    let trader = stack.trader(&[("USD", "1000")]).await;
    let reply = trader
        .post_order(
            serde_json::json!({"symbol": "AAPL", "qty": "1", "side": "buy",
            "type": "limit", "time_in_force": "day", "limit_price": "1.00"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let sizes = orderd::store::operator::table_sizes(&stack.app.db.pool)
        .await
        .unwrap();
    assert_eq!(sizes.len(), 10, "{sizes:?}");
    let orders = sizes.iter().find(|t| t.table == "orders").unwrap();
    assert_eq!(orders.rows, 1);
    assert!(orders.bytes > 0);
    assert!(
        sizes
            .iter()
            .find(|t| t.table == "order_events")
            .unwrap()
            .rows
            >= 1
    );
}
