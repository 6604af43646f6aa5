//! Ownership and its transfer, shares, and the access rule applied to an
//! object ([`permission_on`], [`require`]): every access decision about a
//! pipeline, a table's metadata or a namespace is made here.
//!
//! The `ownership` row is the authority on who owns an object; the object's
//! own `owner` column (pipelines, table metadata) is kept equal to it by
//! every transfer, in the same transaction.

use rat_dao::pipelines::{self, PipelineUpdate};
use rat_dao::{DaoError, access, tables};
use rat_domain::{AccessLevel, ObjectType, Ownership, Page, PageRequest, Permission, Principal, Share};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::identity::Caller;
use crate::{ServiceError, Services};

fn not_transferable() -> ServiceError {
    ServiceError::invalid("resource_type must be pipeline or table: namespace ownership cannot be transferred")
}

fn not_owner() -> ServiceError {
    ServiceError::Forbidden {
        message: "only the owner can transfer ownership".to_owned(),
    }
}

/// Moves the ownership row from `from` to `to`: `Forbidden` unless `from`
/// owns the object. An object without an ownership row (created before
/// ownership was recorded) is transferable by the identity its `owner`
/// column names, which then gets the row. Every change of an owner goes
/// through here: a transfer, and a `PUT` that sets `owner`.
async fn move_ownership(
    client: &impl rat_dao::GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
    column_owner: Option<&str>,
    from: &str,
    to: &str,
) -> Result<Ownership, ServiceError> {
    match access::transfer(client, object_type, object_id, from, to).await {
        Ok(ownership) => Ok(ownership),
        Err(DaoError::Conflict { constraint }) if constraint == access::NOT_OWNER => Err(not_owner()),
        Err(DaoError::NotFound { .. }) if column_owner == Some(from) => {
            Ok(access::set_owner(client, object_type, object_id, to).await?)
        }
        Err(DaoError::NotFound { .. }) => Err(not_owner()),
        Err(e) => Err(e.into()),
    }
}

/// Makes `new_owner` the owner of an object whose owner column says
/// `current`, on behalf of `actor`: nothing when it already is, else a
/// transfer ([`move_ownership`]: `Forbidden` unless `actor` owns it). The
/// caller then writes the column, in the same transaction.
pub(crate) async fn change_owner(
    client: &impl rat_dao::GenericClient,
    object_type: ObjectType,
    object_id: Uuid,
    current: Option<&str>,
    actor: &str,
    new_owner: &str,
) -> Result<(), ServiceError> {
    if current != Some(new_owner) {
        move_ownership(client, object_type, object_id, current, actor, new_owner).await?;
    }
    Ok(())
}

/// Transfers the object `object_type`/`object_id` from `from` (the caller) to
/// `to`, and sets the object's `owner` column to `to`, all in one
/// transaction. `Forbidden` unless `from` owns it, `NotFound` for an unknown
/// (or deleted) object, `InvalidInput` for a bad `to` or an object type
/// whose ownership cannot be transferred (namespaces have no owner column
/// here; ratd transfers pipelines only).
#[tracing::instrument(skip(services))]
pub async fn transfer(
    services: &Services,
    object_type: ObjectType,
    object_id: Uuid,
    from: &str,
    to: &str,
) -> Result<Ownership, ServiceError> {
    rat_domain::parse_principal("to_user_id", to)?;
    if object_type == ObjectType::Namespace {
        return Err(not_transferable());
    }
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let ownership = match object_type {
        ObjectType::Pipeline => {
            let pipeline = pipelines::get(&transaction, object_id.into()).await?;
            if pipeline.deleted_at.is_some() {
                return Err(ServiceError::NotFound { entity: "pipeline" });
            }
            let ownership = move_ownership(
                &transaction,
                object_type,
                object_id,
                pipeline.owner.as_deref(),
                from,
                to,
            )
            .await?;
            let changes = PipelineUpdate {
                owner: Some(to.to_owned()),
                ..PipelineUpdate::default()
            };
            pipelines::update(&transaction, &pipeline.address, &changes).await?;
            ownership
        }
        ObjectType::Table => {
            let table = tables::get_by_id(&transaction, object_id).await?;
            let ownership =
                move_ownership(&transaction, object_type, object_id, table.owner.as_deref(), from, to).await?;
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
            ownership
        }
        ObjectType::Namespace => return Err(not_transferable()),
    };
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
        ObjectType::Table => {
            let table = tables::get_by_id(client, object_id).await?;
            Target {
                object_type,
                object_id,
                namespace: Some(table.namespace.as_str().to_owned()),
                column_owner: table.owner,
                entity: "table",
            }
        }
        ObjectType::Namespace => {
            rat_dao::namespaces::get_by_id(client, object_id).await?;
            Target {
                object_type,
                object_id,
                namespace: None,
                column_owner: None,
                entity: "namespace",
            }
        }
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
    let principal = principal(caller);
    let (owner, shares) = access::grants(
        client,
        target.object_type,
        target.object_id,
        target.namespace.as_deref(),
        &principal.share_names(),
    )
    .await?;
    let owner = owner.or_else(|| target.column_owner.clone());
    Ok(rat_domain::permission(&principal, owner.as_deref(), &shares))
}

fn principal(caller: &Caller) -> Principal<'_> {
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
