//! Nothing from outside can kill a background task: every long-running
//! task runs under [`supervise`], which logs a panic, counts it in
//! `orderd_task_panics_total{task}` and starts the task again (after a
//! short, growing pause) until shutdown. Work that handles one item at a
//! time (an order, a batch of reports) also catches a panic per item with
//! [`catch_panic`], so one poisoned item costs nothing else.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::names;

/// Pause before the first restart; doubles to [`RESTART_PAUSE_MAX`].
pub const RESTART_PAUSE_MIN: Duration = Duration::from_millis(100);
pub const RESTART_PAUSE_MAX: Duration = Duration::from_secs(5);

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_string())
}

fn count(task: &'static str, message: &str) {
    tracing::error!(task, panic = message, "a background task panicked");
    metrics::counter!(names::TASK_PANICS, "task" => task).increment(1);
}

/// Runs `make(shutdown)` as task `name`, and again whenever it panics,
/// until it returns (normally at shutdown) or `shutdown` is set.
pub fn supervise<F, Fut>(
    name: &'static str,
    shutdown: watch::Receiver<bool>,
    make: F,
) -> JoinHandle<()>
where
    F: Fn(watch::Receiver<bool>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = RESTART_PAUSE_MIN;
        loop {
            let task = tokio::spawn(make(shutdown.clone()));
            match task.await {
                Ok(()) => return,
                Err(error) if error.is_panic() => {
                    count(name, &panic_message(error.into_panic().as_ref()));
                }
                Err(_) => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let mut stop = shutdown.clone();
            tokio::select! {
                // The pause before the restart, or the stop.
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return,
            }
            pause = (pause * 2).min(RESTART_PAUSE_MAX);
            tracing::warn!(task = name, "restarting a background task after its panic");
        }
    })
}

/// Awaits `work`; a panic inside it is logged and counted as `task`'s and
/// becomes `None`.
pub async fn catch_panic<T>(task: &'static str, work: impl Future<Output = T>) -> Option<T> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(value) => Some(value),
        Err(payload) => {
            count(task, &panic_message(payload.as_ref()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_restarted_until_it_finishes() {
        let runs = Arc::new(AtomicU32::new(0));
        let (_stop, shutdown) = watch::channel(false);
        let counter = runs.clone();
        let handle = supervise("test", shutdown, move |_| {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("boom");
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("finishes")
            .expect("the supervisor itself does not panic");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_panic_in_one_item_is_caught() {
        assert_eq!(catch_panic("test", async { 7 }).await, Some(7));
        let caught: Option<()> = catch_panic("test", async { panic!("poisoned item") }).await;
        assert_eq!(caught, None);
    }
}
