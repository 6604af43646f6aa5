//! Pipelines: layers, types, the `(namespace, layer, name)` address and the stored record.

use serde::Serialize;
use time::OffsetDateTime;

use crate::ids::PipelineId;
use crate::object::KeyPrefix;
use crate::{DomainError, NamespaceName, PipelineName, PublishedVersions};

string_enum!(
    /// The medallion layer a pipeline or table belongs to.
    Layer, "layer" {
        /// Raw data as landed.
        Bronze => "bronze",
        /// Cleaned and conformed data.
        Silver => "silver",
        /// Business-level aggregates.
        Gold => "gold",
    }
);

string_enum!(
    /// The language a pipeline is written in.
    PipelineType, "type" {
        /// `pipeline.sql`.
        Sql => "sql",
        /// `pipeline.py`.
        Python => "python",
    }
);

impl PipelineType {
    /// The file holding the pipeline's code.
    pub const fn source_file(self) -> &'static str {
        match self {
            PipelineType::Sql => "pipeline.sql",
            PipelineType::Python => "pipeline.py",
        }
    }
}

/// The address of a pipeline: `(namespace, layer, name)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PipelineRef {
    /// The namespace.
    pub namespace: NamespaceName,
    /// The layer.
    pub layer: Layer,
    /// The name within namespace and layer.
    pub name: PipelineName,
}

impl PipelineRef {
    /// Builds an address from its three raw parts, validating each.
    pub fn parse(namespace: &str, layer: &str, name: &str) -> Result<Self, DomainError> {
        Ok(PipelineRef {
            namespace: NamespaceName::parse(namespace)?,
            layer: layer.parse()?,
            name: PipelineName::parse(name)?,
        })
    }

    /// Parses the dotted form `ns.layer.pipeline` used by `cron_dependency`.
    pub fn parse_dotted(dotted: &str) -> Result<Self, DomainError> {
        let mut parts = dotted.split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(ns), Some(layer), Some(name), None) => Self::parse(ns, layer, name),
            _ => Err(DomainError::invalid(
                "dependency",
                format!("{dotted:?} is not of the form namespace.layer.pipeline"),
            )),
        }
    }

    /// The dotted form `ns.layer.pipeline`.
    pub fn dotted(&self) -> String {
        format!("{}.{}.{}", self.namespace, self.layer, self.name)
    }

    /// The S3 key prefix of the pipeline's files: `{ns}/pipelines/{layer}/{name}/`.
    pub fn s3_prefix(&self) -> KeyPrefix {
        KeyPrefix::from_names(&[
            self.namespace.as_str(),
            "pipelines",
            self.layer.as_str(),
            self.name.as_str(),
        ])
    }

    /// The pipeline a file key belongs to, and the key's path inside the
    /// pipeline directory: `ns/pipelines/layer/name/rest` gives
    /// `(ns/layer/name, "rest")`. `None` for keys outside any pipeline
    /// directory (landing files, loose files) or with invalid names.
    pub fn from_file_key(key: &str) -> Option<(PipelineRef, &str)> {
        let mut parts = key.splitn(5, '/');
        let (ns, marker, layer, name, rest) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if marker != "pipelines" || rest.is_empty() {
            return None;
        }
        Some((PipelineRef::parse(ns, layer, name).ok()?, rest))
    }
}

impl std::fmt::Display for PipelineRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.layer, self.name)
    }
}

/// A pipeline as stored in `pipelines`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Primary key.
    pub id: PipelineId,
    /// Namespace, layer and name.
    pub address: PipelineRef,
    /// Language.
    pub pipeline_type: PipelineType,
    /// S3 key prefix of the pipeline directory.
    pub s3_path: KeyPrefix,
    /// Free text (empty when never set).
    pub description: String,
    /// Owner's identity; `None` in Community mode.
    pub owner: Option<String>,
    /// When the pipeline was last published.
    pub published_at: Option<OffsetDateTime>,
    /// The pinned snapshot runs execute.
    pub published_versions: PublishedVersions,
    /// True when HEAD differs from the published snapshot.
    pub draft_dirty: bool,
    /// How many versions of history are kept.
    pub max_versions: i32,
    /// Per-pipeline retention overrides (`None` = system settings).
    pub retention_config: Option<serde_json::Value>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last modification time.
    pub updated_at: OffsetDateTime,
    /// Soft-delete time; `None` while the pipeline is live.
    pub deleted_at: Option<OffsetDateTime>,
}

impl Pipeline {
    /// Default number of versions kept (the seed's column default).
    pub const DEFAULT_MAX_VERSIONS: i32 = 50;

    /// True when the pipeline has a published snapshot it can run.
    pub fn is_published(&self) -> bool {
        self.published_at.is_some() && !self.published_versions.is_empty()
    }
}

string_enum!(
    /// Columns `GET /pipelines` can sort by.
    PipelineSortField, "sort" {
        /// Pipeline name.
        Name => "name",
        /// Namespace name.
        Namespace => "namespace",
        /// Layer.
        Layer => "layer",
        /// Creation time.
        CreatedAt => "created_at",
        /// Last modification time.
        UpdatedAt => "updated_at",
        /// Pipeline type.
        Type => "type",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_round_trip_through_text() {
        for layer in Layer::ALL {
            assert_eq!(layer.as_str().parse::<Layer>().unwrap(), *layer);
        }
        assert!("platinum".parse::<Layer>().is_err());
        assert!("Bronze".parse::<Layer>().is_err());
    }

    #[test]
    fn s3_prefix_follows_the_contract_layout() {
        let p = PipelineRef::parse("default", "silver", "clean_orders").unwrap();
        assert_eq!(p.s3_prefix(), "default/pipelines/silver/clean_orders/");
    }

    #[test]
    fn file_keys_map_to_their_pipeline() {
        let (p, rest) = PipelineRef::from_file_key("ns/pipelines/gold/sales/tests/quality/t.sql").unwrap();
        assert_eq!(p, PipelineRef::parse("ns", "gold", "sales").unwrap());
        assert_eq!(rest, "tests/quality/t.sql");
        for outside in [
            "ns/landing/zone/file.csv",
            "ns/pipelines/gold/sales/",
            "ns/pipelines/gold/sales",
            "ns/pipelines/platinum/sales/x.sql",
            "NS/pipelines/gold/sales/x.sql",
            "loose.txt",
        ] {
            assert!(PipelineRef::from_file_key(outside).is_none(), "{outside}");
        }
    }

    #[test]
    fn dotted_form_round_trips_and_refuses_other_shapes() {
        let p = PipelineRef::parse_dotted("ns.gold.sales").unwrap();
        assert_eq!(p.dotted(), "ns.gold.sales");
        for bad in ["ns.gold", "ns.gold.sales.x", "ns.platinum.sales", "NS.gold.sales"] {
            assert!(PipelineRef::parse_dotted(bad).is_err(), "{bad}");
        }
    }
}
