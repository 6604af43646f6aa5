//! The release `rat-api` a benchmark measures: started on free loopback
//! ports against the benchmark's database and a filesystem store, waited for
//! until healthy, and killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

/// How many times [`ReleaseApi::start`] starts `rat-api` before giving up.
const START_ATTEMPTS: u32 = 3;

/// A running `rat-api`; killed (and reaped) when dropped.
pub(crate) struct ReleaseApi {
    child: Child,
    /// `http://127.0.0.1:<port>` of the public listener.
    pub(crate) base: String,
    /// `http://127.0.0.1:<port>` of the runner listener.
    pub(crate) internal_base: String,
}

impl ReleaseApi {
    /// Starts `binary` with a pool of `pool_size` connections to
    /// `database_url`, the filesystem store in `store_dir`, logging warnings
    /// only, plus `extra_env`; returns once `/health` answers 200 (an error
    /// after 10 s). A port found free can be taken by someone else before
    /// the api binds it (an outgoing connection's ephemeral port): when the
    /// api exits before it is healthy, it is started again on other ports,
    /// up to [`START_ATTEMPTS`] times.
    pub(crate) async fn start(
        binary: &Path,
        database_url: &str,
        store_dir: &Path,
        pool_size: usize,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<ReleaseApi> {
        for attempt in 1..=START_ATTEMPTS {
            let (port, internal_port) = (free_port()?, free_port()?);
            let child = Command::new(binary)
                .env("RAT_DATABASE_URL", database_url)
                .env("RAT_DB_POOL_SIZE", pool_size.to_string())
                .env("RAT_STORE", format!("fs:{}", store_dir.display()))
                .env("RAT_LISTEN_ADDR", format!("127.0.0.1:{port}"))
                .env("RAT_INTERNAL_LISTEN_ADDR", format!("127.0.0.1:{internal_port}"))
                .env("RUST_LOG", "warn")
                .envs(extra_env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            let mut api = ReleaseApi {
                child,
                base: format!("http://127.0.0.1:{port}"),
                internal_base: format!("http://127.0.0.1:{internal_port}"),
            };
            match api.wait_healthy().await? {
                None => return Ok(api),
                Some(status) if attempt < START_ATTEMPTS => {
                    eprintln!("rat-api exited ({status}) before it was healthy; starting it again on other ports");
                }
                Some(status) => {
                    anyhow::bail!("rat-api exited ({status}) before it was healthy, {START_ATTEMPTS} times")
                }
            }
        }
        unreachable!("the last attempt returns or fails")
    }

    /// Waits until `/health` answers 200 (`None`), or the process exits
    /// first (its status); an error after 10 s.
    async fn wait_healthy(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let http = reqwest::Client::new();
        let health = format!("{}/health", self.base);
        for _ in 0..100 {
            if http.get(&health).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(None);
            }
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("rat-api did not become healthy within 10 s")
    }

    /// The process id (to read its memory use).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ReleaseApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
