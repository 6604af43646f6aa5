//! `rat-scheduler`: fires cron schedules and cron triggers (any number of replicas).
//!
//! At start, cron triggers that have no slot yet (written before slots
//! existed) get one. The loop: tick (schedules, then cron triggers, each in bounded batches of
//! one transaction) → compute the next wake-up (the earliest `next_run_at` /
//! `next_fire_at`, at most `RAT_SCHEDULER_MAX_SLEEP_SECS` away) → sleep until
//! then, or until a `NOTIFY rat_schedules` says a schedule changed, or until
//! SIGTERM/SIGINT. Replicas need no configuration and no leader: every claim
//! is `FOR UPDATE SKIP LOCKED`, and a slot's run is unique in the database
//! (see `rat_service::scheduler` and `docs/scheduling.md`).
//!
//! Variables (each also a flag): `RAT_DATABASE_URL`, `RAT_DB_POOL_SIZE`,
//! `RAT_LOG_FORMAT` (see `rat-cli`), `RAT_SCHEDULER_MAX_SLEEP_SECS` (default
//! 30), `RAT_SCHEDULER_BATCH_SIZE` (default 500).

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use rat_service::ServiceError;
use rat_service::db::Pool;
use rat_service::firing::{CronTickReport, fire_due_cron_triggers};
use rat_service::runs;
use rat_service::scheduler::{self, TickOptions, TickReport};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The RAT scheduler.
#[derive(Debug, Parser)]
#[command(name = "rat-scheduler", version, about)]
struct Cli {
    #[command(flatten)]
    database: rat_cli::DatabaseArgs,
    #[command(flatten)]
    log: rat_cli::LogArgs,
    /// Longest sleep between two ticks, in seconds. Slots are fired on time
    /// whatever its value (the scheduler sleeps until the earliest slot and
    /// is woken by changes); it bounds how long a change missed while the
    /// listener was disconnected goes unnoticed.
    #[arg(long, env = "RAT_SCHEDULER_MAX_SLEEP_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    max_sleep_secs: u64,
    /// Schedules (and cron triggers) claimed and fired per transaction.
    #[arg(long, env = "RAT_SCHEDULER_BATCH_SIZE", default_value_t = scheduler::DEFAULT_BATCH_SIZE,
          value_parser = clap::value_parser!(i64).range(1..=scheduler::MAX_BATCH_SIZE))]
    batch_size: i64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending schema migrations and exit.
    Migrate,
}

/// mimalloc: markedly cheaper than the system allocator for the many small,
/// short-lived allocations of request handling.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The `application_name` of the pooled connections.
const APPLICATION_NAME: &str = "rat-scheduler";
/// The `application_name` of the dedicated `LISTEN` connection.
const LISTENER_NAME: &str = "rat-scheduler-listener";
/// Batches of run-count deltas folded after each tick, at most (each
/// `rat_service::runs::FOLD_BATCH` deltas, one short transaction).
const FOLD_BATCHES_PER_TICK: u32 = 4;
/// Pause before retrying after a failed tick; doubles up to [`MAX_ERROR_BACKOFF`].
const MIN_ERROR_BACKOFF: Duration = Duration::from_millis(250);
/// Longest pause between two failed ticks.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(10);
/// Pause when a slot is due but nothing could be claimed: another replica
/// holds it and is firing it right now. Looking again at once would only
/// spin; its commit takes milliseconds.
const CONTENDED_PAUSE: Duration = Duration::from_millis(50);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _log_writer = cli.log.init();
    match cli.command {
        Some(Command::Migrate) => rat_cli::migrate(&cli.database.migration_database()?).await,
        None => {
            cli.database.prepare(APPLICATION_NAME).await?;
            run(&cli).await
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    // The scheduler reads and writes rows only: a pool, no file store.
    let pool = rat_service::db::create_pool(&cli.database.pool_settings(APPLICATION_NAME)?)?;
    let (_stop_sender, stop) = rat_cli::stop_on_signal();
    let wake = Arc::new(Notify::new());
    // A dedicated connection LISTENs on `rat_schedules` (sent by schedule
    // create, update and delete) and wakes the loop early; while it is
    // disconnected the loop still wakes at the earliest slot it read, or
    // after the longest sleep.
    let listener = tokio::spawn(rat_cli::wake_on_notify(
        cli.database.database()?,
        LISTENER_NAME,
        &[rat_service::db::SCHEDULES_CHANNEL],
        "schedule changes",
        wake.clone(),
        stop.clone(),
    ));
    let loop_config = LoopConfig {
        max_sleep: Duration::from_secs(cli.max_sleep_secs),
        batch_size: cli.batch_size,
    };
    tracing::info!(
        max_sleep_secs = cli.max_sleep_secs,
        batch_size = cli.batch_size,
        "scheduler started"
    );
    schedule_loop(&pool, loop_config, &wake, stop).await;
    let _ = listener.await;
    tracing::info!("scheduler stopped");
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct LoopConfig {
    max_sleep: Duration,
    batch_size: i64,
}

/// Ticks until shutdown. A tick in progress always finishes (its
/// transaction commits or fails on its own); shutdown is only noticed
/// between ticks and while sleeping. Errors never end the loop: they are
/// logged and the tick is retried after a bounded backoff.
async fn schedule_loop(pool: &Pool, config: LoopConfig, wake: &Notify, mut stop: watch::Receiver<bool>) {
    let mut backoff = MIN_ERROR_BACKOFF;
    let mut backfilled = false;
    loop {
        if *stop.borrow() {
            return;
        }
        if !backfilled {
            // Cron triggers written before they had a slot get one (once per
            // start; cheap when there are none).
            match rat_service::triggers::backfill_cron_slots(pool, OffsetDateTime::now_utc()).await {
                Ok(set) => {
                    backfilled = true;
                    if set > 0 {
                        tracing::info!(triggers = set, "cron triggers without a slot got one");
                    }
                }
                Err(e) => tracing::error!(error = %e, detail = ?e, "cannot give cron triggers their slot; will retry"),
            }
        }
        let more = match tick(pool, config.batch_size).await {
            Ok(more) => {
                backoff = MIN_ERROR_BACKOFF;
                more
            }
            Err(()) => {
                tracing::warn!(
                    retry_in_ms = backoff.as_millis() as u64,
                    "retrying the tick after an error"
                );
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = rat_cli::stopped(&mut stop) => return,
                }
                backoff = (backoff * 2).min(MAX_ERROR_BACKOFF);
                continue;
            }
        };
        if more {
            // A full batch: more may be due. Go on at once.
            continue;
        }
        let delay = match scheduler::next_wake(pool, OffsetDateTime::now_utc(), max_sleep(config)).await {
            Ok(at) => {
                let delay = at - OffsetDateTime::now_utc();
                if delay.is_positive() {
                    // Sub-millisecond rounding of the timer may wake us a
                    // hair before the slot; the next tick then sleeps the rest.
                    delay.try_into().unwrap_or(config.max_sleep).min(config.max_sleep)
                } else {
                    CONTENDED_PAUSE
                }
            }
            Err(e) => {
                tracing::error!(error = %e, detail = ?e, "cannot compute the next wake-up");
                backoff
            }
        };
        let deadline = Instant::now() + delay;
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = wake.notified() => tracing::debug!("woken by a schedule change"),
            () = rat_cli::stopped(&mut stop) => return,
        }
    }
}

fn max_sleep(config: LoopConfig) -> time::Duration {
    time::Duration::try_from(config.max_sleep).unwrap_or(time::Duration::seconds(30))
}

/// One tick: a batch of due schedules, then a batch of due cron triggers,
/// each read with its own fresh clock, so that runs record when they were
/// really created and next slots are computed from the real time however
/// long a backlog takes. `Ok(true)` when either batch was full (call again
/// at once); `Err` when either failed (it is logged; the other still ran).
async fn tick(pool: &Pool, batch_size: i64) -> Result<bool, ()> {
    let started = Instant::now();
    let options = TickOptions {
        batch_size,
        max_batches: 1,
    };
    let schedules = scheduler::tick(pool, OffsetDateTime::now_utc(), options).await;
    let triggers = fire_due_cron_triggers(pool, OffsetDateTime::now_utc(), batch_size).await;
    // The runs this tick created (and everyone's run changes since the last
    // tick) into the run counts, so `GET /runs` totals stay cheap to read.
    if let Err(e) = runs::fold_counts(pool, FOLD_BATCHES_PER_TICK).await {
        tracing::warn!(error = %e, "folding the run counts failed; the next tick folds again");
    }
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    log_tick(&schedules, &triggers, elapsed_ms);
    match (schedules, triggers) {
        (Ok(s), Ok(t)) => Ok(s.more || t.more),
        _ => Err(()),
    }
}

fn log_tick(
    schedules: &Result<TickReport, ServiceError>,
    triggers: &Result<CronTickReport, ServiceError>,
    elapsed_ms: f64,
) {
    if let Err(e) = schedules {
        tracing::error!(error = %e, detail = ?e, "schedule tick failed; its slots stay due");
    }
    if let Err(e) = triggers {
        tracing::error!(error = %e, detail = ?e, "cron trigger tick failed; their slots stay due");
    }
    let s = schedules.as_ref().copied().unwrap_or_default();
    let t = triggers.as_ref().copied().unwrap_or_default();
    if s.claimed + t.fired + t.skipped == 0 {
        return;
    }
    tracing::info!(
        schedules_fired = s.fired,
        schedules_skipped = s.skipped(),
        active_run = s.active_run,
        pipeline_deleted = s.pipeline_deleted,
        never_published = s.never_published,
        already_fired = s.already_fired,
        invalid = s.invalid,
        cron_triggers_fired = t.fired,
        cron_triggers_skipped = t.skipped,
        more = s.more || t.more,
        elapsed_ms = format!("{elapsed_ms:.1}"),
        "tick"
    );
}
