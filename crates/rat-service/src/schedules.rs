//! Cron schedules: create and update with `next_run_at` recomputed.
