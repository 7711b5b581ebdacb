//! Jepsen harness (test code): network nemeses through the fault proxy (tests/jepsen/proxy.rs):
//! partitions (the leader alone in a minority, a random majority/minority split, a bridge), a
//! one-way cut, and a slow node. [`rules`] is pure; [`partition`] applies a shape for `hold`
//! and heals.

use std::time::Instant;

use super::Env;
use super::process::probe_cut_off;
use crate::jepsen::proxy::Rules;
use crate::jepsen::rng::Rng;

/// A network fault's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The leader alone on one side, the rest on the other (both ways).
    IsolateLeader,
    /// A random minority (⌊n/2⌋ nodes) and majority, cut from each other.
    Split,
    /// Two sides that cannot reach each other, and one node (the bridge) that reaches both;
    /// the leader is on a side.
    Bridge,
    /// Only one direction between the leader and every other node is cut (which one is
    /// random): it hears them but they do not hear it, or the reverse.
    OneWay,
    /// Every link to and from one random node delivers bytes 50-300 ms late.
    Slow,
}

impl Shape {
    pub const ALL: [Shape; 5] = [
        Shape::IsolateLeader,
        Shape::Split,
        Shape::Bridge,
        Shape::OneWay,
        Shape::Slow,
    ];

    /// The fault kind it is recorded as.
    pub fn kind(self) -> &'static str {
        match self {
            Self::IsolateLeader | Self::Split => "partition",
            Self::Bridge => "bridge",
            Self::OneWay => "one-way",
            Self::Slow => "slow",
        }
    }
}

fn shuffled(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
    v
}

/// The rules of `shape` on `n` nodes whose leader is `leader`, and a description.
pub fn rules(shape: Shape, n: usize, leader: usize, rng: &mut Rng) -> (Rules, String) {
    let mut r = Rules::default();
    let others: Vec<usize> = (0..n).filter(|i| *i != leader).collect();
    let detail = match shape {
        Shape::IsolateLeader => {
            r.cut_between(&[leader], &others);
            format!("{:?} | {others:?}", [leader])
        }
        Shape::Split => {
            let order = shuffled(n, rng);
            let (minority, majority) = order.split_at(n / 2);
            r.cut_between(minority, majority);
            format!("{minority:?} | {majority:?}")
        }
        Shape::Bridge => {
            // The leader first on side a; the rest shuffled into the bridge and the sides.
            let mut rest = others.clone();
            let order = shuffled(rest.len(), rng);
            rest = order.iter().map(|i| others[*i]).collect();
            let bridge = rest.remove(0);
            let half = rest.len().div_ceil(2);
            let mut a = vec![leader];
            a.extend_from_slice(&rest[..half.saturating_sub(1)]);
            let b = &rest[half.saturating_sub(1)..];
            r.cut_between(&a, b);
            format!("{a:?} | bridge {bridge} | {b:?}")
        }
        Shape::OneWay => {
            let outbound = rng.below(2) == 0;
            for o in &others {
                r.cut
                    .insert(if outbound { (leader, *o) } else { (*o, leader) });
            }
            if outbound {
                format!("{leader} -> {others:?} cut")
            } else {
                format!("{others:?} -> {leader} cut")
            }
        }
        Shape::Slow => {
            let slow = rng.below(n as u64) as usize;
            let delay = std::time::Duration::from_millis(50 + rng.below(251));
            for o in (0..n).filter(|o| *o != slow) {
                r.delay.insert((slow, o), delay);
                r.delay.insert((o, slow), delay);
            }
            format!("node {slow} +{}ms each way", delay.as_millis())
        }
    };
    (r, detail)
}

/// Applies `shape` for `hold`, then heals. With the leader cut off, it is probed for stale
/// reads meanwhile.
pub async fn partition(env: &mut Env<'_>, shape: Shape, leader: usize) {
    let n = env.c.nodes.len();
    let (rules, detail) = rules(shape, n, leader, &mut env.rng);
    let leader_isolated = (0..n).all(|o| o == leader || rules.cut.contains(&(leader, o)));
    env.fault(shape.kind(), leader, detail);
    env.net.set(rules);
    let heal_at = Instant::now() + env.s.schedule.hold;
    if leader_isolated {
        probe_cut_off(env, leader, heal_at).await;
    }
    tokio::time::sleep_until(heal_at.into()).await;
    env.net.heal();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sides_cut(r: &Rules, a: &[usize], b: &[usize]) -> bool {
        a.iter().all(|x| {
            b.iter()
                .all(|y| r.cut.contains(&(*x, *y)) && r.cut.contains(&(*y, *x)))
        })
    }

    #[test]
    fn a_bridge_reaches_both_sides_that_cannot_reach_each_other() {
        for n in [3, 5] {
            for seed in 0..20 {
                let (r, detail) = rules(Shape::Bridge, n, 0, &mut Rng::new(seed));
                let bridge: Vec<usize> = (0..n)
                    .filter(|x| r.cut.iter().all(|(a, b)| a != x && b != x))
                    .collect();
                assert_eq!(bridge.len(), 1, "{detail}: one node reaches every other");
                assert_eq!(r.cut.len(), if n == 3 { 2 } else { 8 }, "{detail}");
                assert!(!r.cut.contains(&(0, bridge[0])), "{detail}");
            }
        }
    }

    #[test]
    fn a_split_leaves_a_majority_and_one_way_cuts_only_one_direction() {
        let (r, detail) = rules(Shape::Split, 5, 0, &mut Rng::new(3));
        assert_eq!(r.cut.len(), 2 * 2 * 3, "{detail}");
        let (r, _) = rules(Shape::IsolateLeader, 3, 1, &mut Rng::new(3));
        assert!(sides_cut(&r, &[1], &[0, 2]));
        let (r, detail) = rules(Shape::OneWay, 3, 1, &mut Rng::new(3));
        assert_eq!(r.cut.len(), 2, "{detail}");
        assert!(
            r.cut.iter().all(|(a, b)| !r.cut.contains(&(*b, *a))),
            "{detail}"
        );
    }
}
