//! Operator layer, build step: the server pods' ServiceAccount. Pure (no I/O).

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::meta;
use crate::operator::validate::{Seal, Validated};

/// The annotation EKS's pod identity webhook reads to give a pod an IAM role (IRSA).
pub const IRSA_ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// The IAM role of the seal, when the SecretServer asks for IRSA.
pub fn irsa_role_arn(v: &Validated) -> Option<&str> {
    match &v.seal {
        Seal::AwsKms {
            role_arn: Some(arn),
            ..
        } => Some(arn),
        _ => None,
    }
}

/// The ServiceAccount `v.service_account`, with the user's annotations and, for IRSA, the
/// role annotation (which wins over a user annotation of the same key, so the webhook and the
/// pod's own `AWS_ROLE_ARN` never disagree).
///
/// `automountServiceAccountToken` stays unset: the server needs its token for Kubernetes auth.
pub fn service_account(v: &Validated) -> ServiceAccount {
    let mut annotations = v.service_account_annotations.clone();
    if let Some(arn) = irsa_role_arn(v) {
        annotations.insert(IRSA_ROLE_ANNOTATION.to_owned(), arn.to_owned());
    }
    ServiceAccount {
        metadata: ObjectMeta {
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..meta(v, v.service_account.clone())
        },
        ..ServiceAccount::default()
    }
}

#[cfg(test)]
mod tests;
