//! `LISTEN` on a dedicated connection: the one piece behind every "wake me
//! when Postgres says something changed" of the binaries (run events, schedule
//! changes, reaper requests).

use std::time::Duration;

use tokio_postgres::AsyncMessage;

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
    notifications: tokio::sync::mpsc::Receiver<Notification>,
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
        database_url: &str,
        application_name: &str,
        channels: &[&'static str],
    ) -> Result<Self, DaoError> {
        let mut config = crate::parse_database_url(database_url)?;
        config.application_name(application_name);
        config.connect_timeout(Duration::from_secs(10));
        // The connection is idle most of the time: probe it, so a peer that
        // vanished without closing the socket is noticed.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
        let (sender, notifications) = tokio::sync::mpsc::channel(BUFFER);
        let name = application_name.to_owned();
        tokio::spawn(async move {
            // Ends when the server closes the connection, on an error, or when
            // the listener is dropped; the reader then sees the channel close.
            loop {
                let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
                let notification = match message {
                    Some(Ok(AsyncMessage::Notification(n))) => n,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        tracing::warn!(listener = %name, error = %e, "listening connection ended with an error");
                        return;
                    }
                    None => return,
                };
                let notification = Notification {
                    channel: notification.channel().to_owned(),
                    payload: notification.payload().to_owned(),
                };
                if sender.send(notification).await.is_err() {
                    return;
                }
            }
        });
        let statements: String = channels.iter().map(|channel| format!("LISTEN {channel};")).collect();
        client.batch_execute(&statements).await?;
        Ok(Listener { client, notifications })
    }

    /// The next notification; `None` once the connection has ended
    /// (reconnect with [`Listener::connect`]).
    pub async fn recv(&mut self) -> Option<Notification> {
        self.notifications.recv().await
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
