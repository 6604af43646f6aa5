//! `LISTEN` on a dedicated connection: the one piece behind every "wake me
//! when Postgres says something changed" of the binaries (run events, schedule
//! changes, reaper requests).

use crate::DaoError;

/// Notifications buffered between the connection and the reader.
const BUFFER: usize = 1024;

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The channel it was sent on.
    pub channel: String,
    /// Its payload (empty when none was given).
    pub payload: String,
}

/// A dedicated connection (outside any pool: a pooled connection would be
/// recycled and lose its `LISTEN`s) listening on fixed channels.
/// Notifications sent while it was not connected are lost, so whoever
/// reconnects must re-read what it watches.
pub struct Listener {
    client: tokio_postgres::Client,
    notifications: tokio::sync::mpsc::Receiver<tokio_postgres::Notification>,
    /// `(scoped name, own name)` of each channel listened to.
    channels: Vec<(String, &'static str)>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Listener {
    /// Connects and `LISTEN`s on every channel of `channels` (fixed names of
    /// this crate, never user input); once this returns, every notification
    /// committed later is delivered by [`Listener::recv`], in commit order.
    pub async fn connect(
        database: &crate::Database,
        application_name: &str,
        channels: &[&'static str],
    ) -> Result<Self, DaoError> {
        // The session is in the tenant's schema (checked), and its channels
        // are the schema's: tenants sharing a database never hear each other.
        let (client, notifications) = database.connect_session_notifying(application_name, BUFFER).await?;
        let scoped: Vec<(String, &'static str)> = channels
            .iter()
            .map(|channel| (database.schema.channel(channel), *channel))
            .collect();
        // Channel names are fixed names of this crate scoped by a validated
        // schema name: quoted, nothing in them comes from a request.
        let statements: String = scoped
            .iter()
            .map(|(channel, _)| format!("LISTEN \"{channel}\";"))
            .collect();
        client.batch_execute(&statements).await?;
        Ok(Listener {
            client,
            notifications,
            channels: scoped,
        })
    }

    /// The next notification; `None` once the connection has ended
    /// (reconnect with [`Listener::connect`]).
    pub async fn recv(&mut self) -> Option<Notification> {
        let notification = self.notifications.recv().await?;
        // Delivered under the channel's own name (the constant the reader
        // compares with), whatever schema it was scoped to.
        let channel = self
            .channels
            .iter()
            .find(|(scoped, _)| scoped == notification.channel())
            .map_or_else(|| notification.channel().to_owned(), |(_, own)| (*own).to_owned());
        Some(Notification {
            channel,
            payload: notification.payload().to_owned(),
        })
    }

    /// Discards the notifications already received; returns how many. A
    /// reader woken by one that re-reads everything anyway then pays one
    /// wake-up for a burst.
    pub fn drain(&mut self) -> usize {
        let mut drained = 0;
        while self.notifications.try_recv().is_ok() {
            drained += 1;
        }
        drained
    }

    /// A round trip on the connection: an error means it is gone, even if
    /// the socket has not reported it yet.
    pub async fn ping(&self) -> Result<(), DaoError> {
        self.client.batch_execute("SELECT 1").await?;
        Ok(())
    }
}
