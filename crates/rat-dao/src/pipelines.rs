//! `pipelines`: the registry. Live pipelines are those with `deleted_at IS
//! NULL`; a soft-deleted pipeline keeps its row (and its runs) until the reaper
//! purges it, and its name is free again at once.

use crate::GenericClient;
use rat_domain::{
    Layer, NamespaceName, Page, PageRequest, Pipeline, PipelineRef, PipelineSortField, PipelineType, PublishedVersions,
    Sort,
};
use rat_domain::{PipelineId, ScheduleId, TriggerId};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::DaoError;
use crate::access::AccessGeneration;
use crate::sql::{self, Conditions, OrderBy};

/// The select list of every pipeline query, as a literal so that hot queries
/// can be `concat!`ed constants (no formatting per call).
macro_rules! columns {
    () => {
        "id, namespace, layer, name, type, s3_path, description, owner, published_at, \
         published_versions, draft_dirty, max_versions, retention_config, created_at, updated_at, deleted_at"
    };
}

const COLUMNS: &str = columns!();

/// The hottest query of the api (`GET /pipelines/{ns}/{layer}/{name}`).
const GET_BY_REF: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM pipelines WHERE namespace = $1 AND layer = $2 AND name = $3 AND deleted_at IS NULL"
);

/// The batched form of `GET_BY_REF`: the live pipelines at any of the
/// addresses given as three parallel arrays, through `pipelines_at` (V12),
/// which probes `uq_pipelines_namespace_layer_name` once per address with a
/// cached plan.
/// Each row also carries the generation of the access rule's inputs
/// ([`crate::access::AccessGeneration`]) in the same snapshot, so a cached
/// access answer can be checked without a query of its own.
pub const GET_BY_REFS: &str = concat!(
    "SELECT ",
    columns!(),
    ", (SELECT generation FROM access_generation) AS access_generation",
    " FROM pipelines_at($1::text[], $2::text[], $3::text[])"
);

pub(crate) fn from_row(row: &Row) -> Result<Pipeline, DaoError> {
    let published: serde_json::Value = row.try_get("published_versions")?;
    Ok(Pipeline {
        id: row.try_get("id")?,
        address: PipelineRef {
            namespace: sql::parse_column(row, "namespace")?,
            layer: sql::parse_column(row, "layer")?,
            name: sql::parse_column(row, "name")?,
        },
        pipeline_type: sql::parse_column(row, "type")?,
        s3_path: sql::parse_column(row, "s3_path")?,
        description: row.try_get::<_, Option<String>>("description")?.unwrap_or_default(),
        owner: row.try_get("owner")?,
        published_at: row.try_get("published_at")?,
        published_versions: PublishedVersions::from_json(&published)
            .map_err(|e| DaoError::corrupt("published_versions", e))?,
        draft_dirty: row.try_get("draft_dirty")?,
        max_versions: row.try_get("max_versions")?,
        retention_config: row.try_get("retention_config")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

/// What creating a pipeline needs.
#[derive(Debug, Clone)]
pub struct NewPipeline {
    /// Namespace, layer and name.
    pub address: PipelineRef,
    /// Language.
    pub pipeline_type: PipelineType,
    /// Free text.
    pub description: String,
    /// Owner's identity.
    pub owner: Option<String>,
    /// Versions of history to keep; `None` for the default (50).
    pub max_versions: Option<i32>,
}

/// Creates a pipeline with `s3_path` = its S3 prefix.
/// `Conflict { uq_pipelines_namespace_layer_name }` when a live pipeline has
/// the address; `MissingReference { namespace }` for an unknown namespace.
pub async fn create(client: &impl GenericClient, new: &NewPipeline) -> Result<Pipeline, DaoError> {
    let address = &new.address;
    let max_versions = new.max_versions.unwrap_or(Pipeline::DEFAULT_MAX_VERSIONS);
    let row = sql::query_one(
        client,
        "pipeline",
        &format!(
            "INSERT INTO pipelines (namespace, layer, name, type, s3_path, description, owner, max_versions) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ),
        &[
            &address.namespace.as_str(),
            &address.layer.as_str(),
            &address.name.as_str(),
            &new.pipeline_type.as_str(),
            &address.s3_prefix().as_str(),
            &new.description,
            &new.owner,
            &max_versions,
        ],
    )
    .await?;
    from_row(&row)
}

/// The pipeline with this id, live or soft-deleted.
pub async fn get(client: &impl GenericClient, id: PipelineId) -> Result<Pipeline, DaoError> {
    let row = sql::query_one(
        client,
        "pipeline",
        &format!("SELECT {COLUMNS} FROM pipelines WHERE id = $1"),
        &[&id],
    )
    .await?;
    from_row(&row)
}

/// The live pipeline at `address`.
pub async fn get_by_ref(client: &impl GenericClient, address: &PipelineRef) -> Result<Pipeline, DaoError> {
    let row = sql::query_one(
        client,
        "pipeline",
        GET_BY_REF,
        &[
            &address.namespace.as_str(),
            &address.layer.as_str(),
            &address.name.as_str(),
        ],
    )
    .await?;
    from_row(&row)
}

/// The live pipelines at `addresses`, in one query (any order; an address
/// with no live pipeline has no entry), each with the access generation of
/// the query's snapshot. At most [`MAX_BATCH_READ`] addresses.
pub async fn get_by_refs(
    client: &impl GenericClient,
    addresses: &[PipelineRef],
) -> Result<Vec<(Pipeline, AccessGeneration)>, DaoError> {
    if addresses.len() > MAX_BATCH_READ {
        return Err(DaoError::Internal {
            source: format!("{} addresses in one read, at most {MAX_BATCH_READ}", addresses.len()).into(),
        });
    }
    let namespaces: Vec<&str> = addresses.iter().map(|a| a.namespace.as_str()).collect();
    let layers: Vec<&str> = addresses.iter().map(|a| a.layer.as_str()).collect();
    let names: Vec<&str> = addresses.iter().map(|a| a.name.as_str()).collect();
    sql::query(client, GET_BY_REFS, &[&namespaces, &layers, &names])
        .await?
        .iter()
        .map(|row| Ok((from_row(row)?, AccessGeneration(row.try_get("access_generation")?))))
        .collect()
}

/// Most addresses [`get_by_refs`] reads at once.
pub const MAX_BATCH_READ: usize = 1_000;

/// The live pipeline at `address`, locked (`FOR UPDATE`) until the end of the
/// caller's transaction. Publish and rollback take this lock so version
/// numbers are allocated one at a time.
pub async fn get_by_ref_for_update(client: &impl GenericClient, address: &PipelineRef) -> Result<Pipeline, DaoError> {
    let row = sql::query_one(
        client,
        "pipeline",
        &format!(
            "SELECT {COLUMNS} FROM pipelines \
             WHERE namespace = $1 AND layer = $2 AND name = $3 AND deleted_at IS NULL FOR UPDATE"
        ),
        &[
            &address.namespace.as_str(),
            &address.layer.as_str(),
            &address.name.as_str(),
        ],
    )
    .await?;
    from_row(&row)
}

/// Changes to a pipeline; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct PipelineUpdate {
    /// New description.
    pub description: Option<String>,
    /// New language.
    pub pipeline_type: Option<PipelineType>,
    /// New owner.
    pub owner: Option<String>,
    /// New history size.
    pub max_versions: Option<i32>,
}

/// Applies `changes` to the live pipeline at `address`.
pub async fn update(
    client: &impl GenericClient,
    address: &PipelineRef,
    changes: &PipelineUpdate,
) -> Result<Pipeline, DaoError> {
    let pipeline_type = changes.pipeline_type.map(PipelineType::as_str);
    let row = sql::query_one(
        client,
        "pipeline",
        &format!(
            "UPDATE pipelines SET \
                description = COALESCE($4, description), \
                type = COALESCE($5, type), \
                owner = COALESCE($6, owner), \
                max_versions = COALESCE($7, max_versions) \
             WHERE namespace = $1 AND layer = $2 AND name = $3 AND deleted_at IS NULL \
             RETURNING {COLUMNS}"
        ),
        &[
            &address.namespace.as_str(),
            &address.layer.as_str(),
            &address.name.as_str(),
            &changes.description,
            &pipeline_type,
            &changes.owner,
            &changes.max_versions,
        ],
    )
    .await?;
    from_row(&row)
}

/// Soft-deletes the live pipeline at `address` (its name is free again).
pub async fn soft_delete(
    client: &impl GenericClient,
    address: &PipelineRef,
    now: OffsetDateTime,
) -> Result<Pipeline, DaoError> {
    let row = sql::query_one(
        client,
        "pipeline",
        &format!(
            "UPDATE pipelines SET deleted_at = $4 \
             WHERE namespace = $1 AND layer = $2 AND name = $3 AND deleted_at IS NULL \
             RETURNING {COLUMNS}"
        ),
        &[
            &address.namespace.as_str(),
            &address.layer.as_str(),
            &address.name.as_str(),
            &now,
        ],
    )
    .await?;
    from_row(&row)
}

/// Deletes the row for good, with everything below it (runs, schedules,
/// triggers, versions, quality tests and results). Used by the reaper.
pub async fn purge(client: &impl GenericClient, id: PipelineId) -> Result<(), DaoError> {
    let deleted = sql::execute(client, "DELETE FROM pipelines WHERE id = $1", &[&id])
        .await
        .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound { entity: "pipeline" });
    }
    Ok(())
}

/// Pipelines soft-deleted before `cutoff`, oldest first, at most `limit`.
pub async fn soft_deleted_before(
    client: &impl GenericClient,
    cutoff: OffsetDateTime,
    limit: i64,
) -> Result<Vec<Pipeline>, DaoError> {
    let rows = sql::query(
        client,
        &format!(
            "SELECT {COLUMNS} FROM pipelines WHERE deleted_at IS NOT NULL AND deleted_at < $1 \
             ORDER BY deleted_at, id LIMIT $2"
        ),
        &[&cutoff, &limit],
    )
    .await?;
    rows.iter().map(from_row).collect()
}

/// Sets `draft_dirty` of a live pipeline.
pub async fn set_draft_dirty(client: &impl GenericClient, id: PipelineId, dirty: bool) -> Result<(), DaoError> {
    let updated = sql::execute(
        client,
        "UPDATE pipelines SET draft_dirty = $2 WHERE id = $1 AND deleted_at IS NULL",
        &[&id, &dirty],
    )
    .await?;
    if updated == 0 {
        return Err(DaoError::NotFound { entity: "pipeline" });
    }
    Ok(())
}

/// Records a publish (or rollback): the pinned map, its time and the draft state.
pub async fn set_published(
    client: &impl GenericClient,
    id: PipelineId,
    versions: &PublishedVersions,
    published_at: OffsetDateTime,
    draft_dirty: bool,
) -> Result<Pipeline, DaoError> {
    let row = sql::query_one(
        client,
        "pipeline",
        &format!(
            "UPDATE pipelines SET published_versions = $2, published_at = $3, draft_dirty = $4 \
             WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
        ),
        &[&id, &versions.to_json(), &published_at, &draft_dirty],
    )
    .await?;
    from_row(&row)
}

/// Replaces the per-pipeline retention overrides (`None` removes them).
pub async fn set_retention_config(
    client: &impl GenericClient,
    id: PipelineId,
    config: Option<&serde_json::Value>,
) -> Result<Pipeline, DaoError> {
    let row = sql::query_one(
        client,
        "pipeline",
        &format!("UPDATE pipelines SET retention_config = $2 WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"),
        &[&id, &config],
    )
    .await?;
    from_row(&row)
}

/// What a delete changed, recorded with the deleted row (`deleted_state`,
/// V20) so that a restore puts back exactly that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deletion {
    /// Who deleted the pipeline.
    pub deleted_by: Option<String>,
    /// The schedules the delete disabled (they were enabled).
    pub schedules: Vec<ScheduleId>,
    /// The triggers the delete disabled (they were enabled).
    pub triggers: Vec<TriggerId>,
    /// The draft as it was at the delete: every file at the pipeline's
    /// prefix and its HEAD version id. `None` when it was not recorded (a
    /// pipeline deleted before V20).
    pub files: Option<PublishedVersions>,
}

/// A soft-deleted pipeline with what its delete recorded.
#[derive(Debug, Clone)]
pub struct DeletedPipeline {
    /// The row (`deleted_at` is set).
    pub pipeline: Pipeline,
    /// What the delete changed.
    pub deletion: Deletion,
}

const DELETED_COLUMNS: &str = concat!(columns!(), ", deleted_by, deleted_state");

fn deleted_from_row(row: &Row) -> Result<DeletedPipeline, DaoError> {
    let pipeline = from_row(row)?;
    let state: Option<serde_json::Value> = row.try_get("deleted_state")?;
    let mut deletion = Deletion {
        deleted_by: row.try_get("deleted_by")?,
        ..Deletion::default()
    };
    if let Some(state) = state {
        let ids = |key: &str| state.get(key).cloned().unwrap_or(serde_json::Value::Array(Vec::new()));
        deletion.schedules =
            serde_json::from_value(ids("schedules")).map_err(|e| DaoError::corrupt("deleted_state", e))?;
        deletion.triggers =
            serde_json::from_value(ids("triggers")).map_err(|e| DaoError::corrupt("deleted_state", e))?;
        deletion.files = match state.get("files") {
            None | Some(serde_json::Value::Null) => None,
            Some(files) => {
                Some(PublishedVersions::from_json(files).map_err(|e| DaoError::corrupt("deleted_state", e))?)
            }
        };
    }
    Ok(DeletedPipeline { pipeline, deletion })
}

/// Records what the delete of pipeline `id` (soft-deleted in the caller's
/// transaction) changed.
pub async fn record_deletion(client: &impl GenericClient, id: PipelineId, deletion: &Deletion) -> Result<(), DaoError> {
    let state = serde_json::json!({
        "schedules": deletion.schedules,
        "triggers": deletion.triggers,
        "files": deletion.files.as_ref().map(PublishedVersions::to_json),
    });
    let updated = sql::execute(
        client,
        "UPDATE pipelines SET deleted_by = $2, deleted_state = $3 WHERE id = $1 AND deleted_at IS NOT NULL",
        &[&id, &deletion.deleted_by, &state],
    )
    .await?;
    if updated == 0 {
        return Err(DaoError::NotFound { entity: "pipeline" });
    }
    Ok(())
}

/// The soft-deleted pipeline `id` with its deletion record; `NotFound` when
/// there is none (never deleted, restored or purged).
pub async fn get_deleted(client: &impl GenericClient, id: PipelineId) -> Result<DeletedPipeline, DaoError> {
    let row = sql::query_one(
        client,
        "pipeline",
        &format!("SELECT {DELETED_COLUMNS} FROM pipelines WHERE id = $1 AND deleted_at IS NOT NULL"),
        &[&id],
    )
    .await?;
    deleted_from_row(&row)
}

/// [`get_deleted`], locked (`FOR UPDATE`) until the caller's transaction
/// ends, so two restores of one pipeline run one after the other.
pub async fn get_deleted_for_update(client: &impl GenericClient, id: PipelineId) -> Result<DeletedPipeline, DaoError> {
    let row = sql::query_one(
        client,
        "pipeline",
        &format!("SELECT {DELETED_COLUMNS} FROM pipelines WHERE id = $1 AND deleted_at IS NOT NULL FOR UPDATE"),
        &[&id],
    )
    .await?;
    deleted_from_row(&row)
}

/// The soft-deleted pipelines at `address` (at most `limit`, deleted last
/// first), with their deletion records.
pub async fn deleted_at_address(
    client: &impl GenericClient,
    address: &PipelineRef,
    limit: i64,
) -> Result<Vec<DeletedPipeline>, DaoError> {
    let rows = sql::query(
        client,
        &format!(
            "SELECT {DELETED_COLUMNS} FROM pipelines \
             WHERE namespace = $1 AND layer = $2 AND name = $3 AND deleted_at IS NOT NULL \
             ORDER BY deleted_at DESC, id DESC LIMIT $4"
        ),
        &[
            &address.namespace.as_str(),
            &address.layer.as_str(),
            &address.name.as_str(),
            &limit,
        ],
    )
    .await?;
    rows.iter().map(deleted_from_row).collect()
}

/// The soft-deleted pipeline at `address` deleted last, if any.
pub async fn last_deleted_at(
    client: &impl GenericClient,
    address: &PipelineRef,
) -> Result<Option<PipelineId>, DaoError> {
    let row = sql::query_opt(
        client,
        "SELECT id FROM pipelines WHERE namespace = $1 AND layer = $2 AND name = $3 AND deleted_at IS NOT NULL \
         ORDER BY deleted_at DESC, id DESC LIMIT 1",
        &[
            &address.namespace.as_str(),
            &address.layer.as_str(),
            &address.name.as_str(),
        ],
    )
    .await?;
    Ok(row.map(|row| row.try_get("id")).transpose()?)
}

/// Makes the soft-deleted pipeline `id` live again and clears its deletion
/// record. `Conflict { uq_pipelines_namespace_layer_name }` when a live
/// pipeline has its address (a concurrent create of that address waits for
/// the caller's transaction).
pub async fn undelete(client: &impl GenericClient, id: PipelineId) -> Result<Pipeline, DaoError> {
    let row = sql::query_one(
        client,
        "pipeline",
        &format!(
            "UPDATE pipelines SET deleted_at = NULL, deleted_by = NULL, deleted_state = NULL \
             WHERE id = $1 AND deleted_at IS NOT NULL RETURNING {COLUMNS}"
        ),
        &[&id],
    )
    .await?;
    from_row(&row)
}

/// Soft-deleted pipelines matching `filter`, sorted, one page, with the total.
pub async fn list_deleted(
    client: &impl GenericClient,
    filter: &PipelineFilter,
    sort: Sort<PipelineSortField>,
    page: PageRequest,
) -> Result<Page<DeletedPipeline>, DaoError> {
    FilterValues::of(filter)
        .fetch_page(
            client,
            DELETED_COLUMNS,
            "deleted_at IS NOT NULL",
            sort,
            page,
            deleted_from_row,
        )
        .await
}

/// The bind values of a [`PipelineFilter`], borrowed by its conditions.
struct FilterValues<'a> {
    namespace: Option<&'a str>,
    layer: Option<&'static str>,
    search: Option<String>,
    readable: &'a Option<Vec<String>>,
}

impl<'a> FilterValues<'a> {
    fn of(filter: &'a PipelineFilter) -> Self {
        FilterValues {
            namespace: filter.namespace.as_ref().map(NamespaceName::as_str),
            layer: filter.layer.map(Layer::as_str),
            search: filter.search.as_deref().map(sql::contains_pattern),
            readable: &filter.readable_by,
        }
    }

    /// `state` (live or deleted pipelines) and the filter's conditions, for
    /// the page (`Read::Page`) or its total (`Read::Count`). The access
    /// rule's read half is in SQL so that the page and its total count only
    /// readable pipelines: the owner (ownership row, else the owner column),
    /// an unowned pipeline (no owner, or a non-personal one), or a share to
    /// a principal on the pipeline or its namespace.
    ///
    /// Search: `x ILIKE p` is `lower(x) LIKE lower(p)`, and the lower-cased
    /// copies are stored (V27), so no candidate is lower-cased again. Both
    /// statements take the same parameters in the same order. The page's
    /// `lower($n)` is folded into a constant when the statement is planned
    /// for its values, so the planner sees the pattern and can tell a term
    /// that names one pipeline from one that matches thousands. The
    /// total's `(SELECT lower($n))` is computed once per execution: a
    /// generic plan of `LIKE lower($n)` (which Postgres settles on for a
    /// prepared count that matches many rows) lower-cased the pattern again
    /// for every candidate, and counted 20,000 candidates in 12 ms instead
    /// of 6.
    fn conditions(&self, state: &'static str, read: Read) -> Conditions<'_> {
        let mut conditions = Conditions::new();
        conditions.push_fixed(state);
        conditions.push_opt("namespace = $?", &self.namespace);
        conditions.push_opt("layer = $?", &self.layer);
        conditions.push_opt(
            match read {
                Read::Page => "(name_folded LIKE lower($?) OR description_folded LIKE lower($?))",
                Read::Count => "(name_folded LIKE (SELECT lower($?)) OR description_folded LIKE (SELECT lower($?)))",
            },
            &self.search,
        );
        conditions.push_opt(readable_pipeline!(), self.readable);
        conditions
    }

    /// One page of the pipelines in `state` matching the filter, sorted,
    /// with the total.
    async fn fetch_page<T>(
        &self,
        client: &impl GenericClient,
        columns: &'static str,
        state: &'static str,
        sort: Sort<PipelineSortField>,
        page: PageRequest,
        decode: impl Fn(&tokio_postgres::Row) -> Result<T, DaoError>,
    ) -> Result<Page<T>, DaoError> {
        let count = sql::count_statement("pipelines", &self.conditions(state, Read::Count));
        let page = sql::fetch_keyset_page(
            client,
            columns,
            "pipelines",
            &self.conditions(state, Read::Page),
            order_by(sort),
            page,
            None,
            Some(count),
            decode,
        )
        .await?;
        Ok(Page {
            items: page.items,
            total: page.total,
        })
    }
}

/// Which statement [`FilterValues::conditions`] are for.
#[derive(Clone, Copy)]
enum Read {
    Page,
    Count,
}

fn order_by(sort: Sort<PipelineSortField>) -> OrderBy {
    OrderBy {
        columns: match sort.field {
            PipelineSortField::Name => &["name", "id"],
            PipelineSortField::Namespace => &["namespace", "id"],
            PipelineSortField::Layer => &["layer", "id"],
            PipelineSortField::CreatedAt => &["created_at", "id"],
            PipelineSortField::UpdatedAt => &["updated_at", "id"],
            PipelineSortField::Type => &["type", "id"],
        },
        descending: sort.descending,
    }
}

/// Filters of `GET /pipelines`; soft-deleted pipelines are never listed.
#[derive(Debug, Clone, Default)]
pub struct PipelineFilter {
    /// Only this namespace.
    pub namespace: Option<NamespaceName>,
    /// Only this layer.
    pub layer: Option<Layer>,
    /// Case-insensitive substring of name or description.
    pub search: Option<String>,
    /// Only pipelines these share principals (a user and `role:NAME`s, the
    /// user first) may read ([`rat_domain::permission`] in SQL); `None` = all.
    pub readable_by: Option<Vec<String>>,
}

/// The default order of `GET /pipelines`: newest first.
pub const DEFAULT_SORT: Sort<PipelineSortField> = Sort {
    field: PipelineSortField::CreatedAt,
    descending: true,
};

/// The statement counting the live pipelines matching `filter` (the total
/// [`list`] sends with a full page); for plan tests (`EXPLAIN`). Its
/// parameters are the filter's values in order: namespace, layer, search
/// pattern, principals, each when set.
pub fn count_statement(filter: &PipelineFilter) -> String {
    sql::count_statement(
        "pipelines",
        &FilterValues::of(filter).conditions("deleted_at IS NULL", Read::Count),
    )
}

/// Live pipelines matching `filter`, sorted, one page, with the total.
pub async fn list(
    client: &impl GenericClient,
    filter: &PipelineFilter,
    sort: Sort<PipelineSortField>,
    page: PageRequest,
) -> Result<Page<Pipeline>, DaoError> {
    FilterValues::of(filter)
        .fetch_page(client, COLUMNS, "deleted_at IS NULL", sort, page, from_row)
        .await
}
