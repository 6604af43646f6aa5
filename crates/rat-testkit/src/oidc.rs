//! A real OpenID provider for end-to-end tests of signing in: the npm
//! package `oidc-provider` (a certified OpenID Provider implementation),
//! run by Node.js.
//!
//! It is installed on first use into `target/oidc-provider` (pinned
//! [`OIDC_PROVIDER_PACKAGE`], a few seconds once; a file lock makes
//! concurrent test processes install it once), next to the script that
//! configures it (`oidc/provider.mjs` beside this file, written there at each
//! start). Each [`OidcProvider`] serves its own issuer on `127.0.0.1` and a
//! free port, with a fresh ES256 signing key published in its JWKS and the
//! confidential clients it was given: a client asks the token endpoint for an
//! access token with the `client_credentials` grant (HTTP Basic client
//! authentication) and gets a JWT for the configured audience, valid
//! [`ACCESS_TOKEN_TTL`], carrying that client's claims (a user name and
//! roles) besides `sub` (the client id), `iss`, `aud`, `exp`.
//! It logs every request to `target/oidc-provider-logs/oidc-<test pid>-<n>.log`
//! (logs of finished test processes are removed by the next start).
//!
//! The provider never outlives the test process: Node.js is its child, reading
//! a pipe whose other end only the test process holds, and exits when that
//! pipe closes, which the kernel does when the test process ends however it
//! ends (a panic, SIGKILL); it also exits if it is ever given another parent.
//! Dropping an [`OidcProvider`] kills it at once.
//!
//! Without Node.js (18 or later) and npm, or without access to the npm
//! registry on first use, starting fails and the message says what to
//! install; the tests that need it never skip.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

use crate::s3::{sweep_logs, target_dir};
use crate::tail;

/// What gets installed, with npm.
pub const OIDC_PROVIDER_PACKAGE: &str = "oidc-provider@8.8.1";

/// The line every "cannot provide the OpenID provider" failure ends with.
pub const OIDC_INSTALL_HINT: &str = "the OpenID Connect end-to-end tests run the npm package \
     `oidc-provider@8.8.1` with Node.js, installed under target/oidc-provider; they need node (18 or later) and \
     npm (Debian: `apt-get install -y nodejs npm`) and network access to the npm registry on first use";

/// How long every access token the provider issues is valid.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The resource indicator of the one API the provider issues tokens for (an
/// absolute URI, as RFC 8707 wants; clients need not send it, it is the default).
const RESOURCE: &str = "urn:rat:api";

/// The script that configures and serves the provider.
const PROVIDER_SCRIPT: &str = include_str!("oidc/provider.mjs");

/// How long the provider may take to serve after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

static LOG_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A confidential client of the provider; every access token it gets carries
/// `claims`.
#[derive(Debug, Clone)]
pub struct OidcClient {
    /// The client id (the tokens' `sub` and `client_id`).
    pub id: String,
    /// The client secret (random).
    pub secret: String,
    /// Claims added to each of its access tokens (never replacing `sub`,
    /// `iss`, `aud`, `exp` and the other claims the provider sets).
    pub claims: Value,
}

impl OidcClient {
    /// A client `id` acting for `user`: its tokens say `preferred_username`
    /// = `user`, `groups` = `roles`, an `email` and a `name`.
    pub fn user(id: &str, user: &str, roles: &[&str]) -> OidcClient {
        OidcClient {
            id: id.to_owned(),
            secret: format!("secret-{:032x}", rand::random::<u128>()),
            claims: json!({
                "preferred_username": user,
                "groups": roles,
                "email": format!("{user}@example.com"),
                "name": format!("User {user}"),
            }),
        }
    }
}

/// Makes sure [`OIDC_PROVIDER_PACKAGE`] is installed in
/// `target/oidc-provider`; returns that directory. Installs it with npm when
/// missing or incomplete, under a file lock shared by every process.
pub fn ensure_oidc_provider_installed() -> Result<PathBuf, String> {
    let dir = target_dir().join("oidc-provider");
    check_node()?;
    let complete = dir.join("node_modules/oidc-provider/package.json");
    let (name, hint) = (OIDC_PROVIDER_PACKAGE, OIDC_INSTALL_HINT);
    crate::install::install_once(&dir, "oidc-provider.lock", name, &complete, name, hint, || {
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let out = Command::new("npm")
            .arg("install")
            .arg("--prefix")
            .arg(&dir)
            .args(["--no-audit", "--no-fund", "--no-update-notifier", OIDC_PROVIDER_PACKAGE])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run npm ({e}); {OIDC_INSTALL_HINT}"))?;
        if !out.status.success() {
            let doing = format!("installing {OIDC_PROVIDER_PACKAGE} with npm");
            return Err(crate::install::failed(&doing, &out.stderr, OIDC_INSTALL_HINT));
        }
        Ok(())
    })?;
    Ok(dir)
}

/// Fails, saying what to install, unless `node` (18 or later) and `npm` run.
fn check_node() -> Result<(), String> {
    let version = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run node ({e}); {OIDC_INSTALL_HINT}"))?;
    let text = String::from_utf8_lossy(&version.stdout);
    let major = text
        .trim()
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(major) if major >= 18 => {}
        _ => {
            return Err(format!(
                "node --version answered {:?}, not 18 or later; {OIDC_INSTALL_HINT}",
                text.trim()
            ));
        }
    }
    let npm = Command::new("npm")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run npm ({e}); {OIDC_INSTALL_HINT}"))?;
    if !npm.status.success() {
        return Err(format!("`npm --version` failed; {OIDC_INSTALL_HINT}"));
    }
    Ok(())
}

/// A running OpenID provider on `127.0.0.1`, killed when dropped.
#[derive(Debug)]
pub struct OidcProvider {
    issuer: String,
    token_endpoint: String,
    log: PathBuf,
    pid: u32,
    /// Node.js, holding the write end of its stdin; `None` once killed.
    process: Mutex<Option<Child>>,
}

impl OidcProvider {
    /// Installs the provider if needed and starts one issuing tokens for
    /// `audience` to `clients`, waiting until it serves. Panics with the
    /// reason and [`OIDC_INSTALL_HINT`] when it cannot.
    pub fn start(audience: &str, clients: &[OidcClient]) -> OidcProvider {
        match Self::try_start(audience, clients) {
            Ok(provider) => provider,
            Err(e) => panic!("cannot start the OpenID provider: {e}"),
        }
    }

    /// [`OidcProvider::start`] without the panic.
    pub fn try_start(audience: &str, clients: &[OidcClient]) -> Result<OidcProvider, String> {
        let dir = ensure_oidc_provider_installed()?;
        // Written at each start (under a name of this process, then renamed),
        // so the script in use is always this build's.
        let script = dir.join("rat-provider.mjs");
        let temp = dir.join(format!(".rat-provider-{}.mjs", std::process::id()));
        fs::write(&temp, PROVIDER_SCRIPT)
            .and_then(|()| fs::rename(&temp, &script))
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        let logs = target_dir().join("oidc-provider-logs");
        fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
        sweep_logs(&logs, "oidc-");
        let log = logs.join(format!(
            "oidc-{}-{}.log",
            std::process::id(),
            LOG_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let config = json!({
            "audience": audience,
            "resource": RESOURCE,
            "access_token_ttl_secs": ACCESS_TOKEN_TTL.as_secs(),
            "clients": clients
                .iter()
                .map(|c| json!({"client_id": c.id, "client_secret": c.secret, "claims": c.claims}))
                .collect::<Vec<_>>(),
        });
        let log_file = File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut child = Command::new("node")
            .arg(&script)
            .arg(config.to_string())
            .current_dir(&dir)
            // The pipe whose closing ends the provider: std opens it
            // close-on-exec, so no other child of the test process holds it.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot run node ({e}); {OIDC_INSTALL_HINT}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        // The first line says where it serves; read on a thread, so that a
        // provider that neither serves nor exits is given up on in time.
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = sender.send(read);
        });
        let ready = receiver.recv_timeout(READY_TIMEOUT);
        let address = match &ready {
            Ok(Ok(line)) => serde_json::from_str::<Value>(line).ok().and_then(|ready| {
                let issuer = ready["issuer"].as_str()?.to_owned();
                let token_endpoint = ready["token_endpoint"].as_str()?.to_owned();
                Some((issuer, token_endpoint))
            }),
            _ => None,
        };
        let Some((issuer, token_endpoint)) = address else {
            let _ = child.kill();
            let _ = child.wait();
            let what = match ready {
                Ok(Ok(line)) if !line.is_empty() => format!("said {line:?}, not where it serves"),
                Ok(_) => "exited during startup".to_owned(),
                Err(_) => format!("did not serve within {READY_TIMEOUT:?}"),
            };
            return Err(format!(
                "the OpenID provider {what}; see {}:\n{}",
                log.display(),
                tail(&log, 20)
            ));
        };
        tracing::info!(issuer, "the OpenID provider serves");
        Ok(OidcProvider {
            issuer,
            token_endpoint,
            log,
            pid: child.id(),
            process: Mutex::new(Some(child)),
        })
    }

    /// The issuer URL, e.g. `http://127.0.0.1:40123` (its discovery document
    /// is at `{issuer}/.well-known/openid-configuration`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where clients ask for access tokens.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// The file the provider logs every request to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The process id of Node.js.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the provider at once and waits until it is gone. Idempotent.
    pub fn kill(&self) {
        let mut process = self.process.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(mut child) = process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn alive(pid: u32) -> bool {
        // A zombie (dead, not yet reaped) counts as gone.
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
    }

    /// The whole answer (head and body) to `GET path` of the server at `base`.
    fn http_get(base: &str, path: &str) -> String {
        use std::io::{Read, Write};
        let host = base.strip_prefix("http://").unwrap();
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    fn wait_until_gone(pid: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        !alive(pid)
    }

    #[test]
    fn the_provider_serves_its_discovery_document_and_dies_when_dropped() {
        let provider = OidcProvider::start("rat-api", &[OidcClient::user("app", "alice", &["analysts"])]);
        assert!(
            provider.issuer().starts_with("http://127.0.0.1:"),
            "{}",
            provider.issuer()
        );
        assert_eq!(provider.token_endpoint(), format!("{}/token", provider.issuer()));
        let discovery = http_get(provider.issuer(), "/.well-known/openid-configuration");
        assert!(discovery.starts_with("HTTP/1.1 200"), "{discovery}");
        assert!(
            discovery.contains(&format!(r#""issuer":"{}""#, provider.issuer())),
            "{discovery}"
        );
        let pid = provider.pid();
        assert!(alive(pid));
        drop(provider);
        assert!(!alive(pid), "the provider still runs after it was dropped");
    }

    #[test]
    fn the_provider_dies_with_the_process_that_started_it() {
        // A stand-in for a killed test process: a shell that starts the
        // provider reading a pipe only the shell writes to (as the test
        // process's stdin pipe), reports its pid, then is killed with SIGKILL.
        let dir = ensure_oidc_provider_installed().unwrap_or_else(|e| panic!("{e}"));
        let provider = OidcProvider::start("rat-api", &[]);
        let script = dir.join("rat-provider.mjs");
        drop(provider);
        let scratch = tempfile::tempdir().unwrap();
        let fifo = scratch.path().join("stdin");
        let config = json!({"audience": "rat-api", "resource": RESOURCE, "access_token_ttl_secs": 60, "clients": []});
        let mut parent = Command::new("sh")
            .arg("-c")
            .arg(r#"mkfifo "$1" && { node "$2" "$3" <"$1" >/dev/null 2>&1 & } && exec 3>"$1" && echo $! && wait"#)
            .arg("rat-test-parent")
            .arg(&fifo)
            .arg(&script)
            .arg(config.to_string())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut pid_line = String::new();
        BufReader::new(parent.stdout.take().unwrap())
            .read_line(&mut pid_line)
            .unwrap();
        let node_pid: u32 = pid_line.trim().parse().unwrap_or_else(|_| panic!("{pid_line:?}"));
        assert!(alive(node_pid));
        parent.kill().unwrap();
        // Reaped only after the check: a dead but unreaped parent is dead.
        let gone = wait_until_gone(node_pid);
        parent.wait().unwrap();
        assert!(gone, "the provider outlived the process that started it");
    }
}
