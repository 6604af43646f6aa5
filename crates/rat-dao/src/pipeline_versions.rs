//! `pipeline_versions`: the publish history of each pipeline. Version numbers
//! are 1, 2, 3, ... per pipeline and are allocated in SQL by [`insert_next`];
//! old versions are dropped by [`prune`] once a pipeline exceeds its
//! `max_versions`.

use crate::GenericClient;
use rat_domain::{Page, PageRequest, PipelineVersion, PublishedVersions};
use rat_domain::{PipelineId, VersionNumber};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

const COLUMNS: &str = "id, pipeline_id, version_number, message, published_versions, created_at";

fn from_row(row: &Row) -> Result<PipelineVersion, DaoError> {
    let published: serde_json::Value = row.try_get("published_versions")?;
    Ok(PipelineVersion {
        id: row.try_get("id")?,
        pipeline_id: row.try_get("pipeline_id")?,
        version_number: row.try_get("version_number")?,
        message: row.try_get("message")?,
        published_versions: PublishedVersions::from_json(&published)
            .map_err(|e| DaoError::corrupt("published_versions", e))?,
        created_at: row.try_get("created_at")?,
    })
}

/// Records the next version of a pipeline: `version_number` is one more than
/// the highest number the pipeline has (1 for the first), computed in the same
/// `INSERT ... SELECT` statement.
///
/// The caller must hold the pipeline's row lock
/// ([`crate::pipelines::get_by_ref_for_update`]) in the same transaction, so
/// that concurrent publishes of one pipeline serialize: without the lock two
/// transactions can read the same maximum, and the second insert fails with
/// `Conflict { uq_pipeline_versions_pipeline_version }`.
/// `MissingReference { pipeline }` for an unknown pipeline.
pub async fn insert_next(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    message: &str,
    versions: &PublishedVersions,
    now: OffsetDateTime,
) -> Result<PipelineVersion, DaoError> {
    // The casts pin the parameter types: in the select list of an
    // INSERT ... SELECT they would otherwise be inferred late or as text.
    let row = sql::query_one(
        client,
        "pipeline version",
        &format!(
            "INSERT INTO pipeline_versions (pipeline_id, version_number, message, published_versions, created_at) \
             SELECT $1::uuid, COALESCE(max(version_number), 0) + 1, $2::text, $3::jsonb, $4::timestamptz \
             FROM pipeline_versions WHERE pipeline_id = $1::uuid \
             RETURNING {COLUMNS}"
        ),
        &[&pipeline_id, &message, &versions.to_json(), &now],
    )
    .await?;
    from_row(&row)
}

/// Version `number` of the pipeline; `NotFound { pipeline version }` when the
/// pipeline has no such version (never published, pruned, or not yet reached).
pub async fn get(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    number: VersionNumber,
) -> Result<PipelineVersion, DaoError> {
    let row = sql::query_one(
        client,
        "pipeline version",
        &format!("SELECT {COLUMNS} FROM pipeline_versions WHERE pipeline_id = $1 AND version_number = $2"),
        &[&pipeline_id, &number],
    )
    .await?;
    from_row(&row)
}

/// The run rule's half about versions, stated once: a run of a pipeline
/// executes its latest version, and only when that version pins at least one
/// file. A query over `pipeline_versions pv` giving `columns` of that version
/// of `pipeline` (an SQL expression), or no row. Used by [`latest_runnable`]
/// (manual runs and triggers) and by the scheduler's fire and its explanation.
macro_rules! latest_runnable_version {
    ($columns:literal, $pipeline:literal) => {
        concat!(
            "SELECT * FROM (SELECT ",
            $columns,
            " FROM pipeline_versions pv WHERE pv.pipeline_id = ",
            $pipeline,
            " ORDER BY pv.version_number DESC LIMIT 1) latest WHERE latest.published_versions <> '{}'::jsonb"
        )
    };
}

/// The version a run of the pipeline executes now: its latest, when that
/// pins at least one file (`latest_runnable_version!`); `None` when it was
/// never published.
pub async fn latest_runnable(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
) -> Result<Option<PipelineVersion>, DaoError> {
    let row = sql::query_opt(
        client,
        latest_runnable_version!(
            "pv.id, pv.pipeline_id, pv.version_number, pv.message, pv.published_versions, pv.created_at",
            "$1"
        ),
        &[&pipeline_id],
    )
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The pipeline's newest version, `None` when it was never published.
pub async fn latest(client: &impl GenericClient, pipeline_id: PipelineId) -> Result<Option<PipelineVersion>, DaoError> {
    let row = sql::query_opt(
        client,
        &format!(
            "SELECT {COLUMNS} FROM pipeline_versions WHERE pipeline_id = $1 \
             ORDER BY version_number DESC LIMIT 1"
        ),
        &[&pipeline_id],
    )
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The pipeline's versions, newest first, one page, with the total.
pub async fn list(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    page: PageRequest,
) -> Result<Page<PipelineVersion>, DaoError> {
    let mut conditions = Conditions::new();
    conditions.push("pipeline_id = $?", &pipeline_id);
    let order = OrderBy {
        columns: &["version_number", "id"],
        descending: true,
    };
    sql::fetch_page(client, COLUMNS, "pipeline_versions", &conditions, order, page, from_row).await
}

/// Deletes every version of the pipeline except the newest `keep`; returns how
/// many were deleted. `Invalid { keep }` for a negative `keep`.
pub async fn prune(client: &impl GenericClient, pipeline_id: PipelineId, keep: i32) -> Result<u64, DaoError> {
    if keep < 0 {
        return Err(DaoError::Invalid {
            constraint: "keep".to_owned(),
        });
    }
    let keep = i64::from(keep);
    // The subquery finds the newest version that is *not* kept (the one after
    // the first `keep` in descending order); it and everything older go. Both
    // parts walk idx_pipeline_versions_pipeline. With fewer versions than
    // `keep + 1` the subquery is NULL and nothing is deleted.
    sql::execute(
        client,
        "DELETE FROM pipeline_versions WHERE pipeline_id = $1 AND version_number <= ( \
             SELECT version_number FROM pipeline_versions WHERE pipeline_id = $1 \
             ORDER BY version_number DESC OFFSET $2 LIMIT 1)",
        &[&pipeline_id, &keep],
    )
    .await
    .map_err(DaoError::on_delete)
}
