use super::*;
use crate::operator::build::fixtures::{self, DEFAULT_IMAGE, NAMESPACE, UID};

/// A minimal valid spec under `spec:` (indented by four spaces) for the name `vault`.
fn yaml(spec: &str) -> String {
    format!(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: vault\nspec:\n{spec}"
    )
}

const SHAMIR: &str = "  seal:\n    shamir: {}\n";

fn check(spec: &str) -> Result<Validated, ValidationError> {
    validate(&fixtures::server(&yaml(spec)), Some(DEFAULT_IMAGE))
}

fn err(spec: &str) -> ValidationError {
    check(spec).expect_err("spec is refused")
}

#[test]
fn shamir_defaults() {
    let v = check(SHAMIR).expect("valid");
    assert_eq!(v.name, "vault");
    assert_eq!(v.namespace, NAMESPACE);
    assert_eq!(v.generation, Some(3));
    assert_eq!(v.replicas, 1);
    assert_eq!(v.image, DEFAULT_IMAGE);
    assert_eq!(v.seal, Seal::Shamir);
    assert_eq!(v.seal.type_name(), "shamir");
    assert_eq!(
        v.init,
        Init {
            auto: true,
            shares: 5,
            threshold: 3,
            revoke_root_token: false,
        }
    );
    assert_eq!(v.storage_size, Quantity("1Gi".into()));
    assert_eq!(v.storage_class, None);
    assert_eq!(v.service_account, "vault");
    assert!(v.service_account_annotations.is_empty());
    assert!(v.env.is_empty());
    assert_eq!(v.tls_secret, None);
    assert_eq!(v.scheme(), "http");
    assert_eq!(v.headless_service_name(), "vault-internal");
    assert_eq!(v.config_map_name(), "vault-config");
    assert_eq!(v.init_secret_name(), "vault-init");
}

#[test]
fn owner_reference_is_the_controller() {
    let v = check(SHAMIR).expect("valid");
    assert_eq!(v.owner.uid, UID);
    assert_eq!(v.owner.name, "vault");
    assert_eq!(v.owner.kind, "SecretServer");
    assert_eq!(v.owner.api_version, "sealkeep.dev/v1alpha1");
    assert_eq!(v.owner.controller, Some(true));
}

#[test]
fn awskms_is_trimmed_and_empty_optionals_are_none() {
    let v = check(
        "  seal:\n    awsKms:\n      keyId: ' alias/k '\n      region: ' eu-west-1'\n      endpoint: '  '\n      roleArn: ''\n",
    )
    .expect("valid");
    assert_eq!(
        v.seal,
        Seal::AwsKms {
            key_id: "alias/k".into(),
            region: "eu-west-1".into(),
            endpoint: None,
            role_arn: None,
        }
    );
    assert_eq!(v.seal.type_name(), "awskms");
}

#[test]
fn full_spec_is_carried_over() {
    let v = fixtures::validated(
        r#"
apiVersion: sealkeep.dev/v1alpha1
kind: SecretServer
metadata:
  name: vault
  namespace: prod
spec:
  image: ' registry.example/sealkeep:2 '
  seal:
    awsKms:
      keyId: alias/k
      region: eu-west-1
      endpoint: https://kms.eu-west-1.amazonaws.com
      roleArn: arn:aws:iam::1:role/r
  init:
    auto: false
    recoveryShares: 1
    recoveryThreshold: 1
    revokeRootToken: true
  storage:
    size: 10Gi
    storageClassName: fast
  serviceAccount:
    name: sk
    annotations:
      a: b
  env:
    - name: RUST_LOG
      value: debug
  listener:
    tls:
      secretName: ' cert '
  pod:
    priorityClassName: ''
  telemetry:
    unauthenticatedMetricsAccess: true
"#,
    );
    assert!(v.unauthenticated_metrics_access);
    assert!(!v.kubernetes_auth);
    assert_eq!(v.namespace, "prod");
    assert_eq!(v.image, "registry.example/sealkeep:2");
    assert_eq!(
        v.seal,
        Seal::AwsKms {
            key_id: "alias/k".into(),
            region: "eu-west-1".into(),
            endpoint: Some("https://kms.eu-west-1.amazonaws.com".into()),
            role_arn: Some("arn:aws:iam::1:role/r".into()),
        }
    );
    assert_eq!(
        v.init,
        Init {
            auto: false,
            shares: 1,
            threshold: 1,
            revoke_root_token: true,
        }
    );
    assert_eq!(v.storage_size, Quantity("10Gi".into()));
    assert_eq!(v.storage_class.as_deref(), Some("fast"));
    assert_eq!(v.service_account, "sk");
    assert_eq!(v.service_account_annotations["a"], "b");
    assert_eq!(v.env.len(), 1);
    assert_eq!(v.tls_secret.as_deref(), Some("cert"));
    assert_eq!(v.scheme(), "https");
    assert_eq!(v.priority_class_name, None);
}

#[test]
fn image_falls_back_to_the_default_image() {
    let ss = fixtures::server(&yaml(&format!("  image: ''\n{SHAMIR}")));
    assert_eq!(
        validate(&ss, Some("fallback:1")).expect("valid").image,
        "fallback:1"
    );
    assert_eq!(validate(&ss, None), Err(ValidationError::NoImage));
    assert_eq!(validate(&ss, Some("")), Err(ValidationError::NoImage));
    let own = fixtures::server(&yaml(&format!("  image: own:2\n{SHAMIR}")));
    assert_eq!(validate(&own, None).expect("valid").image, "own:2");
}

#[test]
fn blank_service_account_name_defaults_to_the_server_name() {
    let v = check(&format!("  serviceAccount:\n    name: ' '\n{SHAMIR}")).expect("valid");
    assert_eq!(v.service_account, "vault");
}

#[test]
fn no_namespace() {
    let mut ss = fixtures::server(&yaml(SHAMIR));
    ss.metadata.namespace = None;
    assert_eq!(
        validate(&ss, Some(DEFAULT_IMAGE)),
        Err(ValidationError::NoNamespace)
    );
}

#[test]
fn no_uid() {
    let mut ss = fixtures::parse(&yaml(SHAMIR));
    ss.metadata.namespace = Some("ns".into());
    assert_eq!(
        validate(&ss, Some(DEFAULT_IMAGE)),
        Err(ValidationError::NoUid {
            name: "vault".into()
        })
    );
}

#[test]
fn name_length_limit() {
    let at_limit = "a".repeat(MAX_NAME_LEN);
    let mut ss = fixtures::server(&yaml(SHAMIR));
    ss.metadata.name = Some(at_limit.clone());
    assert_eq!(
        validate(&ss, Some(DEFAULT_IMAGE)).expect("valid").name,
        at_limit
    );
    let long = "a".repeat(MAX_NAME_LEN + 1);
    ss.metadata.name = Some(long.clone());
    let e = validate(&ss, Some(DEFAULT_IMAGE)).expect_err("too long");
    assert_eq!(
        e,
        ValidationError::NameTooLong {
            name: long,
            len: MAX_NAME_LEN + 1
        }
    );
    assert!(e.to_string().contains("at most 52"), "{e}");
}

#[test]
fn replicas_must_be_one_three_or_five() {
    for n in [0, 2, 4, 6, -1] {
        assert_eq!(
            err(&format!("  replicas: {n}\n{SHAMIR}")),
            ValidationError::Replicas(n)
        );
    }
    for n in [1, 3, 5] {
        assert_eq!(
            check(&format!("  replicas: {n}\n{SHAMIR}"))
                .expect("valid")
                .replicas,
            n
        );
    }
}

#[test]
fn seal_must_be_exactly_one() {
    assert_eq!(err("  seal: {}\n"), ValidationError::SealCount);
    assert_eq!(
        err("  seal:\n    shamir: {}\n    awsKms:\n      keyId: k\n      region: r\n"),
        ValidationError::SealCount
    );
}

#[test]
fn awskms_key_and_region_must_be_set() {
    assert_eq!(
        err("  seal:\n    awsKms:\n      keyId: ' '\n      region: r\n"),
        ValidationError::EmptyKeyId
    );
    assert_eq!(
        err("  seal:\n    awsKms:\n      keyId: k\n      region: ''\n"),
        ValidationError::EmptyRegion
    );
}

#[test]
fn threshold_bounds() {
    let init = |shares: i32, threshold: i32| {
        check(&format!(
            "  init:\n    recoveryShares: {shares}\n    recoveryThreshold: {threshold}\n{SHAMIR}"
        ))
    };
    for (s, t) in [(3, 4), (0, 0), (5, 0), (256, 2), (3, -1)] {
        assert_eq!(
            init(s, t),
            Err(ValidationError::Threshold {
                shares: s,
                threshold: t
            }),
            "{s}/{t}"
        );
    }
    let v = init(255, 255).expect("255/255 is valid");
    assert_eq!((v.init.shares, v.init.threshold), (255, 255));
}

#[test]
fn storage_size_must_be_a_quantity() {
    assert_eq!(
        err(&format!("  storage:\n    size: lots\n{SHAMIR}")),
        ValidationError::Size("lots".into())
    );
}

#[test]
fn reserved_env_is_refused() {
    for name in RESERVED_ENV {
        assert_eq!(
            err(&format!(
                "  env:\n    - name: {name}\n      value: x\n{SHAMIR}"
            )),
            ValidationError::ReservedEnv((*name).to_owned())
        );
    }
}

#[test]
fn empty_tls_secret_is_refused() {
    assert_eq!(
        err(&format!(
            "  listener:\n    tls:\n      secretName: ' '\n{SHAMIR}"
        )),
        ValidationError::EmptyTlsSecret
    );
    let v = check(&format!("  listener: {{}}\n{SHAMIR}")).expect("no tls");
    assert_eq!(v.tls_secret, None);
}

#[test]
fn metrics_need_a_token_unless_the_spec_says_otherwise() {
    assert!(!check(SHAMIR).expect("valid").unauthenticated_metrics_access);
    let v = check(&format!("  telemetry: {{}}\n{SHAMIR}")).expect("valid");
    assert!(!v.unauthenticated_metrics_access);
}

#[test]
fn kubernetes_auth_binds_only_the_account_the_operator_creates() {
    let auth = "  auth:\n    kubernetes:\n      enabled: true\n";
    let v = check(&format!("{auth}{SHAMIR}")).expect("own account");
    assert!(v.kubernetes_auth && v.manage_service_account);
    assert_eq!(v.service_account, "vault");
    let e = err(&format!(
        "{auth}  serviceAccount:\n    name: payments-app\n{SHAMIR}"
    ));
    assert_eq!(
        e,
        ValidationError::KubernetesAuthWithForeignServiceAccount("payments-app".into())
    );
    let msg = e.to_string();
    assert!(
        msg.contains("\"payments-app\"") && msg.contains("remove spec.serviceAccount.name"),
        "{msg}"
    );
    // A user account without Kubernetes auth stays allowed (it binds nothing).
    let v = check(&format!(
        "  serviceAccount:\n    name: payments-app\n{SHAMIR}"
    ))
    .expect("user account without auth");
    assert!(!v.kubernetes_auth && !v.manage_service_account);
    // A blank name is no name.
    let v =
        check(&format!("{auth}  serviceAccount:\n    name: ' '\n{SHAMIR}")).expect("blank name");
    assert!(v.manage_service_account);
}

#[test]
fn every_error_message_says_what_to_change() {
    let errors = [
        ValidationError::NoNamespace,
        ValidationError::NoUid { name: "x".into() },
        ValidationError::NameTooLong {
            name: "x".into(),
            len: 60,
        },
        ValidationError::Replicas(2),
        ValidationError::SealCount,
        ValidationError::EmptyKeyId,
        ValidationError::EmptyRegion,
        ValidationError::Threshold {
            shares: 1,
            threshold: 2,
        },
        ValidationError::Size("x".into()),
        ValidationError::ReservedEnv("POD_IP".into()),
        ValidationError::NoImage,
        ValidationError::EmptyTlsSecret,
        ValidationError::KubernetesAuthWithForeignServiceAccount("default".into()),
        ValidationError::FileReplicas(3),
        ValidationError::RaftWithFile,
        ValidationError::PerformanceMultiplier(11),
        ValidationError::Autopilot("minQuorum must be set".into()),
        ValidationError::RaftReservedEnv("VAULT_RAFT_NODE_ID".into()),
    ];
    for e in errors {
        let msg = e.to_string();
        assert!(msg.len() > 20, "{msg}");
    }
}

#[test]
fn quantities() {
    for good in [
        "1Gi", "500Mi", "1", "0", "1.5Gi", "+1Ki", "100m", "1k", "1M", "2E", "1e3", "1E-2",
        "1.5e+3", " 1Gi ", ".5", "5.",
    ] {
        assert!(is_quantity(good), "{good:?} is a quantity");
    }
    for bad in [
        "", "Gi", "lots", "1GB", "1gi", "1.2.3Gi", "1 Gi", "--1", "1e", "1e+", "1Ki5", ".", "+",
        "1i", "e3",
    ] {
        assert!(!is_quantity(bad), "{bad:?} is not a quantity");
    }
}
