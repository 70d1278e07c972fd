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
