//! `schedules`: cron schedules of pipelines.
