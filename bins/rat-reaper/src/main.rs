//! `rat-reaper`: retention passes over the metadata store and the file store
//! (any number of replicas; one pass at a time among them).
//!
//! The loop: read when the next pass is owed (`reaper_status` and
//! `reaper_interval_minutes`, fresh each time) → if now, take the reaper lock
//! (a session advisory lock on a dedicated connection, never a pooled one),
//! look again (another replica may just have run it), run the pass, release →
//! sleep until the next pass is due, a `NOTIFY rat_reaper_run` (sent by
//! `POST /admin/retention/run` on any api replica) wakes it, or
//! `RAT_REAPER_POLL_SECS` passes. A watchdog pings the lock connection while a
//! pass runs; if it stops answering, the lock is gone and the pass stops
//! between two batches (each is its own transaction), so two passes never
//! overlap for longer than one batch. SIGTERM/SIGINT stop the pass the same
//! way, and the process exits 0. See `rat_service::reaper` and
//! `docs/retention.md`.
//!
//! Variables (each also a flag): `RAT_DATABASE_URL`, `RAT_DB_POOL_SIZE`,
//! `RAT_STORE` and `RAT_S3_*`, `RAT_LOG_FORMAT` (see `rat-cli`),
//! `RAT_REAPER_BATCH_SIZE` (default 2000), `RAT_REAPER_BATCH_TARGET_MS`
//! (default 2), `RAT_REAPER_POLL_SECS` (default 60).

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rat_domain::NextPass;
use rat_service::Services;
use rat_service::reaper::{self, Attempt, PassPolicy};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The RAT reaper.
#[derive(Debug, Parser)]
#[command(name = "rat-reaper", version, about)]
struct Cli {
    #[command(flatten)]
    database: rat_cli::DatabaseArgs,
    #[command(flatten)]
    store: rat_cli::StoreArgs,
    #[command(flatten)]
    log: rat_cli::LogArgs,
    /// Most rows deleted per batch; each batch is one short transaction.
    #[arg(long, env = "RAT_REAPER_BATCH_SIZE", default_value_t = PassPolicy::default().batch_size,
          value_parser = clap::value_parser!(i64).range(1..=50_000))]
    batch_size: i64,
    /// How long one batch should take at most, in milliseconds: slower
    /// batches shrink the next ones (busy machine), faster ones grow them
    /// back up to the batch size. Bounds how long a batch holds its locks
    /// and how long the api waits behind it for a CPU.
    #[arg(long, env = "RAT_REAPER_BATCH_TARGET_MS",
          default_value_t = reaper::DEFAULT_BATCH_TARGET.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    batch_target_ms: u64,
    /// A registered plugin that has not reported its health for this many
    /// seconds is marked `down` by the next pass.
    #[arg(long, env = "RAT_PLUGIN_REPORT_WINDOW_SECS",
          default_value_t = reaper::DEFAULT_PLUGIN_REPORT_WINDOW.as_secs(),
          value_parser = clap::value_parser!(u64).range(10..=604_800))]
    plugin_report_window_secs: u64,
    /// Nessie's REST API (e.g. `http://nessie:19120/api/v2`): when set, each
    /// pass deletes orphan `run-{id}` branches (`branches_cleaned`).
    #[arg(long, env = "RAT_NESSIE_URL")]
    nessie_url: Option<String>,
    /// Longest sleep between two looks at whether a pass is owed, in
    /// seconds. Passes start on time whatever its value (the reaper sleeps
    /// until the next one is due and is woken by requests); it bounds how
    /// long a request missed while the listener was disconnected waits.
    #[arg(long, env = "RAT_REAPER_POLL_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    poll_secs: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending schema migrations and exit.
    Migrate,
    /// Run one pass now, under the reaper lock, and exit; fails when another
    /// reaper holds the lock.
    Pass,
}

/// mimalloc: markedly cheaper than the system allocator for the many small,
/// short-lived allocations of the service layer.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The `application_name` of the pooled connections.
const APPLICATION_NAME: &str = "rat-reaper";
/// The `application_name` of the dedicated `LISTEN` connection.
const LISTENER_NAME: &str = "rat-reaper-listener";
/// Pause before looking again when another replica holds the lock.
const BUSY_PAUSE: Duration = Duration::from_secs(5);
/// Pause before retrying after an error; doubles up to [`MAX_ERROR_BACKOFF`].
const MIN_ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// Longest pause between two failed attempts.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _log_writer = cli.log.init();
    match cli.command {
        Some(Command::Migrate) => rat_cli::migrate(&cli.database.migration_database()?).await,
        Some(Command::Pass) => {
            cli.database.prepare(APPLICATION_NAME).await?;
            let reaper = Reaper::open(&cli).await?;
            let (_stop_sender, stop) = rat_cli::stop_on_signal();
            match reaper.pass(&stop, false).await? {
                Attempt::Done(report) if report.tasks.iter().any(|t| t.error.is_some()) => {
                    anyhow::bail!("the pass ran, but some of its tasks failed (see the log)")
                }
                Attempt::Done(_) => Ok(()),
                Attempt::Busy => anyhow::bail!("another reaper holds the reaper lock; try again when its pass ends"),
                Attempt::NotDue => unreachable!("a pass asked for on the command line is always due"),
            }
        }
        None => {
            cli.database.prepare(APPLICATION_NAME).await?;
            let reaper = Reaper::open(&cli).await?;
            let (_stop_sender, stop) = rat_cli::stop_on_signal();
            let wake = Arc::new(Notify::new());
            let listener = tokio::spawn(rat_cli::wake_on_notify(
                cli.database.database()?,
                LISTENER_NAME,
                &[rat_service::db::REAPER_CHANNEL],
                "pass requests",
                wake.clone(),
                stop.clone(),
            ));
            tracing::info!(batch_size = cli.batch_size, poll_secs = cli.poll_secs, "reaper started");
            reaper.run(Duration::from_secs(cli.poll_secs), &wake, stop).await;
            let _ = listener.await;
            tracing::info!("reaper stopped");
            Ok(())
        }
    }
}

struct Reaper {
    services: Services,
    database: rat_service::db::Database,
    policy: PassPolicy,
}

impl Reaper {
    async fn open(cli: &Cli) -> anyhow::Result<Self> {
        let pool = rat_service::db::create_pool(&cli.database.pool_settings(APPLICATION_NAME)?)?;
        let store = cli.store.open().await?;
        let nessie = cli
            .nessie_url
            .as_deref()
            .filter(|url| !url.trim().is_empty())
            .map(rat_service::nessie::NessieClient::new)
            .transpose()?;
        Ok(Reaper {
            services: Services::new(pool, store),
            database: cli.database.database()?,
            policy: PassPolicy {
                batch_size: cli.batch_size,
                batch_target: Duration::from_millis(cli.batch_target_ms),
                plugin_report_window: Duration::from_secs(cli.plugin_report_window_secs),
                nessie,
                ..PassPolicy::default()
            },
        })
    }

    /// Passes until `stop`. Errors never end the loop: they are logged and
    /// retried after a bounded backoff.
    async fn run(&self, poll: Duration, wake: &Notify, mut stop: watch::Receiver<bool>) {
        let mut backoff = MIN_ERROR_BACKOFF;
        loop {
            if *stop.borrow() {
                return;
            }
            let pause = match self.step(poll, &stop).await {
                Ok(pause) => {
                    backoff = MIN_ERROR_BACKOFF;
                    pause
                }
                Err(e) => {
                    tracing::error!(error = %e, detail = ?e, retry_in_s = backoff.as_secs(), "reaper step failed");
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_ERROR_BACKOFF);
                    pause
                }
            };
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep_until(Instant::now() + pause) => {}
                () = wake.notified() => tracing::debug!("woken by a pass request"),
                () = rat_cli::stopped(&mut stop) => return,
            }
        }
    }

    /// Looks whether a pass is owed and runs it if so; how long to sleep next.
    async fn step(&self, poll: Duration, stop: &watch::Receiver<bool>) -> anyhow::Result<Duration> {
        let now = OffsetDateTime::now_utc();
        match reaper::next_pass(&self.services, now).await? {
            NextPass::At(due) => Ok((due - now).try_into().unwrap_or(poll).min(poll)),
            NextPass::Now { requested } => match self.pass(stop, true).await? {
                Attempt::Done(report) => {
                    if requested {
                        tracing::info!("the requested pass is done");
                    }
                    // Look again at once: a request made during the pass is owed another.
                    Ok(if report.interrupted { poll } else { Duration::ZERO })
                }
                Attempt::Busy => Ok(BUSY_PAUSE.min(poll)),
                Attempt::NotDue => Ok(Duration::ZERO),
            },
        }
    }

    /// Takes the lock and runs a pass ([`reaper::run_exclusive`]); with
    /// `only_if_due`, skips it when another process ran it between the
    /// caller's look and the lock.
    async fn pass(&self, stop: &watch::Receiver<bool>, only_if_due: bool) -> anyhow::Result<Attempt> {
        Ok(reaper::run_exclusive(
            &self.services,
            &self.database,
            &self.policy,
            stop,
            only_if_due,
            OffsetDateTime::now_utc(),
        )
        .await?)
    }
}
