//! Physical layer: when the request being served arrived, so that a replicated backend can
//! confirm, once per request, that its local reads are current. No I/O.
//!
//! A read is linearizable when it reflects every write acknowledged before the *request*
//! was made. The raft backend proves that with a leadership confirmation that started after
//! the request arrived; one such confirmation covers every read the request makes afterwards
//! (the leader's local state only moves forward). The HTTP front door runs each request in
//! [`ReadFence::scope`]; work outside a request (background jobs, spawned tasks) has no
//! fence, and each of its reads counts as arriving when it is made.

use std::future::Future;

use tokio::time::Instant;

tokio::task_local! {
    /// When the request served by this task arrived.
    static ARRIVED: Instant;
}

/// The request-arrival fence; see the module documentation.
pub struct ReadFence;

impl ReadFence {
    /// Runs `request` with its arrival set to now.
    pub async fn scope<F: Future>(request: F) -> F::Output {
        ARRIVED.scope(Instant::now(), request).await
    }

    /// When the current request arrived, or now outside a request.
    pub(crate) fn since() -> Instant {
        ARRIVED
            .try_with(|at| *at)
            .unwrap_or_else(|_| Instant::now())
    }
}
