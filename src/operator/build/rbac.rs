//! Operator layer, build step: the ClusterRoleBinding that lets the server review service-account
//! tokens (Kubernetes auth: the users' with `spec.auth.kubernetes.enabled`, and on every raft
//! server the operator's own login, see `operator_auth`). Pure. Cluster-scoped, so it cannot be owned by the namespaced
//! SecretServer: the operator removes it through a finalizer.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{APP_NAME, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY};
use crate::operator::validate::{Storage, Validated};

/// The ClusterRole Kubernetes ships for token and subject-access reviews.
pub const AUTH_DELEGATOR: &str = "system:auth-delegator";
/// Label with the SecretServer's namespace (cluster-scoped objects have none).
pub const LABEL_NAMESPACE: &str = "sealkeep.dev/namespace";

/// Prefix of every ClusterRoleBinding the operator writes. The chart's ValidatingAdmissionPolicy
/// (charts/sealkeep/templates/admission-policy.yaml) refuses any other name from the operator's
/// ServiceAccount, so a change here must change that policy too.
pub const BINDING_PREFIX: &str = "sealkeep:";

/// Whether the server's ServiceAccount gets `system:auth-delegator`: with
/// `spec.auth.kubernetes.enabled`, and on every raft server, where the operator logs in with
/// its own Kubernetes-auth role (the server reviews the operator's token). Only ever the
/// ServiceAccount the operator creates: binding a pre-existing account would grant the review
/// rights to whatever else runs as it, so a raft server with `spec.serviceAccount.name` gets no
/// binding and its status names the missing grant when the operator's login fails.
pub fn needs_auth_delegator(v: &Validated) -> bool {
    v.kubernetes_auth || (matches!(v.storage, Storage::Raft(_)) && v.manage_service_account)
}

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

    #[test]
    fn raft_servers_bind_auth_delegator_for_the_operators_login() {
        // A raft server without spec.auth.kubernetes: bound all the same.
        let ha = "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata:\n  name: ha\nspec:\n  replicas: 3\n  seal:\n    shamir: {}\n";
        let raft = fixtures::validated(ha);
        assert!(matches!(raft.storage, Storage::Raft(_)) && !raft.kubernetes_auth);
        assert!(needs_auth_delegator(&raft));
        let b = auth_delegator_binding(&raft);
        let s = &b.subjects.as_ref().expect("subjects")[0];
        assert_eq!(
            (s.name.as_str(), s.namespace.as_deref()),
            (raft.service_account.as_str(), Some(raft.namespace.as_str()))
        );
        // A file server only with spec.auth.kubernetes.enabled.
        let mut file = fixtures::awskms_role();
        file.storage = Storage::File;
        file.kubernetes_auth = false;
        assert!(!needs_auth_delegator(&file));
        file.kubernetes_auth = true;
        assert!(needs_auth_delegator(&file));
        // Never a ServiceAccount the operator did not create.
        let foreign = fixtures::validated(&format!("{ha}  serviceAccount:\n    name: payments\n"));
        assert!(matches!(foreign.storage, Storage::Raft(_)) && !foreign.manage_service_account);
        assert!(!needs_auth_delegator(&foreign));
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
