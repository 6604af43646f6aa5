//! Retries: idempotent requests are retried on 503 (bounded), `POST`s
//! never; an envelope becomes `Error::Api`, anything else `Unexpected`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use rat_client::{Builder, Error, RetryPolicy};
use rat_wire::runs::CreateRun;

/// Serves `router` on `127.0.0.1:0`; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn unavailable() -> axum::response::Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("content-type", "application/json")],
        r#"{"error":{"code":"UNAVAILABLE","type":"UNAVAILABLE","message":"the database is unavailable"}}"#,
    )
        .into_response()
}

/// A server failing its first `failures` answers with 503, then answering
/// a run; counts every request.
async fn flaky(failures: u32) -> (String, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let answer = {
        let hits = hits.clone();
        move || {
            let hits = hits.clone();
            async move {
                if hits.fetch_add(1, Ordering::SeqCst) < failures {
                    unavailable()
                } else {
                    (
                        [("content-type", "application/json")],
                        r#"{"run_id":"7f1f5f2e-0000-4000-8000-000000000001","status":"pending"}"#,
                    )
                        .into_response()
                }
            }
        }
    };
    let router = Router::new()
        .route("/api/v1/runs/{id}/logs", get(answer.clone()))
        .route("/api/v1/runs", post(answer));
    (serve(router).await, hits)
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

#[tokio::test]
async fn a_get_is_retried_until_it_succeeds() {
    let (base, hits) = flaky(2).await;
    let client = Builder::new(&base).retry(fast_retries(4)).api().unwrap();
    let id = uuid::Uuid::new_v4();
    // Answers a RunStatusAnswer, not RunLogs: the decode error proves the success arrived.
    let outcome = client.run_logs(id).await;
    assert!(matches!(outcome, Err(Error::Decode(_))), "{outcome:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_get_gives_up_after_its_attempts_with_the_last_envelope() {
    let (base, hits) = flaky(100).await;
    let client = Builder::new(&base).retry(fast_retries(3)).api().unwrap();
    let error = client.run_logs(uuid::Uuid::new_v4()).await.expect_err("always 503");
    assert_eq!((error.status(), error.code()), (Some(503), Some("UNAVAILABLE")));
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_post_is_sent_once() {
    let (base, hits) = flaky(1).await;
    let client = Builder::new(&base).retry(fast_retries(4)).api().unwrap();
    let body = CreateRun {
        namespace: "default".to_owned(),
        layer: "silver".to_owned(),
        pipeline: "orders".to_owned(),
        trigger: None,
    };
    let error = client.create_run(&body).await.expect_err("the one attempt failed");
    assert_eq!(error.status(), Some(503));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // The next POST succeeds: the server was fine, only not retried.
    assert_eq!(client.create_run(&body).await.unwrap().status, "pending");
}

#[tokio::test]
async fn an_error_without_the_envelope_is_unexpected_and_a_404_is_not_retried() {
    let hits = Arc::new(AtomicU32::new(0));
    let counted = hits.clone();
    let router = Router::new().route(
        "/api/v1/runs/{id}",
        get(move || {
            let hits = counted.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                (StatusCode::NOT_FOUND, "<html>not here</html>")
            }
        }),
    );
    let base = serve(router).await;
    let client = Builder::new(&base).retry(fast_retries(4)).api().unwrap();
    let error = client.get_run(uuid::Uuid::new_v4()).await.expect_err("404");
    match error {
        Error::Unexpected { status, body } => assert_eq!((status, body.as_str()), (404, "<html>not here</html>")),
        other => panic!("expected Unexpected, got {other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error_after_the_retries() {
    // A port nothing listens on: bind one, then close it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Builder::new(&base).retry(fast_retries(2)).api().unwrap();
    let error = client.get_run(uuid::Uuid::new_v4()).await.expect_err("nothing listens");
    assert!(matches!(error, Error::Transport(_)), "{error:?}");
    assert_eq!(error.status(), None);
}

#[test]
fn a_base_url_must_be_http() {
    assert!(matches!(Builder::new("localhost:8080").api(), Err(Error::Config(_))));
}
