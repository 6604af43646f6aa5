//! End to end: schemathesis (a property-based API tester, pinned from PyPI
//! and installed under `target/` by rat-testkit) generates requests from
//! `GET /api/v1/openapi.json` and sends them to the real `rat-api` binary,
//! with every check on and every phase (examples, coverage, fuzzing, and the
//! stateful phase that chains operations along the document's links). Any
//! finding fails the test: a server error, a status or body the document
//! does not describe, valid input refused, invalid input accepted, a
//! resource missing after its create or present after its delete, auth
//! ignored. The number of generated cases is printed.
//!
//! The api runs with an API key (so the document's bearer security is
//! checked too: schemathesis sends requests without it) on a fresh database
//! and a filesystem store. The runner listener's document is tested the same
//! way, with the runner token. `tests/schemathesis.toml` holds the few
//! settings the checks need, each with its reason (docs/api.md lists them).

use std::path::Path;
use std::process::Stdio;

use rat_testkit::TestDatabase;
use rat_testkit::pytools::SCHEMATHESIS;

/// A fixed seed: a failure reproduces with the same command.
const SEED: &str = "17";

/// Runs schemathesis against `document` (its operations are called at
/// `base`), with `token` as bearer; returns its output, failing the test on
/// any finding. `name` names the reports' directory under `scratch`.
async fn run_schemathesis(
    schemathesis: &Path,
    document: &str,
    token: &str,
    scratch: &Path,
    name: &str,
    api_log: &Path,
) -> String {
    let reports = scratch.join(name);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml");
    let output = tokio::process::Command::new(schemathesis)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(document)
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Every check is on by default (`--checks all` would also override
        // the per-operation settings of schemathesis.toml).
        // Cases per operation and phase are in schemathesis.toml.
        .args(["--seed", SEED])
        .args(["--workers", "1", "--request-timeout", "20"])
        .arg("--continue-on-failure")
        // A data-generation health check, not a check of the API: the file
        // key patterns (segments, lengths) make hypothesis filter many
        // candidates, which it reports as a failure of its own.
        .args(["--suppress-health-check", "filter_too_much"])
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(&reports)
        .args(["--output-truncate", "false"])
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(scratch)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("schemathesis against {document}:\n{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found problems in {document} (exit {:?}):\n{stdout}\n{stderr}\nrat-api log:\n{}",
        output.status.code(),
        tests::tail(api_log, 40)
    );
    stdout
}

/// The number of generated cases in schemathesis' summary: the line after
/// `Test cases:` reads `N generated, ...`.
fn generated_cases(summary: &str) -> u64 {
    let mut lines = summary.lines().map(str::trim);
    lines
        .by_ref()
        .find(|line| line.starts_with("Test cases:"))
        .and_then(|_| lines.next())
        .and_then(|line| line.split(" generated").next())
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `Test cases:` / `N generated` in schemathesis' summary:\n{summary}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_in_either_document() {
    let schemathesis = tokio::task::spawn_blocking(|| SCHEMATHESIS.installed()).await.unwrap();
    let db = TestDatabase::new().await;
    let scratch = tests::scratch_dir("schemathesis");
    let store = format!("fs:{}", scratch.join("store").display());
    let log = scratch.join("rat-api.log");
    let (port, internal_port) = (tests::free_port(), tests::free_port());
    let (listen, internal) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{internal_port}"));
    let (key, runner_token) = ("schemathesis-key", "schemathesis-runner-token");
    let api = tests::spawn(
        &tests::binary("rat-api"),
        &[
            ("RAT_DATABASE_URL", db.url()),
            ("RAT_DB_POOL_SIZE", "4"),
            ("RAT_STORE", &store),
            ("RAT_LISTEN_ADDR", &listen),
            ("RAT_INTERNAL_LISTEN_ADDR", &internal),
            ("RAT_API_KEY", key),
            ("RAT_RUNNER_TOKEN", runner_token),
            ("RUST_LOG", "warn"),
        ],
        &log,
    );
    tests::wait_listening(&[&listen, &internal], 15, &log).await;

    let public = run_schemathesis(
        &schemathesis,
        &format!("http://{listen}/api/v1/openapi.json"),
        key,
        &scratch,
        "public",
        &log,
    )
    .await;
    let internal = run_schemathesis(
        &schemathesis,
        &format!("http://{internal}/internal/v1/openapi.json"),
        runner_token,
        &scratch,
        "internal",
        &log,
    )
    .await;
    let (public, internal) = (generated_cases(&public), generated_cases(&internal));
    println!("schemathesis generated {public} cases for /api/v1 and {internal} for /internal/v1");
    // A run that generated (almost) nothing checked nothing: about 6,800
    // and 770 cases are generated with these settings.
    assert!(public > 1000, "only {public} cases generated for /api/v1");
    assert!(internal > 100, "only {internal} cases generated for /internal/v1");
    drop(api);
    let _ = std::fs::remove_dir_all(&scratch);
}
