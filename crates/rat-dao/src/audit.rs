//! `audit_log`: the trail of state-changing requests, its filtered listing
//! and its batched age-based pruning.

use deadpool_postgres::GenericClient;
use rat_domain::{AuditEntry, Page, PageRequest};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

const COLUMNS: &str = "id, actor, action, object_type, object_id, details, timestamp";

fn from_row(row: &Row) -> Result<AuditEntry, DaoError> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        object_type: row.try_get("object_type")?,
        object_id: row.try_get("object_id")?,
        details: row.try_get("details")?,
        timestamp: row.try_get("timestamp")?,
    })
}

/// What recording an audit entry needs.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    /// Who acted (at most 255 characters).
    pub actor: String,
    /// What was done, e.g. `pipeline.create` (at most 100 characters).
    pub action: String,
    /// Kind of object acted on, when known (at most 20 characters).
    pub object_type: Option<String>,
    /// The object's id, when known.
    pub object_id: Option<Uuid>,
    /// Method, path, status code, request id, client address, ...
    pub details: Option<serde_json::Value>,
}

/// Records an entry stamped `now`. A value longer than its column is
/// `Invalid { value }`.
pub async fn insert(
    client: &impl GenericClient,
    new: &NewAuditEntry,
    now: OffsetDateTime,
) -> Result<AuditEntry, DaoError> {
    let row = sql::query_one(
        client,
        "audit entry",
        &format!(
            "INSERT INTO audit_log (actor, action, object_type, object_id, details, timestamp) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        ),
        &[
            &new.actor,
            &new.action,
            &new.object_type,
            &new.object_id,
            &new.details,
            &now,
        ],
    )
    .await?;
    from_row(&row)
}

/// Filters of `GET /audit`, all exact matches except the time bounds.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries of this actor.
    pub actor: Option<String>,
    /// Only entries of this action.
    pub action: Option<String>,
    /// Only entries about this kind of object.
    pub object_type: Option<String>,
    /// Only entries at or after this time (inclusive).
    pub since: Option<OffsetDateTime>,
    /// Only entries before this time (exclusive), so consecutive windows
    /// `[since, until)` never count an entry twice.
    pub until: Option<OffsetDateTime>,
}

/// Entries matching `filter`, newest first, one page, with the total.
pub async fn list(
    client: &impl GenericClient,
    filter: &AuditFilter,
    page: PageRequest,
) -> Result<Page<AuditEntry>, DaoError> {
    let mut conditions = Conditions::new();
    conditions.push_opt("actor = $?", &filter.actor);
    conditions.push_opt("action = $?", &filter.action);
    conditions.push_opt("object_type = $?", &filter.object_type);
    conditions.push_opt("timestamp >= $?", &filter.since);
    conditions.push_opt("timestamp < $?", &filter.until);
    let order = OrderBy {
        columns: &["timestamp", "id"],
        descending: true,
    };
    sql::fetch_page(client, COLUMNS, "audit_log", &conditions, order, page, from_row).await
}

/// Deletes entries older than `cutoff`, oldest first, at most `batch` of them
/// in this call; returns how many were deleted. The reaper calls it until it
/// returns less than `batch`, so no single statement holds locks on (or
/// writes WAL for) an unbounded number of rows.
pub async fn delete_older_than(
    client: &impl GenericClient,
    cutoff: OffsetDateTime,
    batch: i64,
) -> Result<u64, DaoError> {
    sql::execute(
        client,
        "DELETE FROM audit_log WHERE id IN ( \
            SELECT id FROM audit_log WHERE timestamp < $1 ORDER BY timestamp LIMIT $2)",
        &[&cutoff, &batch],
    )
    .await
    .map_err(DaoError::on_delete)
}
