//! Physical layer: the fence a replicated backend keeps per request, so that its local reads
//! are current and a write computed from them lands where they were true. No I/O.
//!
//! - **Arrival.** A read is linearizable when it reflects every write acknowledged before the
//!   *request* was made. The raft backend proves that with a leadership confirmation that
//!   started after the request arrived; one such confirmation covers every read the request
//!   makes afterwards (the leader's local state only moves forward).
//! - **Leadership.** A request that reads and then writes (a KV v2 write reads the key's
//!   metadata to number the new version; a `cas` compares it) must not write under another
//!   leadership than the one that confirmed its reads: had this node lost office and won it
//!   back in between, another leader could have written the same key, and the write, computed
//!   from the older state, would overwrite that. So the first confirmation's leadership is
//!   recorded here ([`ReadFence::confirmed_under`]), and the backend proposes the request's
//!   writes on the condition that it still holds that leadership ([`ReadFence::leadership`]).
//!
//! The HTTP front door runs each request in [`ReadFence::scope`]; work outside a request
//! (background jobs, spawned tasks) has no fence: each of its reads counts as arriving when it
//! is made, and its writes are unconditional.

use std::cell::Cell;
use std::future::Future;

use tokio::time::Instant;

/// One leader's term of office, as the backend identifies it (for raft: the term and the
/// leader's node id). Opaque outside the backend that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    pub(crate) term: u64,
    pub(crate) node: u64,
}

struct Fence {
    arrived: Instant,
    /// The leadership that confirmed this request's first read, once one did.
    confirmed: Cell<Option<Leadership>>,
}

tokio::task_local! {
    /// The fence of the request served by this task.
    static FENCE: Fence;
}

/// The per-request fence; see the module documentation.
pub struct ReadFence;

impl ReadFence {
    /// Runs `request` with its arrival set to now and no leadership recorded yet.
    pub async fn scope<F: Future>(request: F) -> F::Output {
        let fence = Fence {
            arrived: Instant::now(),
            confirmed: Cell::new(None),
        };
        FENCE.scope(fence, request).await
    }

    /// When the current request arrived, or now outside a request.
    pub(crate) fn since() -> Instant {
        FENCE
            .try_with(|f| f.arrived)
            .unwrap_or_else(|_| Instant::now())
    }

    /// Records that a read of the current request was confirmed under `leadership`; the first
    /// one recorded is kept (a later read under another leadership makes the write fail its
    /// condition, which is what it must do). No-op outside a request.
    pub(crate) fn confirmed_under(leadership: Leadership) {
        let _ = FENCE.try_with(|f| {
            if f.confirmed.get().is_none() {
                f.confirmed.set(Some(leadership));
            }
        });
    }

    /// The leadership that confirmed the current request's first read, if any.
    pub(crate) fn leadership() -> Option<Leadership> {
        FENCE.try_with(|f| f.confirmed.get()).ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_confirmed_leadership_is_kept_and_only_inside_a_request() {
        let a = Leadership { term: 3, node: 1 };
        let b = Leadership { term: 5, node: 1 };
        ReadFence::confirmed_under(a);
        assert_eq!(
            ReadFence::leadership(),
            None,
            "no request: nothing recorded"
        );
        let seen = ReadFence::scope(async {
            assert_eq!(ReadFence::leadership(), None);
            ReadFence::confirmed_under(a);
            ReadFence::confirmed_under(b);
            ReadFence::leadership()
        })
        .await;
        assert_eq!(seen, Some(a));
        let other = ReadFence::scope(async { ReadFence::leadership() }).await;
        assert_eq!(other, None, "each request starts with none");
    }
}
