//! The reaper's batched deletes. Every function does at most one bounded
//! batch (a `LIMIT`ed set of rows, found in index order) so each call is one
//! short transaction: the caller loops until a batch comes back short, and a
//! pass over a million rows never holds a lock long enough to block the api.

use crate::GenericClient;
use rat_domain::{PipelineId, QualityTestId, RunId, ZoneId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::DaoError;
use crate::sql;

/// Where [`delete_runs_older_than`] stopped: the `(created_at, id)` of the
/// last run of its batch, in the order of `idx_runs_created_at`.
pub type RunKey = (OffsetDateTime, RunId);

/// Deletes up to `batch` finished runs created before `cutoff`, oldest first,
/// after `from` (a cursor: `None` on the first call, then the previous
/// call's answer), leaving the runs of `excluded` pipelines (those with
/// their own retention) alone. Returns how many were deleted and, when the
/// batch was full, the cursor for the next call (`None`: done). References
/// from schedules, triggers and quality results become NULL; log rows go
/// with their run.
///
/// The batch is read along `idx_runs_created_at` starting at the cursor, so
/// a call never walks again over the index entries of runs deleted by the
/// previous calls (they stay in the index until vacuum), and its rows are
/// deleted by their physical address in the same statement (no second
/// lookup by key, and no plan that scans the table).
pub async fn delete_runs_older_than(
    client: &impl GenericClient,
    cutoff: OffsetDateTime,
    excluded: &[PipelineId],
    from: Option<RunKey>,
    batch: i64,
) -> Result<(u64, Option<RunKey>), DaoError> {
    // The first call starts before any run (a bound rather than `IS NULL OR`,
    // so the row comparison always serves as the index condition).
    let (after_at, after_id) = from.unwrap_or((
        time::macros::datetime!(1900-01-01 0:00 UTC),
        RunId::from_uuid(Uuid::nil()),
    ));
    let row = sql::query_one(
        client,
        "run",
        "WITH batch AS MATERIALIZED ( \
             SELECT ctid AS tid, created_at, id FROM runs \
             WHERE created_at < $1 AND (created_at, id) > ($2, $3) \
               AND status = ANY($4) AND pipeline_id <> ALL($5) \
             ORDER BY created_at, id LIMIT $6), \
         gone AS (DELETE FROM runs WHERE ctid = ANY(ARRAY(SELECT tid FROM batch)) RETURNING 1), \
         last AS (SELECT created_at, id FROM batch ORDER BY created_at DESC, id DESC LIMIT 1) \
         SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM batch) AS selected, \
                (SELECT created_at FROM last) AS last_created_at, (SELECT id FROM last) AS last_id",
        &[
            &cutoff,
            &after_at,
            &after_id,
            &sql::terminal_statuses(),
            &excluded,
            &batch,
        ],
    )
    .await
    .map_err(DaoError::on_delete)?;
    let deleted: i64 = row.try_get("deleted")?;
    let selected: i64 = row.try_get("selected")?;
    let last_created_at: Option<OffsetDateTime> = row.try_get("last_created_at")?;
    let last_id: Option<RunId> = row.try_get("last_id")?;
    let next = match (last_created_at, last_id) {
        (Some(at), Some(id)) if selected >= batch => Some((at, id)),
        _ => None,
    };
    Ok((deleted as u64, next))
}

/// Deletes up to `batch` finished runs of one pipeline that are older than
/// `cutoff` or beyond its newest `keep` finished runs. Pending and running
/// runs are never deleted (and do not count towards `keep`).
pub async fn delete_pipeline_runs(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    keep: i64,
    cutoff: OffsetDateTime,
    batch: i64,
) -> Result<u64, DaoError> {
    // Ranked newest first along idx_runs_pipeline; the OFFSET skips the kept ones.
    sql::execute(
        client,
        "DELETE FROM runs WHERE id IN ( \
             SELECT id FROM ( \
                 SELECT id, created_at, row_number() OVER (ORDER BY created_at DESC, id DESC) AS newest \
                 FROM runs WHERE pipeline_id = $1 AND status = ANY($2) \
             ) ranked WHERE newest > $3 OR created_at < $4 \
             ORDER BY created_at, id LIMIT $5)",
        &[&pipeline_id, &sql::terminal_statuses(), &keep, &cutoff, &batch],
    )
    .await
    .map_err(DaoError::on_delete)
}

/// Pipelines (any, live or deleted) with more than `keep` finished runs,
/// from the kept run counts (V22: the folded counters plus the pending
/// deltas), not a scan of `runs`.
pub async fn pipelines_with_more_runs_than(
    client: &impl GenericClient,
    keep: i64,
) -> Result<Vec<PipelineId>, DaoError> {
    let rows = sql::query(
        client,
        "SELECT pipeline_id FROM ( \
             SELECT pipeline_id, n FROM run_counts WHERE status = ANY($1) \
             UNION ALL \
             SELECT pipeline_id, delta FROM run_count_deltas WHERE status = ANY($1) \
         ) counted GROUP BY pipeline_id HAVING sum(n)::bigint > $2",
        &[&sql::terminal_statuses(), &keep],
    )
    .await?;
    rows.iter().map(|r| r.try_get(0).map_err(DaoError::from)).collect()
}

/// Clears the logs of up to `batch` runs created before `cutoff` (except
/// runs of `excluded` pipelines): their `run_logs` rows and any log array in
/// the seed's shape. The run rows stay. Returns how many runs lost logs.
pub async fn clear_logs_older_than(
    client: &impl GenericClient,
    cutoff: OffsetDateTime,
    excluded: &[PipelineId],
    batch: i64,
) -> Result<u64, DaoError> {
    clear_logs(client, None, cutoff, excluded, batch).await
}

/// Like [`clear_logs_older_than`] for one pipeline's runs.
pub async fn clear_pipeline_logs_older_than(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    cutoff: OffsetDateTime,
    batch: i64,
) -> Result<u64, DaoError> {
    clear_logs(client, Some(pipeline_id), cutoff, &[], batch).await
}

async fn clear_logs(
    client: &impl GenericClient,
    pipeline_id: Option<PipelineId>,
    cutoff: OffsetDateTime,
    excluded: &[PipelineId],
    batch: i64,
) -> Result<u64, DaoError> {
    // Log rows are numbered in append order, so the oldest runs' entries come
    // first along pk_run_logs; the batch is a number of runs, not of rows.
    let rows = sql::query(
        client,
        "WITH runs_with_old_logs AS ( \
             SELECT DISTINCT l.run_id FROM run_logs l JOIN runs r ON r.id = l.run_id \
             WHERE r.created_at < $1 AND r.pipeline_id <> ALL($2) AND ($3::uuid IS NULL OR r.pipeline_id = $3) \
             LIMIT $4), \
         removed AS (DELETE FROM run_logs WHERE run_id IN (SELECT run_id FROM runs_with_old_logs) RETURNING run_id) \
         SELECT count(DISTINCT run_id) FROM removed",
        &[&cutoff, &excluded, &pipeline_id, &batch],
    )
    .await?;
    let from_rows: i64 = rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
    let legacy = sql::execute(
        client,
        "UPDATE runs SET logs = NULL WHERE id IN ( \
             SELECT id FROM runs WHERE logs IS NOT NULL AND created_at < $1 AND pipeline_id <> ALL($2) \
             AND ($3::uuid IS NULL OR pipeline_id = $3) ORDER BY created_at LIMIT $4)",
        &[&cutoff, &excluded, &pipeline_id, &batch],
    )
    .await?;
    Ok(from_rows as u64 + legacy)
}

/// Tests (of any pipeline but `excluded`) with more than `keep` results.
pub async fn tests_with_more_results_than(
    client: &impl GenericClient,
    keep: i64,
    excluded: &[PipelineId],
) -> Result<Vec<QualityTestId>, DaoError> {
    let rows = sql::query(
        client,
        "SELECT r.test_id FROM quality_results r JOIN quality_tests t ON t.id = r.test_id \
         WHERE t.pipeline_id <> ALL($2) GROUP BY r.test_id HAVING count(*) > $1",
        &[&keep, &excluded],
    )
    .await?;
    rows.iter().map(|r| r.try_get(0).map_err(DaoError::from)).collect()
}

/// Tests of one pipeline with more than `keep` results.
pub async fn pipeline_tests_with_more_results_than(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    keep: i64,
) -> Result<Vec<QualityTestId>, DaoError> {
    let rows = sql::query(
        client,
        "SELECT r.test_id FROM quality_results r JOIN quality_tests t ON t.id = r.test_id \
         WHERE t.pipeline_id = $2 GROUP BY r.test_id HAVING count(*) > $1",
        &[&keep, &pipeline_id],
    )
    .await?;
    rows.iter().map(|r| r.try_get(0).map_err(DaoError::from)).collect()
}

/// Deletes up to `batch` results of one test beyond its newest `keep`.
pub async fn delete_test_results_beyond(
    client: &impl GenericClient,
    test_id: QualityTestId,
    keep: i64,
    batch: i64,
) -> Result<u64, DaoError> {
    // Newest first along idx_quality_results_test; OFFSET skips the kept ones.
    sql::execute(
        client,
        "DELETE FROM quality_results WHERE id IN ( \
             SELECT id FROM quality_results WHERE test_id = $1 ORDER BY ran_at DESC, id DESC OFFSET $2 LIMIT $3)",
        &[&test_id, &keep, &batch],
    )
    .await
    .map_err(DaoError::on_delete)
}

/// A run the reaper failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRun {
    /// The run.
    pub run_id: RunId,
    /// The message recorded as its error.
    pub reason: String,
}

/// Fails, in one statement per rule, up to `batch` runs that cannot finish
/// any more, through the same status guard as every writer (a run that just
/// finished is left alone):
/// - running runs whose runner lease expired before `now` ("runner lost");
/// - running runs started before their pipeline's stuck timeout (its
///   minutes in `own_timeouts`, else `default_timeout_minutes`);
/// - pending runs created before `pending_cutoff` that no runner claimed.
///
/// Each failed run is announced on the status channel (at commit).
pub async fn fail_stuck_runs(
    client: &impl GenericClient,
    now: OffsetDateTime,
    default_timeout_minutes: i64,
    own_timeouts: &[(PipelineId, i64)],
    pending_cutoff: OffsetDateTime,
    batch: i64,
) -> Result<Vec<FailedRun>, DaoError> {
    let pipelines: Vec<PipelineId> = own_timeouts.iter().map(|(id, _)| *id).collect();
    let minutes: Vec<i32> = own_timeouts
        .iter()
        .map(|(_, minutes)| i32::try_from(*minutes).unwrap_or(i32::MAX))
        .collect();
    let rows = sql::query(
        client,
        concat!(
            "WITH stuck AS ( \
             SELECT r.id, CASE \
                 WHEN r.status = 'pending' THEN \
                     'not claimed by any runner within ' || \
                     extract(epoch FROM ($1::timestamptz - $3::timestamptz))::bigint / 3600 || ' h' \
                 WHEN r.lease_expires_at IS NOT NULL AND r.lease_expires_at < $1 THEN \
                     'runner lost: its lease on this run expired at ' || \
                     to_char(r.lease_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                 ELSE 'stuck: running for longer than ' || t.minutes || ' minutes' \
               END AS reason \
             FROM runs r \
             LEFT JOIN unnest($5::uuid[], $6::int[]) AS own(pipeline_id, minutes) ON own.pipeline_id = r.pipeline_id \
             CROSS JOIN LATERAL (SELECT COALESCE(own.minutes, $2::int) AS minutes) t \
             WHERE (r.status = 'pending' AND r.created_at < $3) \
                OR (r.status = 'running' AND ( \
                       (r.lease_expires_at IS NOT NULL AND r.lease_expires_at < $1) \
                    OR COALESCE(r.started_at, r.created_at) < $1 - make_interval(mins => t.minutes))) \
             ORDER BY r.created_at LIMIT $4 FOR UPDATE OF r SKIP LOCKED) \
         UPDATE runs SET status = 'failed', finished_at = $1, error = stuck.reason \
         FROM stuck WHERE runs.id = stuck.id AND runs.status IN ",
            active_statuses!(),
            " RETURNING runs.id, stuck.reason"
        ),
        &[
            &now,
            &(default_timeout_minutes as i32),
            &pending_cutoff,
            &batch,
            &pipelines,
            &minutes,
        ],
    )
    .await?;
    let failed: Vec<FailedRun> = rows
        .iter()
        .map(|r| {
            Ok(FailedRun {
                run_id: r.try_get(0)?,
                reason: r.try_get(1)?,
            })
        })
        .collect::<Result<_, DaoError>>()?;
    let ids: Vec<RunId> = failed.iter().map(|run| run.run_id).collect();
    sql::notify_each(client, crate::runs::STATUS_CHANNEL, &ids).await?;
    Ok(failed)
}

/// Pipelines with their own retention settings (`retention_config` set),
/// at most `limit`.
pub async fn pipelines_with_overrides(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<(PipelineId, serde_json::Value)>, DaoError> {
    let rows = sql::query(
        client,
        "SELECT id, retention_config FROM pipelines WHERE retention_config IS NOT NULL ORDER BY id LIMIT $1",
        &[&limit],
    )
    .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// Zones whose processed files are purged automatically, with their maximum
/// age in days (`None` = the system default), at most `limit`.
pub async fn auto_purge_zones(client: &impl GenericClient, limit: i64) -> Result<Vec<(ZoneId, Option<i32>)>, DaoError> {
    let rows = sql::query(
        client,
        "SELECT id, processed_max_age_days FROM landing_zones WHERE auto_purge ORDER BY id LIMIT $1",
        &[&limit],
    )
    .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// Deletes landing file rows (after their objects were removed), in one
/// statement; how many were deleted (a row already gone is not counted).
pub async fn delete_landing_files(client: &impl GenericClient, ids: &[Uuid]) -> Result<u64, DaoError> {
    sql::execute(client, "DELETE FROM landing_files WHERE id = ANY($1)", &[&ids]).await
}

/// Every `(key, version id)` a pipeline still needs: pinned by its history,
/// by its current snapshot, or by one of its runs that has not finished.
pub async fn pinned_versions(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
) -> Result<std::collections::HashSet<(String, String)>, DaoError> {
    let rows = sql::query(
        client,
        concat!(
            "SELECT e.key, e.value FROM pipeline_versions v, jsonb_each_text(v.published_versions) e \
             WHERE v.pipeline_id = $1 \
         UNION SELECT e.key, e.value FROM pipelines p, jsonb_each_text(p.published_versions) e WHERE p.id = $1 \
         UNION SELECT e.key, e.value FROM runs r, jsonb_each_text(r.published_versions) e \
             WHERE r.pipeline_id = $1 AND r.status IN ",
            active_statuses!()
        ),
        &[&pipeline_id],
    )
    .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}
