//! `GET /api/v1/me`: who the caller is, as the platform sees them; and
//! `/me/tokens`: their personal access tokens (multi-user mode).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use rat_domain::PersonalToken;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, path_id};
use crate::middleware::AuditObject;
use crate::state::AppState;

/// The caller (ratd's shape, plus whether they are an admin).
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The user name: the audit log's actor and the owner of what they create.
    pub user_id: String,
    /// The identity provider's `email` claim, when it gives one.
    pub email: Option<String>,
    /// The identity provider's `name` claim, else the user name.
    pub display_name: String,
    /// The roles the identity provider gave.
    pub roles: Vec<String>,
    /// Whether the caller may do everything (the operator's key, the admin
    /// role, or Community mode's one user).
    pub is_admin: bool,
}

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

/// A personal access token as listed (never the token itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenDto {
    /// Its id (to revoke it).
    pub id: Uuid,
    /// The name its owner gave it.
    pub name: String,
    /// The roles it carries (the owner's when it was made).
    pub roles: Vec<String>,
    /// Creation time.
    #[serde(with = "crate::routes::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working; `null` = never.
    #[serde(with = "crate::routes::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When it last authenticated a request (recorded at most once a minute).
    #[serde(with = "crate::routes::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "crate::routes::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<PersonalToken> for TokenDto {
    fn from(token: PersonalToken) -> Self {
        TokenDto {
            id: token.id,
            name: token.name,
            roles: token.roles,
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
            revoked_at: token.revoked_at,
        }
    }
}

/// `POST /me/tokens` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name to tell it apart (1..=100 characters).
    pub name: String,
    /// Days until it expires (1..=3650); never, when absent.
    pub expires_in_days: Option<i64>,
}

/// A new token: the only time the token itself is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token: `Authorization: Bearer <token>`.
    pub token: String,
    /// What is stored of it.
    #[serde(flatten)]
    pub stored: TokenDto,
}

/// The caller's tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenDto>,
    /// How many the caller has.
    pub total: i64,
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
