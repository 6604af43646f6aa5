//! `failed_merges`: merge failures reported by runners, kept for a person to
//! inspect and pruned by the reaper with the audit log's age.

use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::DaoError;
use crate::GenericClient;
use crate::sql::{self, Conditions, OrderBy};
use rat_domain::{Page, PageRequest};

/// A merge failure as a runner reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFailedMerge {
    /// The run (as the runner names it).
    pub run_id: String,
    /// The branch that did not merge.
    pub branch_name: String,
    /// The branch's hash, when known.
    pub source_hash: Option<String>,
    /// The target's hash, when known.
    pub target_hash: Option<String>,
    /// A short classification (`conflict`, …).
    pub error_kind: String,
    /// The error itself.
    pub error_message: String,
}

/// A stored merge failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedMerge {
    /// Primary key.
    pub id: Uuid,
    /// The report.
    pub report: NewFailedMerge,
    /// When it was reported.
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "id, run_id, branch_name, source_hash, target_hash, error_kind, error_message, created_at";

fn from_row(row: &Row) -> Result<FailedMerge, DaoError> {
    Ok(FailedMerge {
        id: row.try_get("id")?,
        report: NewFailedMerge {
            run_id: row.try_get("run_id")?,
            branch_name: row.try_get("branch_name")?,
            source_hash: row.try_get("source_hash")?,
            target_hash: row.try_get("target_hash")?,
            error_kind: row.try_get("error_kind")?,
            error_message: row.try_get("error_message")?,
        },
        created_at: row.try_get("created_at")?,
    })
}

/// Stores `report`, made at `now`.
pub async fn insert(
    client: &impl GenericClient,
    report: &NewFailedMerge,
    now: OffsetDateTime,
) -> Result<FailedMerge, DaoError> {
    let row = sql::query_one(
        client,
        "failed merge",
        &format!(
            "INSERT INTO failed_merges (run_id, branch_name, source_hash, target_hash, error_kind, error_message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        ),
        &[
            &report.run_id,
            &report.branch_name,
            &report.source_hash,
            &report.target_hash,
            &report.error_kind,
            &report.error_message,
            &now,
        ],
    )
    .await?;
    from_row(&row)
}

/// Merge failures, newest first, one page, with the total.
pub async fn list(client: &impl GenericClient, page: PageRequest) -> Result<Page<FailedMerge>, DaoError> {
    let conditions = Conditions::new();
    let order = OrderBy {
        columns: &["created_at", "id"],
        descending: true,
    };
    sql::fetch_page(client, COLUMNS, "failed_merges", &conditions, order, page, from_row).await
}

/// Deletes at most `batch` merge failures reported before `cutoff`, oldest
/// first; how many went.
pub async fn delete_older_than(
    client: &impl GenericClient,
    cutoff: OffsetDateTime,
    batch: i64,
) -> Result<u64, DaoError> {
    sql::execute(
        client,
        "DELETE FROM failed_merges WHERE id IN \
             (SELECT id FROM failed_merges WHERE created_at < $1 ORDER BY created_at, id LIMIT $2)",
        &[&cutoff, &batch],
    )
    .await
    .map_err(DaoError::on_delete)
}

/// Which of `branches` had a merge failure reported since `since` (at most
/// [`MAX_BRANCHES_PER_QUERY`] names per call).
pub async fn branches_failed_since(
    client: &impl GenericClient,
    branches: &[String],
    since: OffsetDateTime,
) -> Result<Vec<String>, DaoError> {
    if branches.len() > MAX_BRANCHES_PER_QUERY {
        return Err(DaoError::Internal {
            source: format!(
                "{} branches in one query, at most {MAX_BRANCHES_PER_QUERY}",
                branches.len()
            )
            .into(),
        });
    }
    let rows = sql::query(
        client,
        "SELECT DISTINCT branch_name FROM failed_merges WHERE branch_name = ANY($1) AND created_at >= $2",
        &[&branches, &since],
    )
    .await?;
    rows.iter().map(|row| Ok(row.try_get("branch_name")?)).collect()
}

/// Most names [`branches_failed_since`] takes at once.
pub const MAX_BRANCHES_PER_QUERY: usize = 1_000;
