//! moto, a Python S3 server with object versioning, for tests of the S3 file
//! store.
//!
//! moto is installed on first use into a virtualenv under the workspace's
//! `target/` directory (`target/moto-venv`, pinned versions, about 15 s once;
//! a file lock makes concurrent test processes install it once). Each
//! [`MotoServer`] runs on a free loopback port, logs to
//! `target/moto-logs/moto-<test pid>-<port>.log` (logs of finished test
//! processes are removed by the next start) and keeps everything in memory.
//!
//! moto never outlives the test process, even when that process is killed:
//! it is started by a small `sh` watchdog that waits for moto and, in a
//! background loop, checks once a second that the test process still lives;
//! when it is gone, the loop kills moto with SIGKILL. So a killed test
//! process leaves moto running for at most about a second. Dropping a
//! [`MotoServer`] (or calling [`MotoServer::kill`]) kills moto at once; the
//! [`MotoServer::shared`] instance is never dropped and relies on the watchdog.
//!
//! moto is started through [`MOTO_LAUNCHER`], which turns off one piece of
//! moto's bookkeeping: moto keeps every model object it ever creates in a
//! class-level list (for its web dashboard), and `copy.deepcopy` creates
//! them too. Its ListObjectVersions deep-copies every version of the bucket
//! before filtering by prefix, so without the launcher each listing kept a
//! copy of the bucket's whole history for good: memory grew with listings
//! times history (3.6 GB in five minutes of the soak; docs/reliability.md).
//! What moto answers is unchanged.
//!
//! Without python3 (with its venv module) or without access to PyPI, starting
//! fails and the message says what to install; S3 tests never skip silently.

use crate::{free_port, tail};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rat_versioning::s3::{S3Config, S3Store};

/// What gets installed: moto's S3 part and the web server moto_server needs.
pub const MOTO_PACKAGES: &[&str] = &["moto[s3]==5.2.5", "flask==3.1.3", "flask-cors==6.0.5"];

/// The line every "cannot provide moto" failure ends with.
pub const MOTO_INSTALL_HINT: &str = "the S3 tests run moto (PyPI `moto[s3]==5.2.5`) from a virtualenv they create \
     under target/moto-venv; they need python3 with its venv module (Debian: `apt-get install -y python3-venv \
     python3-pip`) and network access to PyPI on first use";

/// How long moto may take to answer after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The request timeout of the configurations handed to tests.
const TEST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The Python program moto runs as: moto's own `moto_server` entry point,
/// after making moto's model classes stop recording every instance they
/// create in `instances_tracked` (a list read only by moto's dashboard and
/// its reset, which we use neither of). moto 5.2.5's ListObjectVersions
/// deep-copies every version of the bucket on each call, and each copy was
/// recorded there, never freed.
pub const MOTO_LAUNCHER: &str = r#"
import sys
import moto.core.common_models as models

def _untracked(cls, *args, **kwargs):
    return object.__new__(cls)

models.BaseModel.__new__ = staticmethod(_untracked)
from moto.server import main
sys.exit(main())
"#;

/// Starts moto (`$1` = the venv's python, `$2` = port, `$3` = log file, `$5`
/// = [`MOTO_LAUNCHER`]) and waits for it; a background loop kills moto once
/// the test process (`$4`) is gone.
/// Prints moto's pid first, so that the test process can kill it directly.
/// A dead process not yet reaped by its parent (a zombie) counts as gone.
const WATCHDOG_SCRIPT: &str = r#"
alive() { kill -0 "$1" 2>/dev/null && ! grep -qs '^[0-9]* ([^)]*) Z' "/proc/$1/stat"; }
"$1" -c "$5" -H 127.0.0.1 -p "$2" >"$3" 2>&1 </dev/null &
m=$!
echo "$m"
( while alive "$4"; do sleep 1; done; kill -9 "$m" 2>/dev/null ) </dev/null >/dev/null 2>&1 &
w=$!
wait "$m"
kill "$w" 2>/dev/null
"#;

static BUCKET_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The workspace's `target/` directory (`CARGO_TARGET_DIR` when it was set
/// while compiling this crate).
pub fn target_dir() -> PathBuf {
    match option_env!("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}

/// Makes sure moto is installed in `target/moto-venv`; returns the path of
/// its `moto_server` script. Installs it (pinned [`MOTO_PACKAGES`]) when
/// missing or incomplete, under a file lock shared by every process.
pub fn ensure_moto_installed() -> Result<PathBuf, String> {
    let target = target_dir();
    let venv = target.join("moto-venv");
    let server = venv.join("bin").join("moto_server");
    let pins = MOTO_PACKAGES.join("\n");
    crate::install::install_once(
        &venv,
        "moto-venv.lock",
        &pins,
        &server,
        "moto",
        MOTO_INSTALL_HINT,
        || crate::install::pip_into_venv(&venv, MOTO_PACKAGES, "moto", MOTO_INSTALL_HINT),
    )?;
    Ok(server)
}

/// A unique, valid bucket name for one test (`rat-t-<pid>-<n>-<random>`).
pub fn unique_bucket_name() -> String {
    format!(
        "rat-t-{}-{}-{:08x}",
        std::process::id(),
        BUCKET_COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// An [`S3Store`] on a fresh bucket of the shared moto of this test process
/// ([`MotoServer::shared`]); panics with the reason when it cannot.
pub async fn test_store() -> S3Store {
    let moto = tokio::task::spawn_blocking(MotoServer::shared)
        .await
        .unwrap_or_else(|e| panic!("cannot start moto for the S3 tests: {e}"));
    S3Store::connect(moto.new_bucket_config())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to moto at {}: {e}", moto.endpoint()))
}

/// A running moto server on `127.0.0.1`, killed when dropped.
#[derive(Debug)]
pub struct MotoServer {
    port: u16,
    moto_pid: u32,
    log: PathBuf,
    /// The `sh` watchdog (moto's parent); `None` once killed and reaped.
    watchdog: Mutex<Option<Child>>,
}

impl MotoServer {
    /// Installs moto if needed and starts a server of its own, waiting until
    /// it answers. Panics with the reason and [`MOTO_INSTALL_HINT`] when it
    /// cannot.
    pub fn start() -> MotoServer {
        match Self::try_start() {
            Ok(server) => server,
            Err(e) => panic!("cannot start moto for the S3 tests: {e}"),
        }
    }

    /// [`MotoServer::start`] without the panic.
    pub fn try_start() -> Result<MotoServer, String> {
        // moto_server's own interpreter, which runs MOTO_LAUNCHER.
        let python = ensure_moto_installed()?.with_file_name("python");
        let logs = target_dir().join("moto-logs");
        fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
        sweep_logs(&logs, "moto-");
        let mut last_error = String::new();
        // Another process may take the free port before moto binds it: try again.
        for _ in 0..5 {
            let port = free_port()?;
            let log = logs.join(format!("moto-{}-{port}.log", std::process::id()));
            match Self::spawn(&python, port, log) {
                Ok(moto) => return Ok(moto),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// The one server of this test process, started on first use and killed
    /// by its watchdog when the process ends.
    pub fn shared() -> &'static MotoServer {
        static SHARED: OnceLock<MotoServer> = OnceLock::new();
        SHARED.get_or_init(MotoServer::start)
    }

    fn spawn(python: &Path, port: u16, log: PathBuf) -> Result<MotoServer, String> {
        let started = Instant::now();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("rat-moto-watchdog")
            .arg(python)
            .arg(port.to_string())
            .arg(&log)
            .arg(std::process::id().to_string())
            .arg(MOTO_LAUNCHER)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run sh: {e}"))?;
        let mut pid_line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut pid_line);
        }
        let Ok(moto_pid) = pid_line.trim().parse::<u32>() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the moto watchdog did not report moto's pid (got {pid_line:?})"
            ));
        };
        let moto = MotoServer {
            port,
            moto_pid,
            log,
            watchdog: Mutex::new(Some(child)),
        };
        let deadline = started + READY_TIMEOUT;
        loop {
            if moto.answers() {
                tracing::info!(port, seconds = started.elapsed().as_secs_f64(), "moto is ready");
                return Ok(moto);
            }
            if moto.has_exited() {
                return Err(format!(
                    "moto exited during startup; see {}:\n{}",
                    moto.log.display(),
                    tail(&moto.log, 20)
                ));
            }
            if Instant::now() > deadline {
                // Dropping `moto` kills it.
                return Err(format!(
                    "moto did not answer within {READY_TIMEOUT:?}; see {}:\n{}",
                    moto.log.display(),
                    tail(&moto.log, 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The S3 endpoint, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// moto's process id (to sample its memory).
    pub fn pid(&self) -> u32 {
        self.moto_pid
    }

    /// The file moto logs every request to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// A store configuration for `bucket` on this server: region `eu-west-1`,
    /// path style, bucket created on connect, credentials `test`/`test`, a
    /// 10 s request timeout.
    pub fn s3_config(&self, bucket: &str) -> S3Config {
        S3Config {
            endpoint: self.endpoint(),
            region: "eu-west-1".to_owned(),
            bucket: bucket.to_owned(),
            access_key: "test".to_owned(),
            secret_key: "test".to_owned(),
            path_style: true,
            create_bucket: true,
            request_timeout: TEST_REQUEST_TIMEOUT,
        }
    }

    /// [`MotoServer::s3_config`] for a fresh [`unique_bucket_name`].
    pub fn new_bucket_config(&self) -> S3Config {
        self.s3_config(&unique_bucket_name())
    }

    /// Kills moto at once with SIGKILL (to test "S3 dies mid-operation") and
    /// waits until it is gone. Idempotent.
    pub fn kill(&self) {
        let mut watchdog = self.watchdog.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(mut child) = watchdog.take() else {
            return;
        };
        // moto is not our child (the watchdog is), so std cannot signal it.
        let _ = Command::new("kill")
            .args(["-KILL", &self.moto_pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // The watchdog reaps moto, stops its loop and exits; if it does not
        // within a few seconds, kill it too.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Pauses moto (SIGSTOP): connections are still accepted by the kernel,
    /// but nothing answers, as with a hung store. [`MotoServer::resume`]
    /// undoes it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused moto (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        // moto is not our child (the watchdog is), so std cannot signal it.
        let status = Command::new("kill")
            .args([signal, &self.moto_pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot send {signal} to moto (pid {})",
            self.moto_pid
        );
    }

    /// Whether the watchdog (and so moto) has exited.
    fn has_exited(&self) -> bool {
        let mut watchdog = self.watchdog.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match watchdog.as_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Whether `GET /` answers 200 (moto's ListBuckets).
    fn answers(&self) -> bool {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        let request = format!("GET / HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n", self.port);
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 16];
        let mut read = 0;
        while read < head.len() {
            match stream.read(&mut head[read..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
        let status_line = String::from_utf8_lossy(&head[..read]);
        status_line.starts_with("HTTP/1.") && status_line.get(9..12) == Some("200")
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Removes the logs in `logs` named `<prefix><pid>-…` (`moto-<pid>-<port>.log`)
/// whose test process is gone.
pub(crate) fn sweep_logs(logs: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(logs) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_are_unique_and_valid() {
        let a = unique_bucket_name();
        let b = unique_bucket_name();
        assert_ne!(a, b);
        for name in [a, b] {
            assert!((3..=63).contains(&name.len()), "{name}");
            assert!(
                name.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
                "{name}"
            );
        }
    }

    #[test]
    fn moto_starts_answers_and_dies_when_killed() {
        let moto = MotoServer::start();
        assert!(moto.answers());
        let config = moto.new_bucket_config();
        assert_eq!(config.endpoint, moto.endpoint());
        assert_ne!(config.region, "us-east-1");
        assert!(config.path_style && config.create_bucket);
        moto.kill();
        assert!(moto.has_exited());
        assert!(!moto.answers());
        assert!(
            !Path::new(&format!("/proc/{}", moto.moto_pid)).exists(),
            "moto still runs after kill()"
        );
        moto.kill();
    }

    fn resident_mib(pid: u32) -> f64 {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib / 1024.0
    }

    /// Without [`MOTO_LAUNCHER`], each ListObjectVersions of this bucket
    /// (300 versions) kept ~300 deep copies alive for good: ~1 MiB a
    /// listing, 40 MiB over the listings below.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listing_versions_does_not_grow_moto() {
        use rat_versioning::{KeyPrefix, ObjectKey, VersionedStore};
        let moto = tokio::task::spawn_blocking(MotoServer::start).await.unwrap();
        let store = S3Store::connect(moto.new_bucket_config()).await.unwrap();
        for n in 0..300 {
            let key = ObjectKey::parse(&format!("p/f{}", n % 3)).unwrap();
            store
                .put(&key, format!("SELECT {n}").into_bytes(), "text/plain")
                .await
                .unwrap();
        }
        let prefix = KeyPrefix::parse("p/").unwrap();
        let list = || async {
            let page = store.list_versions(&prefix, None, 1000).await.unwrap();
            assert_eq!(page.items.len(), 300);
        };
        for _ in 0..5 {
            list().await;
        }
        let before = resident_mib(moto.pid());
        for _ in 0..40 {
            list().await;
        }
        let grown = resident_mib(moto.pid()) - before;
        assert!(grown < 12.0, "moto grew by {grown:.1} MiB over 40 listings");
    }

    #[tokio::test]
    async fn test_store_gives_a_fresh_versioned_bucket_each_time() {
        use rat_versioning::{ObjectKey, VersionedStore};
        let (a, b) = (test_store().await, test_store().await);
        assert_ne!(a.bucket_name(), b.bucket_name());
        let key = ObjectKey::parse("f").unwrap();
        let version = a.put(&key, b"1".to_vec(), "text/plain").await.unwrap();
        assert_eq!(a.get(&key, Some(&version)).await.unwrap().body, b"1");
        assert_eq!(b.head(&key).await.unwrap(), None);
    }

    #[test]
    fn moto_dies_with_the_process_that_started_it() {
        // A stand-in for a killed test process: a shell that starts the
        // watchdog exactly as `spawn` does, reports moto's pid, then is
        // killed with SIGKILL.
        let python = ensure_moto_installed()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_file_name("python");
        let port = free_port().unwrap();
        let log = target_dir()
            .join("moto-logs")
            .join(format!("moto-{}-{port}.log", std::process::id()));
        fs::create_dir_all(log.parent().unwrap()).unwrap();
        let mut parent = Command::new("sh")
            .arg("-c")
            .arg(r#"sh -c "$1" rat-moto-watchdog "$2" "$3" "$4" $$ "$5" & wait"#)
            .arg("rat-test-parent")
            .arg(WATCHDOG_SCRIPT)
            .arg(&python)
            .arg(port.to_string())
            .arg(&log)
            .arg(MOTO_LAUNCHER)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut pid_line = String::new();
        BufReader::new(parent.stdout.take().unwrap())
            .read_line(&mut pid_line)
            .unwrap();
        let moto_pid: u32 = pid_line.trim().parse().unwrap();
        let moto_alive = || Path::new(&format!("/proc/{moto_pid}")).exists();
        assert!(moto_alive());
        // Reaped only at the end: a dead but unreaped parent counts as dead.
        parent.kill().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while moto_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let gone = !moto_alive();
        parent.wait().unwrap();
        assert!(gone, "moto outlived the process that started it");
    }
}
