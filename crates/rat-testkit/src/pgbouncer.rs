//! A private PgBouncer in transaction pooling mode, in front of a test
//! database's server: how the services run behind a transaction pooler.
//!
//! It writes its ini and auth file into a temporary directory, listens on a
//! free port of 127.0.0.1, and lets any database of the server through (a
//! `*` entry), each with a small pool (`default_pool_size`, 10 by default),
//! so that many client connections really share a few server sessions. It
//! runs in the foreground as a child process, killed when the value is
//! dropped. PgBouncer refuses to run as root: when this code runs as root,
//! it runs as the unprivileged `postgres` user (created if missing), as the
//! test cluster's server does ([`crate::cluster`]).
//!
//! Without PgBouncer installed, [`PgBouncer::start`] fails and says how to
//! install it; nothing is skipped.

use crate::{free_port, tail};
use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The one line every "no PgBouncer" failure ends with.
pub const INSTALL_HINT: &str = "install PgBouncer (Debian: `apt-get install -y pgbouncer`), or set RAT_PGBOUNCER \
                                to its binary";

/// Names PgBouncer's binary when it is not on `PATH` or in `/usr/sbin`.
pub const BINARY_ENV: &str = "RAT_PGBOUNCER";

/// The database name of PgBouncer's admin console (`SHOW POOLS`, `SHOW STATS`).
pub const ADMIN_DATABASE: &str = "pgbouncer";

/// How a private PgBouncer is set up.
#[derive(Debug, Clone)]
pub struct PgBouncerOptions {
    /// Server connections per (database, user) pair.
    pub default_pool_size: u16,
    /// Client connections PgBouncer accepts in all.
    pub max_client_conn: u32,
    /// Login roles besides the backend URL's user that clients may connect
    /// as (each logs into the server as itself, without a password: the
    /// test cluster trusts local connections).
    pub extra_users: Vec<String>,
}

impl Default for PgBouncerOptions {
    fn default() -> Self {
        PgBouncerOptions {
            default_pool_size: 10,
            max_client_conn: 2000,
            extra_users: Vec::new(),
        }
    }
}

/// A running private PgBouncer; killed when dropped.
pub struct PgBouncer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    user: String,
}

impl std::fmt::Debug for PgBouncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBouncer")
            .field("pid", &self.child.id())
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// PgBouncer's binary: `RAT_PGBOUNCER` alone when set, else `pgbouncer` on
/// `PATH`, `/usr/sbin` or `/usr/local/sbin` (Debian installs it in
/// `/usr/sbin`, which a non-root `PATH` may lack).
pub fn find_pgbouncer() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{BINARY_ENV}={} is not a file; {INSTALL_HINT}", path.display()))
        };
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from));
    find_in(dirs)
}

/// The first `pgbouncer` in `dirs`.
fn find_in(dirs: Vec<PathBuf>) -> Result<PathBuf, String> {
    dirs.into_iter()
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("PgBouncer (`pgbouncer`) not found; {INSTALL_HINT}"))
}

/// A value for PgBouncer's ini and auth file, which have no escapes: one
/// holding a quote, backslash or control character is refused.
fn ini_value(what: &str, value: &str) -> Result<String, String> {
    if value
        .chars()
        .any(|c| c == '\'' || c == '"' || c == '\\' || c.is_control())
    {
        return Err(format!(
            "{what} {value:?} holds a quote, backslash or control character"
        ));
    }
    Ok(value.to_owned())
}

/// A role name as the auth file and PgBouncer's settings take it.
fn role_name(name: &str) -> Result<&str, String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if valid {
        Ok(name)
    } else {
        Err(format!("role name {name:?} is not a plain identifier"))
    }
}

impl PgBouncer {
    /// Starts a PgBouncer in `pool_mode = transaction` in front of the server
    /// `backend_url` (a connection string of any database on it; its host,
    /// port, user and password are used) and waits until it accepts
    /// connections.
    pub fn start(backend_url: &str, options: &PgBouncerOptions) -> Result<PgBouncer, String> {
        let binary = find_pgbouncer()?;
        let config = rat_dao::parse_database_url(backend_url).map_err(|e| format!("backend URL: {e}"))?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "127.0.0.1".to_owned(),
        };
        let backend_port = config.get_ports().first().copied().unwrap_or(5432);
        let user = role_name(config.get_user().ok_or("the backend URL names no user")?)?.to_owned();
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();

        let dir = tempfile::Builder::new()
            .prefix("rat-pgbouncer-")
            .tempdir()
            .map_err(|e| format!("cannot create PgBouncer's directory: {e}"))?;
        let ids = if crate::cluster::is_root() {
            let (uid, gid) = crate::cluster::ensure_server_user().map_err(|e| e.to_string())?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("cannot chown {}: {e}", dir.path().display()))?;
            Some((uid, gid))
        } else {
            None
        };

        // The auth file: every user clients may log in as. With
        // `auth_type = trust` clients are not asked for a password, but the
        // user must be listed; the password (if any) is what PgBouncer
        // gives the server.
        let mut auth = String::new();
        auth.push_str(&format!("\"{user}\" \"{}\"\n", ini_value("password", &password)?));
        for extra in &options.extra_users {
            auth.push_str(&format!("\"{}\" \"\"\n", role_name(extra)?));
        }
        let auth_file = dir.path().join("userlist.txt");
        let log_file = dir.path().join("pgbouncer.log");
        let ini_file = dir.path().join("pgbouncer.ini");
        write_file(&auth_file, &auth, ids)?;

        let mut last_error = String::new();
        // The port is free when picked, but another process may take it
        // before PgBouncer binds it: try a few.
        for _ in 0..5 {
            let port = free_port()?;
            let ini = format!(
                "[databases]\n\
                 * = host={host} port={backend_port}\n\
                 \n\
                 [pgbouncer]\n\
                 pool_mode = transaction\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {auth}\n\
                 admin_users = {user}\n\
                 stats_users = {user}\n\
                 max_client_conn = {max_client}\n\
                 default_pool_size = {pool}\n\
                 min_pool_size = 0\n\
                 reserve_pool_size = 0\n\
                 max_db_connections = 0\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 server_reset_query =\n\
                 logfile = {log}\n\
                 log_connections = 0\n\
                 log_disconnections = 0\n\
                 verbose = 0\n",
                host = ini_value("backend host", &host)?,
                auth = auth_file.display(),
                max_client = options.max_client_conn,
                pool = options.default_pool_size,
                log = log_file.display(),
            );
            write_file(&ini_file, &ini, ids)?;
            let mut command = Command::new(&binary);
            command
                .arg(&ini_file)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some((uid, gid)) = ids {
                command.uid(uid).gid(gid);
            }
            let mut child = command
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}; {INSTALL_HINT}", binary.display()))?;
            match wait_until_listening(&mut child, port) {
                Ok(()) => {
                    return Ok(PgBouncer { child, dir, port, user });
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = format!("{why}\n--- {} ---\n{}", log_file.display(), tail(&log_file, 30));
                }
            }
        }
        Err(format!("PgBouncer did not start: {last_error}"))
    }

    /// A key-value connection string to database `dbname` through
    /// PgBouncer, as the backend URL's user.
    pub fn url_for(&self, dbname: &str) -> String {
        self.url_as(&self.user, dbname)
    }

    /// A key-value connection string to database `dbname` through
    /// PgBouncer, as `user` (one of the options' `extra_users`).
    pub fn url_as(&self, user: &str, dbname: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} dbname={dbname}", self.port)
    }

    /// The same as a `postgres://` URL (for tools such as pgbench).
    pub fn postgres_url_for(&self, dbname: &str) -> String {
        format!("postgres://{}@127.0.0.1:{}/{dbname}", self.user, self.port)
    }

    /// The admin console (`SHOW POOLS`, `SHOW STATS`; simple queries only).
    pub fn admin_url(&self) -> String {
        self.url_for(ADMIN_DATABASE)
    }

    /// The port PgBouncer listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PgBouncer's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of PgBouncer's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.path().join("pgbouncer.log"), lines)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads PgBouncer's admin console answer to `command` (e.g. `SHOW POOLS`)
/// as rows of column name → value.
pub async fn admin_show(
    bouncer: &PgBouncer,
    command: &str,
) -> Result<Vec<std::collections::BTreeMap<String, String>>, String> {
    let (client, connection) = tokio_postgres::connect(&bouncer.admin_url(), tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot reach PgBouncer's admin console: {e}"))?;
    let task = tokio::spawn(connection);
    let messages = client
        .simple_query(command)
        .await
        .map_err(|e| format!("{command} on PgBouncer's admin console: {e}"))?;
    drop(client);
    let _ = task.await;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_owned(), row.get(i).unwrap_or_default().to_owned()))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

fn write_file(path: &Path, text: &str, owner: Option<(u32, u32)>) -> Result<(), String> {
    let mut file = fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
    }
    Ok(())
}

fn wait_until_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("pgbouncer exited with {status}"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("pgbouncer does not listen on port {port} after 20 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pgbouncer_fails_with_the_install_hint() {
        let message = find_in(vec![PathBuf::from("/nonexistent")]).unwrap_err();
        assert!(message.contains("apt-get install -y pgbouncer"), "{message}");
    }

    #[test]
    fn values_with_quotes_are_refused() {
        assert!(ini_value("password", "a'b").is_err());
        assert!(ini_value("password", "a\"b").is_err());
        assert_eq!(ini_value("host", "/tmp/x").unwrap(), "/tmp/x");
        assert!(role_name("postgres").is_ok());
        assert!(role_name("bad role").is_err());
        assert!(role_name("").is_err());
    }
}
