//! `pipeline_triggers`: event triggers of pipelines. Besides create, read,
//! update, delete and list, the event paths find the triggers an event fires
//! ([`watching`], [`find_webhook`], [`for_zone`]) with JSONB containment
//! served by the partial GIN index `idx_pipeline_triggers_config`, and claim a
//! fire atomically under the trigger's cooldown ([`try_claim_fire`]).
//!
//! Cron and cron-dependency triggers carry their next slot in `next_fire_at`
//! (NULL for other types and for disabled triggers): schedulers claim the due
//! ones with [`due_for_update`] (`FOR UPDATE SKIP LOCKED` on
//! `idx_pipeline_triggers_next_fire`) and advance them with
//! [`set_next_fire_at`]; [`unmet_dependencies`] checks the rule of
//! `cron_dependency`.

use crate::GenericClient;
use rat_domain::{
    NamespaceName, Page, PageRequest, Pipeline, PipelineRef, Trigger, TriggerConfig, TriggerType, ZoneName,
};
use rat_domain::{PipelineId, RunId, TriggerId};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

/// The select list of every trigger query, as a literal so it can be part of
/// the `concat!`ed query constants.
macro_rules! columns {
    () => {
        "id, pipeline_id, type, config, enabled, cooldown_seconds, last_triggered_at, last_run_id, \
         created_at, updated_at"
    };
}

const COLUMNS: &str = columns!();

/// The query of [`watching`] (`$1` = [`TriggerConfig::watching`] document,
/// `$2` = limit), exposed for plan tests. `config @> $1 AND enabled = true`
/// matches the partial GIN index `idx_pipeline_triggers_config`.
pub const WATCHING_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM pipeline_triggers \
     WHERE config @> $1 AND enabled = true AND type = 'pipeline_success' \
     ORDER BY created_at, id LIMIT $2"
);

/// The query of [`due_for_update`] (`$1` = now, `$2` = limit), exposed for
/// plan tests. `enabled = true AND next_fire_at IS NOT NULL` repeats the
/// predicate of the partial index `idx_pipeline_triggers_next_fire`, and the
/// order is the index's alone, so rows stream off the index and are locked one
/// by one up to the limit instead of every due row being sorted first.
pub const DUE_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    ", next_fire_at FROM pipeline_triggers \
     WHERE enabled = true AND next_fire_at IS NOT NULL AND next_fire_at <= $1 \
       AND type IN ('cron', 'cron_dependency') \
     ORDER BY next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED"
);

fn from_row(row: &Row) -> Result<Trigger, DaoError> {
    let trigger_type: TriggerType = sql::parse_column(row, "type")?;
    let config: serde_json::Value = row.try_get("config")?;
    Ok(Trigger {
        id: row.try_get("id")?,
        pipeline_id: row.try_get("pipeline_id")?,
        config: TriggerConfig::parse(trigger_type, &config).map_err(|e| DaoError::corrupt("config", e))?,
        enabled: row.try_get("enabled")?,
        cooldown_seconds: row.try_get("cooldown_seconds")?,
        last_triggered_at: row.try_get("last_triggered_at")?,
        last_run_id: row.try_get("last_run_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// What creating a trigger needs; its type is the config's.
#[derive(Debug, Clone)]
pub struct NewTrigger {
    /// The pipeline it starts.
    pub pipeline_id: PipelineId,
    /// Type and typed config (a webhook's config holds the token hash).
    pub config: TriggerConfig,
    /// Disabled triggers never fire.
    pub enabled: bool,
    /// Minimum seconds between two fires.
    pub cooldown_seconds: i32,
}

/// Creates a trigger; `MissingReference { pipeline }` for an unknown pipeline,
/// `Invalid { ck_pipeline_triggers_cooldown }` for a negative cooldown.
pub async fn create(client: &impl GenericClient, new: &NewTrigger) -> Result<Trigger, DaoError> {
    let row = sql::query_one(
        client,
        "trigger",
        &format!(
            "INSERT INTO pipeline_triggers (pipeline_id, type, config, enabled, cooldown_seconds) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ),
        &[
            &new.pipeline_id,
            &new.config.trigger_type().as_str(),
            &new.config.to_json(),
            &new.enabled,
            &new.cooldown_seconds,
        ],
    )
    .await?;
    from_row(&row)
}

/// The trigger with this id, whatever its pipeline (for the event paths).
pub async fn get(client: &impl GenericClient, id: TriggerId) -> Result<Trigger, DaoError> {
    let row = sql::query_one(
        client,
        "trigger",
        &format!("SELECT {COLUMNS} FROM pipeline_triggers WHERE id = $1"),
        &[&id],
    )
    .await?;
    from_row(&row)
}

/// The trigger with this id if it belongs to `pipeline_id`; `NotFound
/// { trigger }` otherwise, so a path naming another pipeline sees nothing.
pub async fn get_for_pipeline(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    id: TriggerId,
) -> Result<Trigger, DaoError> {
    let row = sql::query_one(
        client,
        "trigger",
        &format!("SELECT {COLUMNS} FROM pipeline_triggers WHERE id = $1 AND pipeline_id = $2"),
        &[&id, &pipeline_id],
    )
    .await?;
    from_row(&row)
}

/// Changes to a trigger; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct TriggerUpdate {
    /// New config, of the trigger's own type.
    pub config: Option<TriggerConfig>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New cooldown.
    pub cooldown_seconds: Option<i32>,
}

/// Applies `changes` to the trigger `id` of `pipeline_id`. A trigger's type
/// never changes: a config of another type is refused with `Invalid
/// { trigger_type }` and nothing is written. `NotFound { trigger }` when the
/// trigger does not exist or belongs to another pipeline.
pub async fn update(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    id: TriggerId,
    changes: &TriggerUpdate,
) -> Result<Trigger, DaoError> {
    let config = changes.config.as_ref().map(TriggerConfig::to_json);
    let trigger_type = changes.config.as_ref().map(|c| c.trigger_type().as_str());
    // The type guard is part of the UPDATE's WHERE, so the check and the write
    // are one statement.
    let updated = sql::query_opt(
        client,
        &format!(
            "UPDATE pipeline_triggers SET \
                config = COALESCE($3, config), \
                enabled = COALESCE($4, enabled), \
                cooldown_seconds = COALESCE($5, cooldown_seconds) \
             WHERE id = $1 AND pipeline_id = $2 AND ($6::text IS NULL OR type = $6::text) \
             RETURNING {COLUMNS}"
        ),
        &[
            &id,
            &pipeline_id,
            &config,
            &changes.enabled,
            &changes.cooldown_seconds,
            &trigger_type,
        ],
    )
    .await?;
    if let Some(row) = updated {
        return from_row(&row);
    }
    // Refused or missing. The type column is never updated, so a trigger that
    // exists now had the same type when the UPDATE ran.
    get_for_pipeline(client, pipeline_id, id).await?;
    Err(DaoError::Invalid {
        constraint: "trigger_type".to_owned(),
    })
}

/// Deletes the trigger `id` of `pipeline_id`. The runs it created stay, with
/// `trigger_id` NULL.
pub async fn delete(client: &impl GenericClient, pipeline_id: PipelineId, id: TriggerId) -> Result<(), DaoError> {
    let deleted = sql::execute(
        client,
        "DELETE FROM pipeline_triggers WHERE id = $1 AND pipeline_id = $2",
        &[&id, &pipeline_id],
    )
    .await
    .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound { entity: "trigger" });
    }
    Ok(())
}

/// The pipeline's triggers, oldest first, one page, with the total.
pub async fn list_for_pipeline(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    page: PageRequest,
) -> Result<Page<Trigger>, DaoError> {
    let mut conditions = Conditions::new();
    conditions.push("pipeline_id = $?", &pipeline_id);
    let order = OrderBy {
        columns: &["created_at", "id"],
        descending: false,
    };
    sql::fetch_page(client, COLUMNS, "pipeline_triggers", &conditions, order, page, from_row).await
}

/// Enabled `pipeline_success` triggers watching `upstream`, oldest first, at
/// most `limit`.
pub async fn watching(
    client: &impl GenericClient,
    upstream: &PipelineRef,
    limit: i64,
) -> Result<Vec<Trigger>, DaoError> {
    let document = TriggerConfig::watching(upstream);
    let rows = sql::query(client, WATCHING_SQL, &[&document, &limit]).await?;
    rows.iter().map(from_row).collect()
}

/// The enabled webhook trigger whose token hash is `token_hash`, if any.
/// At most one matches: `uq_pipeline_triggers_webhook_token` serves the lookup
/// and makes a second trigger with the same hash a `Conflict`.
pub async fn find_webhook(client: &impl GenericClient, token_hash: &str) -> Result<Option<Trigger>, DaoError> {
    let row = sql::query_opt(
        client,
        &format!(
            "SELECT {COLUMNS} FROM pipeline_triggers \
             WHERE config ->> 'token_hash' = $1 AND type = 'webhook' AND enabled = true"
        ),
        &[&token_hash],
    )
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Enabled `landing_zone_upload` and `file_pattern` triggers of the zone
/// `namespace/zone_name`, oldest first, at most `limit`. Patterns are not
/// matched here: the caller matches each `file_pattern` glob to the filename.
pub async fn for_zone(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    zone_name: &ZoneName,
    limit: i64,
) -> Result<Vec<Trigger>, DaoError> {
    let document = serde_json::json!({ "namespace": namespace.as_str(), "zone_name": zone_name.as_str() });
    let rows = sql::query(
        client,
        &format!(
            "SELECT {COLUMNS} FROM pipeline_triggers \
             WHERE config @> $1 AND enabled = true AND type IN ('landing_zone_upload', 'file_pattern') \
             ORDER BY created_at, id LIMIT $2"
        ),
        &[&document, &limit],
    )
    .await?;
    rows.iter().map(from_row).collect()
}

/// Claims a fire of the trigger at `now`: true when the trigger is enabled and
/// out of its cooldown, in which case `last_triggered_at` is now `now`; false
/// otherwise (in cooldown, disabled or missing). The check and the write are
/// one UPDATE, so of concurrent claims within one cooldown window exactly one
/// wins: a second claimer waits for the first one's row lock and then
/// re-checks the condition against the committed `last_triggered_at`.
pub async fn try_claim_fire(client: &impl GenericClient, id: TriggerId, now: OffsetDateTime) -> Result<bool, DaoError> {
    let claimed = sql::query_opt(
        client,
        "UPDATE pipeline_triggers SET last_triggered_at = $2 \
         WHERE id = $1 AND enabled \
           AND (last_triggered_at IS NULL \
                OR last_triggered_at + make_interval(secs => cooldown_seconds) <= $2) \
         RETURNING id",
        &[&id, &now],
    )
    .await?;
    Ok(claimed.is_some())
}

/// Records the run the trigger's last fire created.
pub async fn set_last_run(client: &impl GenericClient, id: TriggerId, run_id: RunId) -> Result<(), DaoError> {
    let updated = sql::execute(
        client,
        "UPDATE pipeline_triggers SET last_run_id = $2 WHERE id = $1",
        &[&id, &run_id],
    )
    .await?;
    if updated == 0 {
        return Err(DaoError::NotFound { entity: "trigger" });
    }
    Ok(())
}

/// A cron or cron-dependency trigger whose slot is due, locked by the caller's
/// transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct DueTrigger {
    /// The trigger.
    pub trigger: Trigger,
    /// The slot that is due (its `next_fire_at`).
    pub slot: OffsetDateTime,
}

/// Enabled `cron` and `cron_dependency` triggers whose `next_fire_at` is at or
/// before `now`, earliest slot first, at most `limit`, each locked until the
/// end of the caller's transaction. Rows another transaction holds are
/// skipped (`SKIP LOCKED`), so concurrent scheduler replicas never claim the
/// same trigger: each due slot is handled by exactly one of them.
pub async fn due_for_update(
    client: &impl GenericClient,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<DueTrigger>, DaoError> {
    let rows = sql::query(client, DUE_SQL, &[&now, &limit]).await?;
    rows.iter()
        .map(|row| {
            Ok(DueTrigger {
                trigger: from_row(row)?,
                slot: row.try_get("next_fire_at")?,
            })
        })
        .collect()
}

/// Sets (or with `None` clears) the trigger's next cron slot. `NotFound
/// { trigger }` for an unknown trigger.
pub async fn set_next_fire_at(
    client: &impl GenericClient,
    id: TriggerId,
    next_fire_at: Option<OffsetDateTime>,
) -> Result<(), DaoError> {
    let updated = sql::execute(
        client,
        "UPDATE pipeline_triggers SET next_fire_at = $2 WHERE id = $1",
        &[&id, &next_fire_at],
    )
    .await?;
    if updated == 0 {
        return Err(DaoError::NotFound { entity: "trigger" });
    }
    Ok(())
}

/// The trigger's next cron slot (`None` for other types, disabled triggers,
/// or an expression that never matches again). `NotFound { trigger }` for an
/// unknown trigger.
pub async fn next_fire_at(client: &impl GenericClient, id: TriggerId) -> Result<Option<OffsetDateTime>, DaoError> {
    let row = sql::query_one(
        client,
        "trigger",
        "SELECT next_fire_at FROM pipeline_triggers WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok(row.try_get("next_fire_at")?)
}

/// Enabled `cron` and `cron_dependency` triggers without a slot, with ids
/// greater than `after` (keyset pagination), by id, at most `limit`. Such a
/// trigger was written before `next_fire_at` existed (or behind the
/// service's back); [`set_missing_next_fire_at`] gives it its slot.
pub async fn without_slot(
    client: &impl GenericClient,
    after: Option<TriggerId>,
    limit: i64,
) -> Result<Vec<Trigger>, DaoError> {
    let rows = sql::query(
        client,
        concat!(
            "SELECT ",
            columns!(),
            " FROM pipeline_triggers \
             WHERE enabled = true AND next_fire_at IS NULL AND type IN ('cron', 'cron_dependency') \
               AND ($1::uuid IS NULL OR id > $1) \
             ORDER BY id LIMIT $2"
        ),
        &[&after, &limit],
    )
    .await?;
    rows.iter().map(from_row).collect()
}

/// Sets the trigger's slot only if it still has none (a concurrent update
/// that set one wins). Whether it was set.
pub async fn set_missing_next_fire_at(
    client: &impl GenericClient,
    id: TriggerId,
    next_fire_at: OffsetDateTime,
) -> Result<bool, DaoError> {
    let updated = sql::execute(
        client,
        "UPDATE pipeline_triggers SET next_fire_at = $2 WHERE id = $1 AND enabled = true AND next_fire_at IS NULL",
        &[&id, &next_fire_at],
    )
    .await?;
    Ok(updated == 1)
}

/// `NOTIFY rat_schedules, '<trigger id>'` ([`crate::schedules::CHANGED_CHANNEL`]),
/// delivered when the caller's transaction commits: schedulers wake up and
/// re-read the earliest slot.
/// Disables every trigger of the pipeline (and clears their next slot).
/// Returns the ids of those that were enabled.
pub async fn disable_for_pipeline(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
) -> Result<Vec<TriggerId>, DaoError> {
    let rows = sql::query(
        client,
        "UPDATE pipeline_triggers SET enabled = false, next_fire_at = NULL WHERE pipeline_id = $1 AND enabled RETURNING id",
        &[&pipeline_id],
    )
    .await?;
    rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
}

/// Enables again the disabled ones among `ids` of pipeline `pipeline_id`
/// (a restore undoing [`disable_for_pipeline`]); their slots are for the
/// caller to set. Returns the ids enabled.
pub async fn enable_for_pipeline(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    ids: &[TriggerId],
) -> Result<Vec<TriggerId>, DaoError> {
    let rows = sql::query(
        client,
        "UPDATE pipeline_triggers SET enabled = true WHERE pipeline_id = $1 AND id = ANY($2) AND NOT enabled RETURNING id",
        &[&pipeline_id, &ids],
    )
    .await?;
    rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
}

/// Sends the schedules-changed notification for trigger `id` (delivered at commit).
pub async fn notify_changed(client: &impl GenericClient, id: TriggerId) -> Result<(), DaoError> {
    sql::notify(client, crate::schedules::CHANGED_CHANNEL, id).await
}

/// The live (not soft-deleted) pipeline `pipeline_id` that a fire would run,
/// read `FOR SHARE` so that it stays live, and its published version stays
/// the latest, until the caller's transaction ends: publish, rollback and
/// delete lock the row `FOR UPDATE` and wait. Concurrent fires of one
/// pipeline do not block each other. `None` when the pipeline is gone or
/// soft-deleted.
pub async fn fire_target(client: &impl GenericClient, pipeline_id: PipelineId) -> Result<Option<Pipeline>, DaoError> {
    // Every column, decoded by name with the pipelines repository's decoder.
    let row = sql::query_opt(
        client,
        "SELECT * FROM pipelines WHERE id = $1 AND deleted_at IS NULL FOR SHARE",
        &[&pipeline_id],
    )
    .await?;
    row.as_ref().map(crate::pipelines::from_row).transpose()
}

/// The dependencies of a `cron_dependency` trigger that are not satisfied,
/// in the order given: a dependency is satisfied when a live pipeline has its
/// address and a run of it succeeded with `finished_at` strictly after
/// `since` (the trigger's previous fire); with `since = None` (never fired)
/// any successful run counts. One statement for every dependency.
pub async fn unmet_dependencies(
    client: &impl GenericClient,
    dependencies: &[PipelineRef],
    since: Option<OffsetDateTime>,
) -> Result<Vec<PipelineRef>, DaoError> {
    let namespaces: Vec<&str> = dependencies.iter().map(|d| d.namespace.as_str()).collect();
    let layers: Vec<&str> = dependencies.iter().map(|d| d.layer.as_str()).collect();
    let names: Vec<&str> = dependencies.iter().map(|d| d.name.as_str()).collect();
    // The runs of each dependency are reached through `idx_runs_pipeline`;
    // EXISTS stops at the first qualifying run.
    let rows = sql::query(
        client,
        "SELECT d.ord FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS d(ns, layer, name, ord) \
         WHERE NOT EXISTS ( \
             SELECT 1 FROM pipelines p JOIN runs r ON r.pipeline_id = p.id \
             WHERE p.namespace = d.ns AND p.layer = d.layer AND p.name = d.name AND p.deleted_at IS NULL \
               AND r.status = 'success' AND ($4::timestamptz IS NULL OR r.finished_at > $4::timestamptz)) \
         ORDER BY d.ord",
        &[&namespaces, &layers, &names, &since],
    )
    .await?;
    rows.iter()
        .map(|row| {
            let ordinal: i64 = row.try_get("ord")?;
            usize::try_from(ordinal - 1)
                .ok()
                .and_then(|i| dependencies.get(i))
                .cloned()
                .ok_or_else(|| DaoError::Corrupt {
                    column: "ord",
                    source: "ordinality out of range".into(),
                })
        })
        .collect()
}
