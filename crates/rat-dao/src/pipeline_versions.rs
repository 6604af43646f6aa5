//! `pipeline_versions`: the publish history of each pipeline.
