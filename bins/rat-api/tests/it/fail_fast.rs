//! Failing fast while the file store hangs (`rat_service::health`): against
//! a moto of the test's own, paused with SIGSTOP (connections accepted,
//! nothing answered), with a store timeout far longer than the answers the
//! test expects, so an answer that waited for it cannot pass.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rat_api::state::{ApiSettings, AppState};
use rat_service::Services;
use rat_service::health::ProbeSettings;
use rat_versioning::VersionedStore;
use reqwest::Method;
use serde_json::json;

use crate::common::{Answer, OwnMotoApp, TestApp};

/// The store's own time limit per request: what every call would wait
/// without failing fast (twice that, with rust-s3's retry).
const STORE_TIMEOUT: Duration = Duration::from_secs(30);
/// Far below [`STORE_TIMEOUT`], far above what failing fast takes (the probe
/// settings below: about half a second).
const FAST: Duration = Duration::from_secs(10);

/// The app on its own moto, with a fast prober.
async fn start() -> OwnMotoApp {
    let probe = ProbeSettings {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
    };
    OwnMotoApp::start(STORE_TIMEOUT, Some(probe)).await
}

async fn write(app: &OwnMotoApp, content: &str) -> (Answer, Duration) {
    app.call(
        Method::PUT,
        "/api/v1/files/default/pipelines/silver/orders/pipeline.sql",
        Some(json!({ "content": content })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_hung_writes_fail_fast_reads_work_and_recovery_is_noticed() {
    let app = start().await;
    let (created, _) = app
        .call(
            Method::POST,
            "/api/v1/pipelines",
            Some(json!({"namespace": "default", "layer": "silver", "name": "orders"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let (written, _) = write(&app, "SELECT 1").await;
    assert_eq!(written.status, 200, "{}", written.text);

    app.moto.pause();
    // The first write finds out: abandoned once the probe marks the store down.
    let (first, took) = write(&app, "SELECT 2").await;
    first.assert_error(503, "UNAVAILABLE");
    assert!(took < FAST, "the first write waited {took:?}");
    // Later ones are refused at once, saying the store is down.
    for _ in 0..3 {
        let (again, took) = write(&app, "SELECT 3").await;
        let message = again.assert_error(503, "UNAVAILABLE");
        assert!(message.contains("file store"), "{message}");
        assert!(took < FAST, "a write waited {took:?}");
    }
    let (published, took) = app
        .call(
            Method::POST,
            "/api/v1/pipelines/default/silver/orders/publish",
            Some(json!({})),
        )
        .await;
    published.assert_error(503, "UNAVAILABLE");
    assert!(took < FAST, "a publish waited {took:?}");
    // Readiness says which dependency is down, at once.
    let (ready, took) = app.call(Method::GET, "/health/ready", None).await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert_eq!(ready.json["checks"]["s3"]["status"], "error", "{}", ready.text);
    assert_eq!(ready.json["checks"]["postgres"]["status"], "ok", "{}", ready.text);
    assert!(took < FAST, "readiness waited {took:?}");
    // What needs only the database keeps working.
    let (pipeline, _) = app
        .call(Method::GET, "/api/v1/pipelines/default/silver/orders", None)
        .await;
    assert_eq!(pipeline.status, 200, "{}", pipeline.text);
    let (changed, _) = app
        .call(
            Method::PUT,
            "/api/v1/pipelines/default/silver/orders",
            Some(json!({"description": "still editable"})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    // Nothing of the refused writes reached the draft.
    let client = app.db.client().await;
    let versions: i64 = client
        .query_one("SELECT count(*) FROM pipeline_versions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, 0);

    app.moto.resume();
    // The prober notices within its interval; poll readiness a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ready, _) = app.call(Method::GET, "/health/ready", None).await;
        if ready.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the store never came back: {}", ready.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (written, _) = write(&app, "SELECT 4").await;
    assert_eq!(written.status, 200, "{}", written.text);
    let (read, _) = app
        .call(
            Method::GET,
            "/api/v1/files/default/pipelines/silver/orders/pipeline.sql",
            None,
        )
        .await;
    assert_eq!(read.json["content"], "SELECT 4", "{}", read.text);
}

/// A store slower than the probe's timeout, but answering (moto busy under
/// load): its probes time out, yet calls keep getting answers, so it is not
/// marked down and no request is refused. Before, the first probe that timed
/// out marked it down and the calls it was answering got 503s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_that_answers_is_not_marked_down() {
    let probe = ProbeSettings {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(400),
    };
    // Every answer of the store (the probe's included) takes longer than the
    // probe's timeout, and less than two of them.
    let latency = Duration::from_millis(500);
    let app = OwnMotoApp::start_with_latency(STORE_TIMEOUT, Some(probe), Some(latency)).await;
    let (created, _) = app
        .call(
            Method::POST,
            "/api/v1/pipelines",
            Some(json!({"namespace": "default", "layer": "silver", "name": "orders"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let writers = (0..4).map(|writer| {
        let app = &app;
        async move {
            let mut statuses = Vec::new();
            for n in 0..5 {
                let (written, took) = write(app, &format!("SELECT {writer}{n}")).await;
                assert!(took >= latency, "a write took {took:?}, below the store's latency");
                statuses.push((written.status, written.text));
            }
            statuses
        }
    });
    let statuses: Vec<(reqwest::StatusCode, String)> = futures_util::future::join_all(writers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let refused: Vec<&(reqwest::StatusCode, String)> = statuses.iter().filter(|(status, _)| *status != 200).collect();
    assert!(refused.is_empty(), "a slow store's writes were refused: {refused:?}");
    let (ready, _) = app.call(Method::GET, "/health/ready", None).await;
    assert_eq!(ready.json["checks"]["s3"]["status"], "ok", "{}", ready.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_stopped_requests_fail_fast_and_recover() {
    let cluster = tokio::task::spawn_blocking(rat_testkit::cluster::PrivateCluster::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot start a private PostgreSQL cluster: {e}"));
    let database = rat_testkit::dao::Database::from(cluster.url());
    rat_testkit::dao::migrate(&database).await.unwrap();
    let pool = rat_testkit::dao::create_pool(&rat_testkit::dao::PoolSettings::new(database.clone())).unwrap();
    let store_dir = tempfile::Builder::new().prefix("rat-api-test-").tempdir().unwrap();
    let store = rat_versioning::fs::FsStore::open(store_dir.path().to_path_buf())
        .await
        .unwrap();
    let probe = ProbeSettings {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
    };
    let services = Services::with_probe_settings(pool, Arc::new(store) as Arc<dyn VersionedStore>, probe);
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(rat_service::health::watch(
        services.clone(),
        database.clone(),
        probe,
        stopping,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(
        services,
        ApiSettings::new(base.clone()),
        rat_api::metrics_handle(),
        rat_api::live::LiveLogs::new(database),
    );
    let router = rat_api::app::router(state);
    let server = tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let started = Instant::now();
            let response = http.get(format!("{base}{path}")).send().await.unwrap();
            let retry_after = response.headers().get("retry-after").cloned();
            (TestApp::answer(response).await, started.elapsed(), retry_after)
        }
    };
    let (listed, _, _) = get("/api/v1/pipelines").await;
    assert_eq!(listed.status, 200, "{}", listed.text);

    let stopper = cluster.cluster().clone();
    tokio::task::spawn_blocking(move || stopper.stop())
        .await
        .unwrap()
        .unwrap();
    // Within a few probe intervals every request is refused at once.
    let deadline = Instant::now() + FAST;
    loop {
        let (ready, _, _) = get("/health/ready").await;
        if ready.json["checks"]["postgres"]["status"] == "error"
            && ready.json["checks"]["postgres"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("failing fast"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the database was never marked down: {}",
            ready.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for path in ["/api/v1/pipelines", "/api/v1/namespaces", "/api/v1/runs"] {
        let (answer, took, retry_after) = get(path).await;
        let message = answer.assert_error(503, "UNAVAILABLE");
        assert!(message.contains("database"), "{message}");
        assert_eq!(retry_after.as_ref().map(|v| v.to_str().unwrap()), Some("1"), "{path}");
        assert!(took < FAST, "{path} waited {took:?}");
    }

    let starter = cluster.cluster().clone();
    tokio::task::spawn_blocking(move || starter.start())
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (listed, _, _) = get("/api/v1/pipelines").await;
        if listed.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the api never recovered: {}", listed.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = http
        .post(format!("{base}/api/v1/pipelines"))
        .json(&json!({"namespace": "default", "layer": "silver", "name": "after"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    server.abort();
}
