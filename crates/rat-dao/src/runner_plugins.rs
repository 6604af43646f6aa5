//! `runner_plugins`: the plugins each runner reported it can load, the
//! latest report per runner, with its time.

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::DaoError;
use crate::GenericClient;
use crate::sql;

/// A plugin a runner can load (a Python entry point of RAT's runner).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunnerPlugin {
    /// Entry point name (`soft_delete`).
    pub name: String,
    /// Entry point group.
    pub group: String,
    /// The providing package's version.
    pub version: String,
    /// The providing package.
    pub package_name: String,
}

/// Most distinct plugins [`list_live`] returns.
pub const MAX_LISTED: i64 = 1000;

/// Replaces `runner`'s report with `plugins`, reported at `now`.
pub async fn report(
    client: &impl GenericClient,
    runner: &str,
    plugins: &[RunnerPlugin],
    now: OffsetDateTime,
) -> Result<(), DaoError> {
    let plugins = Value::Array(
        plugins
            .iter()
            .map(|p| json!({"name": p.name, "group": p.group, "version": p.version, "package_name": p.package_name}))
            .collect(),
    );
    sql::execute(
        client,
        "INSERT INTO runner_plugins (runner_id, plugins, reported_at) VALUES ($1, $2, $3) \
         ON CONFLICT (runner_id) DO UPDATE SET plugins = EXCLUDED.plugins, reported_at = EXCLUDED.reported_at",
        &[&runner, &plugins, &now],
    )
    .await?;
    Ok(())
}

/// The distinct plugins of every report made at or after `since`, ordered
/// by group, name, version and package; at most [`MAX_LISTED`].
pub async fn list_live(client: &impl GenericClient, since: OffsetDateTime) -> Result<Vec<RunnerPlugin>, DaoError> {
    let rows = sql::query(
        client,
        "SELECT DISTINCT COALESCE(p->>'group', '') AS plugin_group, COALESCE(p->>'name', '') AS name, \
                COALESCE(p->>'version', '') AS version, COALESCE(p->>'package_name', '') AS package_name \
         FROM runner_plugins r CROSS JOIN LATERAL jsonb_array_elements(r.plugins) AS p \
         WHERE r.reported_at >= $1 \
         ORDER BY plugin_group, name, version, package_name LIMIT $2",
        &[&since, &MAX_LISTED],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RunnerPlugin {
                name: row.try_get("name")?,
                group: row.try_get("plugin_group")?,
                version: row.try_get("version")?,
                package_name: row.try_get("package_name")?,
            })
        })
        .collect()
}
