//! Safe concurrent edits (seed 004, optimistic locking): every editable
//! object has a version, shown to clients as an `ETag`; a change sent with
//! `If-Match` is applied only while the object is still at one of the
//! versions named, else it is refused ([`ServiceError::Stale`], 412) and
//! nothing changes. A change without `If-Match` behaves as before.
//!
//! The version of a row is its `updated_at` (set by the `set_updated_at`
//! trigger on every update, in microseconds), so every change of the row,
//! through any route, moves it; the version of a file is its S3 version id.

use time::OffsetDateTime;

use crate::ServiceError;

/// What an `If-Match` header asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current version (the object must exist).
    Any,
    /// One of these versions (the opaque tags, without quotes).
    Tags(Vec<String>),
}

/// Most tags one `If-Match` may list.
const MAX_TAGS: usize = 32;

impl IfMatch {
    /// Parses an `If-Match` value: `*`, or a comma-separated list of quoted
    /// entity tags. Weak tags (`W/"…"`) never match (If-Match compares
    /// strongly); an unquoted tag is taken as it is, as clients often send.
    pub fn parse(header: &str) -> Result<IfMatch, ServiceError> {
        let header = header.trim();
        if header == "*" {
            return Ok(IfMatch::Any);
        }
        let mut tags = Vec::new();
        for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.starts_with("W/") {
                continue;
            }
            let tag = part.strip_prefix('"').and_then(|p| p.strip_suffix('"')).unwrap_or(part);
            if tag.is_empty() || tag.contains('"') || tag.chars().any(char::is_control) {
                return Err(ServiceError::invalid("If-Match must be * or a list of entity tags"));
            }
            tags.push(tag.to_owned());
        }
        if tags.len() > MAX_TAGS {
            return Err(ServiceError::invalid(format!(
                "If-Match lists more than {MAX_TAGS} tags"
            )));
        }
        Ok(IfMatch::Tags(tags))
    }

    /// Whether an object at version `current` (`None`: it does not exist) passes.
    pub fn matches(&self, current: Option<&str>) -> bool {
        match (self, current) {
            (_, None) => false,
            (IfMatch::Any, Some(_)) => true,
            (IfMatch::Tags(tags), Some(current)) => tags.iter().any(|t| t == current),
        }
    }
}

/// The version of a row last changed at `updated_at`.
pub fn row_version(updated_at: OffsetDateTime) -> String {
    (updated_at.unix_timestamp_nanos() / 1_000).to_string()
}

/// `Ok` when there is no condition or `current` satisfies it; else
/// [`ServiceError::Stale`] naming `what`.
pub fn check(if_match: Option<&IfMatch>, current: Option<&str>, what: &str) -> Result<(), ServiceError> {
    match if_match {
        Some(condition) if !condition.matches(current) => Err(ServiceError::Stale {
            message: format!(
                "the {what} changed since it was read (If-Match does not match its ETag); read it again and retry"
            ),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_parses_any_lists_and_ignores_weak_tags() {
        assert_eq!(IfMatch::parse(" * ").unwrap(), IfMatch::Any);
        assert_eq!(
            IfMatch::parse("\"a\", \"b\",W/\"c\"").unwrap(),
            IfMatch::Tags(vec!["a".into(), "b".into()])
        );
        assert_eq!(IfMatch::parse("abc").unwrap(), IfMatch::Tags(vec!["abc".into()]));
        assert!(IfMatch::parse("\"a\"b\"").is_err());
        let tags = IfMatch::parse("\"a\", \"b\"").unwrap();
        assert!(tags.matches(Some("b")));
        assert!(!tags.matches(Some("c")));
        assert!(!tags.matches(None));
        assert!(IfMatch::Any.matches(Some("x")));
        assert!(!IfMatch::Any.matches(None));
        assert!(
            !IfMatch::parse("W/\"a\"").unwrap().matches(Some("a")),
            "weak never matches"
        );
    }

    #[test]
    fn row_versions_move_with_the_microsecond() {
        let t = time::macros::datetime!(2026-06-01 12:00:00.000001 UTC);
        assert_eq!(row_version(t), "1780315200000001");
        assert_ne!(row_version(t), row_version(t + time::Duration::microseconds(1)));
        assert!(check(None, None, "pipeline").is_ok());
        let err = check(Some(&IfMatch::Tags(vec!["1".into()])), Some("2"), "pipeline").unwrap_err();
        assert!(matches!(err, ServiceError::Stale { .. }), "{err:?}");
    }
}
