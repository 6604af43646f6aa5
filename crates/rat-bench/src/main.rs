//! `rat-bench`: the benchmarks behind `cargo xtask bench <name>`, built in
//! release mode. Each starts the real components it needs (the test
//! PostgreSQL cluster, moto), measures, and prints figures. Targets come from
//! design §6; they are reported, never asserted.
//!
//! - `publish`: publish of a 100-file pipeline against moto, median of runs.
//! - `api`: `GET` of one pipeline under `wrk`, in Community mode and as a
//!   signed-in non-admin user with OIDC on (a real OpenID provider's token),
//!   vs the same SELECT under `pgbench`; `GET /runs?pipeline=` over 100,000
//!   runs; peak RSS.
//! - `runs`: 10,000 pending runs claimed and completed by 4 runner loops.
//! - `scheduler`: 10,000 schedules due at one instant (one scheduler, then
//!   three), and fire latency of every-second schedules over a minute.
//! - `reaper`: one pass over 1,000,000 runs and 1,000,000 audit rows past
//!   retention under api read load and a concurrent writer: rows/s per task,
//!   the writer's longest statement, api p99 during the pass vs idle.
//! - `scale`: 10⁵, 10⁶ and 10⁷ runs (with audit, quality results and run
//!   logs in proportion) seeded into a database each; p99 of the api's reads
//!   at each size, deep pages by offset and by cursor; the scheduler with
//!   10⁴ and 10⁵ schedules due at one instant; SVG charts.

mod api;
mod publish;
mod reaper;
mod release_api;
mod runs;
mod scale;
mod scheduler;

use clap::{Parser, Subcommand};

/// Benchmarks of the RAT metadata plane.
#[derive(Debug, Parser)]
#[command(name = "rat-bench", arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Publish of a pipeline with many files against moto (target < 300 ms).
    Publish(publish::Args),
    /// The api's read throughput and latency, Community mode and OIDC, against pgbench (needs wrk, node and npm).
    Api(api::Args),
    /// Runner protocol throughput: claim in batches and complete.
    Runs(runs::Args),
    /// Scheduler throughput (10,000 due at once, target < 2 s) and fire latency (target p99 < 1 s).
    Scheduler(scheduler::Args),
    /// Reaper pass over 1M runs + 1M audit rows (targets >= 100k rows/s, no lock > 200 ms, api p99 <= 2x idle).
    Reaper(reaper::Args),
    /// Reads at 1e5, 1e6 and 1e7 runs, and the scheduler at 1e4 and 1e5 due schedules (targets: p99 flat, < 20 ms).
    Scale(scale::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::Publish(args) => publish::run(args).await,
        Bench::Api(args) => api::run(args).await,
        Bench::Runs(args) => runs::run(args).await,
        Bench::Scheduler(args) => scheduler::run(args).await,
        Bench::Reaper(args) => reaper::run(args).await,
        Bench::Scale(args) => scale::run(args).await,
    }
}

/// Leaves a freshly seeded database as a long-running one would be, so that
/// background work caused by the seed does not land inside a measurement:
/// `VACUUM ANALYZE` (hint bits, visibility map and statistics, so autovacuum
/// has nothing left to do) and a `CHECKPOINT` (the seed's dirty pages are
/// written now). Returns whether the checkpoint ran: it needs a privilege the
/// test cluster's user has but another server's may not.
pub(crate) async fn settle(client: &rat_testkit::dao::PooledClient) -> anyhow::Result<bool> {
    use anyhow::Context as _;
    client.batch_execute("VACUUM ANALYZE").await.context("VACUUM ANALYZE")?;
    Ok(client.batch_execute("CHECKPOINT").await.is_ok())
}

/// Median, 90th percentile, minimum and maximum of `samples` (milliseconds).
pub(crate) fn summary(samples: &mut [f64]) -> String {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.1} ms, p90 {:.1} ms, min {:.1} ms, max {:.1} ms ({} runs)",
        at(0.5),
        at(0.9),
        samples[0],
        samples[samples.len() - 1],
        samples.len()
    )
}
