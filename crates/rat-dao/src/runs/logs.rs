//! Run logs: entries appended by runners and read back in order, the seed's
//! legacy log array, and the notifications that wake live log streams.

use crate::GenericClient;
use rat_domain::RunId;
use rat_domain::{LogEntry, RunStatus};
use time::OffsetDateTime;

use crate::DaoError;
use crate::sql;

/// `NOTIFY` channel announcing new log entries of a run (payload: the run id),
/// sent in the appending transaction: live log streams listen on it.
pub const LOG_CHANNEL: &str = "rat_run_logs";

/// `NOTIFY` channel announcing that a run reached a terminal status (payload:
/// the run id), sent in the transaction that records the status: live log
/// streams end on it, and trigger evaluation reacts to successes.
pub const STATUS_CHANNEL: &str = "rat_run_status";

/// Most entries one append may carry.
pub const MAX_LOG_BATCH: usize = 1000;

/// Appends log entries to the run, in order, in one statement; returns the
/// id of the last entry (entries of a run are read back in id order). At
/// most [`MAX_LOG_BATCH`] entries per call. `NotFound` for an unknown run.
pub async fn append_log_entries(client: &impl GenericClient, id: RunId, entries: &[LogEntry]) -> Result<i64, DaoError> {
    if entries.is_empty() || entries.len() > MAX_LOG_BATCH {
        return Err(DaoError::Invalid {
            constraint: "log_batch_size".to_owned(),
        });
    }
    let timestamps: Vec<OffsetDateTime> = entries.iter().map(|e| e.timestamp).collect();
    let levels: Vec<&str> = entries.iter().map(|e| e.level.as_str()).collect();
    let messages: Vec<&str> = entries.iter().map(|e| e.message.as_str()).collect();
    // WITH ORDINALITY keeps the batch's order in the identity column.
    let rows = sql::query(
        client,
        "INSERT INTO run_logs (run_id, timestamp, level, message) \
         SELECT $1, t, l, m FROM unnest($2::timestamptz[], $3::text[], $4::text[]) WITH ORDINALITY AS e(t, l, m, n) \
         ORDER BY n \
         RETURNING id",
        &[&id, &timestamps, &levels, &messages],
    )
    .await
    .map_err(|e| match e {
        DaoError::MissingReference { .. } => DaoError::NotFound { entity: "run" },
        other => other,
    })?;
    let mut last = 0;
    for row in &rows {
        last = last.max(row.try_get::<_, i64>("id")?);
    }
    sql::notify(client, LOG_CHANNEL, id).await?;
    Ok(last)
}

/// Up to `limit` log entries of the run with an id above `after`, in order,
/// each with its id (the cursor of a live stream).
pub async fn log_entries_after(
    client: &impl GenericClient,
    id: RunId,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, LogEntry)>, DaoError> {
    let rows = sql::query(
        client,
        "SELECT id, timestamp, level, message FROM run_logs WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        &[&id, &after, &limit],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("id")?,
                LogEntry {
                    timestamp: row.try_get("timestamp")?,
                    level: sql::parse_column(row, "level")?,
                    message: row.try_get("message")?,
                },
            ))
        })
        .collect()
}

/// The run's logs in the seed's shape (`runs.logs`, a JSON array written by
/// older writers or imports; empty when none) and its status.
pub async fn legacy_logs(client: &impl GenericClient, id: RunId) -> Result<(serde_json::Value, RunStatus), DaoError> {
    let row = sql::query_one(
        client,
        "run",
        "SELECT COALESCE(logs, '[]'::jsonb) AS logs, status FROM runs WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok((row.try_get("logs")?, sql::parse_column(&row, "status")?))
}

/// What a [`RunEvents`] listener hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    /// New log entries of the run were committed ([`LOG_CHANNEL`]).
    Logs(RunId),
    /// The run reached a terminal status ([`STATUS_CHANNEL`]).
    Finished(RunId),
}

impl RunEvent {
    /// The event a notification on [`LOG_CHANNEL`] or [`STATUS_CHANNEL`]
    /// carries; `None` for another channel or a payload without a run id.
    pub fn from_notification(notification: &crate::listen::Notification) -> Option<RunEvent> {
        let Ok(id) = notification.payload.parse::<RunId>() else {
            tracing::warn!(
                channel = notification.channel,
                "ignoring a notification without a run id"
            );
            return None;
        };
        match notification.channel.as_str() {
            LOG_CHANNEL => Some(RunEvent::Logs(id)),
            STATUS_CHANNEL => Some(RunEvent::Finished(id)),
            _ => None,
        }
    }

    /// The run it is about.
    pub fn run_id(self) -> RunId {
        match self {
            RunEvent::Logs(id) | RunEvent::Finished(id) => id,
        }
    }
}

/// A dedicated connection listening on [`LOG_CHANNEL`] and
/// [`STATUS_CHANNEL`] (see [`crate::listen::Listener`]). Notifications sent
/// while it was not connected are lost, so whoever reconnects must re-read
/// what it watches.
#[derive(Debug)]
pub struct RunEvents {
    listener: crate::listen::Listener,
}

impl RunEvents {
    /// Connects and `LISTEN`s on both channels; once this returns, every
    /// notification committed later is delivered by [`RunEvents::recv`].
    pub async fn connect(database: &crate::Database, application_name: &str) -> Result<Self, DaoError> {
        let listener =
            crate::listen::Listener::connect(database, application_name, &[LOG_CHANNEL, STATUS_CHANNEL]).await?;
        Ok(RunEvents { listener })
    }

    /// The next notification, in commit order; `None` once the connection
    /// has ended (reconnect with [`RunEvents::connect`]).
    pub async fn recv(&mut self) -> Option<RunEvent> {
        loop {
            let notification = self.listener.recv().await?;
            if let Some(event) = RunEvent::from_notification(&notification) {
                return Some(event);
            }
        }
    }

    /// A round trip on the connection: an error means it is gone, even if
    /// the socket has not reported it yet.
    pub async fn ping(&self) -> Result<(), DaoError> {
        self.listener.ping().await
    }
}
