//! `platform_settings`: retention settings and feature flags, stored as JSON
//! values under fixed keys and read back leniently through their domain types.

use crate::GenericClient;
use rat_domain::{DomainError, FeatureFlags, RetentionSettings};
use serde_json::Value;

use crate::DaoError;
use crate::sql;

/// The key of the retention settings.
pub const RETENTION_KEY: &str = "retention";

/// The key of the feature flags.
pub const FEATURE_FLAGS_KEY: &str = "feature_flags";

/// The value stored under `key`, if any.
pub async fn get(client: &impl GenericClient, key: &str) -> Result<Option<Value>, DaoError> {
    let row = sql::query_opt(client, "SELECT value FROM platform_settings WHERE key = $1", &[&key]).await?;
    Ok(row.map(|row| row.try_get("value")).transpose()?)
}

/// Stores `value` under `key`, replacing any previous value.
pub async fn put(client: &impl GenericClient, key: &str, value: &Value) -> Result<(), DaoError> {
    sql::execute(
        client,
        "INSERT INTO platform_settings (key, value) VALUES ($1, $2) \
         ON CONFLICT ON CONSTRAINT pk_platform_settings DO UPDATE SET value = EXCLUDED.value",
        &[&key, value],
    )
    .await?;
    Ok(())
}

/// Reads stored retention settings, or reports their absence.
fn retention_from(stored: Option<&Value>) -> (RetentionSettings, Vec<String>) {
    match stored {
        Some(value) => RetentionSettings::from_stored(value),
        None => (
            RetentionSettings::default(),
            vec!["retention settings are not stored; using defaults".to_owned()],
        ),
    }
}

/// The effective retention settings and the problems met reading them: a
/// missing row, key or out-of-range value is replaced by its default and
/// reported (for the caller to log), never used.
pub async fn retention(client: &impl GenericClient) -> Result<(RetentionSettings, Vec<String>), DaoError> {
    Ok(retention_from(get(client, RETENTION_KEY).await?.as_ref()))
}

/// Stores complete retention settings (every key).
pub async fn put_retention(client: &impl GenericClient, settings: &RetentionSettings) -> Result<(), DaoError> {
    put(client, RETENTION_KEY, &settings.to_json()).await
}

/// Applies a client's partial retention update (`PUT /admin/retention/config`)
/// and returns the new settings.
///
/// The stored row is read `FOR UPDATE`, merged with `patch` by
/// [`RetentionSettings::merged_with`] and written back complete, so missing
/// keys keep their current value and a stored value that was invalid is
/// replaced by its default. Run it in a transaction: the row lock is what
/// keeps two concurrent updates from losing one another's keys, and outside
/// a transaction it is released as soon as the SELECT ends.
///
/// The outer `Result` is the database's; the inner one is the patch's: an
/// `Err(DomainError)` (unknown key, non-integer, out of range) means no
/// setting changed (a missing row is created with the defaults, which were in
/// effect anyway), and its message is safe to answer with a 400. Keeping the two
/// apart keeps validation out of [`DaoError`] and keeps the precise reason,
/// which an `Invalid { constraint }` could not carry.
pub async fn update_retention(
    client: &impl GenericClient,
    patch: &Value,
) -> Result<Result<RetentionSettings, DomainError>, DaoError> {
    let stored = match locked_retention(client).await? {
        Some(value) => value,
        None => {
            // With no row there is nothing to lock, and two updates merging
            // with the defaults would each overwrite the other's keys. Create
            // the row with the defaults (a concurrent creator makes this wait,
            // then do nothing), then lock it like any stored row.
            sql::execute(
                client,
                "INSERT INTO platform_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&RETENTION_KEY, &RetentionSettings::default().to_json()],
            )
            .await?;
            locked_retention(client)
                .await?
                .ok_or(DaoError::NotFound { entity: "setting" })?
        }
    };
    let (current, _problems) = RetentionSettings::from_stored(&stored);
    let next = match current.merged_with(patch) {
        Ok(next) => next,
        Err(refused) => return Ok(Err(refused)),
    };
    put_retention(client, &next).await?;
    Ok(Ok(next))
}

/// The stored retention value, locked until the end of the transaction.
async fn locked_retention(client: &impl GenericClient) -> Result<Option<Value>, DaoError> {
    let row = sql::query_opt(
        client,
        "SELECT value FROM platform_settings WHERE key = $1 FOR UPDATE",
        &[&RETENTION_KEY],
    )
    .await?;
    Ok(row.map(|row| row.try_get("value")).transpose()?)
}

/// The feature flags; a missing row, flag or non-boolean reads as on.
pub async fn feature_flags(client: &impl GenericClient) -> Result<FeatureFlags, DaoError> {
    Ok(get(client, FEATURE_FLAGS_KEY)
        .await?
        .map_or_else(FeatureFlags::default, |value| FeatureFlags::from_stored(&value)))
}

/// Stores the feature flags (every flag).
pub async fn put_feature_flags(client: &impl GenericClient, flags: &FeatureFlags) -> Result<(), DaoError> {
    put(client, FEATURE_FLAGS_KEY, &flags.to_json()).await
}
