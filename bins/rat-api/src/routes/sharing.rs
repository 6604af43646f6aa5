//! `/api/v1`: ownership transfer (contract §12) and shares.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::ObjectType;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, path_id};
use crate::middleware::AuditObject;
use crate::state::AppState;
pub use rat_wire::sharing::{ShareDto, ShareList, ShareQuery, ShareRequest, TransferRequest, Transferred};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(transfer))
        .routes(routes!(create_share, list_shares))
        .routes(routes!(delete_share))
}

/// Hands a pipeline (or table) to another user; only its current owner may.
#[utoipa::path(post, path = "/sharing/transfer", tag = "sharing", request_body = TransferRequest, responses(
    (status = 200, body = Transferred), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn transfer(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<TransferRequest>,
) -> ApiResult<impl IntoResponse> {
    let object_type: ObjectType = body.resource_type.parse()?;
    let object_id = Uuid::parse_str(&body.resource_id)
        .map_err(|_| ApiError::invalid(format!("invalid resource_id {:?}: must be a UUID", body.resource_id)))?;
    let ownership = rat_service::sharing::transfer(
        &state.services,
        &identity.caller,
        object_type,
        object_id,
        &body.to_user_id,
    )
    .await?;
    Ok((
        Extension(AuditObject::new(
            "ownership.transfer",
            object_type.as_str(),
            Some(object_id),
        )),
        Json(Transferred {
            transferred: true,
            resource_id: ownership.object_id,
            new_owner: ownership.owner,
        }),
    ))
}

fn object(object_type: Option<&str>, object_id: Option<&str>) -> Result<(ObjectType, Uuid), ApiError> {
    let object_type: ObjectType = object_type
        .ok_or_else(|| ApiError::invalid("object_type is required"))?
        .parse()?;
    let object_id = object_id.ok_or_else(|| ApiError::invalid("object_id is required"))?;
    let object_id = Uuid::parse_str(object_id)
        .map_err(|_| ApiError::invalid(format!("invalid object_id {object_id:?}: must be a UUID")))?;
    Ok((object_type, object_id))
}

/// Grants `read` or `write` on an object to a user or a role; only its owner
/// (or an admin) may. Granting again replaces the level.
#[utoipa::path(post, path = "/sharing", tag = "sharing", request_body = ShareRequest, responses(
    (status = 201, body = ShareDto), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn create_share(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<ShareRequest>,
) -> ApiResult<impl IntoResponse> {
    let (object_type, object_id) = object(Some(&body.object_type), Some(&body.object_id))?;
    let level: rat_domain::AccessLevel = body.access_level.parse()?;
    let share = rat_service::sharing::share(
        &state.services,
        &identity.caller,
        object_type,
        object_id,
        &body.shared_with,
        level,
        time::OffsetDateTime::now_utc(),
    )
    .await?;
    let audit = AuditObject::new("share.create", object_type.as_str(), Some(object_id));
    Ok((StatusCode::CREATED, Extension(audit), Json(ShareDto::from(share))))
}

/// An object's shares; only its owner (or an admin) may list them.
#[utoipa::path(get, path = "/sharing", tag = "sharing", params(ShareQuery), responses(
    (status = 200, body = ShareList), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn list_shares(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(query): ApiQuery<ShareQuery>,
) -> ApiResult<Json<ShareList>> {
    let (object_type, object_id) = object(query.object_type.as_deref(), query.object_id.as_deref())?;
    let page = PageParams {
        limit: query.limit,
        offset: query.offset,
    }
    .page()?;
    let page =
        rat_service::sharing::list_shares(&state.services, &identity.caller, object_type, object_id, page).await?;
    Ok(Json(ShareList {
        shares: page.items.into_iter().map(ShareDto::from).collect(),
        total: page.total,
    }))
}

/// Removes a share; only the shared object's owner (or an admin) may.
#[utoipa::path(delete, path = "/sharing/{id}", tag = "sharing", params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_share(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id: Uuid = path_id(&id, "share")?;
    let share = rat_service::sharing::unshare(&state.services, &identity.caller, id).await?;
    let audit = AuditObject::new("share.delete", share.object_type.as_str(), Some(share.object_id));
    Ok((StatusCode::NO_CONTENT, Extension(audit)))
}
