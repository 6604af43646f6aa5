//! Keyset pagination of the lists that grow (runs, audit, run logs, landing
//! files): the opaque `cursor` a client sends back, and the `next_cursor` of
//! a page. A cursor names the list and sort order it belongs to (its scope),
//! so one given to another list, or with another order, is refused.

use rat_domain::{Cursor, DomainError, KeysetPage};

use crate::ServiceError;

/// A page of a list that continues by cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct CursorPage<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Count of every row matching the filters (not only those after the
    /// cursor).
    pub total: i64,
    /// The cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The position a client's `cursor` names in the list `scope`; `None` when
/// no cursor was given, `InvalidInput` for a token that is not one of
/// `scope`'s, or when the list's sort order does not page by cursor
/// (`scope` is `None`).
pub fn decode<Id>(scope: Option<&str>, token: Option<&str>) -> Result<Option<Cursor<Id>>, ServiceError>
where
    Id: std::fmt::Display + std::str::FromStr,
{
    let Some(token) = token else {
        return Ok(None);
    };
    let Some(scope) = scope else {
        return Err(DomainError::invalid("cursor", "is only accepted with the sort created_at or -created_at").into());
    };
    Ok(Some(Cursor::decode(scope, token)?))
}

/// The page with the cursor of the row after its last, when one follows
/// and the order pages by cursor (`scope`).
pub fn page<T, Id>(page: KeysetPage<T>, scope: Option<&str>, key: impl Fn(&T) -> Cursor<Id>) -> CursorPage<T>
where
    Id: std::fmt::Display + std::str::FromStr,
{
    let next_cursor = match (page.more, scope, page.items.last()) {
        (true, Some(scope), Some(last)) => Some(key(last).encode(scope)),
        _ => None,
    };
    CursorPage {
        items: page.items,
        total: page.total,
        next_cursor,
    }
}
