//! `personal_access_tokens`: stored by the SHA-256 of the token, found by it.

use crate::GenericClient;
use rat_domain::{Page, PageRequest, PersonalToken};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

const COLUMNS: &str = "id, user_name, name, roles, created_at, expires_at, last_used_at, revoked_at";

fn from_row(row: &Row) -> Result<PersonalToken, DaoError> {
    Ok(PersonalToken {
        id: row.try_get("id")?,
        user: row.try_get("user_name")?,
        name: row.try_get("name")?,
        roles: row.try_get("roles")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// What creating a token records.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// The user it authenticates as.
    pub user: &'a str,
    /// Its name.
    pub name: &'a str,
    /// SHA-256 of the token.
    pub hash: &'a [u8; 32],
    /// The user's roles now.
    pub roles: &'a [String],
    /// When it stops working.
    pub expires_at: Option<OffsetDateTime>,
}

/// Records a token made at `now`.
pub async fn insert(
    client: &impl GenericClient,
    new: &NewToken<'_>,
    now: OffsetDateTime,
) -> Result<PersonalToken, DaoError> {
    let row = sql::query_one(
        client,
        "personal access token",
        &format!(
            "INSERT INTO personal_access_tokens (user_name, name, token_hash, roles, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        ),
        &[
            &new.user,
            &new.name,
            &new.hash.as_slice(),
            &new.roles,
            &now,
            &new.expires_at,
        ],
    )
    .await?;
    from_row(&row)
}

/// The token whose hash is `hash` (revoked or expired ones included: the
/// caller decides), with its stored hash for a constant-time comparison.
pub async fn find_by_hash(
    client: &impl GenericClient,
    hash: &[u8; 32],
) -> Result<Option<(PersonalToken, Vec<u8>)>, DaoError> {
    let row = sql::query_opt(
        client,
        &format!("SELECT {COLUMNS}, token_hash FROM personal_access_tokens WHERE token_hash = $1"),
        &[&hash.as_slice()],
    )
    .await?;
    row.map(|row| Ok((from_row(&row)?, row.try_get("token_hash")?)))
        .transpose()
}

/// `user`'s tokens, newest first, one page, with the total.
pub async fn list_for_user(
    client: &impl GenericClient,
    user: &str,
    page: PageRequest,
) -> Result<Page<PersonalToken>, DaoError> {
    let mut conditions = Conditions::new();
    conditions.push("user_name = $?", &user);
    let order = OrderBy {
        columns: &["created_at", "id"],
        descending: true,
    };
    sql::fetch_page(
        client,
        COLUMNS,
        "personal_access_tokens",
        &conditions,
        order,
        page,
        from_row,
    )
    .await
}

/// Revokes `user`'s token `id` at `now` (again: a no-op keeping the first
/// time). `NotFound` when `user` has no such token.
pub async fn revoke(
    client: &impl GenericClient,
    user: &str,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<PersonalToken, DaoError> {
    let row = sql::query_one(
        client,
        "personal access token",
        &format!(
            "UPDATE personal_access_tokens SET revoked_at = COALESCE(revoked_at, $3) \
             WHERE id = $1 AND user_name = $2 RETURNING {COLUMNS}"
        ),
        &[&id, &user, &now],
    )
    .await?;
    from_row(&row)
}

/// Records a use at `now`, at most once a minute per token (a request per
/// second from a script would otherwise write a row per second).
pub async fn touch(client: &impl GenericClient, id: Uuid, now: OffsetDateTime) -> Result<(), DaoError> {
    sql::execute(
        client,
        "UPDATE personal_access_tokens SET last_used_at = $2 \
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - interval '1 minute')",
        &[&id, &now],
    )
    .await?;
    Ok(())
}
