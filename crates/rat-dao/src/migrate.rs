//! Schema migrations: the SQL files of `migrations/`, embedded at build time and
//! applied by refinery under a Postgres advisory lock.
//!
//! Any number of processes may call [`migrate`] at once against one database:
//! the first takes the lock and applies what is pending, the others wait for
//! the lock, find nothing pending, and succeed.

use std::time::Duration;

use crate::DaoError;
use crate::connect::{Database, SchemaName, check_schema};

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

/// Applies every pending migration of `database`'s schema (creating the
/// schema when it is missing), holding the schema's migration advisory lock
/// on a dedicated direct session for the duration: migrating one tenant
/// never waits for another. All pending migrations apply in one
/// transaction: a failure leaves the schema as it was. Run it as the role
/// that owns the schema.
pub async fn migrate(database: &Database) -> Result<MigrationReport, DaoError> {
    let mut client = database.connect_session_unchecked("rat-migrate").await?;
    client
        .batch_execute(&format!("SET lock_timeout = '{}s'", LOCK_WAIT.as_secs()))
        .await?;
    let schema = database.schema.as_str();
    client
        .execute(
            concat!(
                "SELECT pg_advisory_lock(",
                scoped_lock_key!("$1::int8", "$2::text"),
                ")"
            ),
            &[&MIGRATION_LOCK_KEY, &schema],
        )
        .await?;
    let result = async {
        ensure_schema(&client, &database.schema).await?;
        let report = embedded::migrations::runner()
            .set_grouped(true)
            .set_abort_divergent(true)
            .set_abort_missing(true)
            .run_async(&mut client)
            .await
            .map_err(|e| DaoError::Migration { reason: e.to_string() })?;
        client.batch_execute(HISTORY_READ_ONLY).await?;
        Ok::<_, DaoError>(report)
    }
    .await;
    // Unlock explicitly; closing the connection would release the lock too.
    let unlock = client
        .execute(
            concat!(
                "SELECT pg_advisory_unlock(",
                scoped_lock_key!("$1::int8", "$2::text"),
                ")"
            ),
            &[&MIGRATION_LOCK_KEY, &schema],
        )
        .await;
    let report = result?;
    unlock?;
    let applied: Vec<(i32, String)> = report
        .applied_migrations()
        .iter()
        .map(|m| (m.version(), m.name().to_owned()))
        .collect();
    for (version, name) in &applied {
        tracing::info!(version, name = %name, schema, "applied migration");
    }
    Ok(MigrationReport { applied })
}

/// Leaves the migration history of the session's schema writable by its
/// owner only: whoever else was granted more than `SELECT` on it (the app
/// role, through the owner's default privileges, when the first migration
/// created it) keeps `SELECT` alone, so only a migration records a version.
/// Grantee names come from the catalog and are quoted by Postgres.
const HISTORY_READ_ONLY: &str = "DO $$
DECLARE
    grantee_name text;
BEGIN
    FOR grantee_name IN
        SELECT DISTINCT g.grantee FROM information_schema.role_table_grants g
        JOIN pg_tables t ON t.schemaname = g.table_schema AND t.tablename = g.table_name
        WHERE g.table_schema = current_schema() AND g.table_name = 'refinery_schema_history'
          AND g.privilege_type <> 'SELECT' AND g.grantee <> t.tableowner
    LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON refinery_schema_history FROM %s',
                       CASE WHEN grantee_name = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(grantee_name) END);
        EXECUTE format('GRANT SELECT ON refinery_schema_history TO %s',
                       CASE WHEN grantee_name = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(grantee_name) END);
    END LOOP;
END $$";

/// Creates `schema` when it does not exist (owned by the role connected),
/// then checks the session is in it.
async fn ensure_schema(client: &tokio_postgres::Client, schema: &SchemaName) -> Result<(), DaoError> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema.as_str()])
        .await?
        .is_some();
    if !exists {
        // A validated name, quoted: nothing in it comes from a request.
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", schema.quoted()))
            .await
            .map_err(|e| DaoError::Migration {
                reason: format!(
                    "schema {} does not exist and cannot be created by this role ({}): create it with \
                     `cargo xtask db tenant create {}`, or migrate as a role that may",
                    schema.as_str(),
                    e.as_db_error().map_or("connection failed", |db| db.message()),
                    schema.as_str()
                ),
            })?;
        tracing::info!(schema = schema.as_str(), "created the schema");
    }
    check_schema(client, schema).await
}

/// How a database's schema compares with the migrations this build embeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// Every embedded migration is applied, and nothing newer.
    UpToDate {
        /// The schema's version.
        version: i32,
    },
    /// Migrations this build needs are not applied yet.
    Older {
        /// The schema's version (0: none applied).
        found: i32,
        /// The version this build needs.
        needed: i32,
    },
    /// The schema was migrated by a newer build.
    Newer {
        /// The schema's version.
        found: i32,
        /// The newest version this build knows.
        known: i32,
    },
}

/// The version of `database`'s schema against this build's migrations
/// (read over a direct session, so it works before any pool exists).
pub async fn schema_state(database: &Database) -> Result<SchemaState, DaoError> {
    let client = database.connect_session("rat-schema-check").await?;
    let found: i32 = client
        .query_one(
            "SELECT CASE WHEN to_regclass('refinery_schema_history') IS NULL THEN 0 \
                    ELSE (SELECT coalesce(max(version), 0) FROM refinery_schema_history) END",
            &[],
        )
        .await?
        .get(0);
    let known = sorted_migrations().last().map_or(0, |m| m.version());
    Ok(match found.cmp(&known) {
        std::cmp::Ordering::Equal => SchemaState::UpToDate { version: found },
        std::cmp::Ordering::Less => SchemaState::Older { found, needed: known },
        std::cmp::Ordering::Greater => SchemaState::Newer { found, known },
    })
}
