//! `landing_zones` and `landing_files`: zones with their file counts and
//! sizes computed in SQL, their lifecycle settings, and the files uploaded to
//! them (the S3 objects themselves are the storage layer's business).

use crate::GenericClient;
use rat_domain::ZoneId;
use rat_domain::{
    Cursor, KeysetPage, LandingFile, LandingZone, LandingZoneSummary, NamespaceName, Page, PageRequest, ZoneName,
};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

const ZONE_COLUMNS: &str = "id, namespace, name, description, owner, expected_schema, processed_max_age_days, \
     auto_purge, created_at, updated_at";

/// The zone columns of `z` and the file statistics of `s`, as joined by
/// `file_stats!`.
const SUMMARY_COLUMNS: &str = "z.id, z.namespace, z.name, z.description, z.owner, z.expected_schema, \
     z.processed_max_age_days, z.auto_purge, z.created_at, z.updated_at, s.file_count, s.total_bytes";

/// The join that adds `s.file_count` and `s.total_bytes` to a zone row `z`.
/// A LATERAL subquery is computed only for the zones actually returned (one
/// index range scan of `idx_landing_files_zone` each), not for every file of
/// every zone; and since it is an aggregate without GROUP BY it yields exactly
/// one row per zone, so the planner drops it from the `count(*)` of a list.
macro_rules! file_stats {
    () => {
        "LEFT JOIN LATERAL (SELECT count(*) AS file_count, \
                COALESCE(sum(f.size_bytes), 0)::bigint AS total_bytes \
            FROM landing_files f WHERE f.zone_id = z.id) s ON true"
    };
}

const SUMMARY_FROM: &str = concat!("landing_zones z ", file_stats!());

const FILE_COLUMNS: &str =
    "id, zone_id, filename, s3_path, s3_version_id, size_bytes, content_type, uploaded_by, uploaded_at";

fn zone_from_row(row: &Row) -> Result<LandingZone, DaoError> {
    Ok(LandingZone {
        id: row.try_get("id")?,
        namespace: sql::parse_column(row, "namespace")?,
        name: sql::parse_column(row, "name")?,
        description: row.try_get("description")?,
        owner: row.try_get("owner")?,
        expected_schema: row.try_get("expected_schema")?,
        processed_max_age_days: row.try_get("processed_max_age_days")?,
        auto_purge: row.try_get("auto_purge")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn summary_from_row(row: &Row) -> Result<LandingZoneSummary, DaoError> {
    Ok(LandingZoneSummary {
        zone: zone_from_row(row)?,
        file_count: row.try_get("file_count")?,
        total_bytes: row.try_get("total_bytes")?,
    })
}

fn file_from_row(row: &Row) -> Result<LandingFile, DaoError> {
    Ok(LandingFile {
        id: row.try_get("id")?,
        zone_id: row.try_get("zone_id")?,
        filename: row.try_get("filename")?,
        s3_path: sql::parse_column(row, "s3_path")?,
        s3_version_id: sql::parse_optional_column(row, "s3_version_id")?,
        size_bytes: row.try_get("size_bytes")?,
        content_type: row.try_get("content_type")?,
        uploaded_by: row.try_get("uploaded_by")?,
        uploaded_at: row.try_get("uploaded_at")?,
    })
}

/// What creating a landing zone needs. The lifecycle starts unset (system
/// default age, no auto-purge); see [`set_lifecycle`].
#[derive(Debug, Clone)]
pub struct NewLandingZone {
    /// Namespace.
    pub namespace: NamespaceName,
    /// Name, unique within the namespace.
    pub name: ZoneName,
    /// Free text.
    pub description: String,
    /// Owner's identity.
    pub owner: Option<String>,
    /// Documentation of the expected file schema.
    pub expected_schema: String,
}

/// Creates a zone. `Conflict { uq_landing_zones_namespace_name }` when the
/// namespace already has a zone of that name; `MissingReference { namespace }`
/// for an unknown namespace. A new zone has no files.
pub async fn create(client: &impl GenericClient, new: &NewLandingZone) -> Result<LandingZone, DaoError> {
    let row = sql::query_one(
        client,
        "landing zone",
        &format!(
            "INSERT INTO landing_zones (namespace, name, description, owner, expected_schema) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {ZONE_COLUMNS}"
        ),
        &[
            &new.namespace.as_str(),
            &new.name.as_str(),
            &new.description,
            &new.owner,
            &new.expected_schema,
        ],
    )
    .await?;
    zone_from_row(&row)
}

/// The zone `ns/name` with its file count and total size.
pub async fn get(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    name: &ZoneName,
) -> Result<LandingZoneSummary, DaoError> {
    let row = sql::query_one(
        client,
        "landing zone",
        &format!("SELECT {SUMMARY_COLUMNS} FROM {SUMMARY_FROM} WHERE z.namespace = $1 AND z.name = $2"),
        &[&namespace.as_str(), &name.as_str()],
    )
    .await?;
    summary_from_row(&row)
}

/// The zone `ns/name` without its file statistics, for callers that need
/// its id or settings only (counting a zone's files is work that grows with
/// the zone).
pub async fn get_without_stats(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    name: &ZoneName,
) -> Result<LandingZone, DaoError> {
    zone_by_name(client, namespace, name, "").await
}

/// [`get_without_stats`], locking the row until the transaction ends (a
/// change that depends on what the row says, such as its owner).
pub async fn get_without_stats_for_update(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    name: &ZoneName,
) -> Result<LandingZone, DaoError> {
    zone_by_name(client, namespace, name, " FOR UPDATE").await
}

/// The zone row `ns/name`; `lock` is `""` or a fixed locking clause.
async fn zone_by_name(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    name: &ZoneName,
    lock: &'static str,
) -> Result<LandingZone, DaoError> {
    let row = sql::query_one(
        client,
        "landing zone",
        &format!("SELECT {ZONE_COLUMNS} FROM landing_zones WHERE namespace = $1 AND name = $2{lock}"),
        &[&namespace.as_str(), &name.as_str()],
    )
    .await?;
    zone_from_row(&row)
}

/// The zone with this id, without its file statistics.
pub async fn get_by_id(client: &impl GenericClient, id: Uuid) -> Result<LandingZone, DaoError> {
    let row = sql::query_one(
        client,
        "landing zone",
        &format!("SELECT {ZONE_COLUMNS} FROM landing_zones WHERE id = $1"),
        &[&id],
    )
    .await?;
    zone_from_row(&row)
}

/// Zones (of one namespace, or of all), ordered by namespace then name, each
/// with its file count and total size, one page, with the total.
/// `readable_by`: only zones these share principals (the user first, then
/// `role:NAME`s) may read (`readable_condition!`); `None` = all.
pub async fn list(
    client: &impl GenericClient,
    namespace: Option<&NamespaceName>,
    readable_by: Option<&Vec<String>>,
    page: PageRequest,
) -> Result<Page<LandingZoneSummary>, DaoError> {
    let namespace = namespace.map(NamespaceName::as_str);
    let mut conditions = Conditions::new();
    conditions.push_opt("z.namespace = $?", &namespace);
    conditions.push_opt(
        readable_condition!("'landing_zone'", "z.id", "z.owner", "z.namespace"),
        &readable_by,
    );
    let order = OrderBy {
        columns: &["z.namespace", "z.name"],
        descending: false,
    };
    sql::fetch_page(
        client,
        SUMMARY_COLUMNS,
        SUMMARY_FROM,
        &conditions,
        order,
        page,
        summary_from_row,
    )
    .await
}

/// Changes to a zone; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ZoneUpdate {
    /// New description.
    pub description: Option<String>,
    /// New owner.
    pub owner: Option<String>,
    /// New expected schema.
    pub expected_schema: Option<String>,
}

/// Applies `changes` to the zone `ns/name`; returns it with its file statistics.
pub async fn update(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    name: &ZoneName,
    changes: &ZoneUpdate,
) -> Result<LandingZoneSummary, DaoError> {
    // The statistics are joined to the updated row in the same statement, so
    // the answer is one consistent snapshot.
    let row = sql::query_one(
        client,
        "landing zone",
        &format!(
            "WITH z AS ( \
                UPDATE landing_zones SET \
                    description = COALESCE($3, description), \
                    owner = COALESCE($4, owner), \
                    expected_schema = COALESCE($5, expected_schema) \
                WHERE namespace = $1 AND name = $2 \
                RETURNING {ZONE_COLUMNS}) \
             SELECT {SUMMARY_COLUMNS} FROM z {}",
            file_stats!()
        ),
        &[
            &namespace.as_str(),
            &name.as_str(),
            &changes.description,
            &changes.owner,
            &changes.expected_schema,
        ],
    )
    .await?;
    summary_from_row(&row)
}

/// Replaces both lifecycle settings of the zone `ns/name`. Unlike
/// [`update`], `None` is stored: it clears the maximum age (the system default
/// applies again). `Invalid { ck_landing_zones_processed_max_age_days }` for
/// fewer than one day.
pub async fn set_lifecycle(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    name: &ZoneName,
    processed_max_age_days: Option<i32>,
    auto_purge: bool,
) -> Result<LandingZone, DaoError> {
    update_lifecycle(client, namespace, name, Some(processed_max_age_days), Some(auto_purge)).await
}

/// Changes the lifecycle settings of the zone `ns/name` in one statement:
/// `processed_max_age_days` `None` keeps the stored value and `Some(None)`
/// clears it (the system default applies again); `auto_purge` `None` keeps it.
/// `Invalid { ck_landing_zones_processed_max_age_days }` for fewer than one day.
pub async fn update_lifecycle(
    client: &impl GenericClient,
    namespace: &NamespaceName,
    name: &ZoneName,
    processed_max_age_days: Option<Option<i32>>,
    auto_purge: Option<bool>,
) -> Result<LandingZone, DaoError> {
    // A NULL parameter cannot tell "keep" from "clear", so whether the age is
    // replaced travels as its own boolean.
    let replace_age = processed_max_age_days.is_some();
    let age = processed_max_age_days.flatten();
    let row = sql::query_one(
        client,
        "landing zone",
        &format!(
            "UPDATE landing_zones SET \
                processed_max_age_days = CASE WHEN $3 THEN $4 ELSE processed_max_age_days END, \
                auto_purge = COALESCE($5, auto_purge) \
             WHERE namespace = $1 AND name = $2 RETURNING {ZONE_COLUMNS}"
        ),
        &[&namespace.as_str(), &name.as_str(), &replace_age, &age, &auto_purge],
    )
    .await?;
    zone_from_row(&row)
}

/// Deletes the zone `ns/name` and, through the foreign key, its file rows.
/// The S3 objects under [`LandingZone::s3_prefix`] are the caller's to remove.
pub async fn delete(client: &impl GenericClient, namespace: &NamespaceName, name: &ZoneName) -> Result<(), DaoError> {
    let deleted = sql::execute(
        client,
        "DELETE FROM landing_zones WHERE namespace = $1 AND name = $2",
        &[&namespace.as_str(), &name.as_str()],
    )
    .await
    .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound { entity: "landing zone" });
    }
    Ok(())
}

/// What recording an uploaded file needs.
#[derive(Debug, Clone)]
pub struct NewLandingFile {
    /// The zone.
    pub zone_id: ZoneId,
    /// Stored filename (`YYYYMMDD_HHMMSS_<token>_<basename>`).
    pub filename: String,
    /// Object key.
    pub s3_path: String,
    /// The version of the object written for this upload.
    pub s3_version_id: Option<String>,
    /// Size.
    pub size_bytes: i64,
    /// MIME type as uploaded.
    pub content_type: String,
    /// Uploader's identity.
    pub uploaded_by: Option<String>,
}

/// Records a file uploaded at `now`. `MissingReference { landing zone }` for an
/// unknown zone; `Invalid { ck_landing_files_size_bytes }` for a negative size.
pub async fn insert_file(
    client: &impl GenericClient,
    new: &NewLandingFile,
    now: OffsetDateTime,
) -> Result<LandingFile, DaoError> {
    let row = sql::query_one(
        client,
        "landing file",
        &format!(
            "INSERT INTO landing_files (zone_id, filename, s3_path, size_bytes, content_type, uploaded_by, uploaded_at, \
                 s3_version_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {FILE_COLUMNS}"
        ),
        &[
            &new.zone_id,
            &new.filename,
            &new.s3_path,
            &new.size_bytes,
            &new.content_type,
            &new.uploaded_by,
            &now,
            &new.s3_version_id,
        ],
    )
    .await?;
    file_from_row(&row)
}

/// The file `id` of the zone `zone_id`; `NotFound { landing file }` also when
/// the file exists but belongs to another zone.
pub async fn get_file(client: &impl GenericClient, zone_id: ZoneId, id: Uuid) -> Result<LandingFile, DaoError> {
    let row = sql::query_one(
        client,
        "landing file",
        &format!("SELECT {FILE_COLUMNS} FROM landing_files WHERE id = $1 AND zone_id = $2"),
        &[&id, &zone_id],
    )
    .await?;
    file_from_row(&row)
}

/// The order of a zone's files: newest first (`idx_landing_files_zone`, with the id since V21).
const FILE_ORDER: OrderBy = OrderBy {
    columns: &["uploaded_at", "id"],
    descending: true,
};

/// The keyset comparison of [`FILE_ORDER`].
const FILE_KEYSET: &str = "(uploaded_at, id) < ($?, $?2)";

/// The statement [`list_files`] sends, from a cursor or not; its parameters
/// are the zone's id, then the cursor's time and id, the limit and the
/// offset. For plan tests (`EXPLAIN`).
pub fn list_files_statement(from_cursor: bool) -> String {
    let zone = ZoneId::from(Uuid::nil());
    let mut conditions = Conditions::new();
    conditions.push("zone_id = $?", &zone);
    sql::page_statement(
        FILE_COLUMNS,
        "landing_files",
        &conditions,
        FILE_ORDER,
        from_cursor.then_some(FILE_KEYSET),
    )
}

/// The zone's files, newest first, one page, with the total and whether
/// more follow; from just after `after` when given.
pub async fn list_files(
    client: &impl GenericClient,
    zone_id: ZoneId,
    page: PageRequest,
    after: Option<Cursor<Uuid>>,
) -> Result<KeysetPage<LandingFile>, DaoError> {
    let mut conditions = Conditions::new();
    conditions.push("zone_id = $?", &zone_id);
    let after = after.as_ref().map(|cursor| sql::After {
        fragment: FILE_KEYSET,
        at: &cursor.at,
        id: &cursor.id,
    });
    sql::fetch_keyset_page(
        client,
        FILE_COLUMNS,
        "landing_files",
        &conditions,
        FILE_ORDER,
        page,
        after,
        None,
        file_from_row,
    )
    .await
}

/// Deletes the file `id` of the zone `zone_id` and returns the deleted row, so
/// the caller can remove the S3 object. `NotFound { landing file }` when the
/// file does not exist or belongs to another zone.
pub async fn delete_file(client: &impl GenericClient, zone_id: ZoneId, id: Uuid) -> Result<LandingFile, DaoError> {
    let row = sql::query_one(
        client,
        "landing file",
        &format!("DELETE FROM landing_files WHERE id = $1 AND zone_id = $2 RETURNING {FILE_COLUMNS}"),
        &[&id, &zone_id],
    )
    .await
    .map_err(DaoError::on_delete)?;
    file_from_row(&row)
}

/// Files of the zone uploaded before `cutoff`, oldest first, at most `limit`.
/// Used by the reaper to purge processed files.
pub async fn files_older_than(
    client: &impl GenericClient,
    zone_id: ZoneId,
    cutoff: OffsetDateTime,
    limit: i64,
) -> Result<Vec<LandingFile>, DaoError> {
    let rows = sql::query(
        client,
        &format!(
            "SELECT {FILE_COLUMNS} FROM landing_files WHERE zone_id = $1 AND uploaded_at < $2 \
             ORDER BY uploaded_at, id LIMIT $3"
        ),
        &[&zone_id, &cutoff, &limit],
    )
    .await?;
    rows.iter().map(file_from_row).collect()
}
