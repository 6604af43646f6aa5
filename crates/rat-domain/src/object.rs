//! The store's vocabulary: object keys, key prefixes and version ids,
//! validated once, where they enter (a client's path, a stored row, a store
//! listing), and passed around typed afterwards.
//!
//! Every `/`-separated segment must match `[A-Za-z0-9._-]+` and must not be
//! `.` or `..`: rust-s3 signs some other characters wrongly (space, `~`, `*`
//! in queries), and the filesystem backend maps segments to directories.

/// Why a key, prefix or version id was refused. `Display` is safe to show
/// to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// A key breaks the key rules.
    #[error("invalid file path {key:?}: {reason}")]
    InvalidKey {
        /// The refused key.
        key: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A version id that cannot exist (empty, `null`, ...).
    #[error("invalid version id {version:?}")]
    InvalidVersion {
        /// The refused id.
        version: String,
    },
}

/// Longest key accepted (S3 allows 1024 bytes; so do our `s3_path` columns).
pub const MAX_KEY_LEN: usize = 1024;

fn check_segments(text: &str, what: &str) -> Result<(), ObjectError> {
    let refuse = |reason: String| ObjectError::InvalidKey {
        key: text.to_owned(),
        reason,
    };
    if text.len() > MAX_KEY_LEN {
        return Err(refuse(format!("{what} is longer than {MAX_KEY_LEN} bytes")));
    }
    for segment in text.split('/') {
        if segment.is_empty() {
            return Err(refuse(
                "empty path segment (leading, trailing or double '/')".to_owned(),
            ));
        }
        if segment == "." || segment == ".." {
            return Err(refuse(format!("'{segment}' segments are not allowed")));
        }
        if let Some(bad) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(refuse(format!(
                "character {bad:?} is not allowed (use A-Z, a-z, 0-9, '.', '_', '-' and '/')"
            )));
        }
    }
    Ok(())
}

/// The full key of one file, e.g. `default/pipelines/silver/orders/pipeline.sql`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Validates a key.
    pub fn parse(text: &str) -> Result<Self, ObjectError> {
        if text.is_empty() {
            return Err(ObjectError::InvalidKey {
                key: String::new(),
                reason: "empty path".to_owned(),
            });
        }
        check_segments(text, "path")?;
        Ok(ObjectKey(text.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `prefix`, if the key is under it.
    pub fn strip_prefix<'a>(&'a self, prefix: &KeyPrefix) -> Option<&'a str> {
        self.0.strip_prefix(prefix.as_str())
    }

    /// The directory holding the key (the empty prefix for a top-level key).
    pub fn parent(&self) -> KeyPrefix {
        match self.0.rsplit_once('/') {
            Some((dir, _)) => KeyPrefix(format!("{dir}/")),
            None => KeyPrefix(String::new()),
        }
    }

    /// The last segment (the file name).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A directory-like prefix: empty (everything) or segments ending with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    /// Validates a prefix; it must be empty or end with `/`.
    pub fn parse(text: &str) -> Result<Self, ObjectError> {
        if text.is_empty() {
            return Ok(KeyPrefix(String::new()));
        }
        let Some(dir) = text.strip_suffix('/') else {
            return Err(ObjectError::InvalidKey {
                key: text.to_owned(),
                reason: "a prefix must end with '/'".to_owned(),
            });
        };
        check_segments(dir, "prefix")?;
        Ok(KeyPrefix(text.to_owned()))
    }

    /// A prefix built in this crate from validated names, whose segments
    /// satisfy the key rules by construction.
    pub(crate) fn from_names(segments: &[&str]) -> Self {
        let mut text = String::new();
        for segment in segments {
            text.push_str(segment);
            text.push('/');
        }
        debug_assert!(KeyPrefix::parse(&text).is_ok(), "{text:?} breaks the key rules");
        KeyPrefix(text)
    }

    /// True when `key` is under this prefix.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        key.as_str().starts_with(&self.0)
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of `relative` under this prefix, validated.
    pub fn join(&self, relative: &str) -> Result<ObjectKey, ObjectError> {
        ObjectKey::parse(&format!("{}{relative}", self.0))
    }
}

impl std::fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An opaque version id handed out by the store (S3's `x-amz-version-id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(String);

impl VersionId {
    /// Wraps an id read from the store or from a pinned map. Refuses empty ids
    /// and S3's `null` id of unversioned objects: those can never be pinned.
    pub fn new(id: impl Into<String>) -> Result<Self, ObjectError> {
        let id = id.into();
        if id.is_empty() || id == "null" || id.len() > 1024 || id.chars().any(char::is_control) {
            return Err(ObjectError::InvalidVersion { version: id });
        }
        Ok(VersionId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keys, prefixes and version ids serialize as their text.
macro_rules! serialize_as_str {
    ($($name:ident),+) => {$(
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    )+};
}
serialize_as_str!(ObjectKey, KeyPrefix, VersionId);

macro_rules! from_str {
    ($($name:ident => $parse:path),+) => {$(
        impl std::str::FromStr for $name {
            type Err = ObjectError;

            fn from_str(text: &str) -> Result<Self, ObjectError> {
                $parse(text)
            }
        }
    )+};
}
from_str!(ObjectKey => ObjectKey::parse, KeyPrefix => KeyPrefix::parse, VersionId => VersionId::new);

/// Keys and prefixes compare with their text.
macro_rules! eq_str {
    ($($name:ident),+) => {$(
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other
            }
        }
    )+};
}
eq_str!(ObjectKey, KeyPrefix, VersionId);

/// A key is looked up by its text in maps keyed by [`ObjectKey`] (equality,
/// order and hash are the text's).
impl std::borrow::Borrow<str> for ObjectKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_pipeline_paths() {
        for ok in [
            "default/pipelines/silver/orders/pipeline.sql",
            "ns/pipelines/gold/x/tests/quality/not_null.sql",
            "a/B-c_d.e",
            ".hidden/file",
        ] {
            assert!(ObjectKey::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_traversal_and_forbidden_characters() {
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "a/../b",
            "..",
            "a/./b",
            "a b",
            "a~b",
            "a*b",
            "a\\b",
            "a\0b",
            "é",
            "a/%2e%2e/b",
            "a?b",
            "a+b",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ObjectKey::parse(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn prefixes_are_directories() {
        assert!(KeyPrefix::parse("").is_ok());
        assert!(KeyPrefix::parse("ns/pipelines/").is_ok());
        assert!(KeyPrefix::parse("ns/pipelines").is_err());
        assert!(KeyPrefix::parse("/").is_err());
        assert!(KeyPrefix::parse("ns/../").is_err());
        let prefix = KeyPrefix::parse("ns/p/").unwrap();
        assert_eq!(prefix.join("config.yaml").unwrap().as_str(), "ns/p/config.yaml");
        assert!(prefix.join("../x").is_err());
        let key = prefix.join("tests/quality/t.sql").unwrap();
        assert_eq!(key.strip_prefix(&prefix), Some("tests/quality/t.sql"));
        assert_eq!(key.file_name(), "t.sql");
        assert_eq!(key.parent().as_str(), "ns/p/tests/quality/");
        assert_eq!(ObjectKey::parse("top").unwrap().parent().as_str(), "");
    }
}
