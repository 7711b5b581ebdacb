//! Operator layer, status step: turns built conditions into Kubernetes Conditions, carrying
//! `lastTransitionTime` over while a condition's status is unchanged; and the status of a spec
//! the operator cannot act on. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::conditions::{Cond, CondStatus};
use super::reason::Reason;
use super::{DEGRADED, READY};
use crate::operator::crd::SecretServerStatus;

/// `now`, truncated to whole seconds (what the API server keeps).
fn second(now: Timestamp) -> Time {
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// The transition time of a `type_` condition that had `status` in `prev`, else `now`.
fn since(prev: &[Condition], type_: &str, status: &str, now: &Time) -> Time {
    prev.iter()
        .find(|p| p.type_ == type_ && p.status == status)
        .map_or_else(|| now.clone(), |p| p.last_transition_time.clone())
}

/// Kubernetes Conditions from `conds`: `prev` supplies `lastTransitionTime` of conditions whose
/// status did not change; `now` stamps the others.
pub(super) fn stamp(
    conds: impl IntoIterator<Item = Cond>,
    prev: Option<&SecretServerStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let prev = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let now = second(now);
    conds
        .into_iter()
        .map(|c| Condition {
            last_transition_time: since(prev, c.type_, c.status.as_str(), &now),
            message: c.message,
            observed_generation: generation,
            reason: c.reason.into(),
            status: c.status.as_str().to_owned(),
            type_: c.type_.to_owned(),
        })
        .collect()
}

/// Status for a spec the operator cannot act on: Ready False and Degraded True with reason
/// `InvalidSpec` and `message`, everything else kept from `prev`.
pub fn invalid(
    prev: Option<&SecretServerStatus>,
    generation: Option<i64>,
    message: &str,
    now: Timestamp,
) -> SecretServerStatus {
    let prev = prev.cloned().unwrap_or_default();
    let mut conditions = prev.conditions.clone();
    let flagged = [
        Cond {
            type_: READY,
            status: CondStatus::False,
            reason: Reason::InvalidSpec,
            message: message.to_owned(),
        },
        Cond {
            type_: DEGRADED,
            status: CondStatus::True,
            reason: Reason::InvalidSpec,
            message: message.to_owned(),
        },
    ];
    let stamped = stamp(flagged, Some(&prev), generation, now);
    for c in stamped {
        conditions.retain(|p| p.type_ != c.type_);
        conditions.push(c);
    }
    SecretServerStatus {
        observed_generation: generation,
        reason: Some(Reason::InvalidSpec.into()),
        conditions,
        ..prev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("timestamp")
    }

    #[test]
    fn invalid_keeps_other_conditions_and_the_time_of_an_unchanged_status() {
        let first = invalid(None, Some(1), "spec.replicas is 2", t(1000));
        assert_eq!(first.reason.as_deref(), Some("InvalidSpec"));
        assert_eq!(first.observed_generation, Some(1));
        let types: Vec<&str> = first.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, DEGRADED]);
        assert!(first.conditions.iter().all(|c| c.reason == "InvalidSpec"));
        assert!(
            first
                .conditions
                .iter()
                .all(|c| c.message == "spec.replicas is 2")
        );

        let mut prev = first.clone();
        prev.conditions.push(Condition {
            type_: "Initialized".into(),
            status: "True".into(),
            reason: "Initialized".into(),
            message: "storage is initialized".into(),
            observed_generation: Some(1),
            last_transition_time: Time(t(500)),
        });
        let second = invalid(Some(&prev), Some(2), "other message", t(2000));
        assert_eq!(second.observed_generation, Some(2));
        assert!(second.conditions.iter().any(|c| c.type_ == "Initialized"));
        let ready = second
            .conditions
            .iter()
            .find(|c| c.type_ == READY)
            .expect("Ready");
        assert_eq!(ready.message, "other message");
        assert_eq!(ready.last_transition_time.0, t(1000), "status unchanged");
    }

    #[test]
    fn stamp_truncates_now_and_keeps_the_time_of_an_unchanged_status() {
        let now = Timestamp::new(1_700_000_000, 987_654_321).expect("timestamp");
        let c = Cond {
            type_: READY,
            status: CondStatus::True,
            reason: Reason::Ready,
            message: "1/1".into(),
        };
        let first = stamp([c.clone()], None, Some(3), now);
        assert_eq!(first[0].last_transition_time.0, t(1_700_000_000));
        assert_eq!(first[0].observed_generation, Some(3));
        let prev = SecretServerStatus {
            conditions: first,
            ..SecretServerStatus::default()
        };
        let again = stamp([c], Some(&prev), Some(3), t(1_800_000_000));
        assert_eq!(again[0].last_transition_time.0, t(1_700_000_000));
    }
}
