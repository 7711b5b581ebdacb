//! Operator layer, status step: the reasons of the SecretServer's conditions and Events, as one
//! enum. Each serialises to the CamelCase string the API has always shown; code matches on the
//! enum, never on those strings. Pure.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines [`Reason`] with the exact string of each variant.
macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $variant:ident = $text:literal,)*) => {
        /// A condition's or Event's reason.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The string in the API (`condition.reason`, the Event's reason).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $text,)*
                }
            }
        }
    };
}

reasons! {
    // Initialized
    /// Storage holds a root key.
    Initialized = "Initialized",
    /// Initialized, but the operator stopped before it stored the keys.
    InitKeysLost = "InitKeysLost",
    /// The operator is initializing the server.
    Initializing = "Initializing",
    /// `spec.init.auto` is false: a human initializes the server.
    InitRequired = "InitRequired",
    /// Storage is empty but the init Secret of an earlier initialization exists.
    InitSecretConflict = "InitSecretConflict",
    /// `sys/init`, or storing its result, failed.
    InitFailed = "InitFailed",
    /// The init Secret exists but the operator did not create it for this SecretServer.
    InitSecretForeign = "InitSecretForeign",
    /// KMS refused the data key of the init Secret.
    InitSecretKMSFailed = "InitSecretKMSFailed",
    /// The operator may not read or write Secrets in the namespace.
    InitSecretForbidden = "InitSecretForbidden",
    /// Raft: storage looks empty but a pod that may hold data has not answered.
    AwaitingPods = "AwaitingPods",
    /// No pod answered yet.
    NoPodAnswered = "NoPodAnswered",
    // Pods
    /// No pod of the StatefulSet exists.
    PodsNotCreated = "PodsNotCreated",
    /// The pod keeps crashing.
    PodCrashLooping = "PodCrashLooping",
    /// A container waits (image pull, config error, ...).
    PodWaiting = "PodWaiting",
    /// The pod does not answer on its IP.
    PodUnreachable = "PodUnreachable",
    /// The pod is being deleted.
    PodTerminating = "PodTerminating",
    /// The pod has no IP yet.
    PodStarting = "PodStarting",
    // SealHealthy
    /// The Shamir seal depends on no external service.
    ShamirSeal = "ShamirSeal",
    /// The KMS key is reachable and usable.
    KMSHealthy = "KMSHealthy",
    /// The server has not finished a KMS check yet.
    KMSCheckPending = "KMSCheckPending",
    /// KMS does not answer.
    KMSUnreachable = "KMSUnreachable",
    /// The role may not use the key.
    KMSAccessDenied = "KMSAccessDenied",
    /// No such key or alias.
    KMSKeyNotFound = "KMSKeyNotFound",
    /// The key is disabled or pending deletion.
    KMSKeyDisabled = "KMSKeyDisabled",
    /// The stored root key was not wrapped by this key.
    KMSInvalidCiphertext = "KMSInvalidCiphertext",
    /// STS refused the service-account token.
    WebIdentityDenied = "WebIdentityDenied",
    /// No AWS credentials at all.
    AWSCredentialsMissing = "AWSCredentialsMissing",
    /// KMS throttles the calls.
    KMSThrottled = "KMSThrottled",
    /// The seal's stored data is corrupt.
    SealDataCorrupt = "SealDataCorrupt",
    /// A KMS error of a class the operator does not know.
    KMSError = "KMSError",
    // Unsealed
    /// Every answering pod is unsealed.
    Unsealed = "Unsealed",
    /// A pod is not initialized, so it is sealed.
    NotInitialized = "NotInitialized",
    /// Shamir: sealed until enough unseal keys arrive.
    AwaitingUnsealKeys = "AwaitingUnsealKeys",
    /// Sealed; auto-unseal through KMS is in progress.
    AutoUnsealing = "AutoUnsealing",
    // Ready
    /// Every pod is ready and unsealed.
    Ready = "Ready",
    /// Pods fail their readiness probe.
    PodsNotReady = "PodsNotReady",
    // Progressing
    /// The StatefulSet is rolling out its pods.
    RollingOut = "RollingOut",
    /// Server pods are starting.
    PodsStarting = "PodsStarting",
    /// Nothing is in progress.
    Stable = "Stable",
    // Degraded
    /// Writing the server's objects failed.
    ApplyFailed = "ApplyFailed",
    /// No failure observed.
    AsExpected = "AsExpected",
    /// The spec cannot be acted on.
    InvalidSpec = "InvalidSpec",
    // Upgrading (raft servers)
    /// Every pod runs the StatefulSet's update revision.
    UpToDate = "UpToDate",
    /// The StatefulSet controller has not observed the current template yet.
    RevisionPending = "RevisionPending",
    /// The operator deleted an outdated pod so that it is re-created at the new revision.
    ReplacingPod = "ReplacingPod",
    /// The operator moved leadership off the outdated leader with `sys/step-down`.
    SteppingDown = "SteppingDown",
    /// Waiting for a replaced pod to become an unsealed, caught-up voter, or for a new leader.
    AwaitingUpgradedPod = "AwaitingUpgradedPod",
    /// A precondition of the next step does not hold; no pod is deleted until it does.
    UpgradeBlocked = "UpgradeBlocked",
    /// A step timed out; the upgrade stops until the cause is gone.
    UpgradeHalted = "UpgradeHalted",
    /// Deleting a pod or calling `sys/step-down` failed.
    UpgradeActionFailed = "UpgradeActionFailed",
    // Event-only reasons
    /// Event: a pod became sealed.
    Sealed = "Sealed",
    /// Event: the seal became healthy.
    SealHealthy = "SealHealthy",
}

impl Reason {
    /// The reason with this API string, if any (for conditions read back from the status).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == s)
    }

    /// The condition reason for a seal error class the server reports
    /// (`sys/seal-backend-status`'s `last_error_class`).
    pub fn from_kms_class(class: &str) -> Self {
        match class {
            "Unreachable" => Self::KMSUnreachable,
            "AccessDenied" => Self::KMSAccessDenied,
            "KeyNotFound" => Self::KMSKeyNotFound,
            "KeyDisabled" => Self::KMSKeyDisabled,
            "InvalidCiphertext" => Self::KMSInvalidCiphertext,
            "WebIdentityDenied" => Self::WebIdentityDenied,
            "MissingCredentials" => Self::AWSCredentialsMissing,
            "Throttled" => Self::KMSThrottled,
            "Corrupt" => Self::SealDataCorrupt,
            _ => Self::KMSError,
        }
    }

    /// Reasons of a normal start-up: published as Normal Events, not warnings.
    pub fn is_startup(self) -> bool {
        matches!(
            self,
            Self::PodsNotCreated
                | Self::PodStarting
                | Self::PodTerminating
                | Self::Initializing
                | Self::AutoUnsealing
                | Self::NotInitialized
                | Self::KMSCheckPending
                | Self::PodsNotReady
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Reason> for String {
    fn from(r: Reason) -> Self {
        r.as_str().to_owned()
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown reason {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_and_strings_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "{r:?} repeats {}", r.as_str());
            assert_eq!(Reason::parse(r.as_str()), Some(*r));
            let json = serde_json::to_string(r).expect("serialise");
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            let back: Reason = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, *r);
        }
        assert_eq!(Reason::parse("NoSuchReason"), None);
    }

    #[test]
    fn the_api_strings_are_the_variant_names() {
        // The API output is unchanged from when reasons were strings: each is its variant's
        // name, so `{:?}` and the API agree.
        for r in Reason::ALL {
            assert_eq!(format!("{r:?}"), r.as_str());
        }
    }
}
