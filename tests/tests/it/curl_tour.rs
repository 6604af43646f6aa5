//! End to end: `docs/curl-tour.sh` — every route of the ratd contract called
//! with curl, each answer checked — against the real `rat-api` binary with an
//! API key, on a fresh database and a filesystem store. Keeps the documented
//! tour true, and proves the binary (not only the in-process router) serves
//! the contract.
//!
//! Needs `curl` and `python3` (the script checks JSON with Python); the test
//! fails, saying what to install, when either is missing.

use std::path::Path;
use std::process::Command;

use rat_testkit::TestDatabase;

fn require(program: &str, package: &str) {
    let found = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{program} is needed by docs/curl-tour.sh: install it (Debian: apt-get install -y {package})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_contract_route_answers_as_the_tour_expects() {
    require("curl", "curl");
    require("python3", "python3");
    let db = TestDatabase::new().await;
    let scratch = tests::scratch_dir("curl-tour");
    let store = format!("fs:{}", scratch.join("store").display());
    let log = scratch.join("rat-api.log");
    let (port, internal_port) = (tests::free_port(), tests::free_port());
    let (listen, internal) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{internal_port}"));
    let key = "curl-tour-key";
    const RUNNER_TOKEN: &str = "curl-tour-runner-token";
    let api = tests::spawn(
        &tests::binary("rat-api"),
        &[
            ("RAT_DATABASE_URL", db.url()),
            ("RAT_DB_POOL_SIZE", "4"),
            ("RAT_STORE", &store),
            ("RAT_LISTEN_ADDR", &listen),
            ("RAT_INTERNAL_LISTEN_ADDR", &internal),
            ("RAT_API_KEY", key),
            ("RAT_RUNNER_TOKEN", RUNNER_TOKEN),
            ("RUST_LOG", "warn"),
        ],
        &log,
    );

    let base = format!("http://{listen}");
    tests::wait_listening(&[&listen, &internal], 15, &log).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/curl-tour.sh");
    let output = tokio::process::Command::new("bash")
        .arg(&script)
        .env("RAT_API", &base)
        .env("RAT_API_KEY", key)
        .env("RAT_RUNNER_API", format!("http://{internal}"))
        .env("RAT_RUNNER_TOKEN", RUNNER_TOKEN)
        .output()
        .await
        .expect("running bash docs/curl-tour.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the curl tour failed:\n{stdout}\n{stderr}\nrat-api log:\n{}",
        tests::tail(&log, 40)
    );
    // Every section ran, and the 401 of a wrong key was among the calls.
    for section in [
        "§2",
        "§3",
        "§4",
        "§5",
        "§6",
        "§7",
        "§8",
        "§9",
        "§10",
        "§11",
        "§12",
        "runner listener:",
    ] {
        assert!(stdout.contains(&format!("== {section} ")), "no {section} in:\n{stdout}");
    }
    assert!(
        stdout.contains("/api/v1/namespaces") && stdout.lines().any(|l| l.trim_end().ends_with(" 401")),
        "{stdout}"
    );
    assert!(stdout.contains("answered as the contract says"), "{stdout}");
    drop(api);
    let _ = std::fs::remove_dir_all(&scratch);
}
