//! `pipeline_triggers`: event triggers of pipelines.
