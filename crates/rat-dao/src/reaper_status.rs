//! `reaper_status`: the reaper's singleton status row.
