//! `/api/v1/runs` (contract §7).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunDto {
    /// Primary key.
    pub id: Uuid,
    /// The pipeline it runs.
    pub pipeline_id: Uuid,
    /// `pending`, `running`, `success`, `failed` or `cancelled`.
    pub status: String,
    /// How it was started (`manual`, `schedule:{cron}`, `trigger:…`).
    pub trigger: String,
    /// When a runner started it.
    #[serde(with = "crate::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When it reached a terminal status.
    #[serde(with = "crate::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Execution time reported by the runner.
    pub duration_ms: Option<i32>,
    /// Rows written.
    pub rows_written: Option<i64>,
    /// Error message of a failed run.
    pub error: Option<String>,
    /// Where the full logs live in S3, if anywhere.
    pub logs_s3_path: Option<String>,
    /// Creation time.
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The published version the run executes (addition to ratd's object).
    pub version_number: i32,
}

/// Filters of `GET /runs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct RunQuery {
    /// Runs of live pipelines in this namespace.
    pub namespace: Option<String>,
    /// Runs of live pipelines in this layer.
    pub layer: Option<String>,
    /// Runs of live pipelines with this name.
    pub pipeline: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Started at or after this RFC 3339 time.
    pub started_after: Option<String>,
    /// Started before this RFC 3339 time.
    pub started_before: Option<String>,
    /// `[-]created_at|started_at|finished_at|duration_ms|status` (default `-created_at`).
    pub sort: Option<String>,
    /// Rows per page (default 50, at most 200).
    pub limit: Option<String>,
    /// Rows to skip; not with `cursor`.
    pub offset: Option<String>,
    /// Where the page starts: the `next_cursor` of the previous page (opaque;
    /// only with the sort `created_at` or `-created_at`).
    pub cursor: Option<String>,
}

/// A page of runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunList {
    /// The page.
    pub runs: Vec<RunDto>,
    /// Count of every run matching the filters.
    pub total: i64,
    /// The `cursor` of the next page; absent on the last page, and with a
    /// sort other than `[-]created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Body of `POST /runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// Namespace of the pipeline.
    pub namespace: String,
    /// Layer of the pipeline.
    pub layer: String,
    /// Name of the pipeline.
    pub pipeline: String,
    /// The run's label (default `manual`).
    #[serde(default)]
    pub trigger: Option<String>,
}

/// Answer of the routes that create or move a run: `POST /runs`,
/// `POST /runs/{id}/cancel`, and the runner's completion routes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunStatusAnswer {
    /// The run.
    pub run_id: Uuid,
    /// Its status now.
    pub status: String,
}

/// One log line of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    /// When the line was written (as the runner reported it).
    pub timestamp: String,
    /// `debug`, `info`, `warn`, `error`, ...
    pub level: String,
    /// The text.
    pub message: String,
}

impl LogEntry {
    /// The wire shape of a stored entry. Runners store `{timestamp, level,
    /// message}` objects; anything else is shown whole as the message, so no
    /// stored line is ever hidden from the reader.
    pub fn from_stored(entry: serde_json::Value) -> Self {
        use serde_json::Value;
        let text = |value: Option<&Value>| match value {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        match &entry {
            Value::Object(fields) => LogEntry {
                timestamp: text(fields.get("timestamp")),
                level: match fields.get("level") {
                    None | Some(Value::Null) => "info".to_owned(),
                    level => text(level),
                },
                message: text(fields.get("message")),
            },
            Value::String(s) => LogEntry {
                timestamp: String::new(),
                level: "info".to_owned(),
                message: s.clone(),
            },
            other => LogEntry {
                timestamp: String::new(),
                level: "info".to_owned(),
                message: other.to_string(),
            },
        }
    }
}

/// Answer of `GET /runs/{id}/logs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunLogs {
    /// The entries, oldest first.
    pub logs: Vec<LogEntry>,
    /// The run's status.
    pub status: String,
    /// The `cursor` of the next page of entries; absent once none follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Paging of `GET /runs/{id}/logs` (JSON answers only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct LogQuery {
    /// Entries per page (default and most 10000).
    pub limit: Option<String>,
    /// Where the page starts: the `next_cursor` of the previous page (opaque).
    pub cursor: Option<String>,
}

#[cfg(feature = "domain")]
impl<S> From<rat_domain::Run<S>> for RunDto {
    fn from(r: rat_domain::Run<S>) -> Self {
        RunDto {
            id: r.id.into(),
            pipeline_id: r.pipeline_id.into(),
            status: r.status.as_str().to_owned(),
            trigger: r.trigger,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms,
            rows_written: r.rows_written,
            error: r.error,
            logs_s3_path: r.logs_s3_path,
            created_at: r.created_at,
            version_number: r.version_number.get(),
        }
    }
}

#[cfg(feature = "domain")]
impl<S> From<&rat_domain::Run<S>> for RunStatusAnswer {
    fn from(run: &rat_domain::Run<S>) -> Self {
        RunStatusAnswer {
            run_id: run.id.into(),
            status: run.status.as_str().to_owned(),
        }
    }
}
