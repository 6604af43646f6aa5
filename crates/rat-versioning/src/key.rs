//! Object keys and key prefixes, validated before any call to a store.
//!
//! Every `/`-separated segment must match `[A-Za-z0-9._-]+` and must not be
//! `.` or `..`: rust-s3 signs some other characters wrongly (space, `~`, `*`
//! in queries), and the filesystem backend maps segments to directories.

use crate::StoreError;

/// Longest key accepted (S3 allows 1024 bytes; so do our `s3_path` columns).
pub const MAX_KEY_LEN: usize = 1024;

fn check_segments(text: &str, what: &str) -> Result<(), StoreError> {
    let refuse = |reason: String| StoreError::InvalidKey {
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
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        if text.is_empty() {
            return Err(StoreError::InvalidKey {
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
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        if text.is_empty() {
            return Ok(KeyPrefix(String::new()));
        }
        let Some(dir) = text.strip_suffix('/') else {
            return Err(StoreError::InvalidKey {
                key: text.to_owned(),
                reason: "a prefix must end with '/'".to_owned(),
            });
        };
        check_segments(dir, "prefix")?;
        Ok(KeyPrefix(text.to_owned()))
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of `relative` under this prefix, validated.
    pub fn join(&self, relative: &str) -> Result<ObjectKey, StoreError> {
        ObjectKey::parse(&format!("{}{relative}", self.0))
    }
}

impl std::fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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
    }
}
