//! `GET /api/v1/me`: who the caller is, as the platform sees them; and
//! `/me/tokens`: their personal access tokens (multi-user mode).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, path_id};
use crate::middleware::AuditObject;
use crate::state::AppState;
pub use rat_wire::me::{CreateToken, CreatedToken, Me, TokenDto, TokenList};

/// The calling user.
#[utoipa::path(get, path = "/me", tag = "platform", responses(
    (status = 200, body = Me), (status = 401, body = ErrorEnvelope)))]
pub async fn me(identity: Identity) -> ApiResult<Json<Me>> {
    let caller = identity.caller;
    Ok(Json(Me {
        display_name: caller.display_name.unwrap_or_else(|| caller.user.clone()),
        user_id: caller.user,
        email: caller.email,
        roles: caller.roles,
        is_admin: caller.admin,
    }))
}

/// Makes a personal access token for the signed-in caller (multi-user mode).
#[utoipa::path(post, path = "/me/tokens", tag = "platform", request_body = CreateToken, responses(
    (status = 201, body = CreatedToken), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create_token(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Extension<AuditObject>, Json<CreatedToken>)> {
    let (stored, token) = state
        .auth
        .create_token(
            &identity.caller,
            &body.name,
            body.expires_in_days,
            OffsetDateTime::now_utc(),
        )
        .await?;
    let audit = AuditObject::new("token.create", "personal_access_token", Some(stored.id));
    Ok((
        StatusCode::CREATED,
        Extension(audit),
        Json(CreatedToken {
            token,
            stored: stored.into(),
        }),
    ))
}

/// The caller's personal access tokens, newest first (revoked ones included).
#[utoipa::path(get, path = "/me/tokens", tag = "platform", params(PageParams), responses(
    (status = 200, body = TokenList), (status = 401, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<TokenList>> {
    let page = state.auth.list_tokens(&identity.caller, page.page()?).await?;
    Ok(Json(TokenList {
        tokens: page.items.into_iter().map(TokenDto::from).collect(),
        total: page.total,
    }))
}

/// Revokes one of the caller's tokens; it stops working at once.
#[utoipa::path(delete, path = "/me/tokens/{id}", tag = "platform", params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 409, body = ErrorEnvelope)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Extension<AuditObject>)> {
    let id: Uuid = path_id(&id, "personal access token")?;
    state
        .auth
        .revoke_token(&identity.caller, id, OffsetDateTime::now_utc())
        .await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditObject::new("token.revoke", "personal_access_token", Some(id))),
    ))
}
