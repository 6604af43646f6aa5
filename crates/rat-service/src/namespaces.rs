//! Namespaces: listing, creating, describing and deleting (never `default`).
//!
//! Whoever creates a namespace owns it; creating needs no grant. Changing
//! its description needs write on it, deleting it (and everything in it)
//! ownership.

use rat_dao::{access, namespaces};
use rat_domain::text::{MAX_DESCRIPTION_CHARS, check_text_len};
use rat_domain::{Namespace, NamespaceName, ObjectType, Page, PageRequest, Permission};
use rat_versioning::KeyPrefix;

use crate::files::delete_all_under;
use crate::identity::Caller;
use crate::sharing::{self, Target};
use crate::{ServiceError, Services};

/// Namespaces `caller` may read by creation time, one page, with the total
/// (filtered in SQL).
pub async fn list(services: &Services, caller: &Caller, page: PageRequest) -> Result<Page<Namespace>, ServiceError> {
    let client = services.pool.get().await?;
    let readable = (!caller.admin).then(|| sharing::share_names(caller));
    Ok(namespaces::list(&client, readable.as_ref(), page).await?)
}

/// Requires `needed` of `caller` on the namespace `name` ([`sharing::require`]:
/// `NotFound` when they may not read it, or it does not exist; `Forbidden`
/// when they may read but not `needed`). Admins pass without a query.
/// Creating anything in a namespace checks write here.
pub(crate) async fn require_on(
    client: &impl rat_dao::GenericClient,
    caller: &Caller,
    name: &NamespaceName,
    needed: Permission,
    doing: &str,
) -> Result<(), ServiceError> {
    if caller.admin {
        return Ok(());
    }
    let namespace = namespaces::get(client, name).await?;
    sharing::require(client, caller, &Target::of_namespace(&namespace), needed, doing).await
}

/// Creates a namespace; `AlreadyExists` for a taken name. Objects left
/// under `{name}/` by an earlier namespace of the same name (one deleted
/// before deletes removed them) are deleted before the row commits, so the
/// new namespace starts empty.
///
/// `caller` becomes its creator and owner (the ownership row is written in
/// the same transaction).
pub async fn create(
    services: &Services,
    caller: &Caller,
    name: &NamespaceName,
    description: &str,
) -> Result<Namespace, ServiceError> {
    check_text_len("description", description, MAX_DESCRIPTION_CHARS)?;
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    // The insert takes the name: a concurrent create waits, then fails.
    let namespace = namespaces::create(&transaction, name, description, Some(&caller.user)).await?;
    access::set_owner(&transaction, ObjectType::Namespace, namespace.id, &caller.user).await?;
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

/// Replaces a namespace's description (write on it needed); `NotFound` for
/// an unknown namespace.
pub async fn update_description(
    services: &Services,
    caller: &Caller,
    name: &NamespaceName,
    description: &str,
) -> Result<Namespace, ServiceError> {
    check_text_len("description", description, MAX_DESCRIPTION_CHARS)?;
    let client = services.pool.get().await?;
    require_on(&client, caller, name, Permission::Write, "changing").await?;
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
/// objects behind. Ownership of the namespace needed; `Forbidden` for
/// `default`, `NotFound` for an unknown namespace.
#[tracing::instrument(skip(services, caller))]
pub async fn delete(services: &Services, caller: &Caller, name: &NamespaceName) -> Result<(), ServiceError> {
    if name.is_default() {
        return Err(ServiceError::Forbidden {
            message: "the default namespace cannot be deleted".to_owned(),
        });
    }
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    require_on(&transaction, caller, name, Permission::Own, "deleting").await?;
    namespaces::delete(&transaction, name).await?;
    let tables = rat_dao::tables::delete_namespace(&transaction, name).await?;
    let objects = delete_all_under(&services.store, &prefix_of(name)?).await?;
    transaction.commit().await?;
    tracing::info!(tables, objects, "namespace deleted");
    Ok(())
}
