//! The audit log: recording what was done (the api's audit layer calls
//! [`record`] once per mutation) and reading it back.

use rat_dao::audit;
pub use rat_dao::audit::AuditFilter;
pub use rat_dao::audit::NewAuditEntry;
use rat_domain::{AuditEntry, FeatureFlags, Page, PageRequest};
use time::OffsetDateTime;

use crate::{ServiceError, Services};

/// Entries matching `filter`, newest first, one page, with the total.
/// Admins only: the log names every user and everything they did.
pub async fn list(
    services: &Services,
    caller: &crate::identity::Caller,
    filter: &AuditFilter,
    page: PageRequest,
) -> Result<Page<AuditEntry>, ServiceError> {
    caller.require_admin("reading the audit log")?;
    let client = services.pool.get().await?;
    Ok(audit::list(&client, filter, page).await?)
}

/// Records `entries` stamped `now`, on one connection, unless the
/// `audit_log` feature flag is off (then nothing is written). `flags` are
/// the feature flags when the caller already read them for this request
/// (so a write reads them once); `None` reads them. Returns how many rows
/// were written.
pub async fn record(
    services: &Services,
    entries: &[NewAuditEntry],
    flags: Option<&FeatureFlags>,
    now: OffsetDateTime,
) -> Result<usize, ServiceError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let client = services.pool.get().await?;
    let audit_log = match flags {
        Some(flags) => flags.audit_log,
        None => rat_dao::settings::feature_flags(&client).await?.audit_log,
    };
    if !audit_log {
        return Ok(0);
    }
    for entry in entries {
        audit::insert(&client, entry, now).await?;
    }
    Ok(entries.len())
}
