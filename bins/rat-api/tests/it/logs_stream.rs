//! `GET /api/v1/runs/{id}/logs` with `Accept: text/event-stream` (contract
//! §7): existing entries, new ones live, `event: status` and the end of the
//! stream; keep-alive comments, `Last-Event-ID`, the stream limits, shutdown
//! and the notifier's reconnection.

use std::time::Duration;

use crate::common::TestApp;
use rat_domain::{LogEntry, LogLevel, RunStatus};
use rat_testkit::dao::runs;
use rat_testkit::fixtures;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::time::{Instant, timeout};
use uuid::Uuid;

/// One SSE event (or a comment-only block such as a keep-alive).
#[derive(Debug, Clone, Default, PartialEq)]
struct SseEvent {
    event: Option<String>,
    id: Option<String>,
    data: String,
    comments: Vec<String>,
}

impl SseEvent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("data is not JSON ({e}): {self:?}"))
    }
}

/// Reads SSE events off a response, block by block.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    /// The next block, `None` at the end of the stream.
    async fn next_block(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut data = Vec::new();
                for line in block.lines().filter(|l| !l.is_empty()) {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                    match field {
                        "" => event.comments.push(value),
                        "event" => event.event = Some(value),
                        "id" => event.id = Some(value),
                        "data" => data.push(value),
                        other => panic!("unexpected SSE field {other:?} in {block:?}"),
                    }
                }
                event.data = data.join("\n");
                return Some(event);
            }
            let chunk = self.response.chunk().await.expect("stream readable")?;
            self.buffer.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }

    /// The next event that is not a comment, within `within`.
    async fn next_event(&mut self, within: Duration) -> Option<SseEvent> {
        timeout(within, async {
            loop {
                match self.next_block().await {
                    Some(event) if event.event.is_none() && event.data.is_empty() => continue,
                    other => return other,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no event within {within:?}"))
    }

    /// Asserts a `log` event with this message, and returns it.
    async fn expect_log(&mut self, message: &str, within: Duration) -> SseEvent {
        let event = self.next_event(within).await.expect("a log event, not the end");
        assert_eq!(event.event.as_deref(), Some("log"), "{event:?}");
        assert_eq!(event.json()["message"], message, "{event:?}");
        event
    }

    /// Asserts `event: status` with this status, then the end of the stream.
    async fn expect_status_then_end(&mut self, status: &str) {
        let event = self.next_event(Duration::from_secs(5)).await.expect("a status event");
        assert_eq!(event.event.as_deref(), Some("status"), "{event:?}");
        assert_eq!(event.json(), json!({ "status": status }));
        assert_eq!(event.id, None);
        assert_eq!(self.next_event(Duration::from_secs(5)).await, None, "the stream ends");
    }
}

/// Opens the stream of `run` (optionally resuming after an entry id).
async fn open(app: &TestApp, run: Uuid, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .get(format!("{}/api/v1/runs/{run}/logs", app.base))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("request sent")
}

/// Opens the stream of `run` and checks it is one.
async fn stream(app: &TestApp, run: Uuid, last_event_id: Option<&str>) -> SseReader {
    let response = open(app, run, last_event_id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert!(response.headers().contains_key("x-request-id"));
    SseReader {
        response,
        buffer: String::new(),
    }
}

fn entry(message: &str) -> LogEntry {
    LogEntry::new(datetime!(2026-06-01 10:00:00 UTC), LogLevel::Info, message).unwrap()
}

/// A published pipeline and a pending run of it.
async fn pending_run(app: &TestApp) -> Uuid {
    let client = app.db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    fixtures::run(&client, &pipeline).await.id.into()
}

async fn move_to(app: &TestApp, run: Uuid, status: RunStatus) {
    let client = app.db.client().await;
    runs::transition(
        &client,
        run.into(),
        status,
        &Default::default(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
}

async fn append(app: &TestApp, run: Uuid, messages: &[&str]) -> i64 {
    let client = app.db.client().await;
    let entries: Vec<LogEntry> = messages.iter().map(|m| entry(m)).collect();
    runs::append_log_entries(&client, run.into(), &entries).await.unwrap()
}

#[tokio::test]
async fn sse_delivers_appended_entries_live() {
    let app = TestApp::new().await;
    let run = pending_run(&app).await;
    move_to(&app, run, RunStatus::Running).await;
    let client = app.db.client().await;
    client
        .execute(
            "UPDATE runs SET logs = $2 WHERE id = $1",
            &[
                &run,
                &json!([{"timestamp": "2026-05-31T09:00:00Z", "level": "warn", "message": "imported"}]),
            ],
        )
        .await
        .unwrap();
    let before = append(&app, run, &["reading", "parsing"]).await;

    let mut events = stream(&app, run, None).await;
    // Legacy entries first (no id), then appended ones with their id.
    let legacy = events.expect_log("imported", Duration::from_secs(5)).await;
    assert_eq!(legacy.id, None);
    assert_eq!(
        legacy.json(),
        json!({"timestamp": "2026-05-31T09:00:00Z", "level": "warn", "message": "imported"})
    );
    let reading = events.expect_log("reading", Duration::from_secs(5)).await;
    assert_eq!(
        reading.json(),
        json!({"timestamp": "2026-06-01T10:00:00Z", "level": "info", "message": "reading"})
    );
    let parsing = events.expect_log("parsing", Duration::from_secs(5)).await;
    assert_eq!(parsing.id, Some(before.to_string()));
    assert_eq!(
        reading.id.unwrap().parse::<i64>().unwrap() + 1,
        before,
        "ids are the entries' own"
    );

    // Each new entry arrives within a second of its commit.
    for round in 0..3 {
        let message = format!("live {round}");
        let started = Instant::now();
        let id = append(&app, run, &[&message]).await;
        let event = events.expect_log(&message, Duration::from_secs(1)).await;
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert_eq!(event.id, Some(id.to_string()));
    }
    // A batch arrives whole, in order.
    append(&app, run, &["one", "two", "three"]).await;
    for message in ["one", "two", "three"] {
        events.expect_log(message, Duration::from_secs(1)).await;
    }

    // The run ends: entries appended in the same breath come first, then
    // the status, then the end of the stream.
    append(&app, run, &["done"]).await;
    move_to(&app, run, RunStatus::Success).await;
    events.expect_log("done", Duration::from_secs(1)).await;
    events.expect_status_then_end("success").await;
    assert_eq!(app.live.open_streams(), 0, "the ended stream gave its slot back");

    // The JSON answer is unchanged.
    let answer = app.get(&format!("/api/v1/runs/{run}/logs")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["status"], "success");
    assert_eq!(answer.json["logs"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn unknown_and_malformed_runs_are_404_before_any_stream() {
    let app = TestApp::new().await;
    for id in [Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let response = app
            .http
            .get(format!("{}/api/v1/runs/{id}/logs", app.base))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        let answer = TestApp::answer(response).await;
        answer.assert_error(404, "NOT_FOUND");
        assert!(
            answer.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
    }
    assert_eq!(app.live.open_streams(), 0, "a refused stream holds no slot");
}

#[tokio::test]
async fn a_finished_run_sends_everything_then_its_status_and_closes() {
    let app = TestApp::new().await;
    let run = pending_run(&app).await;
    move_to(&app, run, RunStatus::Running).await;
    // More than one page of the stream (500 entries), over several appends.
    let messages: Vec<String> = (0..1234).map(|n| format!("line {n}")).collect();
    let mut last = 0;
    for batch in messages.chunks(400) {
        let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
        last = append(&app, run, &batch).await;
    }
    move_to(&app, run, RunStatus::Failed).await;

    let mut events = stream(&app, run, None).await;
    let mut previous = 0;
    for message in &messages {
        let event = events.expect_log(message, Duration::from_secs(5)).await;
        let id: i64 = event.id.unwrap().parse().unwrap();
        assert!(id > previous, "ids increase");
        previous = id;
    }
    assert_eq!(previous, last);
    events.expect_status_then_end("failed").await;

    // A finished run without any entry: just the status.
    let empty = pending_run_named(&app, "empty").await;
    move_to(&app, empty, RunStatus::Cancelled).await;
    stream(&app, empty, None)
        .await
        .expect_status_then_end("cancelled")
        .await;
}

/// A pending run of a second pipeline.
async fn pending_run_named(app: &TestApp, name: &str) -> Uuid {
    let client = app.db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "gold", name).await;
    fixtures::run(&client, &pipeline).await.id.into()
}

#[tokio::test]
async fn idle_streams_send_keep_alive_comments() {
    let app = TestApp::builder()
        .settings(|s| s.sse_keep_alive = Duration::from_millis(200))
        .start()
        .await;
    let run = pending_run(&app).await;
    let mut events = stream(&app, run, None).await;
    let started = Instant::now();
    let mut keep_alives = 0;
    while keep_alives < 3 {
        let block = timeout(Duration::from_secs(2), events.next_block())
            .await
            .expect("a keep-alive within 2 s")
            .expect("the stream stays open");
        assert_eq!(block.comments, ["keep-alive"], "{block:?}");
        assert_eq!((block.event, block.data), (None, String::new()));
        keep_alives += 1;
    }
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(events.buffer.is_empty());
}

#[tokio::test]
async fn last_event_id_resumes_after_that_entry() {
    let app = TestApp::new().await;
    let run = pending_run(&app).await;
    let client = app.db.client().await;
    client
        .execute("UPDATE runs SET logs = $2 WHERE id = $1", &[&run, &json!(["imported"])])
        .await
        .unwrap();
    let first = append(&app, run, &["a", "b"]).await;
    append(&app, run, &["c"]).await;

    // After "b": neither the legacy entries nor "a" nor "b" again.
    let mut events = stream(&app, run, Some(&first.to_string())).await;
    events.expect_log("c", Duration::from_secs(5)).await;
    append(&app, run, &["d"]).await;
    events.expect_log("d", Duration::from_secs(1)).await;
    drop(events);

    // An id that is not one of ours starts from the beginning.
    let mut events = stream(&app, run, Some("garbage")).await;
    for message in ["imported", "a", "b", "c", "d"] {
        events.expect_log(message, Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn streams_per_client_are_limited_and_a_dropped_stream_frees_its_slot() {
    let app = TestApp::builder()
        .settings(|s| {
            s.sse_max_per_client = 2;
            // Frequent writes let the server notice a vanished client quickly.
            s.sse_keep_alive = Duration::from_millis(100);
        })
        .start()
        .await;
    let run = pending_run(&app).await;
    let first = stream(&app, run, None).await;
    let _second = stream(&app, run, None).await;
    assert_eq!(app.live.open_streams(), 2);

    let refused = TestApp::answer(open(&app, run, None).await).await;
    let message = refused.assert_error(429, "RESOURCE_EXHAUSTED");
    assert!(message.contains("at most 2"), "{message}");
    // The JSON answer is not a stream and is not limited.
    assert_eq!(app.get(&format!("/api/v1/runs/{run}/logs")).await.status, 200);

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = open(&app, run, None).await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 429);
        assert!(
            Instant::now() < deadline,
            "the dropped stream's slot was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn streams_in_total_are_limited() {
    let app = TestApp::builder()
        .settings(|s| {
            s.sse_max_per_client = 10;
            s.sse_max_total = 1;
        })
        .start()
        .await;
    let run = pending_run(&app).await;
    let _open = stream(&app, run, None).await;
    let refused = TestApp::answer(open(&app, run, None).await).await;
    let message = refused.assert_error(429, "RESOURCE_EXHAUSTED");
    assert!(message.contains("on this server"), "{message}");

    // The counters themselves: per client, in total, and freed on drop.
    let live = rat_api::live::LiveLogs::new("postgres://unused");
    let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
    let a1 = live.acquire(a, 1, 2).unwrap();
    assert_eq!(
        live.acquire(a, 1, 2).unwrap_err(),
        rat_api::live::StreamLimit::PerClient(1)
    );
    let b1 = live.acquire(b, 1, 2).unwrap();
    assert_eq!(live.acquire(b, 5, 2).unwrap_err(), rat_api::live::StreamLimit::Total(2));
    drop(a1);
    assert_eq!(live.open_streams(), 1);
    let _a2 = live.acquire(a, 1, 2).unwrap();
    drop(b1);
    assert_eq!(live.open_streams(), 1);
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let app = TestApp::new().await;
    let run = pending_run(&app).await;
    append(&app, run, &["a"]).await;
    let mut events = stream(&app, run, None).await;
    events.expect_log("a", Duration::from_secs(5)).await;
    app.live.shutdown();
    assert_eq!(
        events.next_event(Duration::from_secs(2)).await,
        None,
        "the stream ends, without a status: the run has not ended"
    );
    assert_eq!(app.live.open_streams(), 0);
}

#[tokio::test]
async fn the_notifier_reconnects_and_streams_keep_getting_entries() {
    // A fallback poll far away: entries must come from notifications.
    let app = TestApp::builder()
        .settings(|s| s.sse_poll_interval = Duration::from_secs(60))
        .start()
        .await;
    let run = pending_run(&app).await;
    let mut events = stream(&app, run, None).await;
    wait_until(|| app.live.is_listening()).await;
    append(&app, run, &["before"]).await;
    events.expect_log("before", Duration::from_secs(1)).await;

    let client = app.db.client().await;
    let listener_pid = || async {
        let row = client
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'rat-api-live-logs' AND datname = current_database()",
                &[],
            )
            .await
            .unwrap();
        row.map(|r| r.get::<_, i32>(0))
    };
    let old = listener_pid().await.expect("the listener's session");
    client
        .execute("SELECT pg_terminate_backend($1)", &[&old])
        .await
        .unwrap();
    // Appended while the listener is away: the re-read after reconnecting
    // (or the faster poll while disconnected) delivers it.
    append(&app, run, &["while away"]).await;
    events.expect_log("while away", Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if app.live.is_listening() && listener_pid().await.is_some_and(|pid| pid != old) {
            break;
        }
        assert!(Instant::now() < deadline, "the listener never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past any poll scheduled while disconnected, only notifications are left.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    append(&app, run, &["after"]).await;
    events.expect_log("after", Duration::from_secs(1)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "condition never became true");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn sigterm_ends_open_streams_and_the_process_exits_well_before_the_grace_period() {
    let db = rat_testkit::TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "orders").await;
    let run = fixtures::run(&client, &pipeline).await.id;
    runs::append_log_entries(&client, run, &[entry("started")])
        .await
        .unwrap();
    let port = free_port();
    let dir = tempfile::Builder::new()
        .prefix("rat-api-logs-stream-")
        .tempdir()
        .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rat-api"))
        .env("RAT_DATABASE_URL", db.url())
        .env("RAT_STORE", format!("fs:{}", dir.path().display()))
        .env("RAT_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RAT_INTERNAL_LISTEN_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("RAT_SHUTDOWN_TIMEOUT_SECS", "60")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{base}/health"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "rat-api did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/runs/{run}/logs"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = SseReader {
        response,
        buffer: String::new(),
    };
    events.expect_log("started", Duration::from_secs(5)).await;

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopping = Instant::now();
    assert_eq!(events.next_event(Duration::from_secs(5)).await, None, "the stream ends");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "rat-api waited for its open stream instead of ending it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "clean exit");
}

#[tokio::test]
async fn the_openapi_document_describes_both_answers_and_the_limit() {
    let app = TestApp::new().await;
    let document = app.get("/api/v1/openapi.json").await.json;
    let responses = &document["paths"]["/api/v1/runs/{id}/logs"]["get"]["responses"];
    let ok = responses["200"]["content"].as_object().expect("200 has content");
    assert!(
        ok.contains_key("application/json") && ok.contains_key("text/event-stream"),
        "{ok:?}"
    );
    for status in ["404", "429"] {
        assert!(responses[status].is_object(), "{status} is documented: {responses}");
    }
}
