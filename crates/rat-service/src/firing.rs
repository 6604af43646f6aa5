//! The one fire path of triggers, shared by every process that fires them.
//!
//! [`fire`] turns one trigger event into a run, inside the caller's
//! transaction and a savepoint of its own: the atomic cooldown claim
//! (`last_triggered_at`), the target pipeline's published snapshot, the run
//! (with `trigger_id`, and `scheduled_for` for a cron slot) and `last_run_id`
//! all commit with the caller's work, or not at all. A trigger that cannot
//! fire (cooldown, pipeline never published or deleted, slot already fired)
//! rolls its savepoint back, so its claim is undone and the caller's work
//! (the upstream run's success, the uploaded file's row) is kept.
//!
//! The events, one function each:
//! - [`fire_pipeline_success`]: a run succeeded (called by
//!   `runner::on_success` in the transaction recording the success);
//! - [`fire_upload`]: a file was uploaded to a landing zone (called by
//!   `landing::upload_file` in the transaction recording the file);
//! - [`fire_webhook`]: `POST /api/v1/webhooks` with a token;
//! - [`fire_due_cron_triggers`]: the scheduler tick, for `cron` and
//!   `cron_dependency` triggers, once per slot across replicas.
//!
//! Every label is the contract's (`rat_domain::trigger_label`). Time is always
//! passed in (`now`), so cooldowns and slots are testable with an injected clock.

use globset::{GlobBuilder, GlobMatcher};
use rat_dao::runs::{self, NewRun};
use rat_dao::{DaoError, Pool, Transaction, pipelines, triggers};
use rat_domain::{NamespaceName, Run, ScheduleTimezone, Trigger, TriggerConfig, ZoneName, trigger_label};
use rat_domain::{PipelineId, RunId, TriggerId};
use time::OffsetDateTime;

use crate::{ServiceError, Services, versions};

/// Most triggers one event (a success, an upload) fires; beyond it the rest
/// are not fired and a warning is logged. Every fire of one event happens in
/// the event's transaction, so this bounds that transaction.
pub const MAX_FIRES_PER_EVENT: i64 = 1000;

/// Most due cron triggers one [`fire_due_cron_triggers`] call handles; a
/// larger batch is reduced to it.
pub const MAX_CRON_BATCH: i64 = 1000;

/// What one attempt to fire a trigger did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
    /// A run was created (its id); `last_triggered_at` and `last_run_id` were
    /// set in the same transaction.
    Fired(RunId),
    /// The trigger fired less than `cooldown_seconds` ago; nothing changed.
    Cooldown,
    /// The trigger was disabled or deleted since it was read; nothing changed.
    Disabled,
    /// The target pipeline cannot run (never published, or deleted); nothing
    /// changed, the cooldown claim included. The reason is for logs and clients.
    NotRunnable(String),
    /// The cron slot already has its run (`uq_runs_trigger_slot`); nothing changed.
    SlotTaken,
    /// Firing failed for another reason (a bug or corrupt data); nothing
    /// changed and the caller's transaction is intact. The detail is logged.
    Failed(String),
}

impl FireOutcome {
    /// The created run, when the trigger fired.
    pub fn run_id(&self) -> Option<RunId> {
        match self {
            FireOutcome::Fired(id) => Some(*id),
            _ => None,
        }
    }
}

/// One trigger an event tried to fire, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerFire {
    /// The trigger.
    pub trigger_id: TriggerId,
    /// What happened.
    pub outcome: FireOutcome,
}

/// Fires `trigger` with the run label `label`, in `transaction` and a
/// savepoint of its own. `slot` is the cron slot (`scheduled_for`, unique per
/// trigger) for cron types, `None` otherwise.
///
/// Inside the savepoint, in order: the cooldown claim (a conditional UPDATE
/// of `last_triggered_at`: of concurrent events within one window exactly one
/// passes), the target pipeline (live, read `FOR SHARE` so a publish,
/// rollback or delete waits for this transaction) and its latest published
/// snapshot, the pending run, and `last_run_id`. When the trigger cannot fire
/// the savepoint is rolled back and the outcome says why; the caller's
/// transaction is unaffected and may commit.
///
/// `Err` only when the database is unavailable or asks for a retry
/// (serialization failure, deadlock): the caller's transaction is then in
/// doubt and should be retried as a whole. Any other failure is contained:
/// rolled back, logged, and reported as [`FireOutcome::Failed`].
pub async fn fire(
    transaction: &mut Transaction<'_>,
    trigger: &Trigger,
    label: &str,
    slot: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<FireOutcome, ServiceError> {
    let savepoint = transaction.transaction().await?;
    let attempt = fire_in(&savepoint, trigger, label, slot, now).await;
    let outcome = match attempt {
        Ok(FireOutcome::Fired(run_id)) => {
            savepoint.commit().await?;
            tracing::info!(trigger = %trigger.id, run = %run_id, label, "trigger fired");
            return Ok(FireOutcome::Fired(run_id));
        }
        Ok(outcome) => outcome,
        Err(error @ ServiceError::Unavailable { .. }) => {
            savepoint.rollback().await?;
            return Err(error);
        }
        Err(error) => {
            tracing::error!(trigger = %trigger.id, label, error = %error, detail = ?error, "trigger could not fire");
            FireOutcome::Failed(error.to_string())
        }
    };
    savepoint.rollback().await?;
    match &outcome {
        FireOutcome::NotRunnable(reason) => {
            tracing::warn!(trigger = %trigger.id, label, reason = %reason, "trigger not fired: its pipeline cannot run");
        }
        other => tracing::info!(trigger = %trigger.id, label, outcome = ?other, "trigger not fired"),
    }
    Ok(outcome)
}

/// The body of [`fire`], inside its savepoint.
async fn fire_in(
    savepoint: &Transaction<'_>,
    trigger: &Trigger,
    label: &str,
    slot: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<FireOutcome, ServiceError> {
    if !triggers::try_claim_fire(savepoint, trigger.id, now).await? {
        // The claim also refuses a trigger disabled or deleted since the
        // caller read it; only an enabled one is in its cooldown.
        return Ok(match triggers::get(savepoint, trigger.id).await {
            Ok(current) if current.enabled => FireOutcome::Cooldown,
            Ok(_) | Err(DaoError::NotFound { .. }) => FireOutcome::Disabled,
            Err(other) => return Err(other.into()),
        });
    }
    let Some(pipeline) = triggers::fire_target(savepoint, trigger.pipeline_id).await? else {
        return Ok(FireOutcome::NotRunnable(format!(
            "the trigger's pipeline {} was deleted",
            trigger.pipeline_id
        )));
    };
    let snapshot = match versions::run_snapshot(savepoint, &pipeline).await {
        Ok(snapshot) => snapshot,
        Err(ServiceError::FailedPrecondition { message }) => return Ok(FireOutcome::NotRunnable(message)),
        Err(other) => return Err(other),
    };
    let new = NewRun {
        pipeline_id: pipeline.id,
        trigger: label.to_owned(),
        version_number: snapshot.version_number,
        published_versions: snapshot.published_versions,
        schedule_id: None,
        trigger_id: Some(trigger.id),
        scheduled_for: slot,
    };
    let run = match runs::create(savepoint, &new, now).await {
        Ok(run) => run,
        Err(DaoError::Conflict { constraint }) if constraint == "uq_runs_trigger_slot" => {
            return Ok(FireOutcome::SlotTaken);
        }
        Err(other) => return Err(other.into()),
    };
    triggers::set_last_run(savepoint, trigger.id, run.id).await?;
    Ok(FireOutcome::Fired(run.id))
}

/// Warns when an event found as many triggers as it may fire: more may match.
fn warn_if_capped(found: usize, event: &str) {
    if i64::try_from(found).is_ok_and(|n| n >= MAX_FIRES_PER_EVENT) {
        tracing::warn!(
            limit = MAX_FIRES_PER_EVENT,
            event,
            "an event matched the most triggers one event fires; later ones were not fired"
        );
    }
}

/// Fires every enabled `pipeline_success` trigger watching the pipeline of
/// `run`, which has just succeeded, in the transaction recording the success,
/// each with the label `trigger:pipeline_success:{ns}/{layer}/{name}` of the
/// upstream. The watchers are found by JSONB containment on their config
/// (`rat_dao::triggers::watching`, the GIN index), oldest first, at most
/// [`MAX_FIRES_PER_EVENT`]. A soft-deleted upstream fires nothing: its
/// address may already belong to a new pipeline.
pub async fn fire_pipeline_success(
    transaction: &mut Transaction<'_>,
    run: &Run,
    now: OffsetDateTime,
) -> Result<Vec<TriggerFire>, ServiceError> {
    let upstream = pipelines::get(&*transaction, run.pipeline_id).await?;
    if upstream.deleted_at.is_some() {
        tracing::info!(run = %run.id, "the succeeded run's pipeline was deleted; no pipeline_success trigger fires");
        return Ok(Vec::new());
    }
    let watchers = triggers::watching(&*transaction, &upstream.address, MAX_FIRES_PER_EVENT).await?;
    warn_if_capped(watchers.len(), "pipeline_success");
    let label = trigger_label::pipeline_success(&upstream.address);
    let mut fires = Vec::with_capacity(watchers.len());
    for trigger in &watchers {
        let outcome = fire(transaction, trigger, &label, None, now).await?;
        fires.push(TriggerFire {
            trigger_id: trigger.id,
            outcome,
        });
    }
    Ok(fires)
}

/// Compiles a `file_pattern` glob: `*` and `?` match within the file name,
/// `[...]` is a character class (`[!...]` negated), `{a,b}` an alternation,
/// `\` escapes; matching is case-sensitive. `InvalidInput` for a glob that
/// does not compile (an unclosed class, say).
pub fn compile_pattern(pattern: &str) -> Result<GlobMatcher, ServiceError> {
    GlobBuilder::new(pattern)
        .case_insensitive(false)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|glob| glob.compile_matcher())
        .map_err(|e| ServiceError::invalid(format!("invalid pattern {pattern:?}: {}", e.kind())))
}

/// Fires the triggers of an upload of `filename` to the zone
/// `namespace/zone`, in the transaction recording the file: every enabled
/// `landing_zone_upload` trigger of the zone, and every enabled `file_pattern`
/// trigger of the zone whose glob matches `filename` — the name the client
/// uploaded the file under, reduced to its last path segment, before any
/// character replacement or timestamp prefix. At most [`MAX_FIRES_PER_EVENT`]
/// triggers of the zone are considered, oldest first.
pub async fn fire_upload(
    transaction: &mut Transaction<'_>,
    namespace: &NamespaceName,
    zone: &ZoneName,
    filename: &str,
    now: OffsetDateTime,
) -> Result<Vec<TriggerFire>, ServiceError> {
    let candidates = triggers::for_zone(&*transaction, namespace, zone, MAX_FIRES_PER_EVENT).await?;
    warn_if_capped(candidates.len(), "upload");
    let mut fires = Vec::new();
    for trigger in &candidates {
        let label = match &trigger.config {
            TriggerConfig::LandingZoneUpload { .. } => trigger_label::landing_zone_upload(namespace, zone),
            TriggerConfig::FilePattern { pattern, .. } => match compile_pattern(pattern) {
                Ok(glob) if glob.is_match(filename) => trigger_label::file_pattern(namespace, zone, pattern),
                Ok(_) => continue,
                Err(e) => {
                    // Stored before patterns were checked as globs: it can
                    // never match, which is worth fixing.
                    tracing::warn!(trigger = %trigger.id, error = %e, "file_pattern trigger has an invalid glob");
                    continue;
                }
            },
            // `for_zone` returns only the two zone types.
            _ => continue,
        };
        let outcome = fire(transaction, trigger, &label, None, now).await?;
        fires.push(TriggerFire {
            trigger_id: trigger.id,
            outcome,
        });
    }
    Ok(fires)
}

/// Fires the enabled webhook trigger whose token is `token`. The token is
/// hashed (SHA-256, as stored at creation) and the trigger looked up by the
/// hash: the token itself is never compared with anything, so the lookup
/// leaks nothing about stored tokens through timing. The run's label is
/// `trigger:webhook:{first 8 hex of the hash}`.
///
/// `NotFound { webhook trigger }` when no enabled webhook trigger has the
/// token; otherwise the trigger and the outcome ([`FireOutcome::Cooldown`],
/// [`FireOutcome::NotRunnable`] ... are answers, not errors).
#[tracing::instrument(skip_all)]
pub async fn fire_webhook(services: &Services, token: &str, now: OffsetDateTime) -> Result<TriggerFire, ServiceError> {
    let token_hash = crate::triggers::webhook_token_hash(token);
    let mut client = services.pool.get().await?;
    let mut transaction = client.transaction().await?;
    let Some(trigger) = triggers::find_webhook(&transaction, &token_hash).await? else {
        return Err(ServiceError::NotFound {
            entity: "webhook trigger",
        });
    };
    let label = trigger_label::webhook(&token_hash);
    let outcome = fire(&mut transaction, &trigger, &label, None, now).await?;
    transaction.commit().await?;
    Ok(TriggerFire {
        trigger_id: trigger.id,
        outcome,
    })
}

/// What one pass of [`fire_due_cron_triggers`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CronTickReport {
    /// Due triggers that created a run.
    pub fired: u64,
    /// Due triggers whose slot passed without a run (cooldown, unmet
    /// dependencies, pipeline never published or deleted, slot already
    /// fired); their next slot was advanced all the same.
    pub skipped: u64,
    /// True when a full batch was processed: more triggers may be due.
    pub more: bool,
}

/// Fires the enabled `cron` and `cron_dependency` triggers due at `now`, at
/// most `batch` of them (1..=[`MAX_CRON_BATCH`]; other values are brought into
/// that range), earliest slot first, in one transaction.
///
/// The due triggers are claimed with `FOR UPDATE SKIP LOCKED`, so concurrent
/// callers (scheduler replicas) never handle the same trigger; the run of a
/// slot carries `scheduled_for` = the slot, unique per trigger
/// (`uq_runs_trigger_slot`), so a slot can never fire twice even if the claim
/// were wrong. For each trigger the slot is its `next_fire_at`:
/// - `cron` fires (label `trigger:cron:{expr}`);
/// - `cron_dependency` fires (label `trigger:cron_dependency:{expr}`) only
///   when every dependency is a live pipeline with a run that succeeded
///   strictly after the trigger's previous fire (`last_triggered_at`; never
///   fired: any successful run); otherwise the slot is skipped, with the
///   missing dependencies logged.
///
/// Cooldowns apply as to every trigger. Whether it fired or not, the
/// trigger's `next_fire_at` becomes the first slot after `now` in the same
/// transaction, so slots missed while no scheduler ran collapse into the one
/// fire. A crash before the commit leaves the slots due for the next call.
pub async fn fire_due_cron_triggers(
    pool: &Pool,
    now: OffsetDateTime,
    batch: i64,
) -> Result<CronTickReport, ServiceError> {
    let batch = batch.clamp(1, MAX_CRON_BATCH);
    let mut client = pool.get().await?;
    let mut transaction = client.transaction().await?;
    let due = triggers::due_for_update(&transaction, now, batch).await?;
    let mut report = CronTickReport {
        more: i64::try_from(due.len()).is_ok_and(|n| n >= batch),
        ..CronTickReport::default()
    };
    // The rule schedules follow: a slot whose pipeline had a run pending or
    // running when the batch began is skipped, so a trigger firing faster
    // than its pipeline runs does not pile runs up (an every-second cron
    // would otherwise add one per second). As for schedules, the runs this
    // batch creates do not count: two triggers of one pipeline due at one
    // instant both fire.
    let pipeline_ids: Vec<PipelineId> = due.iter().map(|d| d.trigger.pipeline_id).collect();
    let busy: std::collections::HashSet<PipelineId> = runs::with_active_run(&transaction, &pipeline_ids)
        .await?
        .into_iter()
        .collect();
    for triggers::DueTrigger { trigger, slot } in &due {
        let outcome = fire_cron_slot(
            &mut transaction,
            trigger,
            *slot,
            busy.contains(&trigger.pipeline_id),
            now,
        )
        .await?;
        if outcome.run_id().is_some() {
            report.fired += 1;
        } else {
            report.skipped += 1;
        }
    }
    transaction.commit().await?;
    if !due.is_empty() {
        tracing::info!(fired = report.fired, skipped = report.skipped, "cron triggers handled");
    }
    Ok(report)
}

/// Handles one due slot of a cron or cron-dependency trigger and advances
/// its `next_fire_at` past `now`. Returns what happened to the slot.
async fn fire_cron_slot(
    transaction: &mut Transaction<'_>,
    trigger: &Trigger,
    slot: OffsetDateTime,
    pipeline_busy: bool,
    now: OffsetDateTime,
) -> Result<FireOutcome, ServiceError> {
    if pipeline_busy
        && let TriggerConfig::Cron { cron_expr } | TriggerConfig::CronDependency { cron_expr, .. } = &trigger.config
    {
        tracing::info!(trigger = %trigger.id, %slot, "cron trigger slot skipped: its pipeline has an active run");
        let next = cron_expr.next_after(now, &ScheduleTimezone::UTC);
        triggers::set_next_fire_at(&*transaction, trigger.id, next).await?;
        return Ok(FireOutcome::NotRunnable(
            "its pipeline has a run pending or running".to_owned(),
        ));
    }
    let (cron, outcome) = match &trigger.config {
        TriggerConfig::Cron { cron_expr } => {
            let label = trigger_label::cron(cron_expr.as_str());
            (cron_expr, fire(transaction, trigger, &label, Some(slot), now).await?)
        }
        TriggerConfig::CronDependency {
            cron_expr,
            dependencies,
        } => {
            let unmet = triggers::unmet_dependencies(&*transaction, dependencies, trigger.last_triggered_at).await?;
            let outcome = if unmet.is_empty() {
                let label = trigger_label::cron_dependency(cron_expr.as_str());
                fire(transaction, trigger, &label, Some(slot), now).await?
            } else {
                let missing: Vec<String> = unmet.iter().map(|d| d.dotted()).collect();
                let reason = format!(
                    "dependencies without a successful run since the previous fire: {}",
                    missing.join(", ")
                );
                tracing::info!(trigger = %trigger.id, %slot, reason = %reason, "cron_dependency slot skipped");
                FireOutcome::NotRunnable(reason)
            };
            (cron_expr, outcome)
        }
        other => {
            // Only cron types get a slot; one on another type was written
            // behind the service's back. Clearing it stops it coming back.
            tracing::warn!(trigger = %trigger.id, r#type = %other.trigger_type(), "slot on a non-cron trigger cleared");
            triggers::set_next_fire_at(&*transaction, trigger.id, None).await?;
            return Ok(FireOutcome::Failed("not a cron trigger".to_owned()));
        }
    };
    let next = cron.next_after(now, &ScheduleTimezone::UTC);
    triggers::set_next_fire_at(&*transaction, trigger.id, next).await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_file_names_case_sensitively() {
        let cases = [
            ("*.csv", "orders.csv", true),
            ("*.csv", "orders.CSV", false),
            ("*.csv", "orders.csv.bak", false),
            ("orders_??.csv", "orders_07.csv", true),
            ("orders_??.csv", "orders_7.csv", false),
            ("[ab]*.json", "a1.json", true),
            ("[ab]*.json", "c1.json", false),
            ("[!ab]*.json", "c1.json", true),
            ("Q1 report (final).xlsx", "Q1 report (final).xlsx", true),
            ("*.{csv,tsv}", "x.tsv", true),
            (r"\*.csv", "*.csv", true),
            (r"\*.csv", "a.csv", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(
                compile_pattern(pattern).unwrap().is_match(name),
                expected,
                "{pattern} ~ {name}"
            );
        }
        assert!(compile_pattern("[abc").is_err());
    }
}
