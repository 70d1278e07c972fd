//! The rolling-upgrade drill, small: `orderd db upgrade-drill` against the
//! test cluster, 20,000 orders at the previous release's schema while two
//! writers make the previous version's writes. Nothing about speed is
//! asserted.

use std::process::Command;

use serde_json::Value;
use sqlx::{ConnectOptions, Connection};

use crate::support::{TEST_DATABASE_URL_VAR, admin_options, test_settings};

/// The release the drill's writers are (its last migration), read from
/// the binary's library: the drill applies every migration after it.
const PREVIOUS_VERSION: i64 = orderd::harness::upgrade::PREVIOUS_VERSION;
/// The previous version's `lock_timeout` and `statement_timeout`: only a
/// machine slow enough to stall a write past them sees these.
const STALLED: [&str; 2] = ["55P03", "57014"];

#[tokio::test(flavor = "multi_thread")]
async fn the_upgrade_drill_migrates_while_the_previous_version_writes() {
    let url = std::env::var(TEST_DATABASE_URL_VAR).expect("the test cluster's URL");
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderd"));
    command
        .args(["db", "upgrade-drill", "--database-url", &url])
        .args(["--orders", "20000", "--writers", "2", "--keep", "--json"])
        .env_remove("ORDERD__DATABASE__URL")
        .env("RUST_LOG", "error");
    let output = tokio::task::spawn_blocking(move || command.output().expect("run the drill"))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "no report ({error}): {}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let database = report["database"].as_str().expect("database").to_string();

    // The schema ends at this binary's latest, read back independently.
    let pool = orderd::db::build_pool(
        admin_options().database(&database),
        &test_settings().database,
    );
    let migrated = orderd::db::is_migrated(&pool).await;
    pool.close().await;
    let mut admin = admin_options().connect().await.expect("admin");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{database}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop the drill's database");
    let _ = admin.close().await;
    assert!(migrated.expect("read the schema"), "{report:#}");
    assert_eq!(
        report["schema_version"], report["latest_version"],
        "{report:#}"
    );
    assert!(report["migration_error"].is_null(), "{report:#}");
    assert_eq!(report["orders"], 20_000, "{report:#}");

    // Writes went on while the migrations ran.
    let migrations = report["migrations"].as_array().expect("migrations");
    let latest = report["latest_version"].as_u64().expect("latest");
    assert_eq!(
        migrations.len() as u64,
        latest - PREVIOUS_VERSION as u64,
        "every migration after the previous release's, each on its own: {report:#}"
    );
    assert!(
        report["baseline"]["writes"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert!(
        report["during"]["writes"].as_u64().unwrap() > 0,
        "{report:#}"
    );

    // The previous release (a59b06a) names every column it reads, so no
    // migration breaks one of its statements: no error but a stall.
    for error in report["errors"].as_array().expect("errors") {
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            STALLED.iter().any(|code| message.starts_with(code)),
            "a new finding: the previous version's writes fail beside a migration: {error}\n{report:#}"
        );
    }
}
