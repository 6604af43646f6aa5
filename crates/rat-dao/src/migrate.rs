//! Schema migrations: the SQL files of `migrations/`, embedded at build time and
//! applied by refinery under a Postgres advisory lock.
//!
//! Any number of processes may call [`migrate`] at once against one database:
//! the first takes the lock and applies what is pending, the others wait for
//! the lock, find nothing pending, and succeed.

use std::time::Duration;

use crate::{DaoError, connect_dedicated};

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// The advisory lock key that serializes migrations ("RATMIGR" in ASCII).
pub const MIGRATION_LOCK_KEY: i64 = 0x0052_4154_4d49_4752;

/// How long a process waits for another one's migration before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(300);

/// What a migration call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// `(version, name)` of each migration this call applied, in order.
    pub applied: Vec<(i32, String)>,
}

/// The embedded migrations ordered by version. refinery hands them out in the
/// order the build found the files, which is not numeric (`V10` can come
/// before `V2`); it sorts them itself only when it runs them.
fn sorted_migrations() -> Vec<refinery::Migration> {
    let mut migrations = embedded::migrations::runner().get_migrations().clone();
    migrations.sort_by_key(|m| m.version());
    migrations
}

/// `(version, name)` of every embedded migration, in version order.
pub fn embedded_migrations() -> Vec<(i32, String)> {
    sorted_migrations()
        .iter()
        .map(|m| (m.version(), m.name().to_owned()))
        .collect()
}

/// A fingerprint of the embedded migrations (versions, names and contents);
/// test tooling names its template databases after it.
pub fn schema_fingerprint() -> u64 {
    // FNV-1a over the checksums refinery computes: stable across builds.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in sorted_migrations() {
        for byte in migration.checksum().to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Applies every pending migration, holding the migration advisory lock on a
/// dedicated connection for the duration. All pending migrations apply in one
/// transaction: a failure leaves the schema as it was.
pub async fn migrate(database_url: &str) -> Result<MigrationReport, DaoError> {
    let mut client = connect_dedicated(database_url, "rat-migrate").await?;
    client
        .batch_execute(&format!("SET lock_timeout = '{}s'", LOCK_WAIT.as_secs()))
        .await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let result = embedded::migrations::runner()
        .set_grouped(true)
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run_async(&mut client)
        .await;
    // Unlock explicitly; closing the connection would release the lock too.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    let report = result.map_err(|e| DaoError::Migration { reason: e.to_string() })?;
    unlock?;
    let applied: Vec<(i32, String)> = report
        .applied_migrations()
        .iter()
        .map(|m| (m.version(), m.name().to_owned()))
        .collect();
    for (version, name) in &applied {
        tracing::info!(version, name = %name, "applied migration");
    }
    Ok(MigrationReport { applied })
}
