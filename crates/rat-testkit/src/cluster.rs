//! A private PostgreSQL cluster run from the machine's server binaries.
//!
//! `initdb` and `postgres` refuse to run as root. When this code runs as root
//! (CI and the dev machines do), every server command runs through
//! `runuser -u postgres --`, the user is created if missing, and the cluster
//! directory is owned by that user.
//!
//! Several processes may call [`Cluster::ensure_running`] at once: a file lock
//! in the cluster directory makes exactly one of them initialize and start the
//! server while the others wait and then reuse it.

use crate::tail;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The one line every "no PostgreSQL" failure ends with.
pub const INSTALL_HINT: &str = "install the PostgreSQL server (Debian: `apt-get install -y postgresql`), \
     or set RAT_TEST_DATABASE_URL to an existing server";

/// The unprivileged user server commands run as when the caller is root.
const SERVER_USER: &str = "postgres";

/// Why a cluster could not be provided; the message says what to do.
#[derive(Debug)]
pub struct ClusterError(String);

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClusterError {}

impl ClusterError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        ClusterError(message.into())
    }
}

fn err(message: impl Into<String>) -> ClusterError {
    ClusterError(message.into())
}

/// Where a cluster lives and how it listens.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Holds `data/`, `postgres.log` and the startup lock.
    pub base_dir: PathBuf,
    /// Directory of the Unix socket (keep the path short: sockets are limited
    /// to about 100 bytes). `None` disables the socket.
    pub socket_dir: Option<PathBuf>,
    /// Also listen on `127.0.0.1:<port>`.
    pub tcp: bool,
    /// The port (also names the socket file).
    pub port: u16,
    /// `false` turns off fsync and friends: fast, and fine for throwaway data.
    pub durable: bool,
    /// More server settings, each `name=value` (passed as `-c name=value`),
    /// e.g. `ssl=on` and its certificate files.
    pub settings: Vec<String>,
}

impl ClusterOptions {
    /// The shared cluster of this checkout's tests: under the system temporary
    /// directory, named after the checkout's path and the current user, socket
    /// only, not durable.
    pub fn for_tests() -> Self {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
        let base_dir = std::env::temp_dir().join(format!(
            "rat-testkit-{}-{:08x}",
            current_uid(),
            fnv1a(checkout.as_os_str().as_encoded_bytes())
        ));
        ClusterOptions {
            socket_dir: Some(base_dir.clone()),
            base_dir,
            tcp: false,
            port: 5432,
            durable: false,
            settings: Vec::new(),
        }
    }
}

/// A running (or startable) cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    options: ClusterOptions,
    bindir: PathBuf,
}

impl Cluster {
    /// The cluster described by `options`, using the machine's server
    /// binaries. Nothing is started yet.
    pub fn new(options: ClusterOptions) -> Result<Cluster, ClusterError> {
        Ok(Cluster {
            options,
            bindir: find_server_binaries()?,
        })
    }

    /// Starts the cluster described by `options` unless it already runs,
    /// initializing its data directory on first use. Safe to call from many
    /// processes at once.
    pub fn ensure_running(options: ClusterOptions) -> Result<Cluster, ClusterError> {
        let cluster = Cluster::new(options)?;
        cluster.start()?;
        Ok(cluster)
    }

    /// Starts the server unless it runs (initializing the data directory on
    /// first use) and waits until it accepts connections.
    pub fn start(&self) -> Result<(), ClusterError> {
        self.prepare_base_dir()?;
        let lock_path = self.options.base_dir.join("startup.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| err(format!("cannot open {}: {e}", lock_path.display())))?;
        lock.lock()
            .map_err(|e| err(format!("cannot lock {}: {e}", lock_path.display())))?;
        let result = self.start_locked();
        drop(lock);
        result
    }

    /// A key-value connection string for the `postgres` database as superuser.
    pub fn admin_url(&self) -> String {
        self.url_for("postgres")
    }

    /// A key-value connection string for database `dbname` as superuser.
    pub fn url_for(&self, dbname: &str) -> String {
        match &self.options.socket_dir {
            Some(dir) => format!(
                "host={} port={} user={SERVER_USER} dbname={dbname}",
                dir.display(),
                self.options.port
            ),
            None => format!(
                "host=127.0.0.1 port={} user={SERVER_USER} dbname={dbname}",
                self.options.port
            ),
        }
    }

    /// The same as a `postgres://` URL over TCP (only when `tcp` is on).
    pub fn tcp_url_for(&self, dbname: &str) -> Option<String> {
        self.options
            .tcp
            .then(|| format!("postgres://{SERVER_USER}@127.0.0.1:{}/{dbname}", self.options.port))
    }

    /// The options the cluster was started with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// Whether the server of this cluster is running.
    pub fn is_running(&self) -> bool {
        self.pg_ctl(&["status"]).map(|o| o.status.success()).unwrap_or(false)
    }

    /// Stops the server (fast shutdown), if it runs.
    pub fn stop(&self) -> Result<(), ClusterError> {
        if !self.data_dir().join("PG_VERSION").exists() || !self.is_running() {
            return Ok(());
        }
        let out = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"])?;
        if !out.status.success() {
            return Err(err(format!(
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Stops the server with an immediate shutdown (no checkpoint: a crash,
    /// recovered from at the next start), if it runs.
    pub fn stop_immediately(&self) -> Result<(), ClusterError> {
        if !self.data_dir().join("PG_VERSION").exists() || !self.is_running() {
            return Ok(());
        }
        let out = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "60"])?;
        if !out.status.success() {
            return Err(err(format!(
                "pg_ctl stop -m immediate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Freezes the running server with SIGSTOP: the postmaster first (so it
    /// forks no new backend), then every process it started. Connections
    /// are still accepted by the kernel but nothing answers, as when the
    /// database host stops responding; [`Cluster::resume`] undoes it.
    pub fn pause(&self) -> Result<(), ClusterError> {
        let postmaster = self.postmaster_pid()?;
        signal(postmaster, "-STOP")?;
        for child in children_of(postmaster) {
            // A backend that exited meanwhile is not an error.
            let _ = signal(child, "-STOP");
        }
        Ok(())
    }

    /// Lets a server frozen by [`Cluster::pause`] run again (SIGCONT to its
    /// processes, the postmaster last).
    pub fn resume(&self) -> Result<(), ClusterError> {
        let postmaster = self.postmaster_pid()?;
        for child in children_of(postmaster) {
            let _ = signal(child, "-CONT");
        }
        signal(postmaster, "-CONT")
    }

    /// The postmaster's process id, from the first line of `postmaster.pid`.
    fn postmaster_pid(&self) -> Result<u32, ClusterError> {
        let path = self.data_dir().join("postmaster.pid");
        let text = fs::read_to_string(&path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
        text.lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| err(format!("{} holds no process id", path.display())))
    }

    fn data_dir(&self) -> PathBuf {
        self.options.base_dir.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.options.base_dir.join("postgres.log")
    }

    fn prepare_base_dir(&self) -> Result<(), ClusterError> {
        let base = &self.options.base_dir;
        fs::create_dir_all(base).map_err(|e| err(format!("cannot create {}: {e}", base.display())))?;
        if is_root() {
            let (uid, gid) = ensure_server_user()?;
            // The server user must own its directory, and be able to reach it.
            std::os::unix::fs::chown(base, Some(uid), Some(gid))
                .map_err(|e| err(format!("cannot chown {}: {e}", base.display())))?;
            if let Some(socket_dir) = &self.options.socket_dir {
                fs::create_dir_all(socket_dir)
                    .map_err(|e| err(format!("cannot create {}: {e}", socket_dir.display())))?;
                std::os::unix::fs::chown(socket_dir, Some(uid), Some(gid))
                    .map_err(|e| err(format!("cannot chown {}: {e}", socket_dir.display())))?;
            }
        }
        Ok(())
    }

    fn start_locked(&self) -> Result<(), ClusterError> {
        if !self.data_dir().join("PG_VERSION").exists() {
            self.initdb()?;
        }
        if self.is_running() {
            return self.wait_until_accepting();
        }
        let mut settings = vec![
            format!("-p {}", self.options.port),
            format!(
                "-c listen_addresses='{}'",
                if self.options.tcp { "127.0.0.1" } else { "" }
            ),
            format!(
                "-c unix_socket_directories='{}'",
                self.options
                    .socket_dir
                    .as_deref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            ),
            "-c max_connections=300".to_owned(),
            "-c shared_buffers=128MB".to_owned(),
        ];
        if !self.options.durable {
            settings.extend(
                ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
                    .into_iter()
                    .map(str::to_owned),
            );
        }
        settings.extend(self.options.settings.iter().map(|s| format!("-c {s}")));
        let log = self.log_file();
        let out = self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            &log.display().to_string(),
            "-o",
            &settings.join(" "),
        ])?;
        if !out.status.success() {
            return Err(err(format!(
                "PostgreSQL did not start: {}\n--- {} ---\n{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                log.display(),
                tail(&log, 40)
            )));
        }
        self.wait_until_accepting()
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let data = self.data_dir().display().to_string();
        let out = self.run_server_tool(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                SERVER_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        if !out.status.success() {
            return Err(err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            )));
        }
        Ok(())
    }

    fn wait_until_accepting(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let host = match &self.options.socket_dir {
            Some(dir) => dir.display().to_string(),
            None => "127.0.0.1".to_owned(),
        };
        let port = self.options.port.to_string();
        loop {
            let ready = self
                .run_server_tool(
                    "pg_isready",
                    &["-h", &host, "-p", &port, "-U", SERVER_USER, "-d", "postgres"],
                )
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(err(format!(
                    "PostgreSQL runs but does not accept connections after 60 s; see {}",
                    self.log_file().display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output, ClusterError> {
        let data = self.data_dir().display().to_string();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.run_server_tool("pg_ctl", &all)
    }

    fn run_server_tool(&self, tool: &str, args: &[&str]) -> Result<Output, ClusterError> {
        let program = self.bindir.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", SERVER_USER, "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args).current_dir(&self.options.base_dir);
        // pg_ctl start leaves the server running; never let it inherit our
        // stdout/stderr pipes, or the test harness waits for it forever.
        command.stdin(std::process::Stdio::null());
        command
            .output()
            .map_err(|e| err(format!("cannot run {}: {e}", program.display())))
    }
}

/// Sends `signal` (as `kill` spells it: `-STOP`) to process `pid`.
fn signal(pid: u32, signal: &str) -> Result<(), ClusterError> {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .map_err(|e| err(format!("kill {signal} {pid}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(err(format!("kill {signal} {pid} failed ({status})")))
    }
}

/// The processes whose parent is `parent` (read from `/proc`).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // `/proc/PID/stat` is "pid (comm) state ppid ...", and comm may
            // hold spaces or parentheses: read after the last ')'.
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

/// Finds the directory holding `initdb`, `pg_ctl` and `postgres`:
/// `RAT_PG_BINDIR` alone when it is set, otherwise `pg_config --bindir`, the
/// newest `/usr/lib/postgresql/*/bin`, then `PATH`.
pub fn find_server_binaries() -> Result<PathBuf, ClusterError> {
    if let Some(dir) = std::env::var_os("RAT_PG_BINDIR") {
        return find_in(vec![PathBuf::from(dir)]);
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, e.path().join("bin")))
            })
            .collect();
        versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        candidates.extend(versions.into_iter().map(|(_, p)| p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    find_in(candidates)
}

/// The first candidate directory holding every server binary we run.
fn find_in(candidates: Vec<PathBuf>) -> Result<PathBuf, ClusterError> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres", "pg_isready"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    candidates.into_iter().find(|dir| has_all(dir)).ok_or_else(|| {
        err(format!(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; {INSTALL_HINT}"
        ))
    })
}

/// Makes `path` the server user's (when running as root, the server runs as
/// that user and must own what it reads, such as a TLS key); a no-op
/// otherwise.
pub fn give_to_server_user(path: &Path) -> Result<(), ClusterError> {
    if is_root() {
        let (uid, gid) = ensure_server_user()?;
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| err(format!("cannot chown {}: {e}", path.display())))?;
    }
    Ok(())
}

fn current_uid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

pub(crate) fn is_root() -> bool {
    current_uid() == 0
}

/// Creates the server user if it does not exist; returns its uid and gid.
pub(crate) fn ensure_server_user() -> Result<(u32, u32), ClusterError> {
    let lookup = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, SERVER_USER]).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .flatten()
    };
    if lookup("-u").is_none() {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ])
            .output()
            .map_err(|e| err(format!("cannot run useradd: {e}")))?;
        // Another process may have created it meanwhile; look again below.
        if !out.status.success() && lookup("-u").is_none() {
            return Err(err(format!(
                "cannot create the unprivileged user {SERVER_USER:?} needed to run PostgreSQL as root: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    match (lookup("-u"), lookup("-g")) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => Err(err(format!("cannot look up user {SERVER_USER:?}"))),
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_fail_with_the_install_hint() {
        let empty = tempfile::Builder::new().prefix("rat-no-pg-").tempdir().unwrap();
        let message = find_in(vec![empty.path().to_owned()]).unwrap_err().to_string();
        assert!(message.contains("apt-get install -y postgresql"), "{message}");
        assert!(message.contains("RAT_TEST_DATABASE_URL"), "{message}");
    }

    #[test]
    fn a_directory_with_every_binary_is_found() {
        let dir = tempfile::Builder::new().prefix("rat-fake-pg-").tempdir().unwrap();
        for binary in ["initdb", "pg_ctl", "postgres", "pg_isready"] {
            fs::write(dir.path().join(binary), "").unwrap();
        }
        let found = find_in(vec![PathBuf::from("/nonexistent"), dir.path().to_owned()]);
        assert_eq!(found.unwrap(), dir.path());
    }
}

/// A throwaway cluster of one test: TCP on a free port of `127.0.0.1`, no
/// socket, not durable unless started with
/// [`PrivateCluster::start_durable`], under the system temporary directory; stopped and
/// removed when dropped. For tests that stop and start Postgres itself
/// (which the shared cluster of [`crate::TestDatabase`] must never be).
#[derive(Debug)]
pub struct PrivateCluster {
    cluster: Cluster,
    dir: PathBuf,
}

impl PrivateCluster {
    /// Initializes and starts it, waiting until it accepts connections.
    pub fn start() -> Result<PrivateCluster, ClusterError> {
        PrivateCluster::start_with(false)
    }

    /// Like [`PrivateCluster::start`], but durable (fsync and synchronous
    /// commit on): a commit acknowledged to a client survives an immediate
    /// shutdown. For suites that check that nothing acknowledged is lost
    /// across faults; without it Postgres itself may drop the last commits
    /// (`synchronous_commit=off`), which would read as the product's loss.
    pub fn start_durable() -> Result<PrivateCluster, ClusterError> {
        PrivateCluster::start_with(true)
    }

    fn start_with(durable: bool) -> Result<PrivateCluster, ClusterError> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rat-private-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).map_err(|e| err(format!("creating {}: {e}", dir.display())))?;
        give_to_server_user(&dir)?;
        let port = crate::free_port().map_err(ClusterError::new)?;
        let cluster = Cluster::new(ClusterOptions {
            base_dir: dir.join("pg"),
            socket_dir: None,
            tcp: true,
            port,
            durable,
            settings: Vec::new(),
        })?;
        let private = PrivateCluster { cluster, dir };
        private.cluster.start()?;
        Ok(private)
    }

    /// The cluster (to stop and start it).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// A `postgres://` URL of database `postgres` as superuser.
    pub fn url(&self) -> String {
        self.cluster
            .tcp_url_for("postgres")
            .expect("a private cluster listens on TCP")
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
