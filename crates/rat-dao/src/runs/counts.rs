//! Run counts by pipeline and status without scanning `runs` (V22): the
//! statement triggers on `runs` append signed deltas to `run_count_deltas`;
//! [`fold_counts`] moves them, a bounded batch at a time, into `run_counts`
//! (by pipeline and status) and `run_totals` (by status); a count is the
//! folded rows plus the pending deltas, read in one statement
//! ([`count_statement`]).

use rat_domain::PipelineId;

use crate::sql::{self, Conditions};
use crate::{DaoError, GenericClient};

/// The advisory lock of the fold ([`try_lock_fold`]): one folder at a time
/// per schema (`scoped_lock_key!`).
pub const FOLD_LOCK_KEY: i64 = 0x0052_4154_434e_5453;

/// Where a count of runs reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountSource {
    /// `run_totals`: the filter has at most a status condition.
    Totals,
    /// `run_counts`: the filter names pipelines (by id, address or access).
    ByPipeline,
}

/// The count of the runs `conditions` select, from the counters: the folded
/// rows plus the deltas not folded yet, in one statement (one snapshot, so a
/// fold committing meanwhile is seen whole or not at all). `conditions` may
/// only use `pipeline_id` and `status` (the columns all three tables share);
/// with [`CountSource::Totals`], only `status`.
pub(crate) fn count_statement(source: CountSource, conditions: &Conditions<'_>) -> String {
    let folded = match source {
        CountSource::Totals => "run_totals",
        CountSource::ByPipeline => "run_counts",
    };
    let where_clause = conditions.render();
    format!(
        "SELECT ((SELECT coalesce(sum(n), 0) FROM {folded}{where_clause}) \
         + (SELECT coalesce(sum(delta), 0) FROM run_count_deltas{where_clause}))::bigint"
    )
}

/// Takes the fold's lock for the rest of the caller's transaction; `false`
/// when another transaction holds it (another folder is at work: this one
/// has nothing to do).
pub async fn try_lock_fold(client: &impl GenericClient) -> Result<bool, DaoError> {
    let row = sql::query_opt(
        client,
        concat!(
            "SELECT pg_try_advisory_xact_lock(",
            scoped_lock_key!("$1::int8", "current_schema()"),
            ")"
        ),
        &[&FOLD_LOCK_KEY],
    )
    .await?
    .ok_or(DaoError::NotFound { entity: "lock" })?;
    Ok(row.try_get(0)?)
}

/// Folds the oldest `limit` deltas after id `after` (a cursor: 0, then the
/// previous call's answer) into `run_counts` and `run_totals` and deletes
/// them; returns how many it folded (fewer than `limit`: none were left, as
/// of its snapshot) and the last id it folded (`after` when none). Call it
/// in a transaction holding [`try_lock_fold`]: concurrent folders could
/// deadlock on the counters (never miscount). Counters of pipelines that
/// reach zero are deleted.
///
/// A run of batches walks the index from where the previous one stopped,
/// not over the entries of the deltas it already deleted (they stay in the
/// index until vacuum). A delta committed late with an id below the cursor
/// waits for the next fold; reads count it meanwhile (the counters plus
/// every pending delta).
pub async fn fold_counts(client: &impl GenericClient, after: i64, limit: i64) -> Result<(i64, i64), DaoError> {
    let row = sql::query_opt(
        client,
        "WITH batch AS ( \
             DELETE FROM run_count_deltas \
             WHERE id IN (SELECT id FROM run_count_deltas WHERE id > $2 ORDER BY id LIMIT $1) \
             RETURNING id, pipeline_id, status, delta \
         ), by_pipeline AS ( \
             SELECT pipeline_id, status, sum(delta)::bigint AS delta FROM batch GROUP BY pipeline_id, status \
         ), counted AS ( \
             INSERT INTO run_counts AS c (pipeline_id, status, n) \
             SELECT pipeline_id, status, delta FROM by_pipeline WHERE delta <> 0 ORDER BY pipeline_id, status \
             ON CONFLICT (pipeline_id, status) DO UPDATE SET n = c.n + EXCLUDED.n \
             RETURNING c.pipeline_id, c.status, c.n \
         ), totalled AS ( \
             INSERT INTO run_totals AS t (status, n) \
             SELECT status, sum(delta)::bigint FROM by_pipeline GROUP BY status ORDER BY status \
             ON CONFLICT (status) DO UPDATE SET n = t.n + EXCLUDED.n \
             RETURNING 1 \
         ) \
         SELECT (SELECT count(*) FROM batch), \
                (SELECT count(*) FROM totalled), \
                coalesce((SELECT array_agg(pipeline_id) FROM counted WHERE n = 0), '{}'), \
                coalesce((SELECT array_agg(status) FROM counted WHERE n = 0), '{}'), \
                coalesce((SELECT max(id) FROM batch), $2)",
        &[&limit, &after],
    )
    .await?
    .ok_or(DaoError::NotFound { entity: "fold" })?;
    let folded: i64 = row.try_get(0)?;
    let empty_pipelines: Vec<PipelineId> = row.try_get(2)?;
    let empty_statuses: Vec<String> = row.try_get(3)?;
    let last: i64 = row.try_get(4)?;
    if !empty_pipelines.is_empty() {
        // A statement of its own: the one above cannot see the rows its
        // own upsert wrote. Only the counters it brought to zero.
        sql::query(
            client,
            "DELETE FROM run_counts c USING unnest($1::uuid[], $2::text[]) AS z (pipeline_id, status) \
             WHERE c.pipeline_id = z.pipeline_id AND c.status = z.status AND c.n = 0",
            &[&empty_pipelines, &empty_statuses],
        )
        .await?;
    }
    Ok((folded, last))
}

/// Deltas waiting to be folded (for metrics and tests).
pub async fn pending_deltas(client: &impl GenericClient) -> Result<i64, DaoError> {
    let row = sql::query_opt(client, "SELECT count(*) FROM run_count_deltas", &[])
        .await?
        .ok_or(DaoError::NotFound { entity: "count" })?;
    Ok(row.try_get(0)?)
}
