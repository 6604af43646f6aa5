//! `/api/v1/me`: who the caller is, and their personal access tokens.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The caller (ratd's shape, plus whether they are an admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A personal access token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenDto {
    /// Its id (to revoke it).
    pub id: Uuid,
    /// The name its owner gave it.
    pub name: String,
    /// The roles it carries (the owner's when it was made).
    pub roles: Vec<String>,
    /// Creation time.
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working; `null` = never.
    #[serde(with = "crate::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When it last authenticated a request (recorded at most once a minute).
    #[serde(with = "crate::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "crate::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// `POST /me/tokens` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name to tell it apart (1..=100 characters).
    pub name: String,
    /// Days until it expires (1..=3650); never, when absent.
    pub expires_in_days: Option<i64>,
}

/// A new token: the only time the token itself is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    /// The token: `Authorization: Bearer <token>`.
    pub token: String,
    /// What is stored of it.
    #[serde(flatten)]
    pub stored: TokenDto,
}

/// The caller's tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenDto>,
    /// How many the caller has.
    pub total: i64,
}

#[cfg(feature = "domain")]
impl From<rat_domain::PersonalToken> for TokenDto {
    fn from(token: rat_domain::PersonalToken) -> Self {
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
