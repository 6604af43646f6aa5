//! The real `rat-api` binary: configuration from variables, refusing an
//! unauthenticated public bind, and a clean exit on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rat_testkit::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_rat-api");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory (a filesystem store's, or a test's files), removed on drop.
fn store_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("rat-api-process-").tempdir().unwrap()
}

#[test]
fn help_documents_every_variable() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for variable in [
        "RAT_DATABASE_URL",
        "RAT_DB_POOL_SIZE",
        "RAT_STORE",
        "RAT_S3_ENDPOINT",
        "RAT_S3_BUCKET",
        "RAT_S3_ACCESS_KEY",
        "RAT_S3_SECRET_KEY",
        "RAT_S3_PATH_STYLE",
        "RAT_S3_CREATE_BUCKET",
        "RAT_LISTEN_ADDR",
        "RAT_API_KEY",
        "RAT_LOG_FORMAT",
        "RAT_CORS_ORIGINS",
        "RAT_ALLOWED_HOSTS",
        "RAT_METRICS_TOKEN",
        "RAT_MAX_CONNECTIONS",
        "RAT_HEADER_READ_TIMEOUT_SECS",
        "RAT_BODY_IDLE_TIMEOUT_SECS",
        "RAT_BODY_READ_TIMEOUT_SECS",
        "RAT_MAX_URI_BYTES",
        "RAT_MAX_HEADER_BYTES",
        "RAT_MAX_CONCURRENT_UPLOADS",
        "RAT_UPLOAD_SLOT_WAIT_SECS",
        "RAT_MAX_EDITOR_BYTES",
    ] {
        assert!(help.contains(variable), "--help does not mention {variable}");
    }
}

#[tokio::test]
async fn a_public_address_without_auth_is_refused() {
    let db = TestDatabase::new().await;
    let output = Command::new(BIN)
        .env("RAT_DATABASE_URL", db.url())
        .env("RAT_STORE", format!("fs:{}", store_dir().path().display()))
        .env("RAT_LISTEN_ADDR", format!("0.0.0.0:{}", free_port()))
        .env("RAT_INTERNAL_LISTEN_ADDR", format!("127.0.0.1:{}", free_port()))
        .env_remove("RAT_API_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to serve"), "{stderr}");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_with_exit_code_zero() {
    let db = TestDatabase::new().await;
    let port = free_port();
    let dir = store_dir();
    let mut child = Command::new(BIN)
        .env("RAT_DATABASE_URL", db.url())
        .env("RAT_STORE", format!("fs:{}", dir.path().display()))
        .env("RAT_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RAT_INTERNAL_LISTEN_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("RAT_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if reqwest::get(format!("{base}/health"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(Instant::now() < deadline, "rat-api did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let namespaces = reqwest::get(format!("{base}/api/v1/namespaces")).await.unwrap();
    assert_eq!(namespaces.status(), 200);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "rat-api did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "clean exit");
    let mut logs = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut logs).unwrap();
    // JSON log lines, one per request, with the request id.
    let request_line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["message"] == "request" && l["span"]["route"] == "/api/v1/namespaces")
        .unwrap_or_else(|| panic!("no JSON request log line in:\n{logs}"));
    assert_eq!(request_line["fields"]["status"], 200);
    assert!(request_line["span"]["request_id"].is_string());
    assert!(request_line["fields"]["duration_ms"].is_number());
}

/// The binary on `db` and a filesystem store in `dir`, listening on
/// `127.0.0.1:{port}` without an API key, with `envs` set on top.
fn command(db: &TestDatabase, dir: &std::path::Path, port: u16, envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env("RAT_DATABASE_URL", db.url())
        .env("RAT_STORE", format!("fs:{}", dir.display()))
        .env("RAT_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RAT_INTERNAL_LISTEN_ADDR", format!("127.0.0.1:{}", free_port()))
        .env_remove("RAT_API_KEY")
        .env_remove("RAT_API_KEY_FILE");
    for (name, value) in envs {
        command.env(name, value);
    }
    command
}

/// Runs the binary with `envs` on a fresh database and filesystem store
/// until it exits, and returns its status and stderr.
async fn run_to_exit(envs: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let db = TestDatabase::new().await;
    let dir = store_dir();
    let mut child = command(&db, dir.path(), free_port(), envs)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rat-api started with {envs:?}: it must refuse to");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

#[tokio::test]
async fn an_empty_api_key_is_refused_at_start_never_taken_for_auth() {
    let dir = store_dir();
    let empty_file = dir.path().join("empty-key");
    std::fs::write(&empty_file, "").unwrap();
    let newline_file = dir.path().join("newline-key");
    std::fs::write(&newline_file, "\n").unwrap();
    let public = format!("0.0.0.0:{}", free_port());
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("RAT_API_KEY", "")],
        vec![("RAT_API_KEY", "  ")],
        vec![("RAT_API_KEY", ""), ("RAT_LISTEN_ADDR", &public)],
        vec![("RAT_API_KEY_FILE", empty_file.to_str().unwrap())],
        vec![("RAT_API_KEY_FILE", newline_file.to_str().unwrap())],
        vec![("RAT_RUNNER_TOKEN", " ")],
        vec![("RAT_METRICS_TOKEN", "")],
    ];
    for envs in cases {
        let (status, stderr) = run_to_exit(&envs).await;
        assert!(!status.success(), "{envs:?}");
        assert!(stderr.contains("empty"), "{envs:?}: {stderr}");
    }
}

/// The binary, started with `envs` on `port` (no API key unless given),
/// and waited for until it answers.
struct Running {
    child: std::process::Child,
    /// Removed after the child is killed (fields drop after `drop`).
    _dir: tempfile::TempDir,
    _db: TestDatabase,
}

impl Running {
    async fn start(port: u16, envs: &[(&str, &str)]) -> Running {
        let db = TestDatabase::new().await;
        let dir = store_dir();
        let child = command(&db, dir.path(), port, envs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let running = Running {
            child,
            _dir: dir,
            _db: db,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reqwest::get(format!("http://127.0.0.1:{port}/health/live"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "rat-api did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` from `port` with the `Host` header set to `host`.
async fn get_with_host(port: u16, path: &str, host: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("host", host)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn without_a_key_on_loopback_only_loopback_and_allowed_host_names_are_served() {
    let port = free_port();
    let _api = Running::start(port, &[("RAT_ALLOWED_HOSTS", "rat.internal")]).await;
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("rat.internal:{port}"),
    ] {
        assert_eq!(get_with_host(port, "/api/v1/namespaces", &host).await, 200, "{host}");
    }
    // A page whose name was rebound to 127.0.0.1 sends its own name.
    for host in [format!("evil.example:{port}"), "attacker.test".to_owned()] {
        assert_eq!(get_with_host(port, "/api/v1/namespaces", &host).await, 403, "{host}");
        assert_eq!(get_with_host(port, "/health", &host).await, 403, "{host}");
    }
}

#[tokio::test]
async fn with_a_key_any_host_name_is_served() {
    let port = free_port();
    let _api = Running::start(port, &[("RAT_API_KEY", "k3y")]).await;
    let answer = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/namespaces"))
        .header("host", "rat.example.com")
        .bearer_auth("k3y")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let anonymous = get_with_host(port, "/api/v1/namespaces", "rat.example.com").await;
    assert_eq!(anonymous, 401, "a missing header never matches the key");
}
