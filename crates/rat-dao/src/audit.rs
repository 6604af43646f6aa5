//! `audit_log`: the trail of state-changing requests, its filtered listing
//! and its batched age-based pruning.

use crate::GenericClient;
use rat_domain::{AuditEntry, Cursor, KeysetPage, PageRequest};
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

/// The order of `GET /audit`: newest first (`idx_audit_log_time`, and the
/// actor's and action's indexes, V21).
const ORDER: OrderBy = OrderBy {
    columns: &["timestamp", "id"],
    descending: true,
};

/// The keyset comparison of [`ORDER`].
const KEYSET: &str = "(timestamp, id) < ($?, $?2)";

fn conditions(filter: &AuditFilter) -> Conditions<'_> {
    let mut conditions = Conditions::new();
    conditions.push_opt("actor = $?", &filter.actor);
    conditions.push_opt("action = $?", &filter.action);
    conditions.push_opt("object_type = $?", &filter.object_type);
    conditions.push_opt("timestamp >= $?", &filter.since);
    conditions.push_opt("timestamp < $?", &filter.until);
    conditions
}

/// The statement [`list`] sends for `filter`, from a cursor or not; its
/// parameters are the filters given, in the order of [`AuditFilter`]'s
/// fields, then the cursor's timestamp and id, the limit and the offset.
/// For plan tests (`EXPLAIN`).
pub fn list_statement(filter: &AuditFilter, from_cursor: bool) -> String {
    sql::page_statement(
        COLUMNS,
        "audit_log",
        &conditions(filter),
        ORDER,
        from_cursor.then_some(KEYSET),
    )
}

/// Entries matching `filter`, newest first, one page, with the total and
/// whether more follow; from just after `after` when given.
pub async fn list(
    client: &impl GenericClient,
    filter: &AuditFilter,
    page: PageRequest,
    after: Option<Cursor<Uuid>>,
) -> Result<KeysetPage<AuditEntry>, DaoError> {
    let after = after.as_ref().map(|cursor| sql::After {
        fragment: KEYSET,
        at: &cursor.at,
        id: &cursor.id,
    });
    sql::fetch_keyset_page(
        client,
        COLUMNS,
        "audit_log",
        &conditions(filter),
        ORDER,
        page,
        after,
        None,
        from_row,
    )
    .await
}

/// Deletes entries older than `cutoff` and not older than `from` (a cursor:
/// `None` on the first call, then the previous call's answer), oldest
/// first, at most `batch` of them; returns how many were deleted and, when
/// the batch was full, the cursor for the next call (`None`: nothing older
/// than `cutoff` is left). The reaper calls it until the cursor is `None`,
/// so no statement holds locks on (or writes WAL for) an unbounded number of
/// rows, and each call starts where the last one stopped instead of walking
/// again over the index entries of rows already deleted (they stay in the
/// index until vacuum). Rows are found along `idx_audit_log_time` and
/// deleted by their physical address in the same statement.
pub async fn delete_older_than(
    client: &impl GenericClient,
    cutoff: OffsetDateTime,
    from: Option<OffsetDateTime>,
    batch: i64,
) -> Result<(u64, Option<OffsetDateTime>), DaoError> {
    // The first call starts before any entry: a bound rather than `IS NULL
    // OR`, so that it is always the index condition, whatever plan the
    // prepared statement settles on.
    let from = from.unwrap_or(time::macros::datetime!(1900-01-01 0:00 UTC));
    let row = sql::query_one(
        client,
        "audit entry",
        "WITH batch AS MATERIALIZED ( \
             SELECT ctid AS tid, timestamp FROM audit_log \
             WHERE timestamp < $1 AND timestamp >= $2 \
             ORDER BY timestamp LIMIT $3), \
         gone AS (DELETE FROM audit_log WHERE ctid = ANY(ARRAY(SELECT tid FROM batch)) RETURNING 1) \
         SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM batch) AS selected, \
                (SELECT max(timestamp) FROM batch) AS last",
        &[&cutoff, &from, &batch],
    )
    .await
    .map_err(DaoError::on_delete)?;
    let deleted: i64 = row.try_get("deleted")?;
    let selected: i64 = row.try_get("selected")?;
    let last: Option<OffsetDateTime> = row.try_get("last")?;
    // Rows at the last timestamp may remain (beyond the limit): the next
    // call starts at it, not after it.
    Ok((deleted as u64, last.filter(|_| selected >= batch)))
}
