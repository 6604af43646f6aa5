//! The smallest runner worth the name, written against `rat-client`: it
//! claims runs from rat-api's runner listener, fetches each pinned file (the
//! client checks it is the pinned version), logs one line and reports
//! success, until it has finished `--runs` runs. A real runner would execute
//! the SQL between the fetch and the report, and send heartbeats while it
//! does (`RunnerClient::heartbeat`). `bins/rat-runner` is the same loop with
//! logging, signals and cancellation.
//!
//! ```text
//! RAT_RUNNER_API_URL=http://127.0.0.1:8090 RAT_RUNNER_TOKEN=... \
//!     cargo run -p rat-examples --bin rat-example-runner -- --runs 1
//! ```

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rat_client::RunnerClient;
use rat_wire::runner::{ClaimBody, ClaimedRunDto, CompleteBody, LogEntryBody, LogsBody};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Claims runs and reports them successful.
#[derive(Debug, Parser)]
#[command(name = "rat-example-runner", about)]
struct Cli {
    /// Base URL of rat-api's runner listener.
    #[arg(long, env = "RAT_RUNNER_API_URL", default_value = "http://127.0.0.1:8090")]
    api_url: String,
    /// The runner token (`RAT_RUNNER_TOKEN` of rat-api).
    #[arg(long, env = "RAT_RUNNER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Stop after this many runs.
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// Give up after this many seconds without finishing them.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

const RUNNER_ID: &str = "rat-example-runner";

/// Fetches the run's pinned files, logs, and reports success (or failure
/// when a file cannot be fetched at its pinned version).
async fn execute(client: &RunnerClient, run: &ClaimedRunDto) -> anyhow::Result<String> {
    let mut bytes = 0;
    let mut error = None;
    for file in &run.files {
        match client.fetch_file(file).await {
            Ok(fetched) => bytes += fetched.body.len(),
            Err(e) => {
                error = Some(format!("{}: {e}", file.key));
                break;
            }
        }
    }
    let message = format!(
        "{RUNNER_ID}: {} file(s), {bytes} bytes of {}/{}/{} version {}",
        run.files.len(),
        run.namespace,
        run.layer,
        run.pipeline,
        run.version_number
    );
    let entry = LogEntryBody {
        timestamp: OffsetDateTime::now_utc().format(&Rfc3339)?,
        level: "info".to_owned(),
        message,
    };
    client
        .append_logs(
            run.run_id,
            &LogsBody {
                runner_id: RUNNER_ID.to_owned(),
                entries: vec![entry],
            },
        )
        .await?;
    let status = if error.is_some() { "failed" } else { "success" };
    let done = client
        .complete(
            run.run_id,
            &CompleteBody {
                error,
                ..CompleteBody::new(RUNNER_ID, status)
            },
        )
        .await?;
    Ok(done.status)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut builder = rat_client::Builder::new(&cli.api_url);
    if let Some(token) = cli.token {
        builder = builder.token(token.into());
    }
    let client = builder.runner()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(cli.timeout_secs);
    let mut finished = 0;
    // Bounded by the deadline: one claim per second at most while idle.
    while finished < cli.runs {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "finished {finished} of {} runs in {} s",
            cli.runs,
            cli.timeout_secs
        );
        let claim = ClaimBody {
            runner_id: RUNNER_ID.to_owned(),
            max_runs: Some(i64::from(cli.runs - finished)),
            lease_seconds: None,
            plugins: None,
        };
        let claimed = client.claim(&claim).await.context("claiming")?;
        if claimed.runs.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        for run in &claimed.runs {
            let status = execute(&client, run)
                .await
                .with_context(|| format!("run {}", run.run_id))?;
            println!("run: {} {status}", run.run_id);
            finished += 1;
        }
    }
    Ok(())
}
