//! Physical layer (raft): shares one leadership confirmation among the reads that arrive
//! while another is under way. No I/O of its own (the confirmation it runs does the raft
//! round, see [`super::RaftBackend`]).
//!
//! A linearizable read needs a confirmation that *started after the read was invoked*: one
//! that started earlier may predate a write acknowledged in between. The caller says when
//! that was (`since`: when its request arrived, see [`crate::server::physical::ReadFence`]).
//! The gate runs at most one confirmation ("round") at a time and remembers when each round
//! started:
//! - the last finished round passed and started after `since`: the read passes at once
//!   (a request's second and later reads, and reads that arrived just before a round began);
//! - the running round started after `since`: the read waits for it;
//! - otherwise the read waits for the next round, which the gate starts as soon as the
//!   running one ends (or at once when none runs), and which covers every read that arrived
//!   meanwhile.
//!
//! Under many concurrent readers one raft round then serves a whole batch of reads instead of
//! one round per read, and a request pays for one round however many keys it reads.
//!
//! Each round answers with the leadership that confirmed it ([`Leadership`]), which the
//! backend records in the request's fence: the request's writes are then proposed only under
//! that same leadership.
//!
//! Rounds run in a task of their own, so a reader that gives up (its request was dropped)
//! never strands the readers waiting for the same round. Each round is bounded (`limit`): a
//! confirmation that cannot finish (a leader cut off from its quorum waits for entries that
//! cannot commit) fails its readers with a retryable error instead of holding every later
//! read of this node behind it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::server::physical::{Leadership, PhysicalError};

/// What a confirmation answers: the leadership under which this node may serve a
/// linearizable read now.
pub(crate) type Confirmed = Result<Leadership, PhysicalError>;

/// One confirmation.
pub(crate) type Confirm =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Confirmed> + Send>> + Send + Sync>;

/// The outcome of the last finished round.
#[derive(Clone)]
struct Finished {
    /// The number of the round (rounds count from 1; 0: none finished yet).
    round: u64,
    outcome: Confirmed,
}

struct State {
    /// The number of the latest round started, and when it started.
    started: u64,
    started_at: Instant,
    /// Whether round `started` is running (else it has finished, or none ever started).
    running: bool,
    /// Whether a reader waits for the round after the running one.
    wanted: bool,
    /// The leadership that passed round `started`, once it finished and passed.
    passed: Option<Leadership>,
}

struct Shared {
    confirm: Confirm,
    limit: Duration,
    state: Mutex<State>,
    finished: watch::Sender<Finished>,
}

/// The gate; cheap to clone.
#[derive(Clone)]
pub(crate) struct ReadGate {
    shared: Arc<Shared>,
}

impl ReadGate {
    /// A gate whose rounds run `confirm`, each for at most `limit`.
    pub(crate) fn new(confirm: Confirm, limit: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                confirm,
                limit,
                state: Mutex::new(State {
                    started: 0,
                    started_at: Instant::now(),
                    running: false,
                    wanted: false,
                    passed: None,
                }),
                finished: watch::Sender::new(Finished {
                    round: 0,
                    outcome: Err(PhysicalError::Io {
                        backend: "raft",
                        path: "read gate".into(),
                        message: "no leadership confirmation has run yet".into(),
                    }),
                }),
            }),
        }
    }

    /// Waits for a confirmation that started after `since`, and returns its outcome.
    pub(crate) async fn pass(&self, since: Instant) -> Confirmed {
        let mut finished = self.shared.finished.subscribe();
        let target = {
            let mut state = self.shared.lock();
            let fresh = state.started > 0 && state.started_at > since;
            if let (false, true, Some(leadership)) = (state.running, fresh, state.passed) {
                return Ok(leadership);
            }
            match (state.running, fresh) {
                (true, true) => state.started,
                (true, false) => {
                    state.wanted = true;
                    state.started + 1
                }
                (false, _) => {
                    state.start();
                    tokio::spawn(Arc::clone(&self.shared).drive());
                    state.started
                }
            }
        };
        let done = finished
            .wait_for(|f| f.round >= target)
            .await
            .map_err(|_| PhysicalError::Io {
                backend: "raft",
                path: "read gate".into(),
                message: "the leadership check stopped before it answered; retry the read, and restart the server if this persists".into(),
            })?;
        done.outcome.clone()
    }
}

impl State {
    fn start(&mut self) {
        self.started += 1;
        self.started_at = Instant::now();
        self.running = true;
        self.passed = None;
    }
}

impl Shared {
    /// The state; every change under the lock is a plain assignment, so a poisoned lock is
    /// consistent and used as is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs rounds until no reader waits for another one.
    async fn drive(self: Arc<Self>) {
        loop {
            let outcome = tokio::time::timeout(self.limit, (self.confirm)())
                .await
                .unwrap_or_else(|_| {
                    Err(PhysicalError::NotLeader {
                        leader_api_addr: None,
                        reason: format!(
                            "this node could not confirm its leadership within {:?} (a quorum did not answer, or its entries did not commit); retry in a few seconds, and check that a quorum of the cluster's voters is up and reachable",
                            self.limit
                        ),
                    })
                });
            let mut state = self.lock();
            let round = state.started;
            state.passed = outcome.as_ref().ok().copied();
            self.finished.send_replace(Finished { round, outcome });
            if state.wanted {
                state.wanted = false;
                state.start();
            } else {
                state.running = false;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    /// A gate whose `n`th confirmation (counting from 1) runs `round(n)`, and its call count.
    fn gate_with<F>(round: impl Fn(u64) -> F + Send + Sync + 'static) -> (ReadGate, Arc<AtomicU64>)
    where
        F: Future<Output = Confirmed> + Send + 'static,
    {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&calls);
        let gate = ReadGate::new(
            Box::new(move || Box::pin(round(counter.fetch_add(1, Ordering::SeqCst) + 1))),
            LIMIT,
        );
        (gate, calls)
    }

    /// A gate whose confirmation takes `delay` and fails from call `fail_from` on.
    fn counting(delay: Duration, fail_from: u64) -> (ReadGate, Arc<AtomicU64>) {
        gate_with(move |n| async move {
            tokio::time::sleep(delay).await;
            if n >= fail_from {
                Err(PhysicalError::NotLeader {
                    leader_api_addr: None,
                    reason: format!("round {n} failed"),
                })
            } else {
                Ok(term(n))
            }
        })
    }

    const LIMIT: Duration = Duration::from_secs(2);

    /// The leadership a test confirmation reports: round `n` runs in term `n`.
    fn term(n: u64) -> Leadership {
        Leadership { term: n, node: 1 }
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_that_cannot_finish_fails_at_its_limit_and_the_next_one_runs() {
        // The first confirmation never finishes; the later ones pass at once.
        let (gate, calls) = gate_with(|n| async move {
            if n == 1 {
                std::future::pending::<()>().await;
            }
            Ok(term(n))
        });
        let started = Instant::now();
        let err = gate
            .pass(Instant::now())
            .await
            .expect_err("the hung round fails");
        assert!(
            err.to_string()
                .contains("could not confirm its leadership within 2s"),
            "{err}"
        );
        assert_eq!(started.elapsed(), LIMIT);
        tokio::time::advance(Duration::from_millis(1)).await;
        gate.pass(Instant::now())
            .await
            .expect("a new round after the hung one");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_reader_runs_one_round_per_request() {
        let (gate, calls) = counting(Duration::ZERO, u64::MAX);
        for i in 1..=3 {
            // A new request (arrived after the last round started): its first read needs a
            // round of its own, its later reads reuse it.
            tokio::time::advance(Duration::from_millis(2)).await;
            let arrived = Instant::now() - Duration::from_millis(1);
            for _ in 0..4 {
                gate.pass(arrived).await.expect("pass");
            }
            assert_eq!(calls.load(Ordering::SeqCst), i);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_that_started_before_the_request_arrived_does_not_count() {
        let (gate, calls) = counting(Duration::from_millis(10), u64::MAX);
        let early = Instant::now() - Duration::from_millis(1);
        gate.pass(early).await.expect("first round");
        tokio::time::advance(Duration::from_millis(1)).await;
        // Arrived after round 1 started (and ended): it needs round 2.
        gate.pass(Instant::now()).await.expect("second round");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // A request that arrived before round 2 started reuses it, and the leadership that
        // confirmed it.
        assert_eq!(gate.pass(early).await.expect("reuses round 2"), term(2));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn readers_that_arrive_during_a_round_share_the_next_one() {
        let (gate, calls) = counting(Duration::from_millis(10), u64::MAX);
        let first = tokio::spawn({
            let gate = gate.clone();
            async move { gate.pass(Instant::now()).await }
        });
        // Let the first round start, then send 20 readers while it runs.
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let late: Vec<_> = (0..20)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.pass(Instant::now()).await })
            })
            .collect();
        first.await.expect("join").expect("first read");
        for r in late {
            r.await.expect("join").expect("late read");
        }
        // The late readers (arrived after round 1 started) did not take round 1's answer:
        // they got a second round, one for all of them.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_round_fails_its_readers_and_the_next_round_is_fresh() {
        let (gate, calls) = counting(Duration::from_millis(5), 2);
        gate.pass(Instant::now()).await.expect("round 1 succeeds");
        let err = gate.pass(Instant::now()).await.expect_err("round 2 fails");
        assert!(err.to_string().contains("round 2 failed"), "{err}");
        let err = gate.pass(Instant::now()).await.expect_err("round 3 fails");
        assert!(err.to_string().contains("round 3 failed"), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_gives_up_does_not_strand_the_others() {
        let (gate, calls) = counting(Duration::from_millis(10), u64::MAX);
        let dropped = tokio::spawn({
            let gate = gate.clone();
            async move { gate.pass(Instant::now()).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.pass(Instant::now()).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        dropped.abort();
        waiter
            .await
            .expect("join")
            .expect("the waiter still gets its round");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
