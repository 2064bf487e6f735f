//! Bounded waiting for a condition, instead of sleeping "long enough".

use std::time::{Duration, Instant};

/// The condition was still false when the timeout ran out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("condition still false after {waited:?} ({attempts} checks)")]
pub struct WaitTimedOut {
    pub waited: Duration,
    pub attempts: u32,
}

/// Checks `condition` every `poll_interval` until it returns true or `timeout` has passed.
/// The condition is always checked at least once, and once more at the deadline.
///
/// Blocks the thread: from async code whose condition depends on tasks of the same runtime,
/// use [`wait_until_async`].
pub fn wait_until(
    timeout: Duration,
    poll_interval: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<(), WaitTimedOut> {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        if condition() {
            return Ok(());
        }
        match next_pause(started, timeout, poll_interval) {
            Some(pause) => std::thread::sleep(pause),
            None => {
                return Err(WaitTimedOut { waited: started.elapsed(), attempts });
            }
        }
    }
}

/// [`wait_until`] for async conditions; sleeps with `tokio::time`, so other tasks keep running.
pub async fn wait_until_async<F, Fut>(
    timeout: Duration,
    poll_interval: Duration,
    mut condition: F,
) -> Result<(), WaitTimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        if condition().await {
            return Ok(());
        }
        match next_pause(started, timeout, poll_interval) {
            Some(pause) => tokio::time::sleep(pause).await,
            None => {
                return Err(WaitTimedOut { waited: started.elapsed(), attempts });
            }
        }
    }
}

/// How long to pause before the next check, or `None` once the deadline has been checked.
fn next_pause(started: Instant, timeout: Duration, poll_interval: Duration) -> Option<Duration> {
    let remaining = timeout.checked_sub(started.elapsed()).filter(|left| !left.is_zero())?;
    Some(poll_interval.min(remaining))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_as_soon_as_the_condition_holds() {
        let mut calls = 0;
        let result = wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            calls == 3
        });
        assert_eq!(result, Ok(()));
        assert_eq!(calls, 3);
    }

    #[test]
    fn checks_at_least_once_even_with_zero_timeout() {
        let mut calls = 0;
        assert!(
            wait_until(Duration::ZERO, Duration::from_secs(1), || {
                calls += 1;
                true
            })
            .is_ok()
        );
        assert_eq!(calls, 1);
    }

    #[test]
    fn gives_up_after_the_timeout() {
        let err = wait_until(Duration::from_millis(50), Duration::from_millis(10), || false).expect_err("never true");
        assert!(err.waited >= Duration::from_millis(50), "{err}");
        assert!(err.waited < Duration::from_secs(5), "{err}");
        assert!(err.attempts >= 2, "{err}");
    }

    #[tokio::test]
    async fn async_variant_lets_other_tasks_run() {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let setter = flag.clone();
        tokio::spawn(async move { setter.store(true, std::sync::atomic::Ordering::SeqCst) });
        let result = wait_until_async(Duration::from_secs(5), Duration::from_millis(5), || {
            let flag = flag.clone();
            async move { flag.load(std::sync::atomic::Ordering::SeqCst) }
        })
        .await;
        assert_eq!(result, Ok(()));
    }
}
