//! The published-versions map `{full S3 key: S3 version id}` and version history records.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::DomainError;

/// A pinned snapshot: for every file of a pipeline, the exact S3 version id.
///
/// Keys are full object keys (`{ns}/pipelines/{layer}/{name}/pipeline.sql`).
/// Ordered, so equal snapshots compare and serialize equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct PublishedVersions(BTreeMap<String, String>);

impl PublishedVersions {
    /// The empty map of a never-published pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map, refusing empty keys or version ids (an object without a
    /// version id must never be pinned as an empty string).
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self, DomainError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut map = BTreeMap::new();
        for (key, version) in pairs {
            let (key, version) = (key.into(), version.into());
            if key.is_empty() {
                return Err(DomainError::invalid("published_versions", "empty object key"));
            }
            if version.is_empty() {
                return Err(DomainError::invalid(
                    "published_versions",
                    format!("object {key:?} has no version id"),
                ));
            }
            map.insert(key, version);
        }
        Ok(PublishedVersions(map))
    }

    /// Reads the stored JSON form, which must be an object of strings.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, DomainError> {
        let object = value
            .as_object()
            .ok_or_else(|| DomainError::invalid("published_versions", "must be a JSON object"))?;
        let pairs = object.iter().map(|(key, version)| {
            version.as_str().map(|v| (key.clone(), v.to_owned())).ok_or_else(|| {
                DomainError::invalid("published_versions", format!("version of {key:?} is not a string"))
            })
        });
        Self::from_pairs(pairs.collect::<Result<Vec<_>, _>>()?)
    }

    /// The stored JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        )
    }

    /// The pinned version of one key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// `(key, version id)` pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pinned files.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a never-published pipeline.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One entry of a pipeline's publish history (`pipeline_versions`).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineVersion {
    /// Primary key.
    pub id: Uuid,
    /// The pipeline.
    pub pipeline_id: Uuid,
    /// 1, 2, 3, ... per pipeline.
    pub version_number: i32,
    /// The publish message.
    pub message: String,
    /// The snapshot this version pins.
    pub published_versions: PublishedVersions,
    /// Publish time.
    pub created_at: OffsetDateTime,
}

/// Checks a version number given by a client: versions start at 1.
pub fn parse_version_number(number: i64) -> Result<i32, DomainError> {
    if number < 1 || number > i64::from(i32::MAX) {
        return Err(DomainError::OutOfRange {
            field: "version",
            value: number,
            min: 1,
            max: i64::from(i32::MAX),
        });
    }
    Ok(number as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_every_pin() {
        let map = PublishedVersions::from_pairs([("a/pipeline.sql", "v1"), ("a/config.yaml", "v2")]).unwrap();
        let back = PublishedVersions::from_json(&map.to_json()).unwrap();
        assert_eq!(back, map);
        assert_eq!(back.get("a/config.yaml"), Some("v2"));
        assert_eq!(back.len(), 2);
    }

    #[test]
    fn an_object_without_version_id_is_refused() {
        assert!(PublishedVersions::from_pairs([("a/pipeline.sql", "")]).is_err());
        assert!(PublishedVersions::from_json(&serde_json::json!({"k": null})).is_err());
        assert!(PublishedVersions::from_json(&serde_json::json!(["k"])).is_err());
    }

    #[test]
    fn version_numbers_start_at_one() {
        assert!(parse_version_number(0).is_err());
        assert!(parse_version_number(-3).is_err());
        assert_eq!(parse_version_number(7).unwrap(), 7);
    }
}
