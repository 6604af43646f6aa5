//! The reaper's status row: when it last ran and its cumulative counters.

use time::OffsetDateTime;

/// The singleton `reaper_status` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaperStatus {
    /// Start of the last pass that finished (a request made while it ran is
    /// later, so it is still owed).
    pub last_run_at: Option<OffsetDateTime>,
    /// The cumulative counters.
    pub counters: ReaperCounters,
    /// What the last finished pass (the one that began at `last_run_at`)
    /// did; zeros before the first.
    pub last_pass: ReaperCounters,
    /// Last update of the row.
    pub updated_at: Option<OffsetDateTime>,
    /// When a pass was last asked for (`POST /admin/retention/run`).
    pub run_requested_at: Option<OffsetDateTime>,
}

impl ReaperStatus {
    /// True when a pass was asked for after the last pass began (or before
    /// any pass ran): the reaper owes a pass.
    pub fn run_requested(&self) -> bool {
        match (self.run_requested_at, self.last_run_at) {
            (Some(requested), Some(last)) => requested > last,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// When the next pass is due, passes being `interval` apart.
    pub fn next_pass(&self, interval: time::Duration, now: OffsetDateTime) -> NextPass {
        if self.run_requested() {
            return NextPass::Now { requested: true };
        }
        match self.last_run_at {
            None => NextPass::Now { requested: false },
            Some(last) => match last.checked_add(interval) {
                Some(due) if due > now => NextPass::At(due),
                // Due, or so far ahead it cannot be written down: a pass now
                // is the safe side of an unrepresentable time.
                _ => NextPass::Now { requested: false },
            },
        }
    }
}

/// When the reaper owes its next pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextPass {
    /// Now; `requested` when someone asked for it (else the interval is up,
    /// or no pass ever ran).
    Now {
        /// Asked for through `POST /admin/retention/run`.
        requested: bool,
    },
    /// At this time, unless asked for earlier.
    At(OffsetDateTime),
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

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const HOUR: time::Duration = time::Duration::hours(1);

    fn status(last: Option<OffsetDateTime>, requested: Option<OffsetDateTime>) -> ReaperStatus {
        ReaperStatus {
            last_run_at: last,
            run_requested_at: requested,
            ..ReaperStatus::default()
        }
    }

    #[test]
    fn a_reaper_that_never_ran_is_due() {
        let now = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(
            status(None, None).next_pass(HOUR, now),
            NextPass::Now { requested: false }
        );
        assert_eq!(
            status(None, Some(now)).next_pass(HOUR, now),
            NextPass::Now { requested: true }
        );
    }

    #[test]
    fn the_next_pass_is_an_interval_after_the_last() {
        let last = datetime!(2026-01-01 00:00 UTC);
        let s = status(Some(last), None);
        assert_eq!(
            s.next_pass(HOUR, last + time::Duration::minutes(59)),
            NextPass::At(last + HOUR)
        );
        assert_eq!(s.next_pass(HOUR, last + HOUR), NextPass::Now { requested: false });
        assert_eq!(s.next_pass(HOUR, last + 2 * HOUR), NextPass::Now { requested: false });
    }

    #[test]
    fn a_request_after_the_last_pass_began_is_owed_one_before_it_is_served() {
        let last = datetime!(2026-01-01 00:00 UTC);
        let before = status(Some(last), Some(last - time::Duration::SECOND));
        assert_eq!(before.next_pass(HOUR, last), NextPass::At(last + HOUR));
        let after = status(Some(last), Some(last + time::Duration::SECOND));
        assert_eq!(after.next_pass(HOUR, last), NextPass::Now { requested: true });
    }

    #[test]
    fn an_interval_past_the_end_of_time_means_now() {
        let s = status(Some(datetime!(9999-12-31 23:00 UTC)), None);
        assert_eq!(
            s.next_pass(time::Duration::days(7), datetime!(9999-12-31 23:30 UTC)),
            NextPass::Now { requested: false }
        );
    }
}
