//! `scheduler`: the release `rat-scheduler` against the test PostgreSQL.
//!
//! - (a) 10,000 schedules (one per published pipeline) all due at the same
//!   instant, one scheduler: seconds from that instant until every one has
//!   its run (target: < 2 s);
//! - (b) fire latency over a minute of every-second schedules (50 by
//!   default), one scheduler, with a completer finishing each run at once:
//!   `run.created_at − run.scheduled_for` (the tick's clock when it fired),
//!   and `first seen − scheduled_for` (the run observed committed by a poller
//!   every 10 ms, an upper bound of what a runner sees), p50/p99 (target:
//!   p99 < 1 s);
//! - (c) (a) again with three schedulers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rat_testkit::TestDatabase;
use time::OffsetDateTime;

/// Arguments of the scheduler benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The `rat-scheduler` binary (release build).
    #[arg(long, env = "RAT_SCHEDULER_BIN")]
    scheduler_bin: PathBuf,
    /// Schedules due at the same instant in (a) and (c).
    #[arg(long, default_value_t = 10_000)]
    schedules: i32,
    /// Scheduler processes in (c).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Every-second schedules in (b).
    #[arg(long, default_value_t = 50)]
    latency_schedules: i32,
    /// Duration of (b), in seconds.
    #[arg(long, default_value_t = 60)]
    latency_secs: u64,
    /// Schedules each scheduler claims per transaction.
    #[arg(long, default_value_t = 500)]
    batch_size: u32,
}

/// Scheduler processes, killed when dropped.
struct Schedulers(Vec<std::process::Child>);

impl Drop for Schedulers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_schedulers(binary: &Path, url: &str, count: usize, batch_size: u32) -> anyhow::Result<Schedulers> {
    let mut children = Vec::new();
    for _ in 0..count {
        children.push(
            std::process::Command::new(binary)
                .env("RAT_DATABASE_URL", url)
                .env("RAT_DB_POOL_SIZE", "4")
                .env("RAT_SCHEDULER_BATCH_SIZE", batch_size.to_string())
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?,
        );
    }
    Ok(Schedulers(children))
}

/// (a) and (c): `schedules` schedules due at one instant, `replicas`
/// schedulers; seconds from the instant until the last run is committed.
async fn burst(args: &Args, replicas: usize) -> anyhow::Result<f64> {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    // A yearly expression: each schedule fires once in the measurement.
    rat_testkit::fixtures::scheduled_pipelines(&client, args.schedules, "0 0 1 1 *", None).await;
    let _schedulers = start_schedulers(&args.scheduler_bin, db.url(), replicas, args.batch_size)?;
    anyhow::ensure!(
        rat_testkit::fixtures::wait_for_sessions(
            &client,
            "rat-scheduler-listener",
            replicas as i64,
            Duration::from_secs(30)
        )
        .await,
        "{replicas} schedulers did not start within 30 s"
    );

    // Every schedule due at the next whole second but one; the schedulers
    // are told (as the api would) and sleep until exactly then.
    let due = OffsetDateTime::now_utc().replace_nanosecond(0)? + time::Duration::seconds(2);
    client.execute("UPDATE schedules SET next_run_at = $1", &[&due]).await?;
    client.batch_execute("NOTIFY rat_schedules").await?;
    let until_due: Duration = (due - OffsetDateTime::now_utc()).try_into().unwrap_or(Duration::ZERO);
    tokio::time::sleep(until_due).await;
    let started = Instant::now();
    let expected = i64::from(args.schedules);
    loop {
        let fired: i64 = client
            .query_one("SELECT count(*) FROM runs WHERE schedule_id IS NOT NULL", &[])
            .await?
            .get(0);
        if fired >= expected {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "only {fired} of {expected} schedules fired after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let duplicates: i64 = client
        .query_one(
            "SELECT count(*) - count(DISTINCT schedule_id) FROM runs WHERE schedule_id IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    anyhow::ensure!(duplicates == 0, "{duplicates} schedules fired more than once");
    Ok(elapsed)
}

/// A percentile of sorted samples.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// (b): every-second schedules for `latency_secs`, one scheduler, a
/// completer finishing each run at once (the "active run" rule would skip
/// slots otherwise); returns the two latency series in milliseconds.
async fn latency(args: &Args) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let _scheduler = start_schedulers(&args.scheduler_bin, db.url(), 1, args.batch_size)?;
    anyhow::ensure!(
        rat_testkit::fixtures::wait_for_sessions(&client, "rat-scheduler-listener", 1, Duration::from_secs(30)).await,
        "the scheduler did not start within 30 s"
    );
    let first_slot = OffsetDateTime::now_utc().replace_nanosecond(0)? + time::Duration::seconds(2);
    rat_testkit::fixtures::scheduled_pipelines(&client, args.latency_schedules, "* * * * * *", Some(first_slot)).await;
    client.batch_execute("NOTIFY rat_schedules").await?;

    // The completer records when it first saw each run committed.
    let running = Arc::new(AtomicBool::new(true));
    let completer = {
        let running = running.clone();
        let completer_client = db.client().await;
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                completer_client
                    .execute(
                        "UPDATE runs SET status = 'success', started_at = clock_timestamp(), \
                             finished_at = clock_timestamp() \
                         WHERE status = 'pending'",
                        &[],
                    )
                    .await?;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok::<(), anyhow::Error>(())
        })
    };
    tokio::time::sleep(Duration::from_secs(args.latency_secs + 2)).await;
    running.store(false, Ordering::Relaxed);
    completer.await??;

    let rows = client
        .query(
            "SELECT extract(epoch FROM created_at - scheduled_for)::float8 * 1000, \
                    extract(epoch FROM started_at - scheduled_for)::float8 * 1000 \
             FROM runs WHERE schedule_id IS NOT NULL AND started_at IS NOT NULL",
            &[],
        )
        .await?;
    let mut created: Vec<f64> = rows.iter().map(|r| r.get(0)).collect();
    let mut seen: Vec<f64> = rows.iter().map(|r| r.get(1)).collect();
    created.sort_by(f64::total_cmp);
    seen.sort_by(f64::total_cmp);
    let expected = i64::from(args.latency_schedules) * args.latency_secs as i64;
    anyhow::ensure!(
        created.len() as i64 >= expected,
        "only {} runs over {} s of {} every-second schedules",
        created.len(),
        args.latency_secs,
        args.latency_schedules
    );
    Ok((created, seen))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.scheduler_bin.is_file(),
        "{} is not a file (cargo xtask bench scheduler builds it)",
        args.scheduler_bin.display()
    );
    anyhow::ensure!(args.schedules >= 1 && args.latency_schedules >= 1 && args.replicas >= 1);

    let one = burst(&args, 1).await?;
    println!(
        "(a) {} schedules due at one instant, 1 scheduler: all fired in {one:.2} s = {:.0} schedules/s \
         (target < 2 s)",
        args.schedules,
        f64::from(args.schedules) / one
    );

    let (created, seen) = latency(&args).await?;
    println!(
        "(b) {} every-second schedules for {} s, 1 scheduler, {} runs: fire latency (created_at - slot) p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms; first seen committed by a 10 ms poller p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
         (target p99 < 1000 ms; ratd: up to 30 s)",
        args.latency_schedules,
        args.latency_secs,
        created.len(),
        percentile(&created, 0.5),
        percentile(&created, 0.99),
        created[created.len() - 1],
        percentile(&seen, 0.5),
        percentile(&seen, 0.99),
        seen[seen.len() - 1],
    );

    let many = burst(&args, args.replicas).await?;
    println!(
        "(c) {} schedules due at one instant, {} schedulers: all fired in {many:.2} s = {:.0} schedules/s \
         (target < 2 s)",
        args.schedules,
        args.replicas,
        f64::from(args.schedules) / many
    );
    Ok(())
}
