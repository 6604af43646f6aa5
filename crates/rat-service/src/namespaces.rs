//! Namespaces: listing, creating, describing and deleting (never `default`).

use rat_dao::namespaces;
use rat_domain::text::{MAX_DESCRIPTION_CHARS, check_text_len};
use rat_domain::{Namespace, NamespaceName, Page, PageRequest};
use rat_versioning::KeyPrefix;

use crate::files::delete_all_under;
use crate::{ServiceError, Services};

/// Namespaces by creation time, one page, with the total.
pub async fn list(services: &Services, page: PageRequest) -> Result<Page<Namespace>, ServiceError> {
    let client = services.pool.get().await?;
    Ok(namespaces::list(&client, page).await?)
}

/// Creates a namespace; `AlreadyExists` for a taken name. Objects left
/// under `{name}/` by an earlier namespace of the same name (one deleted
/// before deletes removed them) are deleted before the row commits, so the
/// new namespace starts empty.
pub async fn create(
    services: &Services,
    name: &NamespaceName,
    description: &str,
    created_by: Option<&str>,
) -> Result<Namespace, ServiceError> {
    check_text_len("description", description, MAX_DESCRIPTION_CHARS)?;
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    // The insert takes the name: a concurrent create waits, then fails.
    let namespace = namespaces::create(&transaction, name, description, created_by).await?;
    let leftovers = delete_all_under(&services.store, &prefix_of(name)?).await?;
    if leftovers > 0 {
        tracing::info!(leftovers, namespace = %name, "deleted objects left by an earlier namespace of the same name");
    }
    transaction.commit().await?;
    Ok(namespace)
}

/// The store prefix of everything in a namespace: `{name}/`.
fn prefix_of(name: &NamespaceName) -> Result<KeyPrefix, ServiceError> {
    Ok(KeyPrefix::parse(&format!("{name}/"))?)
}

/// Replaces a namespace's description; `NotFound` for an unknown namespace.
pub async fn update_description(
    services: &Services,
    name: &NamespaceName,
    description: &str,
) -> Result<Namespace, ServiceError> {
    check_text_len("description", description, MAX_DESCRIPTION_CHARS)?;
    let client = services.pool.get().await?;
    Ok(namespaces::update_description(&client, name, description).await?)
}

/// Deletes a namespace and everything below it: pipelines with their runs,
/// schedules, triggers, versions and quality data; zones with their files;
/// the metadata of its tables; the ownership and shares of all of these;
/// and every object under `{name}/` in the store (delete markers: pinned
/// versions stay readable until retention purges them), so whoever creates
/// the name again finds nothing of it. The objects are deleted while the
/// rows' deletion is still uncommitted: a store failure rolls the rows back
/// and the delete can be retried, so a successful answer never leaves
/// objects behind. `Forbidden` for `default`, `NotFound` for an unknown
/// namespace.
#[tracing::instrument(skip(services))]
pub async fn delete(services: &Services, name: &NamespaceName) -> Result<(), ServiceError> {
    if name.is_default() {
        return Err(ServiceError::Forbidden {
            message: "the default namespace cannot be deleted".to_owned(),
        });
    }
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    namespaces::delete(&transaction, name).await?;
    let tables = rat_dao::tables::delete_namespace(&transaction, name).await?;
    let objects = delete_all_under(&services.store, &prefix_of(name)?).await?;
    transaction.commit().await?;
    tracing::info!(tables, objects, "namespace deleted");
    Ok(())
}
