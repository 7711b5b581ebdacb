//! Operator layer, build step: test-only fixtures. Parses `SecretServer`s from YAML and runs
//! them through `validate()`, as if read from the API server. Pure (no I/O).

use kube::Resource;

use crate::operator::crd::SecretServer;
use crate::operator::validate::{Validated, validate};

/// The operator's `--default-image` in tests.
pub(crate) const DEFAULT_IMAGE: &str = "ghcr.io/sealkeep/sealkeep:test";
/// Namespace and uid that [`server`] gives every fixture.
pub(crate) const NAMESPACE: &str = "secrets";
pub(crate) const UID: &str = "3f1f6c1e-8d2a-4d4e-9a55-0c7f0f1e2a01";

/// AWS KMS auto-unseal with an IRSA role.
pub(crate) const AWSKMS_ROLE_YAML: &str = r#"
apiVersion: sealkeep.dev/v1alpha1
kind: SecretServer
metadata:
  name: vault
spec:
  storage:
    type: file
  seal:
    awsKms:
      keyId: alias/sealkeep-unseal
      region: eu-west-1
      roleArn: arn:aws:iam::123456789012:role/sealkeep
"#;

/// Shamir seal, everything else defaulted.
pub(crate) const SHAMIR_YAML: &str = r#"
apiVersion: sealkeep.dev/v1alpha1
kind: SecretServer
metadata:
  name: shamir
spec:
  storage:
    type: file
  seal:
    shamir: {}
"#;

/// AWS KMS without a role (credentials from the default chain), a local KMS endpoint and an
/// HTTPS listener.
pub(crate) const TLS_YAML: &str = r#"
apiVersion: sealkeep.dev/v1alpha1
kind: SecretServer
metadata:
  name: tls
spec:
  image: registry.example/sealkeep:1.2.3
  storage:
    type: file
  seal:
    awsKms:
      keyId: 1234abcd-12ab-34cd-56ef-1234567890ab
      region: us-east-1
      endpoint: http://kms.local:4566
  listener:
    tls:
      secretName: tls-cert
"#;

/// AWS KMS with IRSA and every user override the builders merge: storage, env, pod labels
/// (some trying to take over the selector), annotations, scheduling and resources.
pub(crate) const OVERRIDES_YAML: &str = r#"
apiVersion: sealkeep.dev/v1alpha1
kind: SecretServer
metadata:
  name: vault
spec:
  seal:
    awsKms:
      keyId: alias/k
      region: ap-southeast-2
      roleArn: arn:aws:iam::123456789012:role/sealkeep
  storage:
    type: file
    size: 5Gi
    storageClassName: gp3
  env:
    - name: AWS_ENDPOINT_URL
      value: http://localstack:4566
    - name: RUST_LOG
      value: debug
  pod:
    labels:
      app.kubernetes.io/instance: hijacked
      app.kubernetes.io/name: other
      team: secrets
    annotations:
      example.com/owner: platform
      sealkeep.dev/config-hash: user-value
    nodeSelector:
      kubernetes.io/os: linux
    tolerations:
      - key: dedicated
        operator: Equal
        value: secrets
        effect: NoSchedule
    priorityClassName: system-cluster-critical
  resources:
    requests:
      cpu: 100m
      memory: 64Mi
"#;

/// Three raft replicas with an awskms seal (storage by default).
pub(crate) const RAFT3_YAML: &str = r#"
apiVersion: sealkeep.dev/v1alpha1
kind: SecretServer
metadata:
  name: vault
spec:
  replicas: 3
  seal:
    awsKms:
      keyId: alias/k
      region: eu-west-1
"#;

/// Shamir with the metrics endpoints open to scrapers without a token.
pub(crate) const METRICS_YAML: &str = r#"
apiVersion: sealkeep.dev/v1alpha1
kind: SecretServer
metadata:
  name: metrics
spec:
  storage:
    type: file
  seal:
    shamir: {}
  telemetry:
    unauthenticatedMetricsAccess: true
"#;

/// Parses a SecretServer exactly as written (no namespace or uid unless the YAML has them).
pub(crate) fn parse(yaml: &str) -> SecretServer {
    serde_yaml::from_str(yaml).expect("fixture is a valid SecretServer")
}

/// Parses a SecretServer and fills in what the API server sets: namespace (when absent), uid
/// and generation.
pub(crate) fn server(yaml: &str) -> SecretServer {
    let mut ss = parse(yaml);
    let meta = ss.meta_mut();
    meta.namespace.get_or_insert_with(|| NAMESPACE.to_owned());
    meta.uid = Some(UID.to_owned());
    meta.generation = Some(3);
    ss
}

/// [`server`], then `validate()` with [`DEFAULT_IMAGE`]; panics when the fixture is invalid.
pub(crate) fn validated(yaml: &str) -> Validated {
    validate(&server(yaml), Some(DEFAULT_IMAGE)).expect("fixture validates")
}

pub(crate) fn awskms_role() -> Validated {
    validated(AWSKMS_ROLE_YAML)
}

pub(crate) fn shamir() -> Validated {
    validated(SHAMIR_YAML)
}

pub(crate) fn tls() -> Validated {
    validated(TLS_YAML)
}

pub(crate) fn overrides() -> Validated {
    validated(OVERRIDES_YAML)
}

pub(crate) fn metrics() -> Validated {
    validated(METRICS_YAML)
}
