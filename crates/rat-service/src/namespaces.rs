//! Namespaces: listing, creating, describing and deleting (never `default`).

use rat_dao::namespaces;
use rat_domain::{Namespace, NamespaceName, Page, PageRequest};

use crate::{ServiceError, Services};

/// Namespaces by creation time, one page, with the total.
pub async fn list(services: &Services, page: PageRequest) -> Result<Page<Namespace>, ServiceError> {
    let client = services.pool.get().await?;
    Ok(namespaces::list(&client, page).await?)
}

/// Creates a namespace; `AlreadyExists` for a taken name.
pub async fn create(
    services: &Services,
    name: &NamespaceName,
    description: &str,
    created_by: Option<&str>,
) -> Result<Namespace, ServiceError> {
    let client = services.pool.get().await?;
    Ok(namespaces::create(&client, name, description, created_by).await?)
}

/// Replaces a namespace's description; `NotFound` for an unknown namespace.
pub async fn update_description(
    services: &Services,
    name: &NamespaceName,
    description: &str,
) -> Result<Namespace, ServiceError> {
    let client = services.pool.get().await?;
    Ok(namespaces::update_description(&client, name, description).await?)
}

/// Deletes a namespace and everything below it (pipelines with their runs,
/// schedules, triggers, versions and quality data; zones with their files).
/// `Forbidden` for `default`, `NotFound` for an unknown namespace.
///
/// The namespace's objects in the file store are not removed here (they may
/// be many; the request must stay short): they are unreachable through the
/// API once the rows are gone.
pub async fn delete(services: &Services, name: &NamespaceName) -> Result<(), ServiceError> {
    if name.is_default() {
        return Err(ServiceError::Forbidden {
            message: "the default namespace cannot be deleted".to_owned(),
        });
    }
    let client = services.pool.get().await?;
    Ok(namespaces::delete(&client, name).await?)
}
