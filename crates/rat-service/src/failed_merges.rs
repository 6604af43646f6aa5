//! Merge failures RAT's runner reports (`POST /api/v1/internal/failed-merges`):
//! checked, stored, listed to admins; the reaper prunes them with the audit
//! log's age.

pub use rat_dao::failed_merges::{FailedMerge, NewFailedMerge};
use rat_domain::text::check_text_len;
use rat_domain::{Page, PageRequest};
use time::OffsetDateTime;

use crate::identity::Caller;
use crate::{ServiceError, Services};

/// Longest short field (run id, branch, hashes, kind), in characters.
pub const MAX_FIELD_CHARS: usize = 255;
/// Longest error message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 65_536;

/// Checks a report: the required fields present and not blank, every field
/// within its length.
pub fn check(report: &NewFailedMerge) -> Result<(), ServiceError> {
    for (field, value) in [
        ("run_id", &report.run_id),
        ("branch_name", &report.branch_name),
        ("error_kind", &report.error_kind),
    ] {
        if value.trim().is_empty() {
            return Err(ServiceError::invalid(format!("{field} is required")));
        }
        check_text_len(field, value, MAX_FIELD_CHARS)?;
    }
    for (field, value) in [
        ("source_hash", &report.source_hash),
        ("target_hash", &report.target_hash),
    ] {
        if let Some(value) = value {
            check_text_len(field, value, MAX_FIELD_CHARS)?;
        }
    }
    check_text_len("error_message", &report.error_message, MAX_MESSAGE_CHARS)?;
    Ok(())
}

/// Stores a runner's report of a merge that failed, made at `now`.
#[tracing::instrument(skip(services, report), fields(run_id = %report.run_id, branch = %report.branch_name))]
pub async fn record(
    services: &Services,
    report: &NewFailedMerge,
    now: OffsetDateTime,
) -> Result<FailedMerge, ServiceError> {
    check(report)?;
    let client = services.pool.get().await?;
    let stored = rat_dao::failed_merges::insert(&client, report, now).await?;
    tracing::warn!(error_kind = %report.error_kind, "a runner reported a failed merge");
    Ok(stored)
}

/// Merge failures, newest first, one page, with the total. Admins only.
pub async fn list(services: &Services, caller: &Caller, page: PageRequest) -> Result<Page<FailedMerge>, ServiceError> {
    caller.require_admin("reading failed merges")?;
    let client = services.pool.get().await?;
    Ok(rat_dao::failed_merges::list(&client, page).await?)
}
