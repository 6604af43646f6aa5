//! The scheduler tick: firing due cron schedules, once per slot, with any number of replicas.
//!
//! A tick takes `now` (so tests inject the clock) and works in bounded
//! batches. One batch is one transaction, and a fixed number of statements
//! whatever its size:
//!
//! 1. claim up to `batch_size` due schedules (`next_run_at <= now`, earliest
//!    first) with `FOR UPDATE SKIP LOCKED`: a schedule another replica is
//!    firing is skipped, never waited for and never fired twice;
//! 2. insert one pending run per slot that may fire, in one `INSERT … SELECT`
//!    (trigger `schedule:{cron}`, the schedule and the slot, the latest
//!    published version with its pinned snapshot); the unique index
//!    `uq_runs_schedule_slot` makes a second run of a slot impossible, whatever
//!    happens;
//! 3. advance every claimed schedule to its first slot strictly after `now`
//!    in one `UPDATE`, and record the run of those that fired;
//! 4. for the slots that did not fire, one query says why, and each is logged.
//!
//! The transaction commits all of it or nothing: a crash before the commit
//! leaves the schedule due with the same slot for the next tick (of any
//! replica), which fires it; a crash after leaves it advanced with its run.
//! A slot therefore fires exactly once.
//!
//! Advancing from `now` (not from the slot) is what collapses missed slots:
//! after downtime, a schedule fires once for its oldest missed slot, then
//! waits for the next slot in the future, instead of replaying every slot it
//! missed. A slot does not fire (and the schedule still advances) when its
//! pipeline was deleted, was never published, or has a pending or running
//! run; the reason is logged, and other schedules are not held up.

use rat_dao::schedules::{self, Advance, DueSchedule, NotFired, SlotToFire};
use rat_dao::{GenericClient, Pool};
use rat_domain::{CronExpr, ScheduleTimezone, trigger_label};
use time::OffsetDateTime;

use crate::ServiceError;

/// Schedules one batch claims by default.
pub const DEFAULT_BATCH_SIZE: i64 = 500;

/// Most schedules one batch may claim ([`rat_dao::schedules::MAX_CLAIM_BATCH`]).
pub const MAX_BATCH_SIZE: i64 = schedules::MAX_CLAIM_BATCH;

/// Batches one [`tick`] runs by default before it returns.
pub const DEFAULT_MAX_BATCHES: u32 = 20;

/// How much one [`tick`] does at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickOptions {
    /// Schedules claimed (and fired) per transaction, 1..=[`MAX_BATCH_SIZE`].
    pub batch_size: i64,
    /// Transactions per tick; when the last one was full, the tick returns
    /// with [`TickReport::more`] set and the caller calls again.
    pub max_batches: u32,
}

impl Default for TickOptions {
    fn default() -> Self {
        TickOptions {
            batch_size: DEFAULT_BATCH_SIZE,
            max_batches: DEFAULT_MAX_BATCHES,
        }
    }
}

/// What a tick (or one batch) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Transactions committed (for [`fire_batch`]: 1).
    pub batches: u32,
    /// Due schedules claimed (each was advanced).
    pub claimed: u64,
    /// Slots that got their run.
    pub fired: u64,
    /// Slots not fired: the pipeline is deleted.
    pub pipeline_deleted: u64,
    /// Slots not fired: the pipeline was never published.
    pub never_published: u64,
    /// Slots not fired: the pipeline has a pending or running run.
    pub active_run: u64,
    /// Slots not fired: another transaction had already fired them.
    pub already_fired: u64,
    /// Schedules whose stored expression or zone no longer parses: not
    /// fired, and their `next_run_at` cleared (they wait for an update).
    pub invalid: u64,
    /// The last batch was full: more may be due; call again.
    pub more: bool,
}

impl TickReport {
    /// Claimed slots that did not fire, for any reason.
    pub fn skipped(&self) -> u64 {
        self.pipeline_deleted + self.never_published + self.active_run + self.already_fired + self.invalid
    }

    fn add(&mut self, batch: &TickReport) {
        self.batches += batch.batches;
        self.claimed += batch.claimed;
        self.fired += batch.fired;
        self.pipeline_deleted += batch.pipeline_deleted;
        self.never_published += batch.never_published;
        self.active_run += batch.active_run;
        self.already_fired += batch.already_fired;
        self.invalid += batch.invalid;
        self.more = batch.more;
    }
}

/// Fires the schedules due at `now`: up to `options.max_batches` batches of
/// `options.batch_size`, each in its own transaction ([`fire_batch`]).
/// Returns what was done; [`TickReport::more`] when the last batch was full.
/// `InvalidInput` for a batch size out of range. An error aborts only the
/// batch in flight (its slots stay due); batches already committed stay.
pub async fn tick(pool: &Pool, now: OffsetDateTime, options: TickOptions) -> Result<TickReport, ServiceError> {
    check_batch_size(options.batch_size)?;
    let mut report = TickReport::default();
    let mut client = pool.get().await?;
    for _ in 0..options.max_batches.max(1) {
        let transaction = client.transaction().await?;
        let batch = fire_batch(&transaction, now, options.batch_size).await?;
        transaction.commit().await?;
        report.add(&batch);
        if !batch.more {
            break;
        }
    }
    Ok(report)
}

fn check_batch_size(batch_size: i64) -> Result<(), ServiceError> {
    if (1..=MAX_BATCH_SIZE).contains(&batch_size) {
        Ok(())
    } else {
        Err(ServiceError::invalid(format!(
            "scheduler batch size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}"
        )))
    }
}

/// One batch of a tick, in the caller's transaction `client` (which must be
/// one: the claim's row locks last until it ends, and its commit is what
/// makes the batch happen). Claims up to `batch_size` due schedules, fires
/// what may fire, advances all of them from `now`, and logs why each unfired
/// slot did not fire. Nothing is visible to others until the caller commits;
/// dropping the transaction instead leaves every claimed slot due, as if
/// this batch had never run.
pub async fn fire_batch(
    client: &impl GenericClient,
    now: OffsetDateTime,
    batch_size: i64,
) -> Result<TickReport, ServiceError> {
    check_batch_size(batch_size)?;
    let claimed = schedules::claim_due(client, now, batch_size).await?;
    let mut report = TickReport {
        batches: 1,
        claimed: claimed.len() as u64,
        more: claimed.len() as i64 == batch_size,
        ..TickReport::default()
    };
    if claimed.is_empty() {
        return Ok(report);
    }

    let mut slots = Vec::with_capacity(claimed.len());
    let mut advances = Vec::with_capacity(claimed.len());
    for due in &claimed {
        match next_slot(due, now) {
            Ok((cron, next_run_at)) => {
                slots.push(SlotToFire {
                    schedule_id: due.id,
                    slot: due.slot,
                    trigger: trigger_label::schedule(cron.as_str()),
                });
                advances.push(Advance {
                    id: due.id,
                    next_run_at,
                    run_id: None,
                });
            }
            Err(reason) => {
                // Only a write behind the api's back (or a stricter cron
                // parser after an upgrade) gets here. Firing it is
                // impossible and retrying it every tick pointless: it waits,
                // with no next slot, until someone updates it.
                tracing::error!(
                    schedule = %due.id,
                    pipeline = %due.pipeline_id,
                    cron = due.cron_expr,
                    timezone = due.timezone,
                    error = %reason,
                    "schedule cannot be evaluated; its next slot is cleared until it is updated"
                );
                report.invalid += 1;
                advances.push(Advance {
                    id: due.id,
                    next_run_at: None,
                    run_id: None,
                });
            }
        }
    }

    let fired = schedules::fire_slots(client, &slots, now).await?;
    report.fired = fired.len() as u64;
    let run_of: std::collections::HashMap<_, _> = fired.iter().map(|f| (f.schedule_id, f.run_id)).collect();
    for advance in &mut advances {
        advance.run_id = run_of.get(&advance.id).copied();
    }
    schedules::advance(client, &advances, now).await?;

    let unfired: Vec<_> = slots
        .iter()
        .filter(|s| !run_of.contains_key(&s.schedule_id))
        .map(|s| (s.schedule_id, s.slot))
        .collect();
    for skipped in schedules::explain_unfired(client, &unfired).await? {
        let (schedule, pipeline, slot) = (skipped.schedule_id, skipped.pipeline_id, skipped.slot);
        let reason = skipped.reason.as_str();
        match skipped.reason {
            NotFired::PipelineDeleted => {
                report.pipeline_deleted += 1;
                tracing::warn!(%schedule, %pipeline, %slot, reason, "schedule not fired: its pipeline is deleted");
            }
            NotFired::NeverPublished => {
                report.never_published += 1;
                tracing::warn!(
                    %schedule, %pipeline, %slot, reason,
                    "schedule not fired: its pipeline was never published"
                );
            }
            NotFired::ActiveRun { run_id } => {
                report.active_run += 1;
                tracing::info!(
                    %schedule, %pipeline, %slot, reason, active_run = ?run_id,
                    "schedule not fired: its pipeline has a pending or running run"
                );
            }
            NotFired::AlreadyFired => {
                report.already_fired += 1;
                tracing::info!(%schedule, %pipeline, %slot, reason, "schedule slot already has its run");
            }
        }
    }
    Ok(report)
}

/// The schedule's parsed expression and its next slot after `now` (`None`
/// when it never matches again); an error when the stored expression or
/// zone no longer parses.
fn next_slot(
    due: &DueSchedule,
    now: OffsetDateTime,
) -> Result<(CronExpr, Option<OffsetDateTime>), rat_domain::DomainError> {
    let cron = CronExpr::parse(&due.cron_expr)?;
    let zone = ScheduleTimezone::parse(&due.timezone)?;
    // `now` is at or after the slot (the slot is due); the max only guards
    // against a clock that went backwards between claim and here.
    let next = cron.next_after(now.max(due.slot), &zone);
    Ok((cron, next))
}

/// When a scheduler should tick next, seen at `now`: the earliest slot of
/// an enabled schedule or cron trigger, but no later than `now + max_sleep`
/// (so changes missed while not listening are picked up, and a clock jump
/// is corrected). The answer may be at or before `now`: a slot is due that
/// another replica is firing at this moment.
pub async fn next_wake(
    pool: &Pool,
    now: OffsetDateTime,
    max_sleep: time::Duration,
) -> Result<OffsetDateTime, ServiceError> {
    let client = pool.get().await?;
    let latest = now + max_sleep;
    Ok(match schedules::earliest_slot(&client).await? {
        Some(earliest) => earliest.min(latest),
        None => latest,
    })
}
