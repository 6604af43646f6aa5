//! The pacing of a pass: batches sized by how long the last ones took, and
//! the check between batches that the pass still holds the reaper lock.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::ServiceError;

use super::{LockLost, PassPolicy};

/// Checks between batches that this process still holds the reaper lock.
pub(super) fn check(lost: &watch::Receiver<bool>) -> Result<(), ServiceError> {
    if *lost.borrow() {
        return Err(ServiceError::Unavailable {
            message: LockLost.to_string(),
            source: None,
        });
    }
    Ok(())
}

/// The smallest batch the pacing goes down to.
pub const MIN_BATCH_SIZE: i64 = 50;

/// The size of the next batch of a task, paced by how long batches take
/// (see [`PassPolicy::batch_target`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Pacer {
    size: i64,
    max: i64,
    target: Duration,
}

impl Pacer {
    fn new(policy: &PassPolicy) -> Self {
        let max = policy.batch_size.max(1);
        Pacer {
            size: max,
            max,
            target: policy.batch_target,
        }
    }

    fn record(&mut self, took: Duration) {
        if took > self.target {
            self.size = (self.size / 2).max(MIN_BATCH_SIZE.min(self.max));
        } else if took < self.target / 2 {
            self.size = (self.size + self.size / 2 + 1).min(self.max);
        }
    }
}

/// Runs `batch(size)` until it returns fewer than `size` rows, the task's
/// batch budget is spent, or the lock is lost; the total. `size` is paced
/// (see [`PassPolicy::batch_target`]).
pub(super) async fn batches<F, Fut>(
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
    mut batch: F,
) -> Result<u64, ServiceError>
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = Result<u64, ServiceError>>,
{
    let mut total = 0;
    let mut pacer = Pacer::new(policy);
    for _ in 0..policy.max_batches_per_task {
        check(lost)?;
        let (size, started) = (pacer.size, Instant::now());
        let done = batch(size).await?;
        pacer.record(started.elapsed());
        total += done;
        if done < size as u64 {
            break;
        }
    }
    Ok(total)
}

/// Runs `batch(cursor, size)` until it returns no cursor (the last batch was
/// short), the task's batch budget is spent, or the lock is lost; the total.
/// Each call gets the cursor the previous one returned, and a paced size.
pub(super) async fn walk<C, F, Fut>(
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
    mut batch: F,
) -> Result<u64, ServiceError>
where
    F: FnMut(Option<C>, i64) -> Fut,
    Fut: Future<Output = Result<(u64, Option<C>), ServiceError>>,
{
    let mut total = 0;
    let mut from = None;
    let mut pacer = Pacer::new(policy);
    for _ in 0..policy.max_batches_per_task {
        check(lost)?;
        let started = Instant::now();
        let (done, next) = batch(from.take(), pacer.size).await?;
        pacer.record(started.elapsed());
        total += done;
        match next {
            Some(cursor) => from = Some(cursor),
            None => break,
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(batch_size: i64) -> PassPolicy {
        PassPolicy {
            batch_size,
            batch_target: Duration::from_millis(100),
            ..PassPolicy::default()
        }
    }

    #[test]
    fn slow_batches_shrink_the_next_down_to_the_floor_and_fast_ones_grow_it_back() {
        let mut pacer = Pacer::new(&policy(2000));
        assert_eq!(pacer.size, 2000, "starts at the most");
        pacer.record(Duration::from_millis(70));
        assert_eq!(pacer.size, 2000, "between half the target and the target: kept");
        pacer.record(Duration::from_millis(400));
        assert_eq!(pacer.size, 1000);
        for _ in 0..10 {
            pacer.record(Duration::from_millis(400));
        }
        assert_eq!(pacer.size, MIN_BATCH_SIZE);
        pacer.record(Duration::from_millis(10));
        assert_eq!(pacer.size, 76);
        for _ in 0..20 {
            pacer.record(Duration::from_millis(10));
        }
        assert_eq!(pacer.size, 2000, "never beyond the most");
    }

    #[test]
    fn a_most_below_the_floor_is_kept() {
        let mut pacer = Pacer::new(&policy(2));
        pacer.record(Duration::from_secs(1));
        assert_eq!(pacer.size, 2);
        pacer.record(Duration::ZERO);
        assert_eq!(pacer.size, 2);
    }
}
