//! `/api/v1`: Ownership transfer (contract §12).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::ObjectType;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, Identity};
use crate::middleware::AuditObject;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(transfer))
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
        object_type,
        object_id,
        &identity.actor,
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
