use super::*;
use crate::operator::build::fixtures;

const SHAMIR_WITH_ANNOTATIONS: &str = r#"
apiVersion: sealkeep.dev/v1alpha1
kind: SecretServer
metadata:
  name: vault
spec:
  serviceAccount:
    name: custom-sa
    annotations:
      example.com/team: secrets
  seal:
    shamir: {}
"#;

const ROLE_AND_USER_ANNOTATIONS: &str = r#"
apiVersion: sealkeep.dev/v1alpha1
kind: SecretServer
metadata:
  name: vault
spec:
  serviceAccount:
    annotations:
      example.com/team: secrets
      eks.amazonaws.com/role-arn: arn:aws:iam::999999999999:role/other
  seal:
    awsKms:
      keyId: alias/k
      region: eu-west-1
      roleArn: arn:aws:iam::123456789012:role/sealkeep
"#;

#[test]
fn role_arn_sets_the_irsa_annotation() {
    let v = fixtures::awskms_role();
    let sa = service_account(&v);
    assert_eq!(sa.metadata.name.as_deref(), Some("vault"));
    assert_eq!(sa.metadata.namespace.as_deref(), Some(fixtures::NAMESPACE));
    let annotations = sa.metadata.annotations.expect("annotations");
    assert_eq!(
        annotations.get(IRSA_ROLE_ANNOTATION).map(String::as_str),
        Some("arn:aws:iam::123456789012:role/sealkeep")
    );
    assert_eq!(annotations.len(), 1);
    assert_eq!(sa.automount_service_account_token, None);
}

#[test]
fn no_role_arn_no_irsa_annotation() {
    for v in [fixtures::shamir(), fixtures::tls()] {
        let sa = service_account(&v);
        assert_eq!(sa.metadata.annotations, None, "{}", v.name);
        assert_eq!(irsa_role_arn(&v), None);
    }
}

#[test]
fn user_annotations_and_name_are_kept() {
    let v = fixtures::validated(SHAMIR_WITH_ANNOTATIONS);
    let sa = service_account(&v);
    assert_eq!(sa.metadata.name.as_deref(), Some("custom-sa"));
    let annotations = sa.metadata.annotations.expect("annotations");
    assert_eq!(annotations["example.com/team"], "secrets");
    assert!(!annotations.contains_key(IRSA_ROLE_ANNOTATION));
}

#[test]
fn role_arn_merges_with_user_annotations_and_wins() {
    let v = fixtures::validated(ROLE_AND_USER_ANNOTATIONS);
    let annotations = service_account(&v)
        .metadata
        .annotations
        .expect("annotations");
    assert_eq!(annotations["example.com/team"], "secrets");
    assert_eq!(
        annotations[IRSA_ROLE_ANNOTATION],
        "arn:aws:iam::123456789012:role/sealkeep"
    );
}

#[test]
fn metadata_has_labels_and_controller_owner() {
    let sa = service_account(&fixtures::shamir());
    let owners = sa.metadata.owner_references.expect("owner refs");
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].controller, Some(true));
    assert_eq!(owners[0].uid, fixtures::UID);
    assert_eq!(owners[0].kind, "SecretServer");
    let labels = sa.metadata.labels.expect("labels");
    assert_eq!(labels["app.kubernetes.io/instance"], "shamir");
}
