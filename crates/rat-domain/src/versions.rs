//! The published-versions map `{full S3 key: S3 version id}` and version history records.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::DomainError;
use crate::ids::{PipelineId, VersionNumber};
use crate::object::{ObjectKey, VersionId};

/// A pinned snapshot: for every file of a pipeline, the exact S3 version id.
///
/// Keys are full object keys (`{ns}/pipelines/{layer}/{name}/pipeline.sql`).
/// Ordered, so equal snapshots compare and serialize equal. Keys and ids are
/// parsed once, when the map is built; readers get typed values.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct PublishedVersions(BTreeMap<ObjectKey, VersionId>);

impl PublishedVersions {
    /// The empty map of a never-published pipeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map from text, refusing keys that break the key rules and
    /// empty or impossible version ids (an object without a version id must
    /// never be pinned as an empty string).
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
            let key = ObjectKey::parse(&key).map_err(|e| DomainError::invalid("published_versions", e.to_string()))?;
            let version =
                VersionId::new(version).map_err(|e| DomainError::invalid("published_versions", e.to_string()))?;
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
                .map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::String(v.as_str().to_owned())))
                .collect(),
        )
    }

    /// The pinned version of one key.
    pub fn get(&self, key: &str) -> Option<&VersionId> {
        self.0.get(key)
    }

    /// `(key, version id)` pairs in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&ObjectKey, &VersionId)> {
        self.0.iter()
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

/// A map of already-parsed pins (a store listing's heads).
impl FromIterator<(ObjectKey, VersionId)> for PublishedVersions {
    fn from_iter<I: IntoIterator<Item = (ObjectKey, VersionId)>>(pairs: I) -> Self {
        PublishedVersions(pairs.into_iter().collect())
    }
}

/// One entry of a pipeline's publish history (`pipeline_versions`).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineVersion {
    /// Primary key.
    pub id: Uuid,
    /// The pipeline.
    pub pipeline_id: PipelineId,
    /// 1, 2, 3, ... per pipeline.
    pub version_number: VersionNumber,
    /// The publish message.
    pub message: String,
    /// The snapshot this version pins.
    pub published_versions: PublishedVersions,
    /// Publish time.
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_every_pin() {
        let map = PublishedVersions::from_pairs([("a/pipeline.sql", "v1"), ("a/config.yaml", "v2")]).unwrap();
        let back = PublishedVersions::from_json(&map.to_json()).unwrap();
        assert_eq!(back, map);
        assert_eq!(back.get("a/config.yaml").map(VersionId::as_str), Some("v2"));
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
        assert!(VersionNumber::parse(0).is_err());
        assert!(VersionNumber::parse(-3).is_err());
        assert_eq!(VersionNumber::parse(7).unwrap().get(), 7);
    }
}
