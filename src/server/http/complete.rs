//! HTTP layer: a request future that finishes even when its caller stops waiting. No I/O.
//!
//! hyper drops a request's future when the client goes away. A handler dropped half-way
//! releases its locks (a KV key's, a token's) while the write it proposed is still on its way
//! to being applied; the next request on that key would then read state without that write
//! and compute from it (a second write numbering the same KV version, a token use counted
//! twice). Go's HTTP server, and so Vault, never cancels a handler. [`Completing`] gives the
//! same guarantee without a task per request: it is polled in the connection's task like any
//! future, and only when it is dropped unfinished does its remainder move into a task of its
//! own, which runs it to the end and discards the response nobody waits for.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A boxed future that, if dropped before it finished, finishes in a spawned task.
pub(crate) struct Completing<T: Send + 'static> {
    inner: Option<Pin<Box<dyn Future<Output = T> + Send>>>,
}

impl<T: Send + 'static> Completing<T> {
    pub(crate) fn new(fut: impl Future<Output = T> + Send + 'static) -> Self {
        Self {
            inner: Some(Box::pin(fut)),
        }
    }
}

impl<T: Send + 'static> Future for Completing<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        let Some(fut) = this.inner.as_mut() else {
            // Polled again after it finished: a caller bug, and nothing left to do.
            return Poll::Pending;
        };
        let out = fut.as_mut().poll(cx);
        if out.is_ready() {
            this.inner = None;
        }
        out
    }
}

impl<T: Send + 'static> Drop for Completing<T> {
    fn drop(&mut self) {
        let Some(fut) = self.inner.take() else {
            return;
        };
        // Outside a runtime (the process is shutting down) there is nowhere to finish it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = fut.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_future_dropped_half_way_still_runs_to_its_end() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let work = Completing::new(async move {
            let _ = started_tx.send(());
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
        });
        let waiter = tokio::spawn(work);
        started.await.expect("the work started");
        waiter.abort();
        assert!(waiter.await.is_err_and(|e| e.is_cancelled()));
        assert!(
            !finished.load(Ordering::SeqCst),
            "not finished when the waiter left"
        );
        for _ in 0..100 {
            if finished.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the work was dropped with its waiter instead of running to its end");
    }

    #[tokio::test]
    async fn a_finished_future_gives_its_output() {
        let work = Completing::new(async { 7 });
        assert_eq!(work.await, 7);
    }
}
