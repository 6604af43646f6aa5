//! What an outside probe of the api tried, and what it must not get: a web
//! page changing the platform (CSRF), connections held open for free
//! (slowloris), metrics and audit rows grown by junk, refusals that cost
//! database work, errors without the envelope or echoing megabytes.

use std::time::Duration;

use crate::common::{Answer, TestApp};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PORTAL: &str = "http://localhost:3000";

async fn raw(app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.http.request(method, format!("{}{path}", app.base))
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    TestApp::answer(request.send().await.expect("request sent")).await
}

#[tokio::test]
async fn json_bodies_must_be_declared_json_while_bodiless_posts_stay_accepted() {
    let app = TestApp::new().await;
    let body = r#"{"name":"sales"}"#;
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = raw(&app, Method::POST, "/api/v1/namespaces").await.body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        answer(request).await.assert_error(415, "INVALID_ARGUMENT");
    }
    assert_eq!(
        app.get("/api/v1/namespaces").await.json["total"],
        1,
        "nothing was created"
    );
    let declared = raw(&app, Method::POST, "/api/v1/namespaces")
        .await
        .header("content-type", "application/json; charset=utf-8")
        .body(body);
    assert_eq!(answer(declared).await.status, 201);

    // A publish without a message, as RAT's SDK sends it: no body, no type.
    app.pipeline("default", "silver", "orders").await;
    let publish = raw(&app, Method::POST, "/api/v1/pipelines/default/silver/orders/publish").await;
    let published = answer(publish).await;
    assert_eq!(published.status, 200, "{}", published.text);
}

#[tokio::test]
async fn a_foreign_origin_cannot_change_anything_the_portal_and_origin_less_clients_can() {
    let app = TestApp::new().await;
    // The chain a page on another site tried: create a Python pipeline,
    // upload its code, publish, run it.
    let evil = "http://evil.example";
    let create = raw(&app, Method::POST, "/api/v1/pipelines")
        .await
        .header("origin", evil)
        .json(&json!({"namespace": "default", "layer": "bronze", "name": "owned", "type": "python"}));
    answer(create).await.assert_error(403, "FORBIDDEN");
    let form = reqwest::multipart::Form::new()
        .text("path", "default/pipelines/bronze/owned/pipeline.py")
        .text("file", "import os");
    let upload = raw(&app, Method::POST, "/api/v1/files/upload")
        .await
        .header("origin", evil)
        .multipart(form);
    answer(upload).await.assert_error(403, "FORBIDDEN");
    for (method, path) in [
        (Method::POST, "/api/v1/pipelines/default/bronze/owned/publish"),
        (Method::POST, "/api/v1/runs"),
        (Method::PUT, "/api/v1/namespaces/default"),
        (Method::DELETE, "/api/v1/namespaces/default"),
        (Method::POST, "/api/v1/webhooks"),
    ] {
        let request = raw(&app, method.clone(), path)
            .await
            .header("origin", evil)
            .header("content-type", "text/plain")
            .body("{}");
        answer(request).await.assert_error(403, "FORBIDDEN");
    }
    assert_eq!(app.get("/api/v1/pipelines").await.json["total"], 0);
    assert!(app.audit_rows().await.is_empty(), "refusals are counted, not written");

    // Reads carry no risk (CORS keeps the page from reading the answer).
    let read = raw(&app, Method::GET, "/api/v1/namespaces")
        .await
        .header("origin", evil);
    assert_eq!(answer(read).await.status, 200);
    // The portal's origin, and clients that send no Origin, change things.
    let portal = raw(&app, Method::POST, "/api/v1/namespaces")
        .await
        .header("origin", PORTAL)
        .json(&json!({"name": "from_portal"}));
    assert_eq!(answer(portal).await.status, 201);
    assert_eq!(
        app.post("/api/v1/namespaces", json!({"name": "from_curl"}))
            .await
            .status,
        201
    );

    app.state.flush_refusals().await.unwrap();
    let summary = app.audit_rows().await;
    let refused = summary
        .iter()
        .find(|row| row.action == "request.foreign_origin")
        .expect("a summary row");
    assert_eq!(refused.details.as_ref().unwrap()["count"], 7);
}

#[tokio::test]
async fn a_foreign_origin_is_refused_on_the_runner_listener_too() {
    let app = TestApp::builder().internal_listener(None).start().await;
    let base = app.internal_base.clone().unwrap();
    let claim = app
        .http
        .post(format!("{base}/internal/v1/runs/claim"))
        .header("origin", "http://evil.example")
        .json(&json!({"runner_id": "r"}));
    answer(claim).await.assert_error(403, "FORBIDDEN");
}

/// Reads from `stream` until it is closed; `None` when it is still open
/// after `patience`.
async fn read_until_closed(stream: &mut TcpStream, patience: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(received),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

fn quick_limits() -> rat_api::server::ServeLimits {
    rat_api::server::ServeLimits {
        header_read_timeout: Duration::from_secs(1),
        ..rat_api::server::ServeLimits::default()
    }
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn half_sent_headers_and_idle_connections_are_closed() {
    let app = TestApp::builder().limits(quick_limits()).start().await;
    // Half a request head, never finished.
    let mut slow = TcpStream::connect(addr(&app)).await.unwrap();
    slow.write_all(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut slow, Duration::from_secs(20)).await.is_some(),
        "a connection that never finishes its headers is closed"
    );
    // A kept-alive connection after its answer, then idle.
    let mut idle = TcpStream::connect(addr(&app)).await.unwrap();
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let received = read_until_closed(&mut idle, Duration::from_secs(20))
        .await
        .expect("an idle kept-alive connection is closed");
    assert!(
        received.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&received)
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let limits = rat_api::server::ServeLimits {
        max_connections: 2,
        ..rat_api::server::ServeLimits::default()
    };
    let app = TestApp::builder().limits(limits).start().await;
    let held = [
        TcpStream::connect(addr(&app)).await.unwrap(),
        TcpStream::connect(addr(&app)).await.unwrap(),
    ];
    let url = format!("{}/health/live", app.base);
    let waiting = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection is not served while two are open"
    );
    drop(held);
    let status = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("served once a connection closed")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_408() {
    let app = TestApp::builder()
        .settings(|s| {
            s.body_deadlines = rat_api::body::BodyDeadlines {
                idle: Duration::from_secs(1),
                total: Duration::from_secs(60),
            };
        })
        .start()
        .await;
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    stream
        .write_all(
            b"POST /api/v1/namespaces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"name\":",
        )
        .await
        .unwrap();
    let received = read_until_closed(&mut stream, Duration::from_secs(20))
        .await
        .expect("answered and closed");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""code":"DEADLINE_EXCEEDED""#), "{text}");
}

#[tokio::test]
async fn invented_methods_and_routes_do_not_grow_the_metrics() {
    let app = TestApp::new().await;
    for i in 0..25 {
        let method = Method::from_bytes(format!("Q{i}INVENTED").as_bytes()).unwrap();
        let _ = raw(&app, method, &format!("/no/such/route/{i}"))
            .await
            .send()
            .await
            .unwrap();
    }
    let metrics = app.get("/metrics").await.text;
    assert!(!metrics.contains("INVENTED"), "no series per invented method");
    assert!(!metrics.contains("/no/such/route"), "no series per unmatched path");
    assert!(metrics.contains(r#"method="OTHER""#), "{metrics}");
}

#[tokio::test]
async fn metrics_need_a_token_when_the_api_has_a_key() {
    let app = TestApp::builder()
        .api_key("k3y")
        .settings(|s| s.metrics_token = Some("scrape".to_owned().into()))
        .start()
        .await;
    let url = format!("{}/metrics", app.base);
    answer(app.http.get(&url)).await.assert_error(401, "UNAUTHENTICATED");
    answer(app.http.get(&url).bearer_auth("nope"))
        .await
        .assert_error(401, "UNAUTHENTICATED");
    assert_eq!(answer(app.http.get(&url).bearer_auth("scrape")).await.status, 200);
    assert_eq!(answer(app.http.get(&url).bearer_auth("k3y")).await.status, 200);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_an_absent_key_never_matches() {
    let app = TestApp::builder().api_key("k3y").start().await;
    let url = format!("{}/api/v1/namespaces", app.base);
    for header in ["Bearer k3y", "bearer k3y", "BEARER k3y"] {
        let request = app.http.get(&url).header("authorization", header);
        assert_eq!(answer(request).await.status, 200, "{header}");
    }
    for header in ["Bearer", "Bearer ", "Basic k3y", "k3y", ""] {
        let request = app.http.get(&url).header("authorization", header);
        answer(request).await.assert_error(401, "UNAUTHENTICATED");
    }
    answer(app.http.get(&url)).await.assert_error(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn refusals_cost_no_database_work_and_are_summed_into_the_audit_log() {
    let app = TestApp::builder()
        .api_key("k3y")
        .pool(1, Duration::from_secs(30))
        .settings(|s| {
            s.webhook_burst = 1;
            s.webhook_rate_per_second = 0.001;
        })
        .start()
        .await;
    // The only connection is taken: any request needing the database waits.
    let hostage = app.services.pool.get().await.unwrap();
    let refused = async {
        for _ in 0..20 {
            let anonymous = app
                .http
                .post(format!("{}/api/v1/namespaces", app.base))
                .json(&json!({}));
            answer(anonymous).await.assert_error(401, "UNAUTHENTICATED");
        }
    };
    tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("401s are answered without the database");
    drop(hostage);
    // The first webhook call spends the burst (an unknown token: 404).
    let webhook = || {
        app.http
            .post(format!("{}/api/v1/webhooks", app.base))
            .header("x-webhook-token", "not-a-token")
    };
    answer(webhook()).await.assert_error(404, "NOT_FOUND");
    let hostage = app.services.pool.get().await.unwrap();
    let limited = async {
        for _ in 0..10 {
            answer(webhook()).await.assert_error(429, "RESOURCE_EXHAUSTED");
        }
    };
    tokio::time::timeout(Duration::from_secs(10), limited)
        .await
        .expect("429s are answered without the database");
    drop(hostage);

    let rows = app.audit_rows().await;
    assert_eq!(rows.len(), 1, "only the webhook call that ran is a row: {rows:#?}");
    assert_eq!(app.state.flush_refusals().await.unwrap(), 2);
    let rows = app.audit_rows().await;
    let count = |action: &str| {
        rows.iter()
            .find(|row| row.action == action)
            .and_then(|row| row.details.as_ref())
            .map(|details| details["count"].clone())
    };
    assert_eq!(count("request.unauthenticated"), Some(json!(20)));
    assert_eq!(count("webhook.rate_limited"), Some(json!(10)));
}

/// Sends `head` as a raw request and returns the answer's status line and body.
async fn raw_exchange(app: &TestApp, head: &[u8]) -> (String, serde_json::Value) {
    let mut stream = TcpStream::connect(addr(app)).await.unwrap();
    stream.write_all(head).await.unwrap();
    let received = read_until_closed(&mut stream, Duration::from_secs(20))
        .await
        .expect("the server closes after a refused head");
    let text = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn errors_of_the_http_layer_carry_the_envelope() {
    let app = TestApp::new().await;
    // Over our limits: answered by the frame.
    let long = format!("/api/v1/namespaces/{}", "a".repeat(10_000));
    answer(raw(&app, Method::GET, &long).await)
        .await
        .assert_error(414, "INVALID_ARGUMENT");
    let big = raw(&app, Method::GET, "/api/v1/namespaces")
        .await
        .header("x-big", "b".repeat(40_000));
    answer(big).await.assert_error(431, "INVALID_ARGUMENT");
    // Beyond what hyper reads, and heads it cannot parse: answered by hyper,
    // given the envelope on the way out.
    let huge = format!(
        "GET /api/v1/namespaces HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: {}\r\n\r\n",
        "h".repeat(200_000)
    );
    for (head, status) in [
        (huge.into_bytes(), "431"),
        (
            b"GET /api/v1/namespaces HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n".to_vec(),
            "400",
        ),
        (b"GET /api v1 HTTP/1.1\r\n\r\n".to_vec(), "400"),
    ] {
        let (line, body) = raw_exchange(&app, &head).await;
        assert!(line.starts_with(&format!("HTTP/1.1 {status}")), "{line}");
        assert!(body["error"]["message"].is_string(), "{line}: {body}");
    }
}

#[tokio::test]
async fn error_messages_do_not_echo_the_whole_input() {
    let app = TestApp::new().await;
    let path = format!("/api/v1/files/{}~", "x".repeat(6_000));
    let message = app.get(&path).await.assert_error(400, "INVALID_ARGUMENT");
    assert!(message.chars().count() <= 520, "{} characters", message.len());
    assert!(message.ends_with("(truncated)"), "{message}");
}

#[tokio::test]
async fn free_text_fields_have_limits() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let long = |n: usize| "d".repeat(n);
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/namespaces",
            json!({"name": "n", "description": long(5001)}),
        ),
        (
            Method::PUT,
            "/api/v1/namespaces/default",
            json!({"description": long(5001)}),
        ),
        (
            Method::PUT,
            "/api/v1/pipelines/default/silver/orders",
            json!({"description": long(5001)}),
        ),
        (
            Method::POST,
            "/api/v1/pipelines/default/silver/orders/publish",
            json!({"message": long(1001)}),
        ),
        (
            Method::POST,
            "/api/v1/landing-zones",
            json!({"namespace": "default", "name": "z", "expected_schema": long(20_001)}),
        ),
        (
            Method::PUT,
            "/api/v1/tables/default/silver/orders/metadata",
            json!({"column_descriptions": {"id": long(5001)}}),
        ),
    ] {
        let answer = app.request(method.clone(), path, Some(body)).await;
        let message = answer.assert_error(400, "INVALID_ARGUMENT");
        assert!(message.contains("at most"), "{method} {path}: {message}");
    }
    let fine = app
        .put("/api/v1/namespaces/default", json!({"description": long(5000)}))
        .await;
    assert!(fine.status.is_success(), "{}", fine.text);
}

/// An app on its own pool of `database_url`, served on `127.0.0.1:0`.
async fn app_on(
    database_url: &str,
    store: std::sync::Arc<dyn rat_versioning::VersionedStore>,
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let mut settings = rat_testkit::dao::PoolSettings::new(database_url);
    settings.connect_timeout = Duration::from_secs(2);
    let pool = rat_testkit::dao::create_pool(&settings).unwrap();
    let state = rat_api::state::AppState::new(
        rat_service::Services::new(pool, store),
        rat_api::state::ApiSettings::new("http://127.0.0.1"),
        rat_api::metrics_handle(),
        rat_api::live::LiveLogs::new(database_url.to_owned()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(rat_api::server::serve(
        listener,
        rat_api::app::router(state),
        rat_api::server::ServeLimits::default(),
        std::future::pending(),
    ));
    (base, server)
}

#[tokio::test]
async fn a_database_that_refuses_connections_is_503() {
    let app = TestApp::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        // Nothing listens there.
        format!("postgres://rat@127.0.0.1:{port}/rat"),
        // The server is up and refuses this role.
        format!("{} user=no_such_role", app.db.url()),
    ] {
        let (base, server) = app_on(&url, app.services.store.clone()).await;
        let answer = answer(app.http.get(format!("{base}/api/v1/namespaces"))).await;
        let message = answer.assert_error(503, "UNAVAILABLE");
        assert!(!message.contains("127.0.0.1") && !message.contains("role"), "{message}");
        server.abort();
    }
}
