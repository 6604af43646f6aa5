//! Coalesced point reads: concurrent reads of one kind share one query.
//!
//! A read joins a queue. A drain task takes everything queued (up to
//! `max_batch` reads) and answers it with one query, while reads arriving
//! meanwhile queue for the next batch. A batch's query is only ever *sent*
//! after every read in it was queued, so each read sees every write
//! committed before the read was made: the same guarantee as a query of its
//! own. Nothing is cached; under light load a read is a batch of one and
//! waits for nothing but its own query.
//!
//! Under load this turns N round trips (N pool checkouts, N wake-ups of the
//! connection task, N statement executions) into one, which is what lets the
//! api's hottest route keep up with Postgres itself (design §6).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

use crate::ServiceError;

/// Reads the values of a batch of distinct keys; a key with no value is
/// simply missing from the answer.
pub type BatchFetch<K, V> = dyn Fn(Vec<K>) -> BoxFuture<'static, Result<Vec<(K, V)>, ServiceError>> + Send + Sync;

type Answer<V> = Result<Option<V>, ServiceError>;

/// Shares one query between the concurrent reads of `K`s. Cheap to clone
/// (one `Arc`); clones share the queue.
pub struct Coalescer<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Coalescer<K, V> {
    fn clone(&self) -> Self {
        Coalescer {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> fmt::Debug for Coalescer<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalescer")
            .field("max_batch", &self.inner.max_batch)
            .field("max_in_flight", &self.inner.max_in_flight)
            .finish_non_exhaustive()
    }
}

struct Inner<K, V> {
    fetch: Box<BatchFetch<K, V>>,
    queue: Mutex<Queue<K, V>>,
    max_batch: usize,
    max_in_flight: usize,
}

struct Queue<K, V> {
    waiting: Vec<(K, oneshot::Sender<Answer<V>>)>,
    /// Drain tasks running (each with at most one batch in flight).
    draining: usize,
}

impl<K, V> Inner<K, V> {
    fn queue(&self) -> MutexGuard<'_, Queue<K, V>> {
        // Nothing panics while holding the lock; a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K, V> Coalescer<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Reads through `fetch`, at most `max_batch` keys per query and at most
    /// `max_in_flight` queries at once (both at least 1).
    pub fn new(max_batch: usize, max_in_flight: usize, fetch: Box<BatchFetch<K, V>>) -> Self {
        Coalescer {
            inner: Arc::new(Inner {
                fetch,
                queue: Mutex::new(Queue {
                    waiting: Vec::new(),
                    draining: 0,
                }),
                max_batch: max_batch.max(1),
                max_in_flight: max_in_flight.max(1),
            }),
        }
    }

    /// The value of `key` as of a query sent after this call, or `None`.
    /// Must be called within a tokio runtime.
    pub async fn get(&self, key: K) -> Result<Option<V>, ServiceError> {
        let (sender, answer) = oneshot::channel();
        let start_drain = {
            let mut queue = self.inner.queue();
            queue.waiting.push((key, sender));
            let start = queue.draining < self.inner.max_in_flight;
            if start {
                queue.draining += 1;
            }
            start
        };
        if start_drain {
            tokio::spawn(drain(self.inner.clone()));
        }
        answer.await.unwrap_or_else(|_| {
            Err(ServiceError::Internal {
                source: "a coalesced read was abandoned".into(),
            })
        })
    }
}

/// Keeps the drain count true if a drain task ends abnormally (its fetch
/// panicked, or the runtime is shutting down): the count drops and, if
/// reads are still queued, a new drain takes them over.
struct DrainGuard<K: Eq + Hash + Clone + Send + 'static, V: Clone + Send + 'static> {
    inner: Arc<Inner<K, V>>,
    finished: bool,
}

impl<K: Eq + Hash + Clone + Send + 'static, V: Clone + Send + 'static> Drop for DrainGuard<K, V> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let restart = {
            let mut queue = self.inner.queue();
            let restart = !queue.waiting.is_empty() && tokio::runtime::Handle::try_current().is_ok();
            if !restart {
                queue.draining -= 1;
            }
            restart
        };
        if restart {
            tokio::spawn(drain(self.inner.clone()));
        }
    }
}

/// Answers queued reads, a batch at a time, until the queue is empty.
async fn drain<K, V>(inner: Arc<Inner<K, V>>)
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    let mut guard = DrainGuard {
        inner: inner.clone(),
        finished: false,
    };
    loop {
        let batch: Vec<(K, oneshot::Sender<Answer<V>>)> = {
            let mut queue = inner.queue();
            if queue.waiting.is_empty() {
                queue.draining -= 1;
                guard.finished = true;
                return;
            }
            let take = queue.waiting.len().min(inner.max_batch);
            queue.waiting.drain(..take).collect()
        };
        // Reads whose caller went away need no answer.
        let batch: Vec<_> = batch.into_iter().filter(|(_, sender)| !sender.is_closed()).collect();
        if batch.is_empty() {
            continue;
        }
        let keys: Vec<K> = {
            let mut seen = HashSet::with_capacity(batch.len());
            batch
                .iter()
                .filter(|(key, _)| seen.insert(key))
                .map(|(key, _)| key.clone())
                .collect()
        };
        match (inner.fetch)(keys).await {
            Ok(found) => {
                let found: HashMap<K, V> = found.into_iter().collect();
                for (key, sender) in batch {
                    let _ = sender.send(Ok(found.get(&key).cloned()));
                }
            }
            Err(err) => {
                let err = Arc::new(err);
                for (_, sender) in batch {
                    let _ = sender.send(Err(ServiceError::shared(&err)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A fetch that records each batch, answers `key * 10` for keys below
    /// 100, fails for batches containing 666, and holds each batch until the
    /// test releases it.
    fn recording(
        batches: Arc<Mutex<Vec<Vec<u32>>>>,
        gate: Arc<tokio::sync::Semaphore>,
        running: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
    ) -> Box<BatchFetch<u32, u32>> {
        Box::new(move |keys: Vec<u32>| {
            let (batches, gate, running, peak) = (batches.clone(), gate.clone(), running.clone(), peak.clone());
            Box::pin(async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                batches.lock().unwrap().push(keys.clone());
                gate.acquire().await.unwrap().forget();
                running.fetch_sub(1, Ordering::SeqCst);
                if keys.contains(&666) {
                    return Err(ServiceError::Unavailable {
                        message: "the database is unavailable, retry later".to_owned(),
                        source: None,
                    });
                }
                Ok(keys.into_iter().filter(|k| *k < 100).map(|k| (k, k * 10)).collect())
            })
        })
    }

    struct Rig {
        coalescer: Coalescer<u32, u32>,
        batches: Arc<Mutex<Vec<Vec<u32>>>>,
        gate: Arc<tokio::sync::Semaphore>,
        peak: Arc<AtomicUsize>,
    }

    fn rig(max_batch: usize, max_in_flight: usize) -> Rig {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let fetch = recording(
            batches.clone(),
            gate.clone(),
            Arc::new(AtomicUsize::new(0)),
            peak.clone(),
        );
        Rig {
            coalescer: Coalescer::new(max_batch, max_in_flight, fetch),
            batches,
            gate,
            peak,
        }
    }

    async fn until(what: impl Fn() -> bool) {
        for _ in 0..2_000 {
            if what() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("condition not reached in 2 s");
    }

    #[tokio::test]
    async fn a_lone_read_is_a_batch_of_one() {
        let rig = rig(16, 1);
        rig.gate.add_permits(10);
        assert_eq!(rig.coalescer.get(7).await.unwrap(), Some(70));
        assert_eq!(rig.coalescer.get(500).await.unwrap(), None);
        assert_eq!(*rig.batches.lock().unwrap(), vec![vec![7], vec![500]]);
    }

    #[tokio::test]
    async fn reads_made_during_a_batch_share_the_next_one_and_never_join_a_sent_one() {
        let rig = rig(16, 1);
        let first = tokio::spawn({
            let c = rig.coalescer.clone();
            async move { c.get(1).await }
        });
        until(|| rig.batches.lock().unwrap().len() == 1).await;
        // Batch [1] is in flight: these reads came after it was sent, so
        // they must not be answered by it, and share the next query.
        let later: Vec<_> = [2, 3, 2, 200]
            .into_iter()
            .map(|k| {
                let c = rig.coalescer.clone();
                tokio::spawn(async move { c.get(k).await })
            })
            .collect();
        until(|| rig.coalescer.inner.queue().waiting.len() == 4).await;
        rig.gate.add_permits(2);
        assert_eq!(first.await.unwrap().unwrap(), Some(10));
        let mut answers = Vec::new();
        for task in later {
            answers.push(task.await.unwrap().unwrap());
        }
        assert_eq!(answers, vec![Some(20), Some(30), Some(20), None]);
        // Duplicates are asked once.
        assert_eq!(*rig.batches.lock().unwrap(), vec![vec![1], vec![2, 3, 200]]);
        assert_eq!(rig.coalescer.inner.queue().draining, 0);
    }

    #[tokio::test]
    async fn batches_are_capped_and_in_flight_queries_are_bounded() {
        let rig = rig(3, 2);
        let tasks: Vec<_> = (0..10)
            .map(|k| {
                let c = rig.coalescer.clone();
                tokio::spawn(async move { c.get(k).await })
            })
            .collect();
        // Every read is either queued or in one of the (held) batches.
        until(|| {
            let in_batches: usize = rig.batches.lock().unwrap().iter().map(Vec::len).sum();
            rig.coalescer.inner.queue().waiting.len() + in_batches == 10
        })
        .await;
        assert_eq!(rig.batches.lock().unwrap().len(), 2, "two batches in flight, no more");
        rig.gate.add_permits(100);
        for (k, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap().unwrap(), Some(k as u32 * 10));
        }
        let batches = rig.batches.lock().unwrap().clone();
        assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 3), "{batches:?}");
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 10);
        assert!(rig.peak.load(Ordering::SeqCst) <= 2);
        assert_eq!(rig.coalescer.inner.queue().draining, 0);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_reads_and_the_next_batch_runs() {
        let rig = rig(16, 1);
        let first = tokio::spawn({
            let c = rig.coalescer.clone();
            async move { c.get(1).await }
        });
        until(|| rig.batches.lock().unwrap().len() == 1).await;
        let failing: Vec<_> = [666, 5]
            .into_iter()
            .map(|k| {
                let c = rig.coalescer.clone();
                tokio::spawn(async move { c.get(k).await })
            })
            .collect();
        until(|| rig.coalescer.inner.queue().waiting.len() == 2).await;
        rig.gate.add_permits(3);
        assert_eq!(first.await.unwrap().unwrap(), Some(10));
        for task in failing {
            let err = task.await.unwrap().unwrap_err();
            assert!(matches!(err, ServiceError::Unavailable { .. }), "{err:?}");
            assert_eq!(err.to_string(), "the database is unavailable, retry later");
        }
        assert_eq!(rig.coalescer.get(9).await.unwrap(), Some(90));
    }

    #[tokio::test]
    async fn a_panicking_fetch_fails_its_reads_and_queued_reads_still_get_answers() {
        let calls = Arc::new(AtomicUsize::new(0));
        let fetch: Box<BatchFetch<u32, u32>> = Box::new({
            let calls = calls.clone();
            move |keys: Vec<u32>| {
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                Box::pin(async move {
                    if first {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        panic!("fetch failed hard");
                    }
                    Ok(keys.into_iter().map(|k| (k, k + 1)).collect())
                })
            }
        });
        let coalescer = Coalescer::new(16, 1, fetch);
        let first = tokio::spawn({
            let c = coalescer.clone();
            async move { c.get(1).await }
        });
        until(|| calls.load(Ordering::SeqCst) == 1).await;
        let queued = tokio::spawn({
            let c = coalescer.clone();
            async move { c.get(2).await }
        });
        let err = first.await.unwrap().unwrap_err();
        assert!(matches!(err, ServiceError::Internal { .. }), "{err:?}");
        assert_eq!(queued.await.unwrap().unwrap(), Some(3));
        assert_eq!(coalescer.inner.queue().draining, 0);
    }
}
