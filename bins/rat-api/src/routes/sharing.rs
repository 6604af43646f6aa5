//! `/api/v1`: ownership transfer (contract §12) and shares.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::ObjectType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, path_id};
use crate::middleware::AuditObject;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(transfer))
        .routes(routes!(create_share, list_shares))
        .routes(routes!(delete_share))
}

/// Body of `POST /sharing/transfer`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// `pipeline` (as in ratd) or `table` (a table metadata row).
    pub resource_type: String,
    /// The pipeline's or table metadata row's id.
    pub resource_id: String,
    /// The new owner. ratd's SDK sends it as `new_owner`, which is accepted too.
    #[serde(alias = "new_owner")]
    pub to_user_id: String,
}

/// Answer of a transfer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Transferred {
    /// Always `true`.
    pub transferred: bool,
    /// The object's id.
    pub resource_id: Uuid,
    /// Its owner now.
    pub new_owner: String,
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

/// Body of `POST /sharing`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// `pipeline`, `table` or `namespace` (a share on a namespace covers what is in it).
    pub object_type: String,
    /// The object's id.
    pub object_id: String,
    /// A user, or `role:NAME` for everyone with that role.
    pub shared_with: String,
    /// `read` or `write`.
    pub access_level: String,
}

/// A grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareDto {
    /// Its id (to remove it).
    pub id: Uuid,
    /// The shared object's kind.
    pub object_type: String,
    /// The shared object's id.
    pub object_id: Uuid,
    /// A user, or `role:NAME`.
    pub shared_with: String,
    /// `read` or `write`.
    pub access_level: String,
    /// Who granted it.
    pub granted_by: String,
    /// When.
    #[serde(with = "crate::routes::rfc3339")]
    pub granted_at: time::OffsetDateTime,
}

impl From<rat_domain::Share> for ShareDto {
    fn from(share: rat_domain::Share) -> Self {
        ShareDto {
            id: share.id,
            object_type: share.object_type.as_str().to_owned(),
            object_id: share.object_id,
            shared_with: share.shared_with,
            access_level: share.access_level.as_str().to_owned(),
            granted_by: share.granted_by,
            granted_at: share.granted_at,
        }
    }
}

/// `GET /sharing` filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShareQuery {
    /// `pipeline`, `table` or `namespace`.
    pub object_type: Option<String>,
    /// The object's id.
    pub object_id: Option<String>,
    /// Rows per page (default 50, at most 200).
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
}

/// One page of an object's shares.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareList {
    /// By principal.
    pub shares: Vec<ShareDto>,
    /// All the object's shares.
    pub total: i64,
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
