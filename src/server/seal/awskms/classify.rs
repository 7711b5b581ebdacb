//! Seal layer: maps AWS SDK errors of the KMS seal (and of its STS web-identity credentials)
//! to a [`SealErrorClass`] and a message that names the endpoint, key or role. Pure.

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

use super::AwsKmsSeal;
use crate::server::seal::{SealError, SealErrorClass};

impl AwsKmsSeal {
    /// Maps an SDK error to a class and a message that names the endpoint, key or role.
    pub(super) fn classify<E, R>(&self, op: &str, err: SdkError<E, R>) -> SealError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let chain = DisplayErrorContext(&err).to_string();
        if let SdkError::ServiceError(service) = &err {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let msg = e.message().unwrap_or("");
            let class = match code {
                "NotFoundException" => SealErrorClass::KeyNotFound,
                "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "IncompleteSignature" => SealErrorClass::AccessDenied,
                "InvalidCiphertextException" | "IncorrectKeyException" => {
                    SealErrorClass::InvalidCiphertext
                }
                "DisabledException" | "KMSInvalidStateException" | "KeyUnavailableException" => {
                    SealErrorClass::KeyDisabled
                }
                "ThrottlingException" | "LimitExceededException" => SealErrorClass::Throttled,
                _ => SealErrorClass::Other,
            };
            let fix = match class {
                SealErrorClass::KeyNotFound => format!(
                    "KMS key {:?} was not found in region {} at {}; check kms_key_id (key ID, ARN or alias/NAME) and the region",
                    self.key_id, self.region, self.kms_endpoint
                ),
                SealErrorClass::AccessDenied => format!(
                    "KMS denied {op} on key {:?}{}; grant kms:Encrypt, kms:Decrypt and kms:DescribeKey on this key",
                    self.key_id,
                    self.role_arn
                        .as_ref()
                        .map(|r| format!(" to role {r}"))
                        .unwrap_or_default()
                ),
                SealErrorClass::InvalidCiphertext => format!(
                    "KMS could not decrypt the stored root key with key {:?}: it was wrapped by another key or modified",
                    self.key_id
                ),
                _ => format!("KMS {op} on key {:?} failed", self.key_id),
            };
            return SealError::new(class, format!("{fix} ({code}: {msg})"));
        }
        // Credential errors (IRSA web identity through STS) surface inside dispatch failures.
        if chain.contains("credentials") || chain.contains("Credentials") {
            return self.classify_credentials(op, &chain);
        }
        match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => SealError::new(
                SealErrorClass::Unreachable,
                format!(
                    "KMS endpoint {} is unreachable ({op}): {chain}; check network access, the endpoint and the region",
                    self.kms_endpoint
                ),
            ),
            // The SDK's stalled-stream protection: KMS began to answer, then went silent.
            SdkError::ResponseError(_) if chain.contains("minimum throughput") => SealError::new(
                SealErrorClass::Unreachable,
                format!(
                    "KMS endpoint {} stopped answering mid-response ({op}): {chain}; check network access, proxies and the endpoint",
                    self.kms_endpoint
                ),
            ),
            _ => SealError::new(SealErrorClass::Other, format!("KMS {op} failed: {chain}")),
        }
    }

    fn classify_credentials(&self, op: &str, chain: &str) -> SealError {
        let Some(token_file) = &self.token_file else {
            return SealError::new(
                SealErrorClass::MissingCredentials,
                format!(
                    "no AWS credentials for KMS {op}: {chain}; set up IRSA (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE) or another credential source"
                ),
            );
        };
        let role = self.role_arn.as_deref().unwrap_or("<AWS_ROLE_ARN unset>");
        let lower = chain.to_ascii_lowercase();
        if lower.contains("no such file")
            || lower.contains("permission denied")
            || lower.contains("could not read")
        {
            return SealError::new(
                SealErrorClass::WebIdentityDenied,
                format!(
                    "cannot read the web identity token file {token_file}: {chain}; mount the projected token and make it readable (pod securityContext.fsGroup)"
                ),
            );
        }
        let network = [
            "connection refused",
            "tcp connect",
            "dns error",
            "timed out",
            "timeout",
            "io error",
            "connection reset",
            // The SDK's stalled-stream protection: the answer stopped mid-way.
            "minimum throughput",
        ];
        if network.iter().any(|n| lower.contains(n)) {
            return SealError::new(
                SealErrorClass::Unreachable,
                format!(
                    "STS endpoint {} is unreachable while assuming role {role} with web identity: {chain}",
                    self.sts_endpoint
                ),
            );
        }
        SealError::new(
            SealErrorClass::WebIdentityDenied,
            format!(
                "STS {} refused AssumeRoleWithWebIdentity for role {role}: {chain}; check the role's trust policy (OIDC provider, audience sts.amazonaws.com, service account subject)",
                self.sts_endpoint
            ),
        )
    }
}
