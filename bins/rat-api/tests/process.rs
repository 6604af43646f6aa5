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

fn store_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("rat-api-process-{}", uuid::Uuid::new_v4()))
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
    ] {
        assert!(help.contains(variable), "--help does not mention {variable}");
    }
}

#[tokio::test]
async fn a_public_address_without_auth_is_refused() {
    let db = TestDatabase::new().await;
    let output = Command::new(BIN)
        .env("RAT_DATABASE_URL", db.url())
        .env("RAT_STORE", format!("fs:{}", store_dir().display()))
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
        .env("RAT_STORE", format!("fs:{}", dir.display()))
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
    let _ = std::fs::remove_dir_all(&dir);
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
