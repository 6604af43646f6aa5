//! Bounded concurrency, one way: [`try_map_bounded`] runs a task per item,
//! at most `limit` at a time, inside the caller's task (no spawning, so
//! borrowing is allowed and dropping the future cancels everything).

use std::future::Future;

use futures_util::{StreamExt, TryStreamExt};

/// Runs `task` on every item, at most `limit` (at least 1) at once, and
/// returns the answers in the order of `items`. The first error is returned
/// and the tasks still running are dropped.
pub(crate) async fn try_map_bounded<I, T, E, F, Fut>(items: I, limit: usize, mut task: F) -> Result<Vec<T>, E>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // Unordered, so one slow item does not hold the others' slots; the
    // index puts the answers back in order.
    let mut answers: Vec<(usize, T)> = futures_util::stream::iter(items.into_iter().enumerate())
        .map(|(index, item)| {
            let running = task(item);
            async move { running.await.map(|answer| (index, answer)) }
        })
        .buffer_unordered(limit.max(1))
        .try_collect()
        .await?;
    answers.sort_unstable_by_key(|(index, _)| *index);
    Ok(answers.into_iter().map(|(_, answer)| answer).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn keeps_the_order_and_the_bound() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let answers: Result<Vec<u64>, ()> = try_map_bounded(0..20u64, 3, |n| {
            let (running, peak) = (&running, &peak);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Later items finish first: the answers must still come back in order.
                tokio::time::sleep(Duration::from_millis(20 - n)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(n * 2)
            }
        })
        .await;
        assert_eq!(answers.unwrap(), (0..20).map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn stops_at_the_first_error() {
        let answers: Result<Vec<u32>, String> = try_map_bounded([1, 2, 3], 2, |n| async move {
            if n == 2 { Err(format!("{n} failed")) } else { Ok(n) }
        })
        .await;
        assert_eq!(answers.unwrap_err(), "2 failed");
    }
}
