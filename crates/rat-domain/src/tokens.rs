//! Personal access tokens: what is stored of one (never the token itself).

use time::OffsetDateTime;
use uuid::Uuid;

/// A personal access token as stored (`personal_access_tokens`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalToken {
    /// Primary key.
    pub id: Uuid,
    /// The user it authenticates as.
    pub user: String,
    /// The name its owner gave it.
    pub name: String,
    /// The roles the user had when it was made.
    pub roles: Vec<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// When it stops working; `None` = never.
    pub expires_at: Option<OffsetDateTime>,
    /// When it last authenticated a request (recorded at most once a minute).
    pub last_used_at: Option<OffsetDateTime>,
    /// When its owner revoked it.
    pub revoked_at: Option<OffsetDateTime>,
}

impl PersonalToken {
    /// Whether it authenticates requests at `now`.
    pub fn is_usable(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires| expires > now)
    }
}

/// Longest token name.
pub const MAX_TOKEN_NAME_CHARS: usize = 100;
/// Longest lifetime a token may be given, in days.
pub const MAX_TOKEN_DAYS: i64 = 3650;
