//! `namespaces`: create, read, update the description, delete (cascading to
//! pipelines, zones and everything below them) and list.

use crate::GenericClient;
use rat_domain::{Namespace, NamespaceName, Page, PageRequest};
use tokio_postgres::Row;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

const COLUMNS: &str = "id, name, description, created_by, created_at";

fn from_row(row: &Row) -> Result<Namespace, DaoError> {
    Ok(Namespace {
        id: row.try_get("id")?,
        name: sql::parse_column(row, "name")?,
        description: row.try_get("description")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Creates a namespace; `Conflict { uq_namespaces_name }` when the name exists.
pub async fn create(
    client: &impl GenericClient,
    name: &NamespaceName,
    description: &str,
    created_by: Option<&str>,
) -> Result<Namespace, DaoError> {
    let row = sql::query_one(
        client,
        "namespace",
        &format!("INSERT INTO namespaces (name, description, created_by) VALUES ($1, $2, $3) RETURNING {COLUMNS}"),
        &[&name.as_str(), &description, &created_by],
    )
    .await?;
    from_row(&row)
}

/// The namespace called `name`.
pub async fn get(client: &impl GenericClient, name: &NamespaceName) -> Result<Namespace, DaoError> {
    let row = sql::query_one(
        client,
        "namespace",
        &format!("SELECT {COLUMNS} FROM namespaces WHERE name = $1"),
        &[&name.as_str()],
    )
    .await?;
    from_row(&row)
}

/// The namespace with id `id`.
pub async fn get_by_id(client: &impl GenericClient, id: uuid::Uuid) -> Result<Namespace, DaoError> {
    let row = sql::query_one(
        client,
        "namespace",
        &format!("SELECT {COLUMNS} FROM namespaces WHERE id = $1"),
        &[&id],
    )
    .await?;
    from_row(&row)
}

/// Whether a namespace called `name` exists.
pub async fn exists(client: &impl GenericClient, name: &NamespaceName) -> Result<bool, DaoError> {
    let row = sql::query_one(
        client,
        "namespace",
        "SELECT EXISTS (SELECT 1 FROM namespaces WHERE name = $1)",
        &[&name.as_str()],
    )
    .await?;
    Ok(row.try_get(0)?)
}

/// Replaces the description; `NotFound` for an unknown namespace.
pub async fn update_description(
    client: &impl GenericClient,
    name: &NamespaceName,
    description: &str,
) -> Result<Namespace, DaoError> {
    let row = sql::query_one(
        client,
        "namespace",
        &format!("UPDATE namespaces SET description = $2 WHERE name = $1 RETURNING {COLUMNS}"),
        &[&name.as_str(), &description],
    )
    .await?;
    from_row(&row)
}

/// Deletes a namespace and, through the foreign keys, its pipelines (with
/// their runs, schedules, triggers, versions and quality tests and results)
/// and landing zones (with their files). `NotFound` for an unknown namespace.
/// Refusing to delete `default` is a business rule of the service layer.
pub async fn delete(client: &impl GenericClient, name: &NamespaceName) -> Result<(), DaoError> {
    let deleted = sql::execute(client, "DELETE FROM namespaces WHERE name = $1", &[&name.as_str()])
        .await
        .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound { entity: "namespace" });
    }
    Ok(())
}

/// Namespaces ordered by creation time (oldest first), with the total count.
/// `readable_by`: only namespaces these share principals (the user first,
/// then `role:NAME`s) may read (`readable_condition!`; the owner column is
/// `created_by`); `None` = all.
pub async fn list(
    client: &impl GenericClient,
    readable_by: Option<&Vec<String>>,
    page: PageRequest,
) -> Result<Page<Namespace>, DaoError> {
    let order = OrderBy {
        columns: &["created_at", "name"],
        descending: false,
    };
    let mut conditions = Conditions::new();
    conditions.push_opt(
        readable_condition!(
            "'namespace'",
            "namespaces.id",
            "namespaces.created_by",
            "namespaces.name"
        ),
        &readable_by,
    );
    sql::fetch_page(client, COLUMNS, "namespaces", &conditions, order, page, from_row).await
}
