//! The runner protocol of rat-api's internal listener (`/internal/v1/runs/…`)
//! and the runner routes ratd serves under `/api/v1/internal/…`: claim,
//! heartbeat, logs, completion, ratd's status callback, merge failures and
//! plugin registration. Request bodies refuse unknown fields where the server
//! does; answers are read leniently by clients (new fields may be added).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Body of `POST /internal/v1/runs/claim`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// The claiming runner's name (1 to 255 characters, no control characters).
    pub runner_id: String,
    /// Most runs to hand out, 1 to 100 (default 1).
    #[serde(default)]
    pub max_runs: Option<i64>,
    /// Lease of each run, 10 to 3600 seconds (default 60).
    #[serde(default)]
    pub lease_seconds: Option<i64>,
    /// The plugins this runner can load (at most 200); when present, they
    /// replace what it reported before (`GET /api/v1/runner/plugins`).
    #[serde(default)]
    pub plugins: Option<Vec<PluginReport>>,
}

/// A plugin a runner can load, as it reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PluginReport {
    /// Entry point name (1 to 255 characters).
    pub name: String,
    /// Entry point group (at most 255 characters).
    #[serde(default)]
    pub group: String,
    /// The providing package's version (at most 255 characters).
    #[serde(default)]
    pub version: String,
    /// The providing package (at most 255 characters).
    #[serde(default)]
    pub package_name: String,
}

/// One pinned file of a claimed run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimedFileDto {
    /// Full key in the store.
    pub key: String,
    /// Key relative to the pipeline's directory (`pipeline.sql`).
    pub path: String,
    /// The pinned version id.
    pub version_id: String,
    /// Where to GET exactly that version: a presigned S3 URL (no credentials
    /// needed), or this listener's file route (send the runner token).
    pub url: String,
}

/// A claimed run: everything a runner needs to execute the published snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimedRunDto {
    /// The run.
    pub run_id: Uuid,
    /// The pipeline's namespace.
    pub namespace: String,
    /// The pipeline's layer.
    pub layer: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// `sql` or `python`.
    #[serde(rename = "type")]
    pub pipeline_type: String,
    /// The run's label (`manual`, `schedule:{cron}`, `trigger:…`).
    pub trigger: String,
    /// The published version the run executes.
    pub version_number: i32,
    /// When the lease ends unless renewed by a heartbeat.
    #[serde(with = "crate::rfc3339::option")]
    pub lease_expires_at: Option<OffsetDateTime>,
    /// Every pinned file, in key order.
    pub files: Vec<ClaimedFileDto>,
    /// Iceberg maintenance to apply to the pipeline's table.
    pub iceberg: IcebergDto,
}

/// Iceberg table maintenance of a claimed run (the retention settings'
/// system values, or the pipeline's overrides).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IcebergDto {
    /// Expire snapshots older than this many days (`iceberg_snapshot_max_age_days`).
    pub snapshot_max_age_days: i64,
    /// Remove unreferenced files older than this many days (`iceberg_orphan_file_max_age_days`).
    pub orphan_file_max_age_days: i64,
}

/// Answer of `POST /internal/v1/runs/claim`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimAnswer {
    /// The runs handed out, oldest first (empty when nothing is pending).
    pub runs: Vec<ClaimedRunDto>,
}

/// Body of `POST /internal/v1/runs/{id}/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    /// The holding runner.
    pub runner_id: String,
    /// New lease from now, 10 to 3600 seconds (default: as long as the
    /// current lease, i.e. the length asked for at the claim or the last heartbeat).
    #[serde(default)]
    pub lease_seconds: Option<i64>,
    /// The plugins this runner can load, as in a claim.
    #[serde(default)]
    pub plugins: Option<Vec<PluginReport>>,
}

/// Answer of `POST /internal/v1/runs/{id}/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatAnswer {
    /// The run.
    pub run_id: Uuid,
    /// `running`, or `cancelled` when the runner must stop.
    pub status: String,
    /// When the lease now ends.
    #[serde(with = "crate::rfc3339::option")]
    pub lease_expires_at: Option<OffsetDateTime>,
    /// True when the run was cancelled: stop executing it.
    pub stop: bool,
}

/// One log entry as a runner sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LogEntryBody {
    /// When the runner logged it (RFC 3339).
    pub timestamp: String,
    /// `trace`, `debug`, `info`, `warn` (or `warning`), `error` (or `critical`, `fatal`), any case.
    pub level: String,
    /// The text (at most 64 KiB).
    pub message: String,
}

/// Body of `POST /internal/v1/runs/{id}/logs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LogsBody {
    /// The holding runner.
    pub runner_id: String,
    /// At most 1000 entries, appended in order.
    pub entries: Vec<LogEntryBody>,
}

/// One quality test's result as a runner reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QualityResultBody {
    /// Name of a quality test of the run's pipeline.
    pub test: String,
    /// Violations counted (required unless `error` is set).
    #[serde(default)]
    pub value: Option<f64>,
    /// Violations expected (usually 0).
    #[serde(default)]
    pub expected: Option<f64>,
    /// Execution time of the test.
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// Why the test's SQL could not run (the result is then `error`).
    #[serde(default)]
    pub error: Option<String>,
}

/// Body of `POST /internal/v1/runs/{id}/complete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// The holding runner.
    pub runner_id: String,
    /// `success`, `failed` or `cancelled`.
    pub status: String,
    /// Error message (an empty string counts as none).
    #[serde(default)]
    pub error: Option<String>,
    /// Execution time.
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// Rows written.
    #[serde(default)]
    pub rows_written: Option<i64>,
    /// Per-phase timings, stored as given (any JSON).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub phase_profiles: Option<serde_json::Value>,
    /// One result per quality test that ran (at most 1000).
    #[serde(default)]
    pub quality_results: Vec<QualityResultBody>,
}

impl CompleteBody {
    /// A report by `runner_id` that the run ended with `status`, with
    /// nothing else (no error, timings, rows or quality results): set the
    /// other fields with struct update syntax.
    pub fn new(runner_id: impl Into<String>, status: impl Into<String>) -> Self {
        CompleteBody {
            runner_id: runner_id.into(),
            status: status.into(),
            error: None,
            duration_ms: None,
            rows_written: None,
            phase_profiles: None,
            quality_results: Vec::new(),
        }
    }
}

/// Body of ratd's runner callback. Unknown fields are ignored (ratd's
/// runners send more than the contract names, e.g. `archived_landing_zones`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallbackBody {
    /// Must equal the id in the path.
    pub run_id: String,
    /// `running`, `success`, `failed` or `cancelled`.
    pub status: String,
    /// Error message (an empty string counts as none).
    #[serde(default)]
    pub error: Option<String>,
    /// Execution time.
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// Rows written.
    #[serde(default)]
    pub rows_written: Option<i64>,
}

/// Body of RAT's runner's merge-failure report. Unknown fields are ignored,
/// as in ratd's callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedMergeBody {
    /// The run whose branch did not merge (1 to 255 characters).
    pub run_id: String,
    /// The branch (1 to 255 characters).
    pub branch_name: String,
    /// The branch's hash (at most 255 characters).
    #[serde(default)]
    pub source_hash: Option<String>,
    /// The target's hash (at most 255 characters).
    #[serde(default)]
    pub target_hash: Option<String>,
    /// A short classification (1 to 255 characters).
    pub error_kind: String,
    /// The error (at most 65536 characters).
    pub error_message: String,
}

/// Answer of `POST /api/v1/internal/failed-merges`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AcceptedAnswer {
    /// Always `accepted`.
    pub status: String,
}

/// Body of `POST /api/v1/internal/plugins/register` (ratd's shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterPluginBody {
    /// Unique name (the name rule, at most 63 characters).
    pub name: String,
    /// The extension slot it fills (1 to 20 characters).
    pub slot: String,
    /// Container image (1 to 500 characters).
    pub image: String,
    /// Plugin configuration, a JSON object (default `{}`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub config: Option<serde_json::Value>,
}

/// Body of `POST /api/v1/internal/plugins/{name}/health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PluginHealthBody {
    /// `healthy`, `degraded` or `down`.
    pub status: String,
}

/// Query of `GET /internal/v1/files`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct FileQuery {
    /// Full key of the file.
    pub key: String,
    /// The exact version id.
    pub version: String,
}
