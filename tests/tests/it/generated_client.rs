//! End to end: a Python client generated from `GET /api/v1/openapi.json` by
//! openapi-python-client (pinned from PyPI, installed under `target/` by
//! rat-testkit) drives a publish flow against the real `rat-api` binary —
//! create a namespace and a pipeline, write its SQL, publish, read the
//! versions back (`tests/python/publish_flow.py`). Generation runs with
//! `--fail-on-warning`: a document the generator cannot fully read fails.

use std::path::Path;
use std::process::Stdio;

use rat_testkit::TestDatabase;
use rat_testkit::pytools::OPENAPI_PYTHON_CLIENT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_publishes_a_pipeline() {
    let generator = tokio::task::spawn_blocking(|| OPENAPI_PYTHON_CLIENT.installed())
        .await
        .unwrap();
    let db = TestDatabase::new().await;
    let scratch = tests::scratch_dir("generated-client");
    let store = format!("fs:{}", scratch.join("store").display());
    let log = scratch.join("rat-api.log");
    let (port, internal_port) = (tests::free_port(), tests::free_port());
    let (listen, internal) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{internal_port}"));
    let key = "generated-client-key";
    let api = tests::spawn(
        &tests::binary("rat-api"),
        &[
            ("RAT_DATABASE_URL", db.url()),
            ("RAT_DB_POOL_SIZE", "4"),
            ("RAT_STORE", &store),
            ("RAT_LISTEN_ADDR", &listen),
            ("RAT_INTERNAL_LISTEN_ADDR", &internal),
            ("RAT_API_KEY", key),
            ("RUST_LOG", "warn"),
        ],
        &log,
    );
    tests::wait_listening(&[&listen], 15, &log).await;
    let base = format!("http://{listen}");

    let document = reqwest::Client::new()
        .get(format!("{base}/api/v1/openapi.json"))
        .bearer_auth(key)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("GET /api/v1/openapi.json")
        .bytes()
        .await
        .unwrap();
    let document_path = scratch.join("openapi.json");
    std::fs::write(&document_path, &document).unwrap();

    // The generator formats its output with ruff, installed beside it.
    let bin = generator.parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let package = scratch.join("rat_client");
    // Enums as `Literal` strings: the IANA time zone names (`GMT0`, `GMT+0`,
    // `GMT-0`) make no distinct Python identifiers.
    let config = scratch.join("generator.yaml");
    std::fs::write(&config, "literal_enums: true\n").unwrap();
    let output = tokio::process::Command::new(&generator)
        .args(["generate", "--meta", "none", "--fail-on-warning", "--config"])
        .arg(&config)
        .arg("--path")
        .arg(&document_path)
        .arg("--output-path")
        .arg(&package)
        .env("PATH", &path)
        .current_dir(&scratch)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running openapi-python-client");
    assert!(
        output.status.success(),
        "openapi-python-client could not generate a client:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let flow = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/publish_flow.py");
    let output = tokio::process::Command::new(OPENAPI_PYTHON_CLIENT.python())
        .arg(&flow)
        .args([&base, key])
        .env("PYTHONPATH", &scratch)
        .env("PATH", &path)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running the publish flow");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("publish flow through the generated client: OK"),
        "the publish flow through the generated client failed:\n{stdout}\n{}\nrat-api log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        tests::tail(&log, 40)
    );
    drop(api);
    let _ = std::fs::remove_dir_all(&scratch);
}
