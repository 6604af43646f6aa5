//! Pagination and sorting of list requests.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use crate::DomainError;

/// `limit`/`offset` of a list request, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows per page, 1..=200.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

impl PageRequest {
    /// Default page size.
    pub const DEFAULT_LIMIT: i64 = 50;
    /// Largest page size; larger requests are clamped to it.
    pub const MAX_LIMIT: i64 = 200;

    /// Validates client values: `limit` defaults to 50, must be ≥ 1 and is
    /// clamped to 200; `offset` defaults to 0 and must be ≥ 0.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Self, DomainError> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if limit < 1 {
            return Err(DomainError::invalid("limit", "must be at least 1"));
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err(DomainError::invalid("offset", "must not be negative"));
        }
        Ok(PageRequest {
            limit: limit.min(Self::MAX_LIMIT),
            offset,
        })
    }

    /// A page of `limit` rows from the start; for internal callers.
    pub fn first(limit: i64) -> Self {
        PageRequest {
            limit: limit.clamp(1, Self::MAX_LIMIT),
            offset: 0,
        }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// One page of a list and the size of the whole filtered set.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Count of every row matching the filters.
    pub total: i64,
}

impl<T> Page<T> {
    /// Converts the rows, keeping the total.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
        }
    }
}

/// One page of a list that can be continued by keyset: the page, the count
/// of the whole filtered set, and whether rows follow the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct KeysetPage<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Count of every row matching the filters.
    pub total: i64,
    /// Whether at least one more row follows the last of `items`.
    pub more: bool,
}

/// Where the next page of a keyset-paginated list starts: the sort key
/// (`at`) and the unique id of the last row sent. On the wire it is opaque
/// (base64url, no padding, of `scope|unix nanoseconds|id`); the scope names
/// the list and its sort order, so a cursor is only accepted by the list and
/// order that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor<Id> {
    /// The sort key of the last row sent.
    pub at: OffsetDateTime,
    /// Its id, which breaks ties of `at`.
    pub id: Id,
}

/// Longest cursor text accepted (a real one is under 120 characters).
const MAX_CURSOR_LEN: usize = 256;

impl<Id: fmt::Display + FromStr> Cursor<Id> {
    /// The opaque token of this position in the list and order `scope`
    /// (a fixed name without `|`).
    pub fn encode(&self, scope: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{scope}|{}|{}", self.at.unix_timestamp_nanos(), self.id))
    }

    /// Reads a token made by [`Cursor::encode`] for `scope`: anything else
    /// (not base64url, another list or order, a key out of range) is
    /// `Invalid { cursor }`.
    pub fn decode(scope: &str, token: &str) -> Result<Self, DomainError> {
        let refused = || {
            DomainError::invalid(
                "cursor",
                "is not a cursor of this list and sort order: pass back the next_cursor of the previous page as it came",
            )
        };
        if token.len() > MAX_CURSOR_LEN {
            return Err(refused());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| refused())?;
        let text = String::from_utf8(bytes).map_err(|_| refused())?;
        let mut parts = text.splitn(3, '|');
        let (Some(found), Some(at), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(refused());
        };
        if found != scope {
            return Err(refused());
        }
        let at = at
            .parse::<i128>()
            .ok()
            .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
            // Within what a Postgres timestamp holds, so a forged key is a
            // 400 here rather than an error of the database.
            .filter(|at| (1..=9999).contains(&at.year()))
            .ok_or_else(refused)?;
        let id = id.parse::<Id>().map_err(|_| refused())?;
        Ok(Cursor { at, id })
    }
}

/// A sort key and direction, parsed from `[-]field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort<F> {
    /// The field.
    pub field: F,
    /// True for `-field`.
    pub descending: bool,
}

impl<F: std::str::FromStr<Err = DomainError>> Sort<F> {
    /// Parses `name` (ascending) or `-name` (descending).
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        match text.strip_prefix('-') {
            Some(field) => Ok(Sort {
                field: field.parse()?,
                descending: true,
            }),
            None => Ok(Sort {
                field: text.parse()?,
                descending: false,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PipelineSortField;

    #[test]
    fn limits_default_clamp_and_refuse() {
        assert_eq!(
            PageRequest::new(None, None).unwrap(),
            PageRequest { limit: 50, offset: 0 }
        );
        assert_eq!(
            PageRequest::new(Some(500), Some(3)).unwrap(),
            PageRequest { limit: 200, offset: 3 }
        );
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(Some(-5), None).is_err());
        assert!(PageRequest::new(None, Some(-1)).is_err());
    }

    #[test]
    fn cursors_round_trip_within_their_scope_only() {
        let cursor = Cursor {
            at: time::macros::datetime!(2026-12-06 22:30:00.123456 UTC),
            id: uuid::Uuid::from_u128(7),
        };
        let token = cursor.encode("runs:-created_at");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
        assert_eq!(Cursor::decode("runs:-created_at", &token).unwrap(), cursor);
        for (scope, token) in [
            ("runs:created_at", token.as_str()),
            ("audit", token.as_str()),
            ("runs:-created_at", "not base64!"),
            ("runs:-created_at", ""),
            ("runs:-created_at", &URL_SAFE_NO_PAD.encode("runs:-created_at|x|1")),
            ("runs:-created_at", &URL_SAFE_NO_PAD.encode("runs:-created_at|1")),
            (
                "runs:-created_at",
                &URL_SAFE_NO_PAD.encode("runs:-created_at|1|not-a-uuid"),
            ),
            // Year 10000 and year 0 are beyond the range accepted.
            (
                "runs:-created_at",
                &URL_SAFE_NO_PAD.encode("runs:-created_at|253402300800000000000|00000000-0000-0000-0000-000000000007"),
            ),
            (
                "runs:-created_at",
                &URL_SAFE_NO_PAD.encode("runs:-created_at|-62135596800000000001|00000000-0000-0000-0000-000000000007"),
            ),
        ] {
            let err = Cursor::<uuid::Uuid>::decode(scope, token).unwrap_err();
            assert!(
                matches!(err, DomainError::Invalid { field: "cursor", .. }),
                "{scope} {token}: {err}"
            );
        }
        assert!(Cursor::<i64>::decode("logs", &"A".repeat(MAX_CURSOR_LEN + 1)).is_err());
    }

    #[test]
    fn sort_parses_direction() {
        let s: Sort<PipelineSortField> = Sort::parse("-created_at").unwrap();
        assert_eq!(
            s,
            Sort {
                field: PipelineSortField::CreatedAt,
                descending: true
            }
        );
        assert!(Sort::<PipelineSortField>::parse("-owner").is_err());
        assert!(Sort::<PipelineSortField>::parse("--name").is_err());
    }
}
