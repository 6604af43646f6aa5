//! Live log streams (`GET /runs/{id}/logs` with `Accept: text/event-stream`):
//! the per-process notifier fanning Postgres notifications out to streams,
//! the limits on concurrent streams, and the stream of SSE events itself.
//!
//! One dedicated connection per process `LISTEN`s on the log and status
//! channels ([`rat_service::listen`]); each notification (a run id) is
//! broadcast to every open stream, and the streams of that run re-read their
//! entries after their cursor. Notifications only wake streams up: what is
//! sent always comes from Postgres, so a missed notification delays an entry
//! (until the fallback poll or the re-read after a reconnect) but never loses
//! it, and any replica can serve any stream.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use axum::response::sse::Event;
use futures_util::Stream;
use rat_cli::stopped;
use rat_domain::RunId;
use rat_service::db::RunEvent;
use rat_service::listen::ListenEvent;
use rat_service::{ServiceError, Services};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// What the notifier tells the streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something happened to this run (new entries, or its end).
    Run(RunId),
    /// Notifications may have been missed (the listener (re)connected):
    /// every stream re-reads.
    All,
}

/// Wake-ups buffered per stream; a stream further behind re-reads once
/// (its receiver reports the lag) instead of losing anything.
const WAKE_BUFFER: usize = 1024;
/// How often streams re-read while the listener is not connected: the same
/// bound as notifications give, at the cost of one query per stream.
const DISCONNECTED_POLL: Duration = Duration::from_secs(1);
/// Entries one read of a stream sends at most.
const PAGE: i64 = 500;
/// Pause after a failed read (database briefly unavailable) before retrying.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);
/// The `application_name` of the listener's connection.
const APPLICATION_NAME: &str = "rat-api-live-logs";

/// The process's live-log machinery: the notifier (started lazily, on the
/// first stream, so a process that never streams opens no extra connection
/// and a database that is down at startup delays nothing), the stream
/// counters, and the shutdown signal that ends every stream. Cheap to clone.
#[derive(Clone)]
pub struct LiveLogs {
    inner: Arc<Inner>,
}

struct Inner {
    database: rat_service::db::Database,
    wakes: broadcast::Sender<Wake>,
    started: OnceLock<()>,
    listening: Arc<AtomicBool>,
    stopping: watch::Sender<bool>,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

impl std::fmt::Debug for LiveLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveLogs")
            .field("listening", &self.is_listening())
            .field("streams", &self.open_streams())
            .finish_non_exhaustive()
    }
}

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamLimit {
    /// The client already has as many streams open as it may.
    PerClient(usize),
    /// The process already serves as many streams as it may.
    Total(usize),
}

impl std::fmt::Display for StreamLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamLimit::PerClient(max) => write!(f, "too many live log streams from this client (at most {max})"),
            StreamLimit::Total(max) => write!(f, "too many live log streams on this server (at most {max})"),
        }
    }
}

/// One open stream's place in the counters, given back when dropped (the
/// stream ended, or the client went away and the response was dropped).
pub struct StreamSlot {
    inner: Arc<Inner>,
    client: IpAddr,
}

impl std::fmt::Debug for StreamSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSlot").field("client", &self.client).finish()
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self.inner.lock_counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_client.remove(&self.client);
            }
        }
        metrics::gauge!("rat_live_log_streams").set(counts.total as f64);
    }
}

impl Inner {
    fn lock_counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counters stay consistent even if a holder panicked: every
        // critical section is a few integer updates.
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl LiveLogs {
    /// The machinery for a process whose database is `database`.
    /// Opens nothing yet.
    pub fn new(database: impl Into<rat_service::db::Database>) -> Self {
        let (wakes, _) = broadcast::channel(WAKE_BUFFER);
        let (stopping, _) = watch::channel(false);
        LiveLogs {
            inner: Arc::new(Inner {
                database: database.into(),
                wakes,
                started: OnceLock::new(),
                listening: Arc::new(AtomicBool::new(false)),
                stopping,
                counts: Mutex::new(Counts::default()),
            }),
        }
    }

    /// Takes a stream slot for `client`, or says which limit is reached.
    pub fn acquire(&self, client: IpAddr, max_per_client: usize, max_total: usize) -> Result<StreamSlot, StreamLimit> {
        let mut counts = self.inner.lock_counts();
        if counts.total >= max_total {
            return Err(StreamLimit::Total(max_total));
        }
        let of_client = counts.per_client.entry(client).or_insert(0);
        if *of_client >= max_per_client {
            return Err(StreamLimit::PerClient(max_per_client));
        }
        *of_client += 1;
        counts.total += 1;
        metrics::gauge!("rat_live_log_streams").set(counts.total as f64);
        Ok(StreamSlot {
            inner: self.inner.clone(),
            client,
        })
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.inner.lock_counts().total
    }

    /// Whether the listener is connected (notifications are flowing).
    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::Relaxed)
    }

    /// Wake-ups from now on; starts the listener on first use.
    pub fn subscribe(&self) -> broadcast::Receiver<Wake> {
        let receiver = self.inner.wakes.subscribe();
        self.inner.started.get_or_init(|| {
            tokio::spawn(listen(
                Arc::downgrade(&self.inner),
                self.inner.database.clone(),
                self.inner.wakes.clone(),
                self.inner.listening.clone(),
                self.inner.stopping.subscribe(),
            ));
        });
        receiver
    }

    /// Ends every stream (they send what they have and close) and the
    /// listener. Called when the process starts shutting down: graceful
    /// shutdown waits for in-flight responses, and a live stream would
    /// otherwise hold it until the grace period runs out.
    pub fn shutdown(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Whether [`LiveLogs::shutdown`] was called.
    pub fn is_stopping(&self) -> bool {
        *self.inner.stopping.borrow()
    }

    fn stopping(&self) -> watch::Receiver<bool> {
        self.inner.stopping.subscribe()
    }
}

/// The listener task ([`rat_service::listen`]): forwards every run event,
/// and announces [`Wake::All`] after every (re)connection since
/// notifications sent meanwhile are lost. Ends on shutdown, or once the
/// [`LiveLogs`] it serves is gone.
async fn listen(
    owner: Weak<Inner>,
    database: rat_service::db::Database,
    wakes: broadcast::Sender<Wake>,
    listening: Arc<AtomicBool>,
    stopping: watch::Receiver<bool>,
) {
    if owner.strong_count() == 0 {
        return;
    }
    let channels = [rat_service::db::LOG_CHANNEL, rat_service::db::STATUS_CHANNEL];
    rat_service::listen::listen_until(&database, APPLICATION_NAME, &channels, "live logs", stopping, |event| {
        // Send errors only mean no stream is open right now.
        match event {
            ListenEvent::Connected => {
                listening.store(true, Ordering::Relaxed);
                let _ = wakes.send(Wake::All);
            }
            ListenEvent::Notification(notification) => {
                if let Some(event) = RunEvent::from_notification(notification) {
                    let _ = wakes.send(Wake::Run(event.run_id()));
                }
            }
            ListenEvent::Lost => listening.store(false, Ordering::Relaxed),
            ListenEvent::Idle if owner.strong_count() == 0 => return ControlFlow::Break(()),
            ListenEvent::Idle => {}
        }
        ControlFlow::Continue(())
    })
    .await;
    listening.store(false, Ordering::Relaxed);
}

/// How a stream behaves.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// Re-read at least this often even without a notification.
    pub poll_interval: Duration,
}

/// Where one stream starts.
#[derive(Debug)]
pub struct StreamStart {
    /// The run, known to exist.
    pub run: RunId,
    /// Who reads it (checked again at each page read: a share removed
    /// while the stream is open ends it).
    pub caller: rat_service::identity::Caller,
    /// Its legacy entries (`runs.logs`), as JSON text, sent first.
    pub legacy: Vec<String>,
    /// Id of the last appended entry the client already has (0: none).
    pub cursor: i64,
    /// Wake-ups, subscribed to *before* anything was read for this stream.
    pub wakes: broadcast::Receiver<Wake>,
    /// The stream's place in the counters.
    pub slot: StreamSlot,
}

/// The events of one run's live stream. The caller has checked that the run
/// exists, read its legacy entries and subscribed to the wake-ups before that
/// read, so nothing committed after it can be missed. The legacy entries go
/// first, as `event: log` without id; entries appended by runners follow from
/// the cursor on, as `event: log` with their id; when the run has ended and
/// every entry has been sent, `event: status` closes the stream. It also
/// closes on shutdown. Dropping it gives the slot back.
pub fn log_events(
    services: Services,
    live: &LiveLogs,
    start: StreamStart,
    options: StreamOptions,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let state = LogStream {
        services,
        live: live.clone(),
        stopping: live.stopping(),
        wakes: Some(start.wakes),
        _slot: start.slot,
        run: start.run,
        caller: start.caller,
        cursor: start.cursor,
        queue: start
            .legacy
            .into_iter()
            .map(|data| Event::default().event("log").data(data))
            .collect(),
        stale: true,
        finished: false,
        next_poll: Instant::now(),
        options,
    };
    futures_util::stream::unfold(state, |state| state.next())
}

struct LogStream {
    services: Services,
    live: LiveLogs,
    stopping: watch::Receiver<bool>,
    /// `None` once the notifier's channel closed: the stream then only polls.
    wakes: Option<broadcast::Receiver<Wake>>,
    _slot: StreamSlot,
    run: RunId,
    caller: rat_service::identity::Caller,
    /// Id of the last entry sent.
    cursor: i64,
    /// Events read but not sent yet.
    queue: VecDeque<Event>,
    /// Entries may exist after the cursor: read before waiting.
    stale: bool,
    /// Nothing more to read: send the queue and end.
    finished: bool,
    /// When to re-read if nothing wakes the stream up before.
    next_poll: Instant,
    options: StreamOptions,
}

impl LogStream {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            if self.finished {
                return None;
            }
            if *self.stopping.borrow() {
                // Shutting down: what was read has been sent.
                return None;
            }
            if self.stale {
                self.read().await;
            } else {
                self.wait().await;
            }
        }
    }

    /// Reads the status, then the next page of entries after the cursor.
    async fn read(&mut self) {
        let poll = if self.live.is_listening() {
            self.options.poll_interval
        } else {
            self.options.poll_interval.min(DISCONNECTED_POLL)
        };
        self.next_poll = Instant::now() + poll;
        match rat_service::runs::log_tail(&self.services, &self.caller, self.run, self.cursor, PAGE).await {
            Ok(tail) => {
                let full = tail.entries.len() as i64 >= PAGE;
                for (id, entry) in &tail.entries {
                    let data = log_data(entry);
                    self.queue
                        .push_back(Event::default().event("log").id(id.to_string()).data(data));
                    self.cursor = *id;
                }
                // A full page: more may follow right away.
                self.stale = full;
                if !full && tail.status.is_terminal() {
                    let data = serde_json::json!({ "status": tail.status.as_str() }).to_string();
                    self.queue.push_back(Event::default().event("status").data(data));
                    self.finished = true;
                }
            }
            // The run was deleted while streaming: nothing more will come.
            Err(ServiceError::NotFound { .. }) => self.finished = true,
            Err(e) => {
                tracing::warn!(run = %self.run, error = %e, "live log stream could not read; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_AFTER_ERROR) => {}
                    () = stopped(&mut self.stopping) => {}
                }
            }
        }
    }

    /// Waits for a notification about this run, the fallback poll, or shutdown.
    async fn wait(&mut self) {
        let run = self.run;
        let next_poll = self.next_poll;
        let wakes = &mut self.wakes;
        let stopping = &mut self.stopping;
        let woken = async {
            loop {
                let Some(receiver) = wakes.as_mut() else {
                    std::future::pending::<()>().await;
                    return;
                };
                match receiver.recv().await {
                    Ok(Wake::Run(id)) if id == run => return,
                    Ok(Wake::Run(_)) => {}
                    // Behind: some wake-ups were dropped, one may be ours.
                    Ok(Wake::All) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => *wakes = None,
                }
            }
        };
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep_until(next_poll) => {}
            () = stopped(stopping) => return,
        }
        self.stale = true;
    }
}

/// `{timestamp, level, message}` of an entry, as JSON text.
fn log_data(entry: &rat_domain::LogEntry) -> String {
    rat_service::runs::log_entry_json(entry).to_string()
}
