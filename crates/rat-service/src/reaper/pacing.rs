//! The pacing of a pass: batches sized by how long the last ones took, and
//! the check between batches that the pass still holds the reaper lock.

use std::collections::BTreeMap;
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

/// A row's cost this many times the best of the task's pass means the
/// database is busy with other work: the pass yields.
const BUSY_RATIO: f64 = 1.5;

/// Most batch sizes whose best time per row a pacer keeps.
const MAX_MEASURED_SIZES: usize = 64;

/// The longest the pass yields after one batch.
const MAX_YIELD: Duration = Duration::from_secs(1);

/// The size of the next batch of a task, and how long to yield before it,
/// paced by how long batches take (see [`PassPolicy::batch_target`]).
///
/// Two measurements drive it. The batch's duration against the target sizes
/// the next batch (halved above the target, grown by half below half of
/// it), which bounds how long a batch holds its row locks. The time per
/// row against the best of the pass (for batches of the same size) says
/// whether the database is busy with foreground work: the reaper's own
/// statements slow down exactly when the api's do (CPU, I/O and buffer
/// contention). Then the pass yields for as
/// long as the batch took beyond what it would have taken on an idle
/// database (`took × (1 − best/now)`), so its share of the machine falls as
/// the foreground's rises; on an idle database it never waits and finishes
/// the backlog at full speed. Not a fixed sleep: both come from
/// measurements.
#[derive(Debug, Clone)]
pub(super) struct Pacer {
    size: i64,
    max: i64,
    target: Duration,
    /// The lowest time per row seen in this task's pass for each batch size
    /// (seconds): a statement has a fixed cost, so a row of a small batch
    /// costs more than one of a large batch on the same idle database, and
    /// rows are only compared with rows of batches of the same size. The
    /// sizes follow the halving and growing steps, so there are few.
    best_per_row: BTreeMap<i64, f64>,
}

impl Pacer {
    fn new(policy: &PassPolicy) -> Self {
        let max = policy.batch_size.max(1);
        Pacer {
            size: max,
            max,
            target: policy.batch_target,
            best_per_row: BTreeMap::new(),
        }
    }

    /// Records a batch of `rows` rows (of the `size` asked) that took
    /// `took`; returns how long to yield before the next.
    fn record(&mut self, took: Duration, rows: u64) -> Duration {
        let size = self.size;
        if took > self.target {
            self.size = (self.size / 2).max(MIN_BATCH_SIZE.min(self.max));
        } else if took < self.target / 2 {
            self.size = (self.size + self.size / 2 + 1).min(self.max);
        }
        // Only full batches measure the cost of a row: a short last batch
        // pays the statement's fixed cost over few rows.
        if rows == 0 || rows < size as u64 {
            return Duration::ZERO;
        }
        let per_row = took.as_secs_f64() / rows as f64;
        if self.best_per_row.len() >= MAX_MEASURED_SIZES && !self.best_per_row.contains_key(&size) {
            // Bounded: start over (a pass rarely sees more than a dozen sizes).
            self.best_per_row.clear();
        }
        let best = self.best_per_row.entry(size).or_insert(per_row);
        *best = best.min(per_row);
        let best = *best;
        if per_row <= best * BUSY_RATIO {
            return Duration::ZERO;
        }
        took.mul_f64(1.0 - best / per_row).min(MAX_YIELD)
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
        let pause = pacer.record(started.elapsed(), done);
        total += done;
        if done < size as u64 {
            break;
        }
        tokio::time::sleep(pause).await;
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
        let pause = pacer.record(started.elapsed(), done);
        total += done;
        match next {
            Some(cursor) => from = Some(cursor),
            None => break,
        }
        tokio::time::sleep(pause).await;
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
        pacer.record(Duration::from_millis(70), 0);
        assert_eq!(pacer.size, 2000, "between half the target and the target: kept");
        pacer.record(Duration::from_millis(400), 0);
        assert_eq!(pacer.size, 1000);
        for _ in 0..10 {
            pacer.record(Duration::from_millis(400), 0);
        }
        assert_eq!(pacer.size, MIN_BATCH_SIZE);
        pacer.record(Duration::from_millis(10), 0);
        assert_eq!(pacer.size, 76);
        for _ in 0..20 {
            pacer.record(Duration::from_millis(10), 0);
        }
        assert_eq!(pacer.size, 2000, "never beyond the most");
    }

    #[test]
    fn a_busy_database_makes_the_pass_yield_and_an_idle_one_never() {
        // A target no batch below reaches, so the size stays 1,000.
        let mut pacer = Pacer::new(&PassPolicy {
            batch_size: 1000,
            batch_target: Duration::from_secs(10),
            ..PassPolicy::default()
        });
        // Idle: 1,000 rows in 40 ms, again and again; a little noise.
        for took in [40, 42, 39, 41, 40] {
            assert_eq!(pacer.record(Duration::from_millis(took), 1000), Duration::ZERO);
        }
        // Busy: rows cost three times as much; the pass yields two thirds
        // of the batch's time (what it took beyond the idle cost).
        let pause = pacer.record(Duration::from_millis(117), 1000);
        assert_eq!(pause.as_millis(), 78);
        // Not beyond the most, however slow.
        assert_eq!(pacer.record(Duration::from_secs(30), 2000), MAX_YIELD);
        // A short (last) batch measures nothing.
        assert_eq!(pacer.record(Duration::from_millis(90), 3), Duration::ZERO);
        // Back to idle: no yield.
        let size = pacer.size as u64;
        assert_eq!(
            pacer.record(Duration::from_millis(39 * size / 1000), size),
            Duration::ZERO
        );
    }

    #[test]
    fn a_smaller_batch_is_compared_with_batches_of_its_own_size() {
        let mut pacer = Pacer::new(&PassPolicy {
            batch_size: 2000,
            batch_target: Duration::from_millis(2),
            ..PassPolicy::default()
        });
        // 2 µs a row at 2,000 rows; over the target, so the next is halved.
        assert_eq!(pacer.record(Duration::from_millis(4), 2000), Duration::ZERO);
        assert_eq!(pacer.size, 1000);
        // 3.5 µs a row at 1,000 (the statement's fixed cost over fewer
        // rows): not a busy database, so no yield.
        assert_eq!(pacer.record(Duration::from_micros(3500), 1000), Duration::ZERO);
        assert_eq!(pacer.size, 500);
        assert_eq!(pacer.record(Duration::from_millis(2), 500), Duration::ZERO);
        assert_eq!(pacer.size, 500, "within the target: kept");
        // Twice the cost of a row at this size: busy, yield half the batch.
        assert_eq!(pacer.record(Duration::from_millis(4), 500), Duration::from_millis(2));
    }

    #[test]
    fn a_most_below_the_floor_is_kept() {
        let mut pacer = Pacer::new(&policy(2));
        pacer.record(Duration::from_secs(1), 0);
        assert_eq!(pacer.size, 2);
        pacer.record(Duration::ZERO, 0);
        assert_eq!(pacer.size, 2);
    }
}
