//! The reaper's status row: when it last ran and its cumulative counters.

use time::OffsetDateTime;

/// The singleton `reaper_status` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaperStatus {
    /// End of the last pass.
    pub last_run_at: Option<OffsetDateTime>,
    /// The cumulative counters.
    pub counters: ReaperCounters,
    /// Last update of the row.
    pub updated_at: Option<OffsetDateTime>,
    /// When a pass was last asked for (`POST /admin/retention/run`).
    pub run_requested_at: Option<OffsetDateTime>,
}

impl ReaperStatus {
    /// True when a pass was asked for after the last pass ended (or before
    /// any pass ran): the reaper owes a pass.
    pub fn run_requested(&self) -> bool {
        match (self.run_requested_at, self.last_run_at) {
            (Some(requested), Some(last)) => requested > last,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// What one pass did, or the cumulative totals of all passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaperCounters {
    /// Runs deleted.
    pub runs_pruned: i64,
    /// Run logs cleared.
    pub logs_pruned: i64,
    /// Quality results deleted.
    pub quality_pruned: i64,
    /// Soft-deleted pipelines purged.
    pub pipelines_purged: i64,
    /// Stuck runs marked failed.
    pub runs_failed: i64,
    /// Orphan branches deleted.
    pub branches_cleaned: i64,
    /// Landing files purged.
    pub lz_files_cleaned: i64,
    /// Audit entries deleted.
    pub audit_pruned: i64,
}
