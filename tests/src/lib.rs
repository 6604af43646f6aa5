//! Helpers for the end-to-end tests in `tests/tests/`: finding the real
//! binaries and running them as child processes.
//!
//! What it must never do: be a dependency of anything but this crate's
//! tests and the `rat-chaos` tool.

pub mod chaos;
mod platform;
pub mod soak;

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The directory of the platform's four binaries (rat-api, rat-scheduler,
/// rat-reaper, rat-runner), each checked present as [`binary`] does: what
/// the chaos and soak suites start.
pub fn platform_bin_dir() -> PathBuf {
    for name in ["rat-scheduler", "rat-reaper", "rat-runner"] {
        binary(name);
    }
    binary("rat-api")
        .parent()
        .expect("the binaries' directory")
        .to_path_buf()
}

/// Where the binary `name` is: `$RAT_BIN_DIR/<name>` (set by
/// `cargo xtask test`, which builds every binary first), or else
/// `target/debug/<name>` in the workspace. Fails the test, saying what to do,
/// when it is not there.
pub fn binary(name: &str) -> PathBuf {
    let (path, from) = match std::env::var_os("RAT_BIN_DIR") {
        Some(dir) => (PathBuf::from(dir).join(name), "RAT_BIN_DIR"),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("tests/ lives in the workspace")
                .join("target/debug")
                .join(name),
            "the default target/debug (RAT_BIN_DIR is not set)",
        ),
    };
    assert!(
        path.is_file(),
        "{name} not found at {} (from {from}): run `cargo xtask test`, which builds the binaries and sets \
         RAT_BIN_DIR, or `cargo build -p {name}` before `cargo test -p tests`",
        path.display()
    );
    path
}

/// Starts `binary` with `env` added to the environment, stderr appended to
/// `log` (the binaries log to stderr). The child is killed when dropped.
pub fn spawn(binary: &Path, env: &[(&str, &str)], log: &Path) -> tokio::process::Child {
    spawn_args(binary, &[], env, log)
}

/// [`spawn`] with command-line arguments.
pub fn spawn_args(binary: &Path, args: &[&str], env: &[(&str, &str)], log: &Path) -> tokio::process::Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
    tokio::process::Command::new(binary)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()))
}

/// Sends SIGTERM (a graceful stop) to a child.
pub async fn terminate(child: &tokio::process::Child) {
    let pid = child.id().expect("a running child has a pid");
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .expect("kill -TERM");
    assert!(status.success(), "kill -TERM {pid} failed");
}

/// The last `lines` lines of a file (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A fresh directory under the system temporary directory, for one test's
/// logs and files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// A TCP port on `127.0.0.1` nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until every address of `addresses` accepts connections, for at
/// most `seconds`; fails the test with the tail of `log` otherwise.
pub async fn wait_listening(addresses: &[&str], seconds: u64, log: &Path) {
    for _ in 0..seconds * 10 {
        let mut all = true;
        for address in addresses {
            all &= tokio::net::TcpStream::connect(address).await.is_ok();
        }
        if all {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{addresses:?} did not listen within {seconds} s:\n{}", tail(log, 40));
}

/// `rat-api` and the dev `rat-runner`, started as `cargo xtask dev` starts
/// them (no API key, a random runner token), on `database_url` and the
/// store `store` (a `RAT_STORE` value); both are killed when dropped.
pub struct DevPlatform {
    /// The public listener's `host:port`.
    pub listen: String,
    /// rat-api's log.
    pub api_log: PathBuf,
    /// rat-runner's log.
    pub runner_log: PathBuf,
    _api: tokio::process::Child,
    _runner: tokio::process::Child,
}

impl DevPlatform {
    /// Starts both, logs under `scratch`, the runner named `runner_id`, and
    /// waits until rat-api listens.
    pub async fn start(database_url: &str, store: &str, scratch: &Path, runner_id: &str) -> DevPlatform {
        let (listen, internal) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let token = uuid::Uuid::new_v4().simple().to_string();
        let api_log = scratch.join("rat-api.log");
        let runner_log = scratch.join("rat-runner.log");
        let api = spawn(
            &binary("rat-api"),
            &[
                ("RAT_DATABASE_URL", database_url),
                ("RAT_DB_POOL_SIZE", "4"),
                ("RAT_STORE", store),
                ("RAT_LISTEN_ADDR", &listen),
                ("RAT_INTERNAL_LISTEN_ADDR", &internal),
                ("RAT_RUNNER_TOKEN", &token),
                ("RUST_LOG", "warn"),
            ],
            &api_log,
        );
        wait_listening(&[&listen, &internal], 30, &api_log).await;
        let runner = spawn(
            &binary("rat-runner"),
            &[
                ("RAT_RUNNER_API_URL", &format!("http://{internal}")),
                ("RAT_RUNNER_TOKEN", &token),
                ("RAT_RUNNER_ID", runner_id),
                ("RAT_RUNNER_POLL_MS", "200"),
            ],
            &runner_log,
        );
        DevPlatform {
            listen,
            api_log,
            runner_log,
            _api: api,
            _runner: runner,
        }
    }

    /// The tails of both logs, for a failure message.
    pub fn logs(&self) -> String {
        format!(
            "rat-api:\n{}\nrat-runner:\n{}",
            tail(&self.api_log, 30),
            tail(&self.runner_log, 30)
        )
    }
}
