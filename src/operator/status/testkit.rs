//! Operator layer, status step: test-only pod observations for the condition builders' unit
//! tests. Pure.

use crate::api_client::{Health, SealBackendStatus, SealStatus};
use crate::operator::observe::{Answer, PodObservation, PodView};
use crate::operator::status::{Facts, InitState};
use crate::operator::validate::Validated;

pub(super) const POD: &str = "vault-0";

pub(super) fn view(ready: bool) -> PodView {
    PodView {
        name: POD.into(),
        ip: Some("198.18.0.9".into()),
        phase: "Running".into(),
        ready,
        ..PodView::default()
    }
}

/// A pod without an IP: not asked.
pub(super) fn starting() -> PodObservation {
    PodObservation {
        pod: PodView {
            ip: None,
            phase: "Pending".into(),
            ..view(false)
        },
        answer: Answer::NotAsked,
    }
}

/// A pod whose server answered; `backend` is `(healthy, error class)` for awskms.
pub(super) fn answered(
    initialized: bool,
    sealed: bool,
    backend: Option<(bool, &str)>,
) -> PodObservation {
    let seal: SealStatus = serde_json::from_value(serde_json::json!({
        "type": if backend.is_some() { "awskms" } else { "shamir" },
        "initialized": initialized, "sealed": sealed,
        "t": 3, "n": 5, "progress": 1, "version": "0.1.0",
    }))
    .expect("seal status");
    PodObservation {
        pod: view(initialized && !sealed),
        answer: Answer::Answered {
            seal,
            health: Some(Health {
                initialized,
                sealed,
                standby: false,
                version: "0.1.0".into(),
                code: 200,
            }),
            backend: backend.map(|(healthy, class)| SealBackendStatus {
                healthy,
                last_error_class: class.into(),
                last_error: if class.is_empty() {
                    String::new()
                } else {
                    "kms said no".into()
                },
                ..SealBackendStatus::default()
            }),
        },
    }
}

pub(super) fn facts<'a>(
    v: &'a Validated,
    pods: &'a [PodObservation],
    init: InitState,
) -> Facts<'a> {
    Facts {
        v,
        pods,
        init,
        rolling: false,
        apply_error: None,
        upgrade: None,
    }
}

pub(super) fn initialized() -> InitState {
    InitState::Initialized {
        secret: Some("vault-init".into()),
    }
}
