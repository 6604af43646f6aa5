//! Small helpers shared by the repositories: WHERE clauses assembled from
//! fixed fragments, paged listing with a SQL total, and row decoding.
//!
//! SQL text is only ever built from `&'static str` fragments written in this
//! crate; every value a caller supplies travels as a bind parameter.

use std::str::FromStr;

use crate::{GenericClient, SqlArrayElement, SqlParam};
use rat_domain::{KeysetPage, Page, PageRequest};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::DaoError;

/// The statuses of a run that may still change (pending, running), as the
/// SQL `IN` list every query about active runs uses. It is a literal, not a
/// parameter, so that the planner can use the partial index
/// `idx_runs_status`, whose predicate it is; a unit test checks it against
/// [`rat_domain::RunStatus::is_terminal`].
macro_rules! active_statuses {
    () => {
        "('pending', 'running')"
    };
}

/// [`rat_domain::NON_PERSONAL_OWNERS`] as an SQL `IN` list (a literal, so a
/// query reading the access rule stays one fixed statement); a unit test
/// ties the two.
macro_rules! non_personal_owners {
    () => {
        "('community', 'api-key')"
    };
}

/// The read half of the access rule ([`rat_domain::permission`]) as one SQL
/// condition on a row of an ownable table, so that a list filtered by it
/// pages and counts only what the caller may read. Its `$?` placeholders all
/// take one parameter: the caller's share principals (a `TEXT[]`, the user
/// first, then `role:NAME`s).
///
/// Readable is: owned by the caller (the `ownership` row, else the row's own
/// owner column), without a personal owner (none, or one of
/// [`non_personal_owners!`]), in a namespace the caller owns, or shared with
/// a principal, on the object itself or on the namespace holding it. The
/// arguments are SQL expressions (fixed strings of this crate): the object
/// type (`'pipeline'`, or a column when rows of several types are listed),
/// and the row's id, owner and namespace-name columns. Admins are not
/// filtered at all (callers leave the condition out).
macro_rules! readable_condition {
    ($object_type:literal, $id:literal, $owner:literal, $namespace:literal) => {
        concat!(
            "(EXISTS (SELECT 1 FROM ownership o WHERE o.object_type = ",
            $object_type,
            " AND o.object_id = ",
            $id,
            " AND (o.owner = ANY($?) OR o.owner IN ",
            non_personal_owners!(),
            ")) OR (NOT EXISTS (SELECT 1 FROM ownership o WHERE o.object_type = ",
            $object_type,
            " AND o.object_id = ",
            $id,
            ") AND (",
            $owner,
            " IS NULL OR ",
            $owner,
            " = ANY($?) OR ",
            $owner,
            " IN ",
            non_personal_owners!(),
            ")) OR EXISTS (SELECT 1 FROM ownership o JOIN namespaces n ON o.object_type = 'namespace' \
             AND o.object_id = n.id WHERE n.name = ",
            $namespace,
            " AND o.owner = ANY($?)) OR EXISTS (SELECT 1 FROM shares s WHERE s.shared_with = ANY($?) AND ((s.object_type = ",
            $object_type,
            " AND s.object_id = ",
            $id,
            ") OR (s.object_type = 'namespace' AND s.object_id = \
             (SELECT n.id FROM namespaces n WHERE n.name = ",
            $namespace,
            ")))))"
        )
    };
}

/// [`readable_condition!`] for a pipeline row of the table `pipelines`.
macro_rules! readable_pipeline {
    () => {
        readable_condition!("'pipeline'", "pipelines.id", "pipelines.owner", "pipelines.namespace")
    };
}

/// Rows whose `pipeline_id` names a pipeline the caller may read
/// ([`readable_pipeline!`]); one parameter, the share principals.
macro_rules! of_readable_pipeline {
    () => {
        concat!(
            "pipeline_id IN (SELECT pipelines.id FROM pipelines WHERE ",
            readable_pipeline!(),
            ")"
        )
    };
}

/// An advisory lock key of one schema: `$key` itself in `public` (the keys
/// used before schemas were configurable), else a 64-bit hash of the schema
/// and the key, so tenants sharing a database never contend. Both arguments
/// are SQL expressions (fixed strings of this crate): the key (`int8`) and
/// the schema's name (`text`, e.g. `current_schema()`).
macro_rules! scoped_lock_key {
    ($key:literal, $schema:literal) => {
        concat!(
            "(CASE WHEN ",
            $schema,
            " = 'public' THEN ",
            $key,
            " ELSE hashtextextended(",
            $schema,
            " || '/' || ",
            $key,
            "::text, 0) END)"
        )
    };
}

/// A notification channel of the session's schema ([`crate::SchemaName::channel`]):
/// `$channel` itself in `public`, else `schema.channel`.
macro_rules! scoped_channel {
    ($channel:literal) => {
        concat!(
            "(CASE WHEN current_schema() = 'public' THEN ",
            $channel,
            " ELSE current_schema() || '.' || ",
            $channel,
            " END)"
        )
    };
}

/// A bind parameter (its Postgres type known, [`crate::SqlParam`]).
pub(crate) type Param<'a> = &'a dyn SqlParam;

/// A conjunction of conditions, each a fixed fragment whose `$?` placeholders
/// all stand for the fragment's one parameter; they are numbered when the
/// clause is rendered.
#[derive(Default)]
pub(crate) struct Conditions<'a> {
    clauses: Vec<&'static str>,
    params: Vec<Param<'a>>,
}

impl<'a> Conditions<'a> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `fragment`, whose `$?` placeholders all receive `value`.
    pub(crate) fn push(&mut self, fragment: &'static str, value: Param<'a>) {
        debug_assert!(fragment.contains("$?"), "a parameter needs a placeholder");
        self.clauses.push(fragment);
        self.params.push(value);
    }

    /// Adds `fragment` when `value` is present.
    pub(crate) fn push_opt<T: SqlParam>(&mut self, fragment: &'static str, value: &'a Option<T>) {
        if let Some(v) = value {
            self.push(fragment, v);
        }
    }

    /// Adds a fragment without parameter.
    pub(crate) fn push_fixed(&mut self, fragment: &'static str) {
        debug_assert!(!fragment.contains("$?"));
        self.clauses.push(fragment);
    }

    /// ` WHERE a AND b` with placeholders numbered from `$1`, or an empty string.
    pub(crate) fn render(&self) -> String {
        if self.clauses.is_empty() {
            return String::new();
        }
        let mut next = 0;
        let rendered: Vec<String> = self
            .clauses
            .iter()
            .map(|clause| {
                if clause.contains("$?") {
                    next += 1;
                    clause.replace("$?", &format!("${next}"))
                } else {
                    (*clause).to_owned()
                }
            })
            .collect();
        format!(" WHERE {}", rendered.join(" AND "))
    }
}

/// An ORDER BY built from fixed column names only, every column in the same
/// direction. The last column must be unique, so pages never overlap or skip
/// rows when earlier columns tie.
#[derive(Clone, Copy)]
pub(crate) struct OrderBy {
    /// Sort columns, most significant first (fixed strings of this crate).
    pub columns: &'static [&'static str],
    /// Direction.
    pub descending: bool,
}

impl OrderBy {
    fn render(self) -> String {
        let direction = if self.descending { " DESC" } else { " ASC" };
        // Postgres' default NULL placement (last ascending, first descending)
        // is kept on purpose: it matches the indexes, so a sort on an indexed
        // column reads the index in order instead of sorting the whole set.
        let keys: Vec<String> = self.columns.iter().map(|c| format!("{c}{direction}")).collect();
        format!(" ORDER BY {}", keys.join(", "))
    }
}

/// Where a keyset page starts: a row comparison on the sort key and the id,
/// a fixed fragment whose `$?` is the key and `$?2` the id, e.g.
/// `(created_at, id) < ($?, $?2)` for a list sorted newest first. It narrows
/// the page, never the total.
pub(crate) struct After<'a> {
    /// The comparison (a fixed string of this crate).
    pub fragment: &'static str,
    /// The sort key of the last row sent.
    pub at: Param<'a>,
    /// The id of the last row sent.
    pub id: Param<'a>,
}

/// The statement of one page: `SELECT {columns} FROM {from} WHERE ...
/// [AND after] ORDER BY ... LIMIT $n OFFSET $n+1` (the limit and offset are
/// the last two parameters, after the conditions' and the keyset's).
pub(crate) fn page_statement(
    columns: &str,
    from: &str,
    conditions: &Conditions<'_>,
    order: OrderBy,
    after: Option<&'static str>,
) -> String {
    let mut where_clause = conditions.render();
    let mut n = conditions.params.len();
    if let Some(fragment) = after {
        where_clause.push_str(if where_clause.is_empty() { " WHERE " } else { " AND " });
        where_clause.push_str(
            &fragment
                .replace("$?2", &format!("${}", n + 2))
                .replace("$?", &format!("${}", n + 1)),
        );
        n += 2;
    }
    format!(
        "SELECT {columns} FROM {from}{where_clause}{} LIMIT ${} OFFSET ${}",
        order.render(),
        n + 1,
        n + 2
    )
}

/// `SELECT count(*) FROM {from} WHERE ...`: the total of a page's filtered set.
pub(crate) fn count_statement(from: &str, conditions: &Conditions<'_>) -> String {
    format!("SELECT count(*) FROM {from}{}", conditions.render())
}

/// One page of `SELECT {columns} FROM {from} WHERE ... ORDER BY ...` and the
/// count of the whole filtered set, both computed in SQL. The count query is
/// skipped when the page itself proves the total (a short page).
pub(crate) async fn fetch_page<T>(
    client: &impl GenericClient,
    columns: &'static str,
    from: &'static str,
    conditions: &Conditions<'_>,
    order: OrderBy,
    page: PageRequest,
    decode: impl Fn(&Row) -> Result<T, DaoError>,
) -> Result<Page<T>, DaoError> {
    let page = fetch_keyset_page(client, columns, from, conditions, order, page, None, None, decode).await?;
    Ok(Page {
        items: page.items,
        total: page.total,
    })
}

/// [`fetch_page`], starting after a keyset position when one is given (the
/// offset is then counted from it), and saying whether rows follow the page
/// (one row more than the limit is read). The count covers the whole
/// filtered set, whatever the position; it is skipped when the page proves
/// it (from the start, nothing follows). It is `count(*)` over `from`, or
/// `count_sql` when given (one row, one `bigint`, taking the parameters of
/// `conditions`): for a table whose counts are kept elsewhere (`runs`, V22).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn fetch_keyset_page<T>(
    client: &impl GenericClient,
    columns: &'static str,
    from: &'static str,
    conditions: &Conditions<'_>,
    order: OrderBy,
    page: PageRequest,
    after: Option<After<'_>>,
    count_sql: Option<String>,
    decode: impl Fn(&Row) -> Result<T, DaoError>,
) -> Result<KeysetPage<T>, DaoError> {
    let page_sql = page_statement(columns, from, conditions, order, after.as_ref().map(|a| a.fragment));
    let read = page.limit + 1;
    let mut params: Vec<Param<'_>> = conditions.params.clone();
    let from_start = after.is_none();
    if let Some(after) = &after {
        params.push(after.at);
        params.push(after.id);
    }
    params.push(&read);
    params.push(&page.offset);
    let rows = query(client, &page_sql, &params).await?;
    let more = rows.len() as i64 > page.limit;
    let items = rows
        .iter()
        .take(page.limit as usize)
        .map(decode)
        .collect::<Result<Vec<T>, _>>()?;

    let total = if from_start && !more && (!items.is_empty() || page.offset == 0) {
        page.offset + items.len() as i64
    } else {
        let count_sql = count_sql.unwrap_or_else(|| count_statement(from, conditions));
        query_opt(client, &count_sql, &conditions.params)
            .await?
            .ok_or(DaoError::NotFound { entity: "count" })?
            .try_get(0)?
    };
    Ok(KeysetPage { items, total, more })
}

/// The rows of `SELECT {columns} FROM {from} WHERE ...` (for lookups by a
/// unique key, so at most one row is expected; more is an error).
pub(crate) async fn fetch_opt(
    client: &impl GenericClient,
    columns: &'static str,
    from: &'static str,
    conditions: &Conditions<'_>,
) -> Result<Option<Row>, DaoError> {
    let sql = format!("SELECT {columns} FROM {from}{}", conditions.render());
    query_opt(client, &sql, &conditions.params).await
}

/// The `id`s of at most `limit` rows of `from` matching `conditions`.
pub(crate) async fn select_ids<T>(
    client: &impl GenericClient,
    from: &'static str,
    conditions: &Conditions<'_>,
    limit: usize,
) -> Result<Vec<T>, DaoError>
where
    T: for<'r> tokio_postgres::types::FromSql<'r>,
{
    let n = conditions.params.len();
    let sql = format!("SELECT id FROM {from}{} LIMIT ${}", conditions.render(), n + 1);
    let limit = limit as i64;
    let mut params: Vec<Param<'_>> = conditions.params.clone();
    params.push(&limit);
    let rows = query(client, &sql, &params).await?;
    rows.iter().map(|r| r.try_get("id").map_err(DaoError::from)).collect()
}

/// Runs a statement: through the connection's statement cache, or unnamed
/// with its parameter types declared once the process goes through a
/// transaction pooler ([`crate::use_unnamed_statements`]), where a named
/// statement would outlive the transaction that prepared it.
pub(crate) async fn query(client: &impl GenericClient, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DaoError> {
    if crate::connect::unnamed_statements() {
        let typed: Vec<(&(dyn ToSql + Sync), tokio_postgres::types::Type)> =
            params.iter().map(|p| (p.as_to_sql(), p.sql_type())).collect();
        return Ok(client.driver().query_typed(sql, &typed).await?);
    }
    let statement = client.prepare_cached(sql).await?;
    let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_to_sql()).collect();
    Ok(client.query(&statement, &params).await?)
}

/// Like [`query`], for at most one row (more is an error, as for the
/// driver's `query_opt`).
pub(crate) async fn query_opt(
    client: &impl GenericClient,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Option<Row>, DaoError> {
    let mut rows = query(client, sql, params).await?;
    if rows.len() > 1 {
        return Err(DaoError::Internal {
            source: format!("{} rows where at most one was expected", rows.len()).into(),
        });
    }
    Ok(rows.pop())
}

/// Like [`query_opt`], with `NotFound { entity }` for no row.
pub(crate) async fn query_one(
    client: &impl GenericClient,
    entity: &'static str,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Row, DaoError> {
    query_opt(client, sql, params)
        .await?
        .ok_or(DaoError::NotFound { entity })
}

/// Runs a statement that returns no rows; the number of rows affected.
pub(crate) async fn execute(client: &impl GenericClient, sql: &str, params: &[Param<'_>]) -> Result<u64, DaoError> {
    if crate::connect::unnamed_statements() {
        let typed: Vec<(&(dyn ToSql + Sync), tokio_postgres::types::Type)> =
            params.iter().map(|p| (p.as_to_sql(), p.sql_type())).collect();
        return Ok(client.driver().execute_typed(sql, &typed).await?);
    }
    let statement = client.prepare_cached(sql).await?;
    let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_to_sql()).collect();
    Ok(client.execute(&statement, &params).await?)
}

/// `NOTIFY channel, '<id>'`, delivered when the caller's transaction commits
/// (at once outside a transaction). `pg_notify` takes the channel as a value,
/// so it is a bind parameter like the payload.
pub(crate) async fn notify(
    client: &impl GenericClient,
    channel: &'static str,
    id: impl std::fmt::Display,
) -> Result<(), DaoError> {
    let payload = id.to_string();
    query(
        client,
        concat!("SELECT pg_notify(", scoped_channel!("$1::text"), ", $2)"),
        &[&channel, &payload],
    )
    .await?;
    Ok(())
}

/// Like [`notify`], once per id, in one statement whatever their number.
pub(crate) async fn notify_each(
    client: &impl GenericClient,
    channel: &'static str,
    ids: &[impl SqlArrayElement + tokio_postgres::types::ToSql + Sync],
) -> Result<(), DaoError> {
    if ids.is_empty() {
        return Ok(());
    }
    // `uuid::text` is the same lowercase hyphenated form as `Uuid::to_string`.
    query(
        client,
        concat!(
            "SELECT pg_notify(",
            scoped_channel!("$1::text"),
            ", id::text) FROM unnest($2::uuid[]) AS u(id)"
        ),
        &[&channel, &ids],
    )
    .await?;
    Ok(())
}

/// A condition on `pipeline_id` for each part of a pipeline address given:
/// the pipeline is live and has that namespace, layer or name. Together
/// they address one pipeline.
pub(crate) fn push_pipeline_address<'a>(
    conditions: &mut Conditions<'a>,
    namespace: &'a Option<&str>,
    layer: &'a Option<&str>,
    name: &'a Option<&str>,
) {
    conditions.push_opt(
        "pipeline_id IN (SELECT id FROM pipelines WHERE namespace = $? AND deleted_at IS NULL)",
        namespace,
    );
    conditions.push_opt(
        "pipeline_id IN (SELECT id FROM pipelines WHERE layer = $? AND deleted_at IS NULL)",
        layer,
    );
    conditions.push_opt(
        "pipeline_id IN (SELECT id FROM pipelines WHERE name = $? AND deleted_at IS NULL)",
        name,
    );
}

/// Reads a text column into a parsed domain type; a stored value that does
/// not parse is [`DaoError::Corrupt`], naming the column.
pub(crate) fn parse_column<T>(row: &Row, column: &'static str) -> Result<T, DaoError>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: &str = row.try_get(column)?;
    text.parse().map_err(|e| DaoError::corrupt(column, e))
}

/// [`parse_column`] for a nullable column.
pub(crate) fn parse_optional_column<T>(row: &Row, column: &'static str) -> Result<Option<T>, DaoError>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: Option<&str> = row.try_get(column)?;
    text.map(|text| text.parse().map_err(|e| DaoError::corrupt(column, e)))
        .transpose()
}

/// A `LIKE` pattern matching `needle` anywhere, with `%`, `_` and `\` escaped.
pub(crate) fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let (a, b) = (1_i32, "x".to_owned());
        let mut c = Conditions::new();
        c.push("a = $?", &a);
        c.push_fixed("deleted_at IS NULL");
        c.push("(b ILIKE $? OR d ILIKE $?)", &b);
        assert_eq!(
            c.render(),
            " WHERE a = $1 AND deleted_at IS NULL AND (b ILIKE $2 OR d ILIKE $2)"
        );
        assert_eq!(Conditions::new().render(), "");
    }

    #[test]
    fn a_keyset_position_follows_the_conditions_and_precedes_the_limit() {
        let a = 1_i32;
        let order = OrderBy {
            columns: &["created_at", "id"],
            descending: true,
        };
        let mut c = Conditions::new();
        c.push("a = $?", &a);
        assert_eq!(
            page_statement("id", "runs", &c, order, Some("(created_at, id) < ($?, $?2)")),
            "SELECT id FROM runs WHERE a = $1 AND (created_at, id) < ($2, $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
        );
        assert_eq!(
            page_statement(
                "id",
                "runs",
                &Conditions::new(),
                order,
                Some("(created_at, id) < ($?, $?2)")
            ),
            "SELECT id FROM runs WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
        );
        assert_eq!(
            page_statement("id", "runs", &Conditions::new(), order, None),
            "SELECT id FROM runs ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
        );
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}

/// The statuses of finished runs ([`rat_domain::RunStatus::is_terminal`]),
/// as a query parameter.
pub(crate) fn terminal_statuses() -> Vec<&'static str> {
    rat_domain::RunStatus::ALL
        .iter()
        .filter(|status| status.is_terminal())
        .map(|status| status.as_str())
        .collect()
}

#[cfg(test)]
mod status_tests {
    use rat_domain::RunStatus;

    #[test]
    fn the_active_list_is_every_status_that_is_not_terminal() {
        let active: Vec<String> = RunStatus::ALL
            .iter()
            .filter(|status| !status.is_terminal())
            .map(|status| format!("'{status}'"))
            .collect();
        assert_eq!(active_statuses!(), format!("({})", active.join(", ")));
        assert_eq!(super::terminal_statuses().len() + active.len(), RunStatus::ALL.len());
    }

    #[test]
    fn the_non_personal_owners_list_is_the_domain_s() {
        let owners: Vec<String> = rat_domain::NON_PERSONAL_OWNERS
            .iter()
            .map(|o| format!("'{o}'"))
            .collect();
        assert_eq!(non_personal_owners!(), format!("({})", owners.join(", ")));
    }
}
