//! `reaper_status`: the reaper's singleton status row (id 1), with the time of
//! its last pass, cumulative counters that saturate instead of overflowing,
//! and the time a pass was last asked for.

use crate::GenericClient;
use rat_domain::{ReaperCounters, ReaperStatus};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::DaoError;
use crate::sql;

/// The session advisory lock only one reaper process holds while it runs a
/// pass ("RATREAP" in ASCII). It is taken on a dedicated connection: a pooled
/// connection could be recycled under the lock, silently releasing it.
pub const REAPER_LOCK_KEY: i64 = 0x0052_4154_5245_4150;

const COLUMNS: &str = "last_run_at, runs_pruned, logs_pruned, quality_pruned, pipelines_purged, runs_failed, \
     branches_cleaned, lz_files_cleaned, audit_pruned, updated_at, run_requested_at, \
     last_pass_runs_pruned, last_pass_logs_pruned, last_pass_quality_pruned, last_pass_pipelines_purged, \
     last_pass_runs_failed, last_pass_branches_cleaned, last_pass_lz_files_cleaned, last_pass_audit_pruned";

/// The channel [`request_run`] notifies; the reaper `LISTEN`s on it.
pub const RUN_CHANNEL: &str = "rat_reaper_run";

fn from_row(row: &Row) -> Result<ReaperStatus, DaoError> {
    let counter = |column: &str| -> Result<i64, DaoError> { Ok(i64::from(row.try_get::<_, i32>(column)?)) };
    Ok(ReaperStatus {
        last_run_at: row.try_get("last_run_at")?,
        counters: ReaperCounters {
            runs_pruned: counter("runs_pruned")?,
            logs_pruned: counter("logs_pruned")?,
            quality_pruned: counter("quality_pruned")?,
            pipelines_purged: counter("pipelines_purged")?,
            runs_failed: counter("runs_failed")?,
            branches_cleaned: counter("branches_cleaned")?,
            lz_files_cleaned: counter("lz_files_cleaned")?,
            audit_pruned: counter("audit_pruned")?,
        },
        last_pass: ReaperCounters {
            runs_pruned: row.try_get("last_pass_runs_pruned")?,
            logs_pruned: row.try_get("last_pass_logs_pruned")?,
            quality_pruned: row.try_get("last_pass_quality_pruned")?,
            pipelines_purged: row.try_get("last_pass_pipelines_purged")?,
            runs_failed: row.try_get("last_pass_runs_failed")?,
            branches_cleaned: row.try_get("last_pass_branches_cleaned")?,
            lz_files_cleaned: row.try_get("last_pass_lz_files_cleaned")?,
            audit_pruned: row.try_get("last_pass_audit_pruned")?,
        },
        updated_at: row.try_get("updated_at")?,
        run_requested_at: row.try_get("run_requested_at")?,
    })
}

/// The status row. The migration creates it; should it be missing, the
/// status reads as "never ran" with zero counters.
pub async fn get(client: &impl GenericClient) -> Result<ReaperStatus, DaoError> {
    let row = sql::query_opt(
        client,
        &format!("SELECT {COLUMNS} FROM reaper_status WHERE id = 1"),
        &[],
    )
    .await?;
    row.as_ref().map(from_row).transpose().map(Option::unwrap_or_default)
}

/// Adds one pass's counters to the cumulative ones, stores them as the last
/// pass's own (`last_pass_*`) and sets `last_run_at` to `finished_at`;
/// returns the new status. Each counter saturates at
/// `i32::MAX` (the column type) instead of failing the write, and a negative
/// pass counter counts as zero (a pass cannot undo work). A missing row is
/// recreated.
pub async fn record_pass(
    client: &impl GenericClient,
    pass: &ReaperCounters,
    finished_at: OffsetDateTime,
) -> Result<ReaperStatus, DaoError> {
    add(client, pass, Some(finished_at)).await
}

/// Adds the counters of a pass that did not finish (it lost its lock, or its
/// process is stopping) and leaves `last_run_at` as it was, so the pass is
/// still owed; the last finished pass's counts (`last_pass_*`) stay too.
/// Same saturation as [`record_pass`].
pub async fn record_interrupted_pass(
    client: &impl GenericClient,
    pass: &ReaperCounters,
) -> Result<ReaperStatus, DaoError> {
    add(client, pass, None).await
}

async fn add(
    client: &impl GenericClient,
    pass: &ReaperCounters,
    finished_at: Option<OffsetDateTime>,
) -> Result<ReaperStatus, DaoError> {
    // Clamping each addend to the column's range keeps the bigint sum in SQL
    // far from overflow, so LEAST alone bounds the stored value.
    let add = |n: i64| n.clamp(0, i64::from(i32::MAX));
    let row = sql::query_one(
        client,
        "reaper status",
        &format!(
            "INSERT INTO reaper_status (id, last_run_at, runs_pruned, logs_pruned, quality_pruned, \
                pipelines_purged, runs_failed, branches_cleaned, lz_files_cleaned, audit_pruned, \
                last_pass_runs_pruned, last_pass_logs_pruned, last_pass_quality_pruned, last_pass_pipelines_purged, \
                last_pass_runs_failed, last_pass_branches_cleaned, last_pass_lz_files_cleaned, last_pass_audit_pruned) \
             SELECT 1, $1::timestamptz, $2::bigint, $3::bigint, $4::bigint, $5::bigint, $6::bigint, $7::bigint, \
                $8::bigint, $9::bigint, pass.runs, pass.logs, pass.quality, pass.pipelines, pass.failed, \
                pass.branches, pass.files, pass.audit \
             FROM (SELECT CASE WHEN $1::timestamptz IS NULL THEN 0 ELSE $2::bigint END AS runs, \
                CASE WHEN $1::timestamptz IS NULL THEN 0 ELSE $3::bigint END AS logs, \
                CASE WHEN $1::timestamptz IS NULL THEN 0 ELSE $4::bigint END AS quality, \
                CASE WHEN $1::timestamptz IS NULL THEN 0 ELSE $5::bigint END AS pipelines, \
                CASE WHEN $1::timestamptz IS NULL THEN 0 ELSE $6::bigint END AS failed, \
                CASE WHEN $1::timestamptz IS NULL THEN 0 ELSE $7::bigint END AS branches, \
                CASE WHEN $1::timestamptz IS NULL THEN 0 ELSE $8::bigint END AS files, \
                CASE WHEN $1::timestamptz IS NULL THEN 0 ELSE $9::bigint END AS audit) AS pass \
             ON CONFLICT ON CONSTRAINT pk_reaper_status DO UPDATE SET \
                last_run_at = COALESCE($1, reaper_status.last_run_at), \
                runs_pruned = LEAST(reaper_status.runs_pruned::bigint + $2::bigint, 2147483647), \
                logs_pruned = LEAST(reaper_status.logs_pruned::bigint + $3::bigint, 2147483647), \
                quality_pruned = LEAST(reaper_status.quality_pruned::bigint + $4::bigint, 2147483647), \
                pipelines_purged = LEAST(reaper_status.pipelines_purged::bigint + $5::bigint, 2147483647), \
                runs_failed = LEAST(reaper_status.runs_failed::bigint + $6::bigint, 2147483647), \
                branches_cleaned = LEAST(reaper_status.branches_cleaned::bigint + $7::bigint, 2147483647), \
                lz_files_cleaned = LEAST(reaper_status.lz_files_cleaned::bigint + $8::bigint, 2147483647), \
                audit_pruned = LEAST(reaper_status.audit_pruned::bigint + $9::bigint, 2147483647), \
                last_pass_runs_pruned = CASE WHEN $1::timestamptz IS NULL THEN reaper_status.last_pass_runs_pruned ELSE $2::bigint END, \
                last_pass_logs_pruned = CASE WHEN $1::timestamptz IS NULL THEN reaper_status.last_pass_logs_pruned ELSE $3::bigint END, \
                last_pass_quality_pruned = CASE WHEN $1::timestamptz IS NULL THEN reaper_status.last_pass_quality_pruned ELSE $4::bigint END, \
                last_pass_pipelines_purged = CASE WHEN $1::timestamptz IS NULL THEN reaper_status.last_pass_pipelines_purged ELSE $5::bigint END, \
                last_pass_runs_failed = CASE WHEN $1::timestamptz IS NULL THEN reaper_status.last_pass_runs_failed ELSE $6::bigint END, \
                last_pass_branches_cleaned = CASE WHEN $1::timestamptz IS NULL THEN reaper_status.last_pass_branches_cleaned ELSE $7::bigint END, \
                last_pass_lz_files_cleaned = CASE WHEN $1::timestamptz IS NULL THEN reaper_status.last_pass_lz_files_cleaned ELSE $8::bigint END, \
                last_pass_audit_pruned = CASE WHEN $1::timestamptz IS NULL THEN reaper_status.last_pass_audit_pruned ELSE $9::bigint END \
             RETURNING {COLUMNS}"
        ),
        &[
            &finished_at,
            &add(pass.runs_pruned),
            &add(pass.logs_pruned),
            &add(pass.quality_pruned),
            &add(pass.pipelines_purged),
            &add(pass.runs_failed),
            &add(pass.branches_cleaned),
            &add(pass.lz_files_cleaned),
            &add(pass.audit_pruned),
        ],
    )
    .await?;
    from_row(&row)
}

/// Asks the reaper for a pass: sets `run_requested_at` to `now` (recreating a
/// missing row) and notifies [`RUN_CHANNEL`]; returns the new status.
///
/// The column is the durable request (the reaper runs a pass while
/// [`ReaperStatus::run_requested`] holds, so a notification missed while it was
/// down is not lost); the notification only wakes a listening reaper at once.
/// Call it in a transaction: Postgres delivers the notification at commit, so
/// a reaper woken by it always reads the committed request.
pub async fn request_run(client: &impl GenericClient, now: OffsetDateTime) -> Result<ReaperStatus, DaoError> {
    let row = sql::query_one(
        client,
        "reaper status",
        &format!(
            "INSERT INTO reaper_status (id, run_requested_at) VALUES (1, $1) \
             ON CONFLICT ON CONSTRAINT pk_reaper_status DO UPDATE SET run_requested_at = $1 \
             RETURNING {COLUMNS}"
        ),
        &[&now],
    )
    .await?;
    // pg_notify takes the channel as a value, so it is a bind parameter like
    // any other; the payload is empty because the row carries the request.
    sql::query(client, "SELECT pg_notify($1, '')", &[&RUN_CHANNEL]).await?;
    from_row(&row)
}

/// Tries to take the reaper lock ([`REAPER_LOCK_KEY`], scoped to the
/// session's schema) for this session;
/// `false` when another session holds it. Call it on a dedicated connection
/// ([`crate::connect_dedicated`]): the lock lasts as long as the session,
/// and ends with it.
pub async fn try_lock(client: &tokio_postgres::Client) -> Result<bool, DaoError> {
    let row = client
        .query_one(
            concat!(
                "SELECT pg_try_advisory_lock(",
                scoped_lock_key!("$1::int8", "current_schema()"),
                ")"
            ),
            &[&REAPER_LOCK_KEY],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Releases the reaper lock held by this session; `false` when it did not
/// hold it.
pub async fn unlock(client: &tokio_postgres::Client) -> Result<bool, DaoError> {
    let row = client
        .query_one(
            concat!(
                "SELECT pg_advisory_unlock(",
                scoped_lock_key!("$1::int8", "current_schema()"),
                ")"
            ),
            &[&REAPER_LOCK_KEY],
        )
        .await?;
    Ok(row.try_get(0)?)
}
