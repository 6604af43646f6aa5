//! Ownership and its transfer, shares, and the access rule applied to an
//! object ([`permission_on`], [`require`]): every access decision about a
//! pipeline, a table's metadata, a landing zone or a namespace is made here.
//!
//! The `ownership` row is the authority on who owns an object; the object's
//! own `owner` column (pipelines, table metadata, landing zones) is kept
//! equal to it by every transfer, in the same transaction.

use rat_dao::access::{AccessGeneration, Grants, GrantsQuestion};
use rat_dao::pipelines::{self, PipelineUpdate};
use rat_dao::{access, landing, tables};
use rat_domain::{AccessLevel, ObjectType, Ownership, Page, PageRequest, Permission, Principal, Share};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::identity::Caller;
use crate::{ServiceError, Services};

/// Makes `new_owner` the owner of `target` on behalf of `caller`, who must
/// own it or be an admin ([`require`] with [`Permission::Own`]): the
/// `ownership` row is written, and the caller then writes the object's own
/// owner column in the same transaction, so the two never drift. Nothing
/// happens when `new_owner` already owns it. Every change of an owner goes
/// through here: a transfer, and a `PUT` that sets `owner`.
pub(crate) async fn change_owner(
    client: &impl rat_dao::GenericClient,
    caller: &Caller,
    target: &Target,
    new_owner: &str,
) -> Result<Ownership, ServiceError> {
    // Concurrent changes of the owner queue here; each then checks against
    // the owner the one before it left.
    access::lock_object(client, target.object_type, target.object_id).await?;
    require(client, caller, target, Permission::Own, "transferring").await?;
    Ok(access::set_owner(client, target.object_type, target.object_id, new_owner).await?)
}

/// Transfers the object `object_type`/`object_id` to `to` on behalf of
/// `caller` (its owner, or an admin), and sets the object's own owner column
/// to `to`, all in one transaction. `NotFound` for an unknown (or deleted)
/// object or one the caller may not read, `Forbidden` for one they may read
/// but do not own, `InvalidInput` for a bad `to`. A namespace keeps its
/// `created_by` (who made it); its ownership row says who owns it.
#[tracing::instrument(skip(services, caller))]
pub async fn transfer(
    services: &Services,
    caller: &Caller,
    object_type: ObjectType,
    object_id: Uuid,
    to: &str,
) -> Result<Ownership, ServiceError> {
    rat_domain::parse_principal("to_user_id", to)?;
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let target = target(&transaction, object_type, object_id).await?;
    let ownership = change_owner(&transaction, caller, &target, to).await?;
    match object_type {
        ObjectType::Pipeline => {
            let pipeline = pipelines::get(&transaction, object_id.into()).await?;
            let changes = PipelineUpdate {
                owner: Some(to.to_owned()),
                ..PipelineUpdate::default()
            };
            pipelines::update(&transaction, &pipeline.address, &changes).await?;
        }
        ObjectType::Table => {
            let table = tables::get_by_id(&transaction, object_id).await?;
            tables::upsert(
                &transaction,
                &table.namespace,
                table.layer,
                &table.name,
                None,
                Some(to),
                None,
            )
            .await?;
        }
        ObjectType::LandingZone => {
            let zone = landing::get_by_id(&transaction, object_id).await?;
            let changes = landing::ZoneUpdate {
                owner: Some(to.to_owned()),
                ..landing::ZoneUpdate::default()
            };
            landing::update(&transaction, &zone.namespace, &zone.name, &changes).await?;
        }
        ObjectType::Namespace => {}
    }
    transaction.commit().await?;
    Ok(ownership)
}

/// An object the access rule is applied to: its kind and id, the namespace
/// holding it (whose shares apply to it too), and its own `owner` column
/// (who owns it when no ownership row was recorded).
#[derive(Debug, Clone)]
pub struct Target {
    /// Kind of object.
    pub object_type: ObjectType,
    /// Its id.
    pub object_id: Uuid,
    /// The namespace holding it; `None` for a namespace.
    pub namespace: Option<String>,
    /// The object's `owner` column, when it has one.
    pub column_owner: Option<String>,
    /// What [`ServiceError::NotFound`] names for it.
    pub entity: &'static str,
}

impl Target {
    /// A pipeline as the rule sees it.
    pub fn of_pipeline(pipeline: &rat_domain::Pipeline) -> Target {
        Target {
            object_type: ObjectType::Pipeline,
            object_id: pipeline.id.into(),
            namespace: Some(pipeline.address.namespace.as_str().to_owned()),
            column_owner: pipeline.owner.clone(),
            entity: "pipeline",
        }
    }

    /// A namespace as the rule sees it: its creator owns it when no
    /// ownership row says otherwise (the seeded `default` has none).
    pub fn of_namespace(namespace: &rat_domain::Namespace) -> Target {
        Target {
            object_type: ObjectType::Namespace,
            object_id: namespace.id,
            namespace: None,
            column_owner: namespace.created_by.clone(),
            entity: "namespace",
        }
    }

    /// A table's metadata as the rule sees it.
    pub fn of_table(table: &rat_domain::TableMetadata) -> Target {
        Target {
            object_type: ObjectType::Table,
            object_id: table.id,
            namespace: Some(table.namespace.as_str().to_owned()),
            column_owner: table.owner.clone(),
            entity: "table",
        }
    }

    /// A landing zone as the rule sees it.
    pub fn of_zone(zone: &rat_domain::LandingZone) -> Target {
        Target {
            object_type: ObjectType::LandingZone,
            object_id: zone.id.into(),
            namespace: Some(zone.namespace.as_str().to_owned()),
            column_owner: zone.owner.clone(),
            entity: "landing zone",
        }
    }
}

/// The share principals naming `caller` (the user, then `role:NAME`s), as
/// lists filtered in SQL take them.
pub fn share_names(caller: &Caller) -> Vec<String> {
    principal(caller).share_names()
}

/// The live object `object_type`/`object_id`; `NotFound` when it does not
/// exist or is deleted.
pub async fn target(
    client: &impl rat_dao::GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
) -> Result<Target, ServiceError> {
    Ok(match object_type {
        ObjectType::Pipeline => {
            let pipeline = pipelines::get(client, object_id.into()).await?;
            if pipeline.deleted_at.is_some() {
                return Err(ServiceError::NotFound { entity: "pipeline" });
            }
            Target::of_pipeline(&pipeline)
        }
        ObjectType::Table => Target::of_table(&tables::get_by_id(client, object_id).await?),
        ObjectType::Namespace => {
            let namespace = rat_dao::namespaces::get_by_id(client, object_id).await?;
            Target::of_namespace(&namespace)
        }
        ObjectType::LandingZone => Target::of_zone(&landing::get_by_id(client, object_id).await?),
    })
}

/// What `caller` may do with `target` ([`rat_domain::permission`], the rule
/// stated once). Admins (Community mode's user and the operator's key
/// included) need no query.
pub async fn permission_on(
    client: &impl rat_dao::GenericClient,
    caller: &Caller,
    target: &Target,
) -> Result<Permission, ServiceError> {
    if caller.admin {
        return Ok(Permission::Own);
    }
    let question = question(caller, target);
    let grants = access::grants(
        client,
        question.object_type,
        question.object_id,
        question.namespace.as_deref(),
        &question.principals,
    )
    .await?;
    Ok(decide(caller, target, grants))
}

/// What the rule needs to read about `target` for `caller`.
fn question(caller: &Caller, target: &Target) -> GrantsQuestion {
    GrantsQuestion {
        object_type: target.object_type,
        object_id: target.object_id,
        namespace: target.namespace.clone(),
        principals: share_names(caller),
    }
}

/// The rule applied to what was read of `target`: its owner (the ownership
/// row, else its owner column), the owner of its namespace, and the shares
/// naming `caller`.
fn decide(caller: &Caller, target: &Target, grants: Grants) -> Permission {
    let owner = grants.owner.or_else(|| target.column_owner.clone());
    rat_domain::permission(
        &principal(caller),
        owner.as_deref(),
        grants.namespace_owner.as_deref(),
        &grants.shares,
    )
}

/// `caller` as the access rule ([`rat_domain::permission`]) sees them.
pub(crate) fn principal(caller: &Caller) -> Principal<'_> {
    Principal {
        user: &caller.user,
        roles: &caller.roles,
        admin: caller.admin,
    }
}

/// Requires `needed` of `caller` on `target`: an object they may not read is
/// `NotFound` (as if it did not exist), one they may read but not `needed`
/// is `Forbidden` saying what is missing.
pub async fn require(
    client: &impl rat_dao::GenericClient,
    caller: &Caller,
    target: &Target,
    needed: Permission,
    doing: &str,
) -> Result<(), ServiceError> {
    let has = permission_on(client, caller, target).await?;
    enough(has, needed, target, doing)
}

/// [`require`] outside any transaction for a `target` read at access
/// `generation` (in the same statement as the target): the answer kept from
/// an earlier check at that generation ([`crate::access_cache`]), else a read
/// shared with the concurrent checks of other requests (one query for a
/// batch of them, each read still seeing every write committed before it was
/// made: [`crate::coalesce`]). For the hot reads; admins need no query.
pub(crate) async fn require_coalesced(
    services: &Services,
    caller: &Caller,
    target: &Target,
    generation: AccessGeneration,
    needed: Permission,
    doing: &str,
) -> Result<(), ServiceError> {
    if caller.admin {
        return Ok(());
    }
    let question = question(caller, target);
    let grants = match services.grants_cache.get(&question, generation) {
        Some(grants) => grants,
        None => match services.access_reads.get(question.clone()).await? {
            Some((grants, read_at)) => {
                services.grants_cache.put(question, grants.clone(), read_at);
                grants
            }
            None => Grants::default(),
        },
    };
    enough(decide(caller, target, grants), needed, target, doing)
}

/// `NotFound` when `has` does not allow reading, `Forbidden` when it does
/// not reach `needed`.
fn enough(has: Permission, needed: Permission, target: &Target, doing: &str) -> Result<(), ServiceError> {
    if has == Permission::None {
        return Err(ServiceError::NotFound { entity: target.entity });
    }
    if has < needed {
        return Err(ServiceError::Forbidden {
            message: format!(
                "{doing} the {} needs {needed:?} access; you have {has:?}",
                target.entity
            )
            .to_lowercase(),
        });
    }
    Ok(())
}

/// Grants `level` on the object to `shared_with` (a user or `role:NAME`) on
/// behalf of `caller`, who must own it (or be an admin). Granting again
/// replaces the level.
pub async fn share(
    services: &Services,
    caller: &Caller,
    object_type: ObjectType,
    object_id: Uuid,
    shared_with: &str,
    level: AccessLevel,
    now: OffsetDateTime,
) -> Result<Share, ServiceError> {
    let shared_with = rat_domain::parse_principal("shared_with", shared_with.trim())?;
    let client = services.pool.get().await?;
    let target = target(&client, object_type, object_id).await?;
    require(&client, caller, &target, Permission::Own, "sharing").await?;
    Ok(access::grant(&client, object_type, object_id, &shared_with, level, &caller.user, now).await?)
}

/// The shares of an object, for its owner (or an admin).
pub async fn list_shares(
    services: &Services,
    caller: &Caller,
    object_type: ObjectType,
    object_id: Uuid,
    page: PageRequest,
) -> Result<Page<Share>, ServiceError> {
    let client = services.pool.get().await?;
    let target = target(&client, object_type, object_id).await?;
    require(&client, caller, &target, Permission::Own, "listing the shares of").await?;
    Ok(access::list_for_object(&client, object_type, object_id, page).await?)
}

/// Removes the share `id`, for the shared object's owner (or an admin).
/// `NotFound` for an unknown share, or one on an object the caller may not read.
pub async fn unshare(services: &Services, caller: &Caller, id: Uuid) -> Result<Share, ServiceError> {
    let client = services.pool.get().await?;
    let share = access::get_share(&client, id).await?;
    let target = target(&client, share.object_type, share.object_id).await?;
    match require(&client, caller, &target, Permission::Own, "removing a share of").await {
        Err(ServiceError::NotFound { .. }) => return Err(ServiceError::NotFound { entity: "share" }),
        other => other?,
    }
    access::delete_share(&client, id).await?;
    Ok(share)
}
