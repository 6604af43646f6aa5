//! End to end: RAT's own TypeScript SDK (`@squat-collective/rat-client`),
//! built from `../shared/clients/rat-cdc096f.tar.gz` under
//! `target/rat-clients/`, drives the portal's flows against the real
//! `rat-api` and dev `rat-runner`: `tests/clients/portal-flows.mjs` lists
//! and creates a namespace, creates a pipeline, reads and writes its files,
//! publishes, lists versions, rolls back, runs it and reads its status and
//! logs, creates, lists and runs a quality test, reads and updates
//! retention, creates a landing zone and uploads to it, reads tables and the
//! schema, the runner plugins, the features and health, checking every
//! answer has the shape the portal relies on; it exits non-zero at the first
//! failed check.
//!
//! Needs node (18 or later) and npm, and the archive beside the checkout; the
//! test fails, saying what to install, when any is missing. The SDK's
//! `npm ci` and build run once (under a file lock) and are kept in
//! `target/rat-clients/`.

use std::path::Path;

use rat_testkit::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_drives_the_portal_flows_against_the_real_binaries() {
    let sdk = tokio::task::spawn_blocking(rat_testkit::clients::ensure_sdk_built)
        .await
        .expect("building the SDK")
        .unwrap_or_else(|e| panic!("cannot build RAT's TypeScript SDK: {e}"));
    let db = TestDatabase::new().await;
    let scratch = tests::scratch_dir("sdk-flows");
    let store = format!("fs:{}", scratch.join("store").display());
    // As `cargo xtask dev` runs it: no API key (the portal sends none).
    let platform = tests::DevPlatform::start(db.url(), &store, &scratch, "sdk-flows-runner").await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/portal-flows.mjs");
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .env("RAT_SDK", sdk.join("dist/index.js"))
        .env("RAT_API", format!("http://{}", platform.listen))
        .output()
        .await
        .unwrap_or_else(|e| panic!("running node {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the portal's flows through RAT's SDK failed ({}):\n{stdout}\n{stderr}\n{}",
        output.status,
        platform.logs()
    );
    // What was checked, for `--nocapture`.
    println!("{stdout}");
    // Every flow ran to its end.
    for flow in [
        "health and features",
        "namespaces",
        "pipelines",
        "code tab",
        "publish, versions, rollback",
        "quality tests",
        "runs",
        "retention",
        "landing zones",
        "tables and schema",
        "runner plugins",
        "clean up",
    ] {
        assert!(stdout.contains(&format!("== {flow}")), "no flow {flow:?} in:\n{stdout}");
    }
    assert!(
        stdout.contains("every portal flow answered as the portal expects"),
        "{stdout}"
    );
    drop(platform);
    let _ = std::fs::remove_dir_all(&scratch);
}
