//! `rat-runner`: a minimal runner speaking the runner protocol of `rat-api`'s
//! internal listener. It claims pending runs, fetches every pinned file at its
//! exact version, checks each answer is that version, logs a few lines, and
//! reports success (failure when a file cannot be fetched or is not the
//! pinned version). It executes nothing: it exists so the platform can be
//! exercised end to end on one machine (`cargo xtask dev` starts one). A real
//! runner (DuckDB, Python) speaks the same protocol.
//!
//! Variables (each also a flag):
//! - `RAT_RUNNER_API_URL`: base URL of the api's internal listener (default `http://127.0.0.1:8090`)
//! - `RAT_RUNNER_TOKEN` / `RAT_RUNNER_TOKEN_FILE`: the runner bearer token
//! - `RAT_RUNNER_ID`: this runner's name (default `<host>-<pid>`)
//! - `RAT_RUNNER_MAX_RUNS`, `RAT_RUNNER_LEASE_SECS`, `RAT_RUNNER_POLL_MS`
//! - `RAT_LOG_FORMAT`: `text` or `json`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

/// A minimal runner: claims runs and checks their pinned files.
#[derive(Debug, Parser)]
#[command(name = "rat-runner", version, about)]
struct Cli {
    #[command(flatten)]
    log: rat_cli::LogArgs,
    /// Base URL of rat-api's internal (runner) listener.
    #[arg(long, env = "RAT_RUNNER_API_URL", default_value = "http://127.0.0.1:8090")]
    api_url: String,
    /// Bearer token of the runner listener.
    #[arg(long, env = "RAT_RUNNER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the runner token.
    #[arg(long, env = "RAT_RUNNER_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// This runner's name (reported with every claim).
    #[arg(long, env = "RAT_RUNNER_ID")]
    runner_id: Option<String>,
    /// Runs claimed at once.
    #[arg(long, env = "RAT_RUNNER_MAX_RUNS", default_value_t = 4)]
    max_runs: u32,
    /// Lease asked for each run, in seconds.
    #[arg(long, env = "RAT_RUNNER_LEASE_SECS", default_value_t = 60)]
    lease_secs: u32,
    /// Pause between claims when nothing is pending, in milliseconds.
    #[arg(long, env = "RAT_RUNNER_POLL_MS", default_value_t = 1000)]
    poll_ms: u64,
    /// Exit after this many runs (0: run until stopped).
    #[arg(long, default_value_t = 0)]
    exit_after: u64,
}

#[derive(Debug, Deserialize)]
struct Claimed {
    runs: Vec<ClaimedRun>,
}

#[derive(Debug, Deserialize)]
struct ClaimedRun {
    run_id: String,
    namespace: String,
    layer: String,
    pipeline: String,
    #[serde(rename = "type")]
    pipeline_type: String,
    trigger: String,
    version_number: i64,
    files: Vec<PinnedFile>,
}

#[derive(Debug, Deserialize)]
struct PinnedFile {
    key: String,
    version_id: String,
    url: String,
}

struct Runner {
    http: reqwest::Client,
    base: String,
    token: SecretString,
    runner_id: String,
    lease_secs: u32,
}

impl Runner {
    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<reqwest::Response> {
        let response = self
            .http
            .post(self.endpoint(path))
            .bearer_auth(self.token.expose_secret())
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        Ok(response)
    }

    async fn claim(&self, max_runs: u32) -> anyhow::Result<Vec<ClaimedRun>> {
        let response = self
            .post(
                "/internal/v1/runs/claim",
                // This runner executes SQL itself and loads no plugins: it reports an
                // empty list, which `GET /api/v1/runner/plugins` shows as none.
                json!({"runner_id": self.runner_id, "max_runs": max_runs, "lease_seconds": self.lease_secs, "plugins": []}),
            )
            .await?;
        if !response.status().is_success() {
            bail!(
                "claim answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response
            .json::<Claimed>()
            .await
            .context("reading the claim answer")?
            .runs)
    }

    async fn log(&self, run_id: &str, level: &str, message: String) -> anyhow::Result<()> {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let response = self
            .post(
                &format!("/internal/v1/runs/{run_id}/logs"),
                json!({"runner_id": self.runner_id, "entries": [{"timestamp": now, "level": level, "message": message}]}),
            )
            .await?;
        if !response.status().is_success() {
            bail!("log append answered {}", response.status());
        }
        Ok(())
    }

    /// Fetches one pinned file and checks the answer is that exact version.
    async fn fetch(&self, file: &PinnedFile) -> anyhow::Result<usize> {
        let mut request = self.http.get(&file.url);
        // Only the api's own file route takes the runner token; a presigned
        // S3 URL must not receive it.
        if file.url.starts_with(&self.base) {
            request = request.bearer_auth(self.token.expose_secret());
        }
        let response = request.send().await.with_context(|| format!("fetching {}", file.key))?;
        if !response.status().is_success() {
            bail!("fetching {} answered {}", file.key, response.status());
        }
        let served = response
            .headers()
            .get("x-amz-version-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(served) = &served
            && served != &file.version_id
        {
            bail!(
                "{} was served at version {served}, not the pinned {}",
                file.key,
                file.version_id
            );
        }
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading {}", file.key))?;
        Ok(body.len())
    }

    async fn execute(&self, run: &ClaimedRun) -> anyhow::Result<()> {
        let started = Instant::now();
        self.log(
            &run.run_id,
            "info",
            format!(
                "rat-runner {} claimed {}/{}/{} ({}), version {}, trigger {}",
                self.runner_id,
                run.namespace,
                run.layer,
                run.pipeline,
                run.pipeline_type,
                run.version_number,
                run.trigger
            ),
        )
        .await?;
        let mut failure = None;
        let mut bytes = 0;
        for file in &run.files {
            match self.fetch(file).await {
                Ok(size) => bytes += size,
                Err(e) => {
                    failure = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        let heartbeat = self
            .post(
                &format!("/internal/v1/runs/{}/heartbeat", run.run_id),
                json!({"runner_id": self.runner_id, "plugins": []}),
            )
            .await?;
        let stop = heartbeat.status().is_success()
            && heartbeat
                .json::<serde_json::Value>()
                .await
                .ok()
                .is_some_and(|b| b["stop"] == true);
        let (status, error) = match (&failure, stop) {
            (_, true) => ("cancelled", None),
            (Some(e), false) => ("failed", Some(e.clone())),
            (None, false) => ("success", None),
        };
        if status == "success" {
            self.log(
                &run.run_id,
                "info",
                format!(
                    "fetched {} pinned file(s), {bytes} bytes, every one at its pinned version",
                    run.files.len()
                ),
            )
            .await?;
        }
        let duration_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i64;
        let complete = self
            .post(
                &format!("/internal/v1/runs/{}/complete", run.run_id),
                json!({"runner_id": self.runner_id, "status": status, "error": error, "duration_ms": duration_ms, "rows_written": 0}),
            )
            .await?;
        if !complete.status().is_success() {
            bail!(
                "complete answered {}: {}",
                complete.status(),
                complete.text().await.unwrap_or_default()
            );
        }
        tracing::info!(run = %run.run_id, status, files = run.files.len(), duration_ms, "run reported");
        Ok(())
    }
}

fn default_runner_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "runner".to_owned());
    format!("{}-{}", host.trim(), std::process::id())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _log_writer = cli.log.init();
    let token = rat_cli::secret("RAT_RUNNER_TOKEN", cli.token.as_deref(), cli.token_file.as_ref())?
        .context("RAT_RUNNER_TOKEN (or RAT_RUNNER_TOKEN_FILE) is required")?;
    let runner = Runner {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?,
        base: cli.api_url.clone(),
        token,
        runner_id: cli.runner_id.clone().unwrap_or_else(default_runner_id),
        lease_secs: cli.lease_secs,
    };
    tracing::info!(runner = %runner.runner_id, api = %runner.base, "rat-runner started");
    let shutdown = rat_cli::shutdown_signal();
    tokio::pin!(shutdown);
    let mut done: u64 = 0;
    loop {
        let claimed = tokio::select! {
            () = &mut shutdown => break,
            claimed = runner.claim(cli.max_runs.clamp(1, 100)) => claimed,
        };
        let runs = match claimed {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "claim failed; retrying");
                Vec::new()
            }
        };
        if runs.is_empty() {
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(Duration::from_millis(cli.poll_ms)) => continue,
            }
        }
        // Claimed runs are finished before stopping, so no lease is left behind.
        for run in &runs {
            if let Err(e) = runner.execute(run).await {
                tracing::error!(run = %run.run_id, error = %format!("{e:#}"), "run could not be reported");
            }
            done += 1;
        }
        if cli.exit_after > 0 && done >= cli.exit_after {
            break;
        }
    }
    tracing::info!(runs = done, "rat-runner stopped");
    Ok(())
}
