//! `rat-runner`: a minimal runner speaking the runner protocol of `rat-api`'s
//! internal listener, through `rat-client`. It claims pending runs, fetches
//! every pinned file at its exact version, checks each answer is that
//! version, logs a few lines, and reports success (failure when a file
//! cannot be fetched or is not the pinned version). It executes nothing: it
//! exists so the platform can be exercised end to end on one machine
//! (`cargo xtask dev` starts one). A real runner (DuckDB, Python) speaks the
//! same protocol; `examples/src/bin/runner.rs` is the same loop at its
//! smallest.
//!
//! Variables (each also a flag):
//! - `RAT_RUNNER_API_URL`: base URL of the api's internal listener (default `http://127.0.0.1:8090`)
//! - `RAT_RUNNER_TOKEN` / `RAT_RUNNER_TOKEN_FILE`: the runner bearer token
//! - `RAT_RUNNER_ID`: this runner's name (default `<host>-<pid>`)
//! - `RAT_RUNNER_MAX_RUNS`, `RAT_RUNNER_LEASE_SECS`, `RAT_RUNNER_POLL_MS`
//! - `RAT_LOG_FORMAT`: `text` or `json`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rat_client::RunnerClient;
use rat_wire::runner::{ClaimBody, ClaimedRunDto, CompleteBody, HeartbeatBody, LogEntryBody, LogsBody};

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

struct Runner {
    client: RunnerClient,
    runner_id: String,
    lease_secs: u32,
}

impl Runner {
    async fn claim(&self, max_runs: u32) -> anyhow::Result<Vec<ClaimedRunDto>> {
        let answer = self
            .client
            .claim(&ClaimBody {
                runner_id: self.runner_id.clone(),
                max_runs: Some(i64::from(max_runs)),
                lease_seconds: Some(i64::from(self.lease_secs)),
                // This runner executes SQL itself and loads no plugins: it reports an
                // empty list, which `GET /api/v1/runner/plugins` shows as none.
                plugins: Some(Vec::new()),
            })
            .await
            .context("claim")?;
        Ok(answer.runs)
    }

    async fn log(&self, run: &ClaimedRunDto, level: &str, message: String) -> anyhow::Result<()> {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        self.client
            .append_logs(
                run.run_id,
                &LogsBody {
                    runner_id: self.runner_id.clone(),
                    entries: vec![LogEntryBody {
                        timestamp: now,
                        level: level.to_owned(),
                        message,
                    }],
                },
            )
            .await
            .context("log append")?;
        Ok(())
    }

    async fn execute(&self, run: &ClaimedRunDto) -> anyhow::Result<()> {
        let started = Instant::now();
        self.log(
            run,
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
            // The client checks the version served is the pinned one.
            match self.client.fetch_file(file).await {
                Ok(fetched) => bytes += fetched.body.len(),
                Err(e) => {
                    failure = Some(format!("fetching {}: {e}", file.key));
                    break;
                }
            }
        }
        let stop = self
            .client
            .heartbeat(
                run.run_id,
                &HeartbeatBody {
                    runner_id: self.runner_id.clone(),
                    lease_seconds: None,
                    plugins: Some(Vec::new()),
                },
            )
            .await
            .is_ok_and(|answer| answer.stop);
        let (status, error) = match (&failure, stop) {
            (_, true) => ("cancelled", None),
            (Some(e), false) => ("failed", Some(e.clone())),
            (None, false) => ("success", None),
        };
        if status == "success" {
            self.log(
                run,
                "info",
                format!(
                    "fetched {} pinned file(s), {bytes} bytes, every one at its pinned version",
                    run.files.len()
                ),
            )
            .await?;
        }
        let duration_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i64;
        self.client
            .complete(
                run.run_id,
                &CompleteBody {
                    error,
                    duration_ms: Some(duration_ms),
                    rows_written: Some(0),
                    ..CompleteBody::new(self.runner_id.clone(), status)
                },
            )
            .await
            .context("complete")?;
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
    let client = rat_client::Builder::new(&cli.api_url)
        .token(token)
        .timeout(Duration::from_secs(30))
        .runner()
        .context("building the runner client")?;
    let runner = Runner {
        client,
        runner_id: cli.runner_id.clone().unwrap_or_else(default_runner_id),
        lease_secs: cli.lease_secs,
    };
    tracing::info!(runner = %runner.runner_id, api = %runner.client.base_url(), "rat-runner started");
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
