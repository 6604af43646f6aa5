//! Runs: the status machine, the stored record and the trigger labels runs carry.
//!
//! ```text
//! pending ──► running ──► success | failed | cancelled
//!    └──────► cancelled | failed
//! ```
//! A terminal run never changes again, whoever asks and however late.

use time::OffsetDateTime;

use crate::ids::{PipelineId, RunId, ScheduleId, TriggerId, VersionNumber};
use crate::{DomainError, NamespaceName, PipelineRef, PublishedVersions, ZoneName};

string_enum!(
    /// Where a run is in its life.
    RunStatus, "status" {
        /// Created, waiting for a runner.
        Pending => "pending",
        /// Claimed by a runner and executing.
        Running => "running",
        /// Finished without error.
        Success => "success",
        /// Finished with an error, or given up on.
        Failed => "failed",
        /// Stopped at a user's request.
        Cancelled => "cancelled",
    }
);

impl RunStatus {
    /// True for `success`, `failed` and `cancelled`: the run never changes again.
    pub const fn is_terminal(self) -> bool {
        matches!(self, RunStatus::Success | RunStatus::Failed | RunStatus::Cancelled)
    }

    /// The statuses a run may be in for a move to `self` to be allowed.
    ///
    /// Writers put exactly this set in the `WHERE status = ANY(...)` guard of
    /// their UPDATE, so the database refuses every other transition.
    pub const fn allowed_sources(self) -> &'static [RunStatus] {
        match self {
            RunStatus::Pending => &[],
            RunStatus::Running => &[RunStatus::Pending],
            RunStatus::Success => &[RunStatus::Running],
            RunStatus::Failed | RunStatus::Cancelled => &[RunStatus::Pending, RunStatus::Running],
        }
    }

    /// Whether the state machine allows `self → to`.
    pub fn can_transition_to(self, to: RunStatus) -> bool {
        to.allowed_sources().contains(&self)
    }

    /// `Ok(())` when `self → to` is allowed, the typed refusal otherwise.
    pub fn check_transition(self, to: RunStatus) -> Result<(), DomainError> {
        if self.can_transition_to(to) {
            Ok(())
        } else {
            Err(DomainError::InvalidTransition { from: self, to })
        }
    }
}

/// A run as stored in `runs`, without its log entries (read those separately:
/// they can be large and most readers do not need them).
///
/// `Snapshot` is the pinned file map ([`PublishedVersions`]) when the run was
/// read whole, and `()` in listings, which never need it (and are markedly
/// cheaper without it): the type says which one a caller holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Run<Snapshot = PublishedVersions> {
    /// Primary key.
    pub id: RunId,
    /// The pipeline it runs.
    pub pipeline_id: PipelineId,
    /// Current status.
    pub status: RunStatus,
    /// How it was started (`manual`, `schedule:{cron}`, `trigger:...`).
    pub trigger: String,
    /// When a runner started it.
    pub started_at: Option<OffsetDateTime>,
    /// When it reached a terminal status.
    pub finished_at: Option<OffsetDateTime>,
    /// Execution time reported by the runner.
    pub duration_ms: Option<i32>,
    /// Rows written to Iceberg.
    pub rows_written: Option<i64>,
    /// Error message of a failed run.
    pub error: Option<String>,
    /// Where full logs live in S3, if anywhere.
    pub logs_s3_path: Option<String>,
    /// Per-phase timings.
    pub phase_profiles: Option<serde_json::Value>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// The schedule that created it, if any.
    pub schedule_id: Option<ScheduleId>,
    /// The trigger that created it, if any.
    pub trigger_id: Option<TriggerId>,
    /// The cron slot it was created for, if any.
    pub scheduled_for: Option<OffsetDateTime>,
    /// The published version it executes.
    pub version_number: VersionNumber,
    /// The pinned `{key: version id}` map it executes (`()` when not loaded).
    pub published_versions: Snapshot,
    /// The runner holding the lease.
    pub runner_id: Option<String>,
    /// When the runner's lease ends unless renewed.
    pub lease_expires_at: Option<OffsetDateTime>,
    /// The runner's last heartbeat.
    pub heartbeat_at: Option<OffsetDateTime>,
}

/// A run as listed: everything but the pinned snapshot.
pub type RunSummary = Run<()>;

impl<S> Run<S> {
    /// The same run carrying `snapshot` instead.
    pub fn with_snapshot<T>(self, snapshot: T) -> Run<T> {
        Run {
            id: self.id,
            pipeline_id: self.pipeline_id,
            status: self.status,
            trigger: self.trigger,
            started_at: self.started_at,
            finished_at: self.finished_at,
            duration_ms: self.duration_ms,
            rows_written: self.rows_written,
            error: self.error,
            logs_s3_path: self.logs_s3_path,
            phase_profiles: self.phase_profiles,
            created_at: self.created_at,
            schedule_id: self.schedule_id,
            trigger_id: self.trigger_id,
            scheduled_for: self.scheduled_for,
            version_number: self.version_number,
            published_versions: snapshot,
            runner_id: self.runner_id,
            lease_expires_at: self.lease_expires_at,
            heartbeat_at: self.heartbeat_at,
        }
    }
}

string_enum!(
    /// The level of a run log entry.
    LogLevel, "level" {
        /// Finest detail.
        Trace => "trace",
        /// Diagnostics.
        Debug => "debug",
        /// Progress.
        Info => "info",
        /// Something to look at.
        Warn => "warn",
        /// A failure.
        Error => "error",
    }
);

impl LogLevel {
    /// Parses a level as runners write it: the five names, case-insensitive,
    /// plus the common aliases `warning`, `critical` and `fatal`.
    pub fn parse_lenient(text: &str) -> Result<LogLevel, DomainError> {
        match text.to_ascii_lowercase().as_str() {
            "warning" => Ok(LogLevel::Warn),
            "critical" | "fatal" => Ok(LogLevel::Error),
            other => other.parse(),
        }
    }
}

/// One log entry of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// When the runner logged it.
    pub timestamp: OffsetDateTime,
    /// Its level.
    pub level: LogLevel,
    /// The text (at most 64 KiB).
    pub message: String,
}

impl LogEntry {
    /// Longest message stored, in bytes.
    pub const MAX_MESSAGE_LEN: usize = 65_536;

    /// Builds an entry, refusing an oversized message.
    pub fn new(timestamp: OffsetDateTime, level: LogLevel, message: impl Into<String>) -> Result<Self, DomainError> {
        let message = message.into();
        if message.len() > Self::MAX_MESSAGE_LEN {
            return Err(DomainError::invalid(
                "message",
                format!("must be at most {} bytes", Self::MAX_MESSAGE_LEN),
            ));
        }
        Ok(LogEntry {
            timestamp,
            level,
            message,
        })
    }
}

string_enum!(
    /// Columns `GET /runs` can sort by.
    RunSortField, "sort" {
        /// Creation time.
        CreatedAt => "created_at",
        /// Start time.
        StartedAt => "started_at",
        /// Finish time.
        FinishedAt => "finished_at",
        /// Execution time.
        DurationMs => "duration_ms",
        /// Status.
        Status => "status",
    }
);

/// The `trigger` labels of the contract (§9), built in one place.
pub mod trigger_label {
    use super::*;

    /// Longest label the `runs.trigger` column stores.
    pub const MAX_LEN: usize = 512;

    /// A run started by a user.
    pub const MANUAL: &str = "manual";

    /// `schedule:{cron}`.
    pub fn schedule(cron: &str) -> String {
        format!("schedule:{cron}")
    }

    /// `trigger:pipeline_success:{ns}/{layer}/{name}` for the upstream pipeline.
    pub fn pipeline_success(upstream: &PipelineRef) -> String {
        format!("trigger:pipeline_success:{upstream}")
    }

    /// `trigger:landing_zone_upload:{ns}/{zone}`.
    pub fn landing_zone_upload(namespace: &NamespaceName, zone: &ZoneName) -> String {
        format!("trigger:landing_zone_upload:{namespace}/{zone}")
    }

    /// `trigger:file_pattern:{ns}/{zone}:{pattern}`.
    pub fn file_pattern(namespace: &NamespaceName, zone: &ZoneName, pattern: &str) -> String {
        format!("trigger:file_pattern:{namespace}/{zone}:{pattern}")
    }

    /// `trigger:webhook:{first 8 hex of the token hash}`.
    pub fn webhook(token_hash_hex: &str) -> String {
        let prefix: String = token_hash_hex.chars().take(8).collect();
        format!("trigger:webhook:{prefix}")
    }

    /// `trigger:cron:{expr}`.
    pub fn cron(expr: &str) -> String {
        format!("trigger:cron:{expr}")
    }

    /// `trigger:cron_dependency:{expr}`.
    pub fn cron_dependency(expr: &str) -> String {
        format!("trigger:cron_dependency:{expr}")
    }

    /// Checks a label given by a client (`POST /runs {trigger}`).
    pub fn parse_client_label(label: &str) -> Result<String, DomainError> {
        if label.is_empty() {
            return Err(DomainError::invalid("trigger", "must not be empty"));
        }
        // Characters, as the `runs.trigger` column counts them.
        if label.chars().count() > MAX_LEN {
            return Err(DomainError::invalid(
                "trigger",
                format!("must be at most {MAX_LEN} characters"),
            ));
        }
        if label.chars().any(char::is_control) {
            return Err(DomainError::invalid("trigger", "must not contain control characters"));
        }
        Ok(label.to_owned())
    }
}

/// Longest runner id (`runs.runner_id` is `VARCHAR(255)`).
pub const MAX_RUNNER_ID_LEN: usize = 255;

/// A runner's name as it reports it: non-empty, at most
/// [`MAX_RUNNER_ID_LEN`] characters, none of them a control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunnerId(String);

impl RunnerId {
    /// Checks a runner id given by a runner.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        if Self::is_valid(text) {
            Ok(RunnerId(text.to_owned()))
        } else {
            Err(DomainError::invalid(
                "runner_id",
                format!("must be 1 to {MAX_RUNNER_ID_LEN} characters without control characters"),
            ))
        }
    }

    /// The rule [`RunnerId::parse`] checks.
    pub fn is_valid(text: &str) -> bool {
        !text.is_empty() && text.chars().count() <= MAX_RUNNER_ID_LEN && !text.chars().any(char::is_control)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunnerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::RunStatus::*;
    use super::*;

    #[test]
    fn transition_table_is_exactly_the_design() {
        let allowed = [
            (Pending, Running),
            (Pending, Cancelled),
            (Pending, Failed),
            (Running, Success),
            (Running, Failed),
            (Running, Cancelled),
        ];
        for from in RunStatus::ALL {
            for to in RunStatus::ALL {
                let expected = allowed.contains(&(*from, *to));
                assert_eq!(from.can_transition_to(*to), expected, "{from} -> {to}");
                assert_eq!(from.check_transition(*to).is_ok(), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn terminal_statuses_never_move() {
        for from in RunStatus::ALL.iter().filter(|s| s.is_terminal()) {
            assert!(RunStatus::ALL.iter().all(|to| !from.can_transition_to(*to)));
        }
    }

    #[test]
    fn log_levels_accept_common_aliases() {
        assert_eq!(LogLevel::parse_lenient("WARNING").unwrap(), LogLevel::Warn);
        assert_eq!(LogLevel::parse_lenient("fatal").unwrap(), LogLevel::Error);
        assert_eq!(LogLevel::parse_lenient("Info").unwrap(), LogLevel::Info);
        assert!(LogLevel::parse_lenient("loud").is_err());
        let now = OffsetDateTime::UNIX_EPOCH;
        assert!(LogEntry::new(now, LogLevel::Info, "x".repeat(LogEntry::MAX_MESSAGE_LEN + 1)).is_err());
    }

    #[test]
    fn labels_follow_the_contract() {
        let upstream = PipelineRef::parse("ns", "bronze", "raw").unwrap();
        assert_eq!(
            trigger_label::pipeline_success(&upstream),
            "trigger:pipeline_success:ns/bronze/raw"
        );
        assert_eq!(trigger_label::webhook("0123456789abcdef"), "trigger:webhook:01234567");
        assert_eq!(trigger_label::schedule("*/5 * * * *"), "schedule:*/5 * * * *");
        let ns = NamespaceName::parse("ns").unwrap();
        let zone = ZoneName::parse("uploads").unwrap();
        assert_eq!(
            trigger_label::file_pattern(&ns, &zone, "*.csv"),
            "trigger:file_pattern:ns/uploads:*.csv"
        );
    }
}
