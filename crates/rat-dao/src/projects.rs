//! `projects` and `project_members`: named groups of pipelines and tables.
//!
//! Project names are free text checked by the caller; the schema bounds their
//! length (`Invalid { value }` beyond 255 characters) and uniqueness.
//!
//! A member's `object_id` has no foreign key (it points at a pipeline or a
//! table's metadata row depending on `object_type`): [`lock_live_object`]
//! checks and holds the object while a member is added, and
//! [`list_live_members`] lists only members whose object is live, with where
//! it is, filtered by the access rule in SQL.

use crate::GenericClient;
use rat_domain::{ListedMember, MemberType, Page, PageRequest, Project, ProjectMember};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

const COLUMNS: &str = "id, name, description, created_by, created_at";

const MEMBER_COLUMNS: &str = "project_id, object_type, object_id, added_at";

fn from_row(row: &Row) -> Result<Project, DaoError> {
    Ok(Project {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get::<_, Option<String>>("description")?.unwrap_or_default(),
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

fn member_from_row(row: &Row) -> Result<ProjectMember, DaoError> {
    Ok(ProjectMember {
        project_id: row.try_get("project_id")?,
        object_type: sql::parse_column(row, "object_type")?,
        object_id: row.try_get("object_id")?,
        added_at: row.try_get("added_at")?,
    })
}

/// Creates a project; `Conflict { uq_projects_name }` when the name is taken.
pub async fn create(
    client: &impl GenericClient,
    name: &str,
    description: &str,
    created_by: Option<&str>,
) -> Result<Project, DaoError> {
    let row = sql::query_one(
        client,
        "project",
        &format!("INSERT INTO projects (name, description, created_by) VALUES ($1, $2, $3) RETURNING {COLUMNS}"),
        &[&name, &description, &created_by],
    )
    .await?;
    from_row(&row)
}

/// The project with this id.
pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Project, DaoError> {
    let row = sql::query_one(
        client,
        "project",
        &format!("SELECT {COLUMNS} FROM projects WHERE id = $1"),
        &[&id],
    )
    .await?;
    from_row(&row)
}

/// The project called `name` (exact, case-sensitive match).
pub async fn get_by_name(client: &impl GenericClient, name: &str) -> Result<Project, DaoError> {
    let row = sql::query_one(
        client,
        "project",
        &format!("SELECT {COLUMNS} FROM projects WHERE name = $1"),
        &[&name],
    )
    .await?;
    from_row(&row)
}

/// Renames and/or redescribes a project; `None` keeps the current value.
/// `Conflict { uq_projects_name }` when the new name is taken.
pub async fn update(
    client: &impl GenericClient,
    id: Uuid,
    name: Option<&str>,
    description: Option<&str>,
) -> Result<Project, DaoError> {
    let row = sql::query_one(
        client,
        "project",
        &format!(
            "UPDATE projects SET name = COALESCE($2, name), description = COALESCE($3, description) \
             WHERE id = $1 RETURNING {COLUMNS}"
        ),
        &[&id, &name, &description],
    )
    .await?;
    from_row(&row)
}

/// Deletes a project and, through the foreign key, its memberships (the
/// member objects themselves stay).
pub async fn delete(client: &impl GenericClient, id: Uuid) -> Result<(), DaoError> {
    let deleted = sql::execute(client, "DELETE FROM projects WHERE id = $1", &[&id])
        .await
        .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound { entity: "project" });
    }
    Ok(())
}

/// Projects ordered by name, optionally only those whose name contains
/// `search` (case-insensitive, LIKE wildcards taken literally), one page, with
/// the total.
pub async fn list(
    client: &impl GenericClient,
    search: Option<&str>,
    page: PageRequest,
) -> Result<Page<Project>, DaoError> {
    let search = search.map(sql::contains_pattern);
    let mut conditions = Conditions::new();
    conditions.push_opt("name ILIKE $?", &search);
    let order = OrderBy {
        columns: &["name", "id"],
        descending: false,
    };
    sql::fetch_page(client, COLUMNS, "projects", &conditions, order, page, from_row).await
}

/// Adds an object to a project, at `now`. `Conflict { pk_project_members }`
/// when it is already a member; `MissingReference { project }` for an unknown
/// project. The object itself is not checked (it has no foreign key): callers
/// hold it with [`lock_live_object`] first, in the same transaction.
pub async fn add_member(
    client: &impl GenericClient,
    project_id: Uuid,
    member_type: MemberType,
    object_id: Uuid,
    now: OffsetDateTime,
) -> Result<ProjectMember, DaoError> {
    let row = sql::query_one(
        client,
        "project member",
        &format!(
            "INSERT INTO project_members (project_id, object_type, object_id, added_at) \
             VALUES ($1, $2, $3, $4) RETURNING {MEMBER_COLUMNS}"
        ),
        &[&project_id, &member_type.as_str(), &object_id, &now],
    )
    .await?;
    member_from_row(&row)
}

/// Removes an object from a project; `NotFound { project member }` when it is
/// not a member.
pub async fn remove_member(
    client: &impl GenericClient,
    project_id: Uuid,
    member_type: MemberType,
    object_id: Uuid,
) -> Result<(), DaoError> {
    let deleted = sql::execute(
        client,
        "DELETE FROM project_members WHERE project_id = $1 AND object_type = $2 AND object_id = $3",
        &[&project_id, &member_type.as_str(), &object_id],
    )
    .await
    .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound {
            entity: "project member",
        });
    }
    Ok(())
}

/// The project's members in the order they were added, one page, with the
/// total. An unknown project has no members (an empty page, not `NotFound`).
pub async fn list_members(
    client: &impl GenericClient,
    project_id: Uuid,
    page: PageRequest,
) -> Result<Page<ProjectMember>, DaoError> {
    let mut conditions = Conditions::new();
    conditions.push("project_id = $?", &project_id);
    // Ties on added_at are broken by the rest of the primary key, which is
    // unique within a project.
    let order = OrderBy {
        columns: &["added_at", "object_type", "object_id"],
        descending: false,
    };
    sql::fetch_page(
        client,
        MEMBER_COLUMNS,
        "project_members",
        &conditions,
        order,
        page,
        member_from_row,
    )
    .await
}

/// Checks that the object a member would name exists and is live (a
/// pipeline not deleted, a table metadata row), and holds it with a
/// `FOR KEY SHARE` lock until the caller's transaction ends: a concurrent
/// delete (whose trigger removes the object's memberships) waits, so a
/// membership added in the same transaction never outlives its object.
/// `NotFound { pipeline | table }` otherwise.
pub async fn lock_live_object(
    client: &impl GenericClient,
    member_type: MemberType,
    object_id: Uuid,
) -> Result<(), DaoError> {
    let (entity, statement) = match member_type {
        MemberType::Pipeline => (
            "pipeline",
            "SELECT 1 FROM pipelines WHERE id = $1 AND deleted_at IS NULL FOR KEY SHARE",
        ),
        MemberType::Table => ("table", "SELECT 1 FROM table_metadata WHERE id = $1 FOR KEY SHARE"),
    };
    sql::query_one(client, entity, statement, &[&object_id]).await?;
    Ok(())
}

/// A member joined to its object: the pipeline or table metadata row it
/// names (at most one of `p`, `t` matches, by `object_type`).
const LIVE_MEMBERS: &str = "project_members m \
     LEFT JOIN pipelines p ON m.object_type = 'pipeline' AND p.id = m.object_id \
     LEFT JOIN table_metadata t ON m.object_type = 'table' AND t.id = m.object_id";

const LIVE_MEMBER_COLUMNS: &str = "m.project_id, m.object_type, m.object_id, m.added_at, \
     COALESCE(p.namespace, t.namespace) AS namespace, COALESCE(p.layer, t.layer) AS layer, \
     COALESCE(p.name, t.name) AS name";

fn listed_member_from_row(row: &Row) -> Result<ListedMember, DaoError> {
    Ok(ListedMember {
        member: member_from_row(row)?,
        namespace: sql::parse_column(row, "namespace")?,
        layer: sql::parse_column(row, "layer")?,
        name: row.try_get("name")?,
    })
}

/// The project's members whose object is live (a pipeline not deleted, an
/// existing table metadata row), with the object's namespace, layer and
/// name, in the order they were added, one page, with the total. With
/// `readable_by` (the share principals naming a caller), only members whose
/// object that caller may read are in the page and the total: the access
/// rule is applied in the query (`readable_condition!`, the condition pipeline
/// lists use), never to a fetched page. An unknown project has no members.
pub async fn list_live_members(
    client: &impl GenericClient,
    project_id: Uuid,
    readable_by: Option<&[String]>,
    page: PageRequest,
) -> Result<Page<ListedMember>, DaoError> {
    let mut conditions = Conditions::new();
    conditions.push("m.project_id = $?", &project_id);
    conditions.push_fixed("((p.id IS NOT NULL AND p.deleted_at IS NULL) OR t.id IS NOT NULL)");
    conditions.push_opt(
        readable_condition!(
            "m.object_type",
            "m.object_id",
            "COALESCE(p.owner, t.owner)",
            "COALESCE(p.namespace, t.namespace)"
        ),
        &readable_by,
    );
    let order = OrderBy {
        columns: &["m.added_at", "m.object_type", "m.object_id"],
        descending: false,
    };
    sql::fetch_page(
        client,
        LIVE_MEMBER_COLUMNS,
        LIVE_MEMBERS,
        &conditions,
        order,
        page,
        listed_member_from_row,
    )
    .await
}
