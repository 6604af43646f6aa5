//! Reading the audit log (rows are written by the api's audit layer).

use rat_dao::audit::{self, AuditFilter};
use rat_domain::{AuditEntry, Page, PageRequest};

use crate::{ServiceError, Services};

/// Entries matching `filter`, newest first, one page, with the total.
pub async fn list(
    services: &Services,
    filter: &AuditFilter,
    page: PageRequest,
) -> Result<Page<AuditEntry>, ServiceError> {
    let client = services.pool.get().await?;
    Ok(audit::list(&client, filter, page).await?)
}
