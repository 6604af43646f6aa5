//! The audit log: recording what was done (the api's audit layer calls
//! [`record`] once per mutation) and reading it back.

use rat_dao::audit;
pub use rat_dao::audit::AuditFilter;
pub use rat_dao::audit::NewAuditEntry;
use rat_domain::{AuditEntry, Cursor, FeatureFlags, PageRequest};
use time::OffsetDateTime;

use crate::paging::{self, CursorPage};
use crate::{ServiceError, Services};

/// The scope of the audit log's cursors.
const CURSOR_SCOPE: &str = "audit:-timestamp";

/// Entries matching `filter`, newest first, one page, with the total and
/// the cursor of the next page; after the entry `cursor` names when given.
/// Admins only: the log names every user and everything they did.
pub async fn list(
    services: &Services,
    caller: &crate::identity::Caller,
    filter: &AuditFilter,
    page: PageRequest,
    cursor: Option<&str>,
) -> Result<CursorPage<AuditEntry>, ServiceError> {
    caller.require_admin("reading the audit log")?;
    let after = paging::decode(Some(CURSOR_SCOPE), cursor)?;
    let client = services.pool.get().await?;
    let listed = audit::list(&client, filter, page, after).await?;
    Ok(paging::page(listed, Some(CURSOR_SCOPE), |entry| Cursor {
        at: entry.timestamp,
        id: entry.id,
    }))
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

/// Most entries a [`Spool`] holds; beyond it the oldest are dropped (and
/// logged), so an outage cannot grow memory without bound.
pub const SPOOL_CAPACITY: usize = 10_000;

/// Audit entries whose write failed after their action had been done (the
/// database went away between the action and its audit row), kept in memory
/// and written again by [`Spool::flush`] once the database answers, each
/// stamped with the time of its action. Without it, a mutation that
/// answered 2xx during a database restart could have no audit row.
#[derive(Debug, Default)]
pub struct Spool {
    entries: std::sync::Mutex<std::collections::VecDeque<(NewAuditEntry, OffsetDateTime)>>,
}

impl Spool {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(NewAuditEntry, OffsetDateTime)>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps `entry`, stamped `at`, to be written by the next flush.
    pub fn push(&self, entry: NewAuditEntry, at: OffsetDateTime) {
        let mut entries = self.lock();
        if entries.len() >= SPOOL_CAPACITY
            && let Some((dropped, at)) = entries.pop_front()
        {
            tracing::error!(action = %dropped.action, actor = %dropped.actor, %at,
                "the audit spool is full: dropped its oldest entry");
        }
        entries.push_back((entry, at));
    }

    /// How many entries wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Writes the waiting entries, oldest first, each with its own time;
    /// stops at the first failure, keeping it and the rest (ahead of any
    /// pushed meanwhile). Returns how many were written.
    pub async fn flush(&self, services: &Services) -> Result<usize, ServiceError> {
        let waiting: Vec<_> = self.lock().drain(..).collect();
        let mut written = 0;
        let mut rest = waiting.into_iter();
        while let Some((entry, at)) = rest.next() {
            if let Err(e) = record(services, std::slice::from_ref(&entry), None, at).await {
                let mut entries = self.lock();
                for kept in std::iter::once((entry, at)).chain(rest).rev() {
                    entries.push_front(kept);
                }
                return Err(e);
            }
            written += 1;
        }
        Ok(written)
    }
}
