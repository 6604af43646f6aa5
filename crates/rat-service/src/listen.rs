//! The one reconnecting `LISTEN` loop every long-running process uses (the
//! scheduler's and reaper's wake-ups, the api's live logs): connect, hand
//! every notification to the caller, ping the connection so a silent loss is
//! noticed, and reconnect with a capped exponential backoff. Notifications
//! sent while it was not connected are lost, so the caller hears
//! [`ListenEvent::Connected`] after every (re)connection and must look again.

use std::ops::ControlFlow;
use std::time::Duration;

pub use rat_dao::listen::Notification;
use tokio::sync::watch;

use crate::db::Listener;
use crate::stopped;

/// First wait before reconnecting; doubled after each failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often an idle connection is pinged.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long a ping may take before the connection counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// What the loop tells its caller.
#[derive(Debug)]
pub enum ListenEvent<'a> {
    /// (Re)connected and listening: whatever was sent meanwhile was missed.
    Connected,
    /// A notification, in commit order.
    Notification(&'a Notification),
    /// The connection was lost; the loop reconnects.
    Lost,
    /// Nothing arrived for a ping interval (the connection is pinged next).
    Idle,
}

/// Runs the loop on a dedicated connection named `application_name`,
/// `LISTEN`ing on `channels`, until `stop` turns true or `on` answers
/// [`ControlFlow::Break`]. `what` names what is listened for in the log.
pub async fn listen_until(
    database: &rat_dao::Database,
    application_name: &str,
    channels: &[&'static str],
    what: &str,
    mut stop: watch::Receiver<bool>,
    mut on: impl FnMut(ListenEvent<'_>) -> ControlFlow<()>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        if *stop.borrow() {
            return;
        }
        let connected = tokio::select! {
            connected = Listener::connect(database, application_name, channels) => connected,
            () = stopped(&mut stop) => return,
        };
        match connected {
            Ok(mut listener) => {
                backoff = MIN_BACKOFF;
                tracing::info!(what, "listening");
                if on(ListenEvent::Connected).is_break() {
                    return;
                }
                let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
                loop {
                    tokio::select! {
                        notification = listener.recv() => match notification {
                            Some(notification) => {
                                if on(ListenEvent::Notification(&notification)).is_break() {
                                    return;
                                }
                            }
                            None => break,
                        },
                        _ = ping.tick() => {
                            if on(ListenEvent::Idle).is_break() {
                                return;
                            }
                            if !matches!(tokio::time::timeout(PING_TIMEOUT, listener.ping()).await, Ok(Ok(()))) {
                                break;
                            }
                        }
                        () = stopped(&mut stop) => return,
                    }
                }
                tracing::warn!(what, "the listener lost its connection; reconnecting");
                if on(ListenEvent::Lost).is_break() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(what, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot listen");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stopped(&mut stop) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
