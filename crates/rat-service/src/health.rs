//! Failing fast while a dependency is known to be down.
//!
//! Without this, every request needing a store that hangs waits for its own
//! timeout (about 15 s with the defaults) before hearing no. Here each
//! dependency (the database, the file store) is [`Dependency`]: up, or down
//! since some instant. While the store is down, store calls fail at once
//! with `Unavailable` ([`GuardedStore`], which [`crate::Services::new`] puts
//! around every store), and calls already waiting on it are abandoned the
//! moment it is marked down. While the database is down, rat-api answers
//! 503 at once and abandons requests in flight.
//!
//! Who decides: a prober ([`watch()`]), never a single failed request. The
//! database is probed every [`ProbeSettings::interval`] on a dedicated
//! session (`SELECT 1` within [`ProbeSettings::timeout`]), so a stopped
//! server is noticed within about `interval + timeout` even with no traffic;
//! the store is probed (its cheap [`VersionedStore::check`]) when a call
//! fails as unavailable or has waited longer than `timeout`, and then every
//! `interval` until it answers. A dependency is up again after one probe
//! answers; requests pass from then on. A slow store is not a dead one: a
//! store probe that times out marks the store down only if no store call got
//! an answer either in the last two probe timeouts (the probe's own and the
//! one before it). Otherwise the store is busy, answering calls the probe
//! waited behind, and stays up; it is probed again after `interval` until a
//! probe answers in time or nothing answers at all. Without a running prober nothing is
//! ever marked down, so an embedding program that does not start one keeps
//! plain timeouts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rat_versioning::{
    ByteSource, Download, KeyPrefix, ListPage, Object, ObjectHead, ObjectKey, ObjectVersion, StoreError, VersionId,
    VersionedStore, Written,
};
use tokio::sync::{Notify, watch};

use crate::stopped;

/// How the prober works.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSettings {
    /// Between two probes of the database, and of a store known down.
    pub interval: Duration,
    /// How long a probe may take before the dependency counts as down; also
    /// how long a store call waits before the store is probed.
    pub timeout: Duration,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        }
    }
}

/// One dependency: up, or down since an instant.
#[derive(Debug)]
pub struct Dependency {
    name: &'static str,
    /// `Some(since)` while down.
    state: watch::Sender<Option<Instant>>,
    /// Wakes the prober: a call failed as unavailable, or waits too long.
    suspect: Notify,
    /// When a call last got an answer from it (success or a refusal, not
    /// "unavailable"): a probe that times out meanwhile met a slow
    /// dependency, not a dead one.
    answered: std::sync::Mutex<Option<Instant>>,
}

impl Dependency {
    fn new(name: &'static str) -> Self {
        Dependency {
            name,
            state: watch::Sender::new(None),
            suspect: Notify::new(),
            answered: std::sync::Mutex::new(None),
        }
    }

    /// What it is (`database`, `file store`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How long it has been down; `None` while up.
    pub fn down_for(&self) -> Option<Duration> {
        self.state.borrow().map(|since| since.elapsed())
    }

    /// `Unavailable` at once while down, saying for how long.
    pub fn require_up(&self) -> Result<(), crate::ServiceError> {
        match self.down_for() {
            None => Ok(()),
            Some(_) => Err(self.unavailable()),
        }
    }

    /// The error of a request refused because it is down.
    pub fn unavailable(&self) -> crate::ServiceError {
        crate::ServiceError::Unavailable {
            message: format!(
                "the {} is unavailable (down for {} s), retry later",
                self.name,
                self.down_for().unwrap_or_default().as_secs()
            ),
            source: None,
        }
    }

    /// Resolves once the dependency is marked down (at once if it is).
    pub async fn went_down(&self) {
        let mut state = self.state.subscribe();
        // The sender lives as long as `self`, so this cannot fail while borrowed.
        let _ = state.wait_for(Option::is_some).await;
    }

    /// Records that a call got an answer from it now.
    fn answered(&self) {
        *self.answered.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
    }

    /// Whether a call got an answer from it at or after `since`.
    fn answered_since(&self, since: Instant) -> bool {
        self.answered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some_and(|at| at >= since)
    }

    /// Asks the prober to look now.
    pub fn suspect(&self) {
        self.suspect.notify_one();
    }

    /// Records a probe's answer, logging changes.
    fn set_up(&self, up: bool, error: Option<&str>) {
        self.state.send_if_modified(|state| match (up, *state) {
            (true, Some(since)) => {
                tracing::info!(
                    dependency = self.name,
                    down_ms = since.elapsed().as_millis() as u64,
                    "answering again"
                );
                *state = None;
                true
            }
            (false, None) => {
                tracing::warn!(
                    dependency = self.name,
                    error = error.unwrap_or("no answer"),
                    "down: failing fast"
                );
                *state = Some(Instant::now());
                true
            }
            _ => false,
        });
    }
}

/// The dependencies of [`crate::Services`].
#[derive(Debug)]
pub struct Dependencies {
    /// The metadata database.
    pub database: Dependency,
    /// The file store.
    pub store: Dependency,
}

impl Default for Dependencies {
    fn default() -> Self {
        Dependencies {
            database: Dependency::new("database"),
            store: Dependency::new("file store"),
        }
    }
}

/// Probes the database and the store of `services` until `stop` turns true
/// (see the module's documentation). `database` is where to open the probe's
/// own session.
pub async fn watch(
    services: crate::Services,
    database: rat_dao::Database,
    settings: ProbeSettings,
    stop: watch::Receiver<bool>,
) {
    tokio::join!(
        watch_database(&services, &database, settings, stop.clone()),
        watch_store(&services, settings, stop),
    );
}

async fn watch_database(
    services: &crate::Services,
    database: &rat_dao::Database,
    settings: ProbeSettings,
    mut stop: watch::Receiver<bool>,
) {
    let dependency = &services.dependencies.database;
    let mut session: Option<tokio_postgres::Client> = None;
    loop {
        let probe = async {
            if session.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
                session = Some(database.connect_session("rat-probe").await.map_err(|e| e.to_string())?);
            }
            let client = session.as_ref().expect("connected above");
            client.simple_query("SELECT 1").await.map_err(|e| e.to_string())?;
            Ok::<(), String>(())
        };
        let answer = tokio::select! {
            answer = tokio::time::timeout(settings.timeout, probe) => answer,
            () = stopped(&mut stop) => return,
        };
        match answer {
            Ok(Ok(())) => dependency.set_up(true, None),
            Ok(Err(e)) => {
                session = None;
                dependency.set_up(false, Some(&e));
            }
            Err(_) => {
                // A session that did not answer in time may be stuck; start afresh.
                session = None;
                dependency.set_up(false, None);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(settings.interval) => {}
            () = dependency.suspect.notified() => {}
            () = stopped(&mut stop) => return,
        }
    }
}

async fn watch_store(services: &crate::Services, settings: ProbeSettings, mut stop: watch::Receiver<bool>) {
    let dependency = &services.dependencies.store;
    let store = services.store.clone();
    // The last probe timed out while calls were answered: look again soon.
    let mut slow = false;
    loop {
        // Up: wait to be told to look. Down or slow: look again after the
        // interval.
        if dependency.down_for().is_none() && !slow {
            tokio::select! {
                () = dependency.suspect.notified() => {}
                () = stopped(&mut stop) => return,
            }
        } else {
            tokio::select! {
                () = tokio::time::sleep(settings.interval) => {}
                () = stopped(&mut stop) => return,
            }
        }
        let probed = Instant::now();
        let answer = tokio::select! {
            answer = tokio::time::timeout(settings.timeout, store.check()) => answer,
            () = stopped(&mut stop) => return,
        };
        let window_start = probed.checked_sub(settings.timeout).unwrap_or(probed);
        slow = false;
        match answer {
            // No answer in time, but calls got answers within the last two
            // timeouts: the store is slow (the probe queued behind them), not
            // gone. Marking it down would refuse calls it is answering.
            Err(_) if dependency.down_for().is_none() && dependency.answered_since(window_start) => {
                slow = true;
                tracing::info!(
                    dependency = dependency.name,
                    "a probe timed out while calls were answered: slow, not down"
                );
            }
            Ok(Ok(())) => dependency.set_up(true, None),
            // Answered, but refused for what it is (no versioning, no such
            // bucket): a configuration problem, which every call reports as
            // such; failing fast would hide it.
            Ok(Err(StoreError::NotVersioned { .. } | StoreError::Config { .. })) => dependency.set_up(true, None),
            Ok(Err(e)) => dependency.set_up(false, Some(&e.to_string())),
            Err(_) => dependency.set_up(false, None),
        }
    }
}

/// A store that fails at once while it is known down, and tells the prober
/// when a call fails as unavailable or waits too long.
#[derive(Debug, Clone)]
pub struct GuardedStore {
    inner: Arc<dyn VersionedStore>,
    dependencies: Arc<Dependencies>,
    /// How long a call waits before the store is probed.
    suspect_after: Duration,
}

impl GuardedStore {
    /// Guards `inner` with `dependencies.store`; a call waiting longer than
    /// `settings.timeout` has the store probed.
    pub(crate) fn new(
        inner: Arc<dyn VersionedStore>,
        dependencies: Arc<Dependencies>,
        settings: ProbeSettings,
    ) -> Self {
        GuardedStore {
            inner,
            dependencies,
            suspect_after: settings.timeout,
        }
    }

    /// The store it guards.
    pub fn inner(&self) -> &Arc<dyn VersionedStore> {
        &self.inner
    }

    fn down(&self, operation: &'static str, key: &str) -> StoreError {
        let down_for = self.dependencies.store.down_for().unwrap_or_default();
        StoreError::Unavailable {
            operation,
            key: key.to_owned(),
            source: format!("the file store is down (for {} s); failing fast", down_for.as_secs()).into(),
        }
    }

    /// Runs one call: refused at once while the store is down, abandoned if
    /// it is marked down meanwhile, and reported to the prober when it fails
    /// as unavailable or has waited longer than `suspect_after`.
    async fn guard<T>(
        &self,
        operation: &'static str,
        key: &str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let dependency = &self.dependencies.store;
        if dependency.down_for().is_some() {
            return Err(self.down(operation, key));
        }
        let call = std::pin::pin!(call);
        let slow = tokio::time::sleep(self.suspect_after);
        let result = tokio::select! {
            result = call => result,
            () = async { slow.await; dependency.suspect(); std::future::pending::<()>().await } => unreachable!(),
            () = dependency.went_down() => return Err(self.down(operation, key)),
        };
        match &result {
            Err(StoreError::Unavailable { .. }) => dependency.suspect(),
            _ => dependency.answered(),
        }
        result
    }
}

#[async_trait::async_trait]
impl VersionedStore for GuardedStore {
    async fn put(&self, key: &ObjectKey, body: Vec<u8>, content_type: &str) -> Result<VersionId, StoreError> {
        self.guard("put", key.as_str(), self.inner.put(key, body, content_type))
            .await
    }

    async fn put_stream(
        &self,
        key: &ObjectKey,
        body: ByteSource<'_>,
        content_type: &str,
    ) -> Result<Written, StoreError> {
        self.guard("put", key.as_str(), self.inner.put_stream(key, body, content_type))
            .await
    }

    async fn get(&self, key: &ObjectKey, version: Option<&VersionId>) -> Result<Object, StoreError> {
        self.guard("get", key.as_str(), self.inner.get(key, version)).await
    }

    async fn open(&self, key: &ObjectKey, version: Option<&VersionId>) -> Result<Download, StoreError> {
        self.guard("get", key.as_str(), self.inner.open(key, version)).await
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectHead>, StoreError> {
        self.guard("head", key.as_str(), self.inner.head(key)).await
    }

    async fn list_latest(
        &self,
        prefix: &KeyPrefix,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<ListPage<ObjectHead>, StoreError> {
        self.guard(
            "list",
            prefix.as_str(),
            self.inner.list_latest(prefix, page_token, limit),
        )
        .await
    }

    async fn list_versions(
        &self,
        prefix: &KeyPrefix,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<ListPage<ObjectVersion>, StoreError> {
        self.guard(
            "list",
            prefix.as_str(),
            self.inner.list_versions(prefix, page_token, limit),
        )
        .await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<Option<VersionId>, StoreError> {
        self.guard("delete", key.as_str(), self.inner.delete(key)).await
    }

    async fn delete_version(&self, key: &ObjectKey, version: &VersionId) -> Result<(), StoreError> {
        self.guard("delete", key.as_str(), self.inner.delete_version(key, version))
            .await
    }

    async fn presign_get(
        &self,
        key: &ObjectKey,
        version: &VersionId,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        // Signed locally: no request reaches the store, so nothing to guard.
        self.inner.presign_get(key, version, ttl).await
    }

    async fn check(&self) -> Result<(), StoreError> {
        // Readiness asks the store itself, down or not.
        self.inner.check().await
    }
}
