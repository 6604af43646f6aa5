//! Retention settings, reaper status and on-demand passes, per-pipeline overrides.
