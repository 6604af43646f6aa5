//! `/api/v1/admin/…` and `…/retention`: retention settings, the reaper's
//! status and on-demand passes, per-pipeline retention, merge failures
//! (contract §12).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The retention settings (every key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionConfig {
    /// Runs kept per pipeline, newest first (1..=1,000,000).
    pub runs_max_per_pipeline: i64,
    /// Terminal runs older than this are deleted (days, 1..=36,500).
    pub runs_max_age_days: i64,
    /// Run logs older than this are cleared (days, 1..=36,500).
    pub logs_max_age_days: i64,
    /// Quality results kept per test, newest first (1..=1,000,000).
    pub quality_results_max_per_test: i64,
    /// Soft-deleted pipelines are purged after this (days, 1..=36,500).
    pub soft_delete_purge_days: i64,
    /// Running runs older than this are failed as stuck (minutes, 1..=525,600).
    pub stuck_run_timeout_minutes: i64,
    /// Audit entries older than this are deleted (days, 1..=36,500).
    pub audit_log_max_age_days: i64,
    /// Orphan Nessie branches older than this are deleted (hours, 1..=87,600).
    pub nessie_orphan_branch_max_age_hours: i64,
    /// Minutes between reaper passes (1..=10,080).
    pub reaper_interval_minutes: i64,
    /// Iceberg snapshots older than this are expired (days, 1..=36,500).
    pub iceberg_snapshot_max_age_days: i64,
    /// Iceberg orphan files older than this are removed (days, 1..=36,500).
    pub iceberg_orphan_file_max_age_days: i64,
}

/// `{config}`: the system retention settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionConfigResponse {
    /// The settings.
    pub config: RetentionConfig,
}

/// The reaper's status row.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReaperStatusDto {
    /// Start of the last pass that finished (`null` before the first).
    #[serde(with = "crate::rfc3339::option")]
    pub last_run_at: Option<OffsetDateTime>,
    /// The totals over every pass (these fields sit at the top level of
    /// the object, as ratd's clients read them).
    #[serde(flatten)]
    pub totals: ReaperCountersDto,
    /// Last change of the row.
    #[serde(with = "crate::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// When a pass was last asked for; the reaper owes a pass while this is
    /// later than `last_run_at`.
    #[serde(with = "crate::rfc3339::option")]
    pub run_requested_at: Option<OffsetDateTime>,
    /// What the last finished pass (the one that began at `last_run_at`)
    /// did on its own; zeros before the first.
    pub last_pass: ReaperCountersDto,
}

/// What one reaper pass did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReaperCountersDto {
    /// Runs deleted.
    pub runs_pruned: i64,
    /// Run logs cleared.
    pub logs_pruned: i64,
    /// Quality results deleted.
    pub quality_pruned: i64,
    /// Soft-deleted pipelines purged.
    pub pipelines_purged: i64,
    /// Stuck runs failed.
    pub runs_failed: i64,
    /// Orphan branches deleted.
    pub branches_cleaned: i64,
    /// Landing files purged.
    pub lz_files_cleaned: i64,
    /// Audit entries deleted.
    pub audit_pruned: i64,
}

/// A pipeline's retention: system settings, its overrides, and the result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelineRetentionDto {
    /// The system settings.
    pub system: RetentionConfig,
    /// The pipeline's overrides (only overridden keys; `null` when none, as in ratd).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub overrides: Option<serde_json::Value>,
    /// The settings the reaper applies to this pipeline.
    pub effective: RetentionConfig,
}

/// A merge failure a runner reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedMergeDto {
    /// Row id.
    pub id: uuid::Uuid,
    /// The run, as the runner named it.
    pub run_id: String,
    /// The branch that did not merge.
    pub branch_name: String,
    /// The branch's hash, when reported.
    pub source_hash: Option<String>,
    /// The target's hash, when reported.
    pub target_hash: Option<String>,
    /// A short classification.
    pub error_kind: String,
    /// The error.
    pub error_message: String,
    /// When it was reported.
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A page of merge failures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedMergeList {
    /// The page, newest first.
    pub failed_merges: Vec<FailedMergeDto>,
    /// Count of every stored merge failure.
    pub total: i64,
}

#[cfg(feature = "domain")]
impl From<rat_domain::RetentionSettings> for RetentionConfig {
    fn from(s: rat_domain::RetentionSettings) -> Self {
        RetentionConfig {
            runs_max_per_pipeline: s.runs_max_per_pipeline,
            runs_max_age_days: s.runs_max_age_days,
            logs_max_age_days: s.logs_max_age_days,
            quality_results_max_per_test: s.quality_results_max_per_test,
            soft_delete_purge_days: s.soft_delete_purge_days,
            stuck_run_timeout_minutes: s.stuck_run_timeout_minutes,
            audit_log_max_age_days: s.audit_log_max_age_days,
            nessie_orphan_branch_max_age_hours: s.nessie_orphan_branch_max_age_hours,
            reaper_interval_minutes: s.reaper_interval_minutes,
            iceberg_snapshot_max_age_days: s.iceberg_snapshot_max_age_days,
            iceberg_orphan_file_max_age_days: s.iceberg_orphan_file_max_age_days,
        }
    }
}

#[cfg(feature = "domain")]
impl From<rat_domain::ReaperCounters> for ReaperCountersDto {
    fn from(c: rat_domain::ReaperCounters) -> Self {
        ReaperCountersDto {
            runs_pruned: c.runs_pruned,
            logs_pruned: c.logs_pruned,
            quality_pruned: c.quality_pruned,
            pipelines_purged: c.pipelines_purged,
            runs_failed: c.runs_failed,
            branches_cleaned: c.branches_cleaned,
            lz_files_cleaned: c.lz_files_cleaned,
            audit_pruned: c.audit_pruned,
        }
    }
}

#[cfg(feature = "domain")]
impl From<rat_domain::ReaperStatus> for ReaperStatusDto {
    fn from(s: rat_domain::ReaperStatus) -> Self {
        ReaperStatusDto {
            last_run_at: s.last_run_at,
            totals: s.counters.into(),
            updated_at: s.updated_at,
            run_requested_at: s.run_requested_at,
            last_pass: s.last_pass.into(),
        }
    }
}
