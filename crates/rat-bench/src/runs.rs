//! `runs`: 10,000 pending runs, 4 concurrent runner loops against the release
//! `rat-api`'s internal listener, each claiming in batches and completing
//! every run it claimed; prints runs/s claimed and completed.

use crate::release_api::ReleaseApi;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use rat_testkit::{TestDatabase, fixtures};
use serde_json::json;

/// Arguments of the runs benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The `rat-api` binary (release build).
    #[arg(long, env = "RAT_API_BIN")]
    api_bin: PathBuf,
    /// Pending runs to process.
    #[arg(long, default_value_t = 10_000)]
    runs: u64,
    /// Concurrent runner loops.
    #[arg(long, default_value_t = 4)]
    runners: usize,
    /// Runs claimed per claim request.
    #[arg(long, default_value_t = 25)]
    batch: u32,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "silver", "bench").await;
    client
        .execute(
            "INSERT INTO runs (pipeline_id, trigger, version_number, published_versions, created_at) \
             SELECT $1, 'manual', 1, $2, now() - make_interval(secs => $3 - g) FROM generate_series(1, $3::int) g",
            &[
                &pipeline.id,
                &fixtures::snapshot(&pipeline).to_json(),
                &(args.runs as i32),
            ],
        )
        .await
        .context("creating pending runs")?;
    client.batch_execute("ANALYZE runs").await?;
    drop(client);

    let token = "bench-runner-token";
    let store_dir = tempfile::Builder::new().prefix("rat-bench-runs-").tempdir()?;
    let api = ReleaseApi::start(
        &args.api_bin,
        db.url(),
        store_dir.path(),
        16,
        &[("RAT_RUNNER_TOKEN", token)],
    )
    .await?;
    let http = reqwest::Client::new();
    let base = api.internal_base.clone();

    let completed = Arc::new(AtomicU64::new(0));
    let claims = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let loops: Vec<_> = (0..args.runners)
        .map(|n| {
            let (http, base, completed, claims) = (http.clone(), base.clone(), completed.clone(), claims.clone());
            let batch = args.batch;
            tokio::spawn(async move {
                let runner_id = format!("bench-runner-{n}");
                loop {
                    let answer: serde_json::Value = http
                        .post(format!("{base}/internal/v1/runs/claim"))
                        .bearer_auth(token)
                        .json(&json!({"runner_id": runner_id, "max_runs": batch, "lease_seconds": 300}))
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    claims.fetch_add(1, Ordering::Relaxed);
                    let runs = answer["runs"].as_array().cloned().unwrap_or_default();
                    if runs.is_empty() {
                        return Ok::<(), anyhow::Error>(());
                    }
                    for run in runs {
                        let id = run["run_id"].as_str().context("run_id")?;
                        http.post(format!("{base}/internal/v1/runs/{id}/complete"))
                            .bearer_auth(token)
                            .json(&json!({"runner_id": runner_id, "status": "success", "duration_ms": 1, "rows_written": 0}))
                            .send()
                            .await?
                            .error_for_status()?;
                        completed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for handle in loops {
        handle.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = completed.load(Ordering::Relaxed);
    anyhow::ensure!(done == args.runs, "completed {done} of {} runs", args.runs);
    println!(
        "{} pending runs, {} runner loops, batches of {}: all claimed and completed in {elapsed:.2} s = {:.0} runs/s \
         ({} claim requests)",
        args.runs,
        args.runners,
        args.batch,
        done as f64 / elapsed,
        claims.load(Ordering::Relaxed)
    );
    Ok(())
}
