//! Ownership and its transfer.
//!
//! The `ownership` row is the authority on who owns an object; the object's
//! own `owner` column (pipelines, table metadata) is kept equal to it by
//! every transfer, in the same transaction.

use rat_dao::pipelines::{self, PipelineUpdate};
use rat_dao::{DaoError, access, tables};
use rat_domain::{ObjectType, Ownership};
use uuid::Uuid;

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
