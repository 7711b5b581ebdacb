//! Operator layer, build step: the ClusterRoleBinding that lets the server review service-account
//! tokens (Kubernetes auth). Pure. Cluster-scoped, so it cannot be owned by the namespaced
//! SecretServer: the operator removes it through a finalizer.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{APP_NAME, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY};
use crate::operator::validate::Validated;

/// The ClusterRole Kubernetes ships for token and subject-access reviews.
pub const AUTH_DELEGATOR: &str = "system:auth-delegator";
/// Label with the SecretServer's namespace (cluster-scoped objects have none).
pub const LABEL_NAMESPACE: &str = "sealkeep.dev/namespace";

/// Prefix of every ClusterRoleBinding the operator writes. The chart's ValidatingAdmissionPolicy
/// (charts/sealkeep/templates/admission-policy.yaml) refuses any other name from the operator's
/// ServiceAccount, so a change here must change that policy too.
pub const BINDING_PREFIX: &str = "sealkeep:";

/// Name of the binding: unique per SecretServer, at most 253 characters; the namespace in it is
/// what the admission policy checks the subjects against.
pub fn auth_delegator_name(v: &Validated) -> String {
    format!("{BINDING_PREFIX}{}:{}:auth-delegator", v.namespace, v.name)
}

/// Labels that find the bindings of one SecretServer.
pub fn binding_labels(namespace: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), APP_NAME.to_owned()),
        (LABEL_INSTANCE.to_owned(), name.to_owned()),
        (LABEL_NAMESPACE.to_owned(), namespace.to_owned()),
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
    ])
}

/// Binds `system:auth-delegator` to the server's ServiceAccount.
pub fn auth_delegator_binding(v: &Validated) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(auth_delegator_name(v)),
            labels: Some(binding_labels(&v.namespace, &v.name)),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: AUTH_DELEGATOR.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: v.service_account.clone(),
            namespace: Some(v.namespace.clone()),
            api_group: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::build::fixtures;

    #[test]
    fn binds_auth_delegator_to_the_server_service_account_without_owner() {
        let v = fixtures::awskms_role();
        let b = auth_delegator_binding(&v);
        assert_eq!(b.role_ref.name, "system:auth-delegator");
        assert_eq!(b.role_ref.kind, "ClusterRole");
        let s = &b.subjects.as_ref().expect("subjects")[0];
        assert_eq!(
            (s.kind.as_str(), s.name.as_str()),
            ("ServiceAccount", v.service_account.as_str())
        );
        assert_eq!(s.namespace.as_deref(), Some(v.namespace.as_str()));
        assert!(
            b.metadata.owner_references.is_none(),
            "cluster-scoped: no namespaced owner"
        );
        assert_eq!(
            b.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_NAMESPACE)),
            Some(&v.namespace)
        );
        assert_eq!(
            b.metadata.name.as_deref(),
            Some(format!("sealkeep:{}:{}:auth-delegator", v.namespace, v.name).as_str())
        );
    }

    /// The admission policy shipped in the chart allows exactly the bindings this builder makes.
    #[test]
    fn chart_admission_policy_matches_the_binding_builder() {
        let policy = include_str!("../../../charts/sealkeep/templates/admission-policy.yaml");
        assert!(
            policy.contains(&format!(
                "'^{BINDING_PREFIX}[a-z0-9][-a-z0-9]*:[a-z0-9][-a-z0-9.]*:auth-delegator$'"
            )),
            "the name rule of the policy no longer matches auth_delegator_name()"
        );
        assert!(policy.contains(&format!(
            "startsWith('{BINDING_PREFIX}' + s.namespace + ':')"
        )));
        assert!(policy.contains(&format!(
            "variables.binding.roleRef.name == '{AUTH_DELEGATOR}'"
        )));
        let b = auth_delegator_binding(&fixtures::awskms_role());
        let s = &b.subjects.as_ref().expect("subjects")[0];
        assert_eq!(s.kind, "ServiceAccount");
        assert!(
            b.metadata.name.as_deref().is_some_and(
                |n| n.starts_with(&format!("{BINDING_PREFIX}{}:", fixtures::NAMESPACE))
            )
        );
    }
}
