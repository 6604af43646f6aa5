//! `plugins`: registered plugins (keyed by name) and their last known health.

use crate::GenericClient;
use rat_domain::{Page, PageRequest, Plugin, PluginName, PluginStatus};
use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

const COLUMNS: &str = "name, slot, image, status, config, last_health, created_at";

fn from_row(row: &Row) -> Result<Plugin, DaoError> {
    Ok(Plugin {
        name: sql::parse_column(row, "name")?,
        slot: row.try_get("slot")?,
        image: row.try_get("image")?,
        status: sql::parse_column(row, "status")?,
        // The column is nullable (as in the seed) but defaults to `{}`; a NULL
        // written by hand reads as that default.
        config: row
            .try_get::<_, Option<Value>>("config")?
            .unwrap_or_else(|| Value::Object(Default::default())),
        last_health: row.try_get("last_health")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Registers a plugin, or re-registers it: an existing plugin gets the new
/// slot, image and config and keeps its status, last health check and
/// registration time. A new plugin starts `unknown`.
pub async fn register(
    client: &impl GenericClient,
    name: &PluginName,
    slot: &str,
    image: &str,
    config: &Value,
) -> Result<Plugin, DaoError> {
    let row = sql::query_one(
        client,
        "plugin",
        &format!(
            "INSERT INTO plugins (name, slot, image, config) VALUES ($1, $2, $3, $4) \
             ON CONFLICT ON CONSTRAINT pk_plugins DO UPDATE SET \
                slot = EXCLUDED.slot, image = EXCLUDED.image, config = EXCLUDED.config \
             RETURNING {COLUMNS}"
        ),
        &[&name.as_str(), &slot, &image, config],
    )
    .await?;
    from_row(&row)
}

/// The plugin called `name`.
pub async fn get(client: &impl GenericClient, name: &PluginName) -> Result<Plugin, DaoError> {
    let row = sql::query_one(
        client,
        "plugin",
        &format!("SELECT {COLUMNS} FROM plugins WHERE name = $1"),
        &[&name.as_str()],
    )
    .await?;
    from_row(&row)
}

/// Plugins (all, or only those with `status`), ordered by name, one page,
/// with the total.
pub async fn list(
    client: &impl GenericClient,
    status: Option<PluginStatus>,
    page: PageRequest,
) -> Result<Page<Plugin>, DaoError> {
    let status = status.map(PluginStatus::as_str);
    let mut conditions = Conditions::new();
    conditions.push_opt("status = $?", &status);
    // The name is the primary key, so it is its own tiebreak.
    let order = OrderBy {
        columns: &["name"],
        descending: false,
    };
    sql::fetch_page(client, COLUMNS, "plugins", &conditions, order, page, from_row).await
}

/// Records the outcome of a health check made at `at`.
pub async fn record_health(
    client: &impl GenericClient,
    name: &PluginName,
    status: PluginStatus,
    at: OffsetDateTime,
) -> Result<Plugin, DaoError> {
    let row = sql::query_one(
        client,
        "plugin",
        &format!("UPDATE plugins SET status = $2, last_health = $3 WHERE name = $1 RETURNING {COLUMNS}"),
        &[&name.as_str(), &status.as_str(), &at],
    )
    .await?;
    from_row(&row)
}

/// Unregisters a plugin.
pub async fn delete(client: &impl GenericClient, name: &PluginName) -> Result<(), DaoError> {
    let deleted = sql::execute(client, "DELETE FROM plugins WHERE name = $1", &[&name.as_str()])
        .await
        .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound { entity: "plugin" });
    }
    Ok(())
}

/// Marks `down` the plugins (at most `limit`) that are not `down` and have
/// not reported since `cutoff`: their last health report, or their
/// registration when they never reported. Returns their names.
pub async fn mark_silent_down(
    client: &impl GenericClient,
    cutoff: OffsetDateTime,
    limit: i64,
) -> Result<Vec<PluginName>, DaoError> {
    let rows = sql::query(
        client,
        "UPDATE plugins SET status = 'down' WHERE name IN ( \
             SELECT name FROM plugins \
             WHERE status <> 'down' AND COALESCE(last_health, created_at) < $1 \
             ORDER BY name LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING name",
        &[&cutoff, &limit],
    )
    .await?;
    rows.iter().map(|row| sql::parse_column(row, "name")).collect()
}
