//! `sealkeep init-secret show NAME`: reads the init Secret of SecretServer NAME through the
//! Kubernetes API and prints its root token and key shares, decrypting an
//! `awskms-envelope-v1` Secret with KMS `Decrypt` under the caller's own AWS identity.
//! Kubernetes and KMS I/O; [`reveal`] and [`render`] are testable without a cluster.

use std::fmt::Write;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::operator::autoinit::INIT_STATE_ANNOTATION;
use crate::operator::initsecret::kms::{AwsDataKeys, DataKeys, KmsError, KmsKey};
use crate::operator::initsecret::{self, FormatError, InitContents, Stored};

/// What to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Field {
    /// Only the root token (fails when it was revoked).
    RootToken,
    /// Only the key shares, one per line.
    Keys,
}

/// Options of `init-secret show`.
#[derive(Debug, Clone, Default)]
pub struct ShowOptions {
    /// Override of the KMS region stored in the Secret.
    pub region: Option<String>,
    /// KMS endpoint (otherwise the SDK's: `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`, AWS).
    pub kms_endpoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    #[error(
        "cannot build a Kubernetes client: {0}; set KUBECONFIG or run where a kubeconfig is found"
    )]
    Client(#[source] kube::Error),
    #[error(
        "no Secret {tried} in namespace {namespace}: the init Secret of SecretServer NAME is NAME-init; check the name and -n NAMESPACE (kubectl get secretservers -A)"
    )]
    NotFound { namespace: String, tried: String },
    #[error("reading Secret {namespace}/{name} failed: {source}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "Secret {0} is still pending: the operator has not stored the keys (yet). See the SecretServer's Initialized condition (kubectl describe secretserver)"
    )]
    Pending(String),
    #[error("Secret {name}: {source}")]
    Format {
        name: String,
        #[source]
        source: FormatError,
    },
    #[error("Secret {name} is encrypted with KMS and decrypting its data key failed: {source}")]
    Kms {
        name: String,
        #[source]
        source: KmsError,
    },
    #[error(
        "the root token in Secret {0} was revoked by the operator after initialization (spec.init.revokeRootToken); generate a new one with the key shares: vault operator generate-root"
    )]
    Revoked(String),
}

/// How the Secret was stored, for the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Plain,
    Envelope { key_id: String },
}

/// Reads `<name>-init` (or `name` itself when it ends in `-init` and `<name>-init` does not exist).
async fn read(api: &Api<Secret>, namespace: &str, name: &str) -> Result<Secret, ShowError> {
    let mut tried = vec![format!("{name}-init")];
    if name.ends_with("-init") {
        tried.push(name.to_owned());
    }
    for candidate in &tried {
        match api.get_opt(candidate).await {
            Ok(Some(s)) => return Ok(s),
            Ok(None) => {}
            Err(source) => {
                return Err(ShowError::Read {
                    namespace: namespace.to_owned(),
                    name: candidate.clone(),
                    source,
                });
            }
        }
    }
    Err(ShowError::NotFound {
        namespace: namespace.to_owned(),
        tried: tried.join(" or "),
    })
}

/// Parses `secret` and decrypts it when it is an envelope.
pub async fn reveal(
    secret: &Secret,
    namespace: &str,
    kms: &dyn DataKeys,
    opts: &ShowOptions,
) -> Result<(InitContents, Source), ShowError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let full = format!("{namespace}/{name}");
    let state = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INIT_STATE_ANNOTATION));
    if state.is_some_and(|s| s == "pending") {
        return Err(ShowError::Pending(full));
    }
    let data = secret.data.clone().unwrap_or_default();
    let format = |source| ShowError::Format {
        name: full.clone(),
        source,
    };
    match initsecret::parse(&data).map_err(format)? {
        Stored::Plain(c) => Ok((c, Source::Plain)),
        Stored::Envelope(env) => {
            let key = KmsKey {
                key_id: env.key_id.clone(),
                region: opts.region.clone().unwrap_or_else(|| env.region.clone()),
                endpoint: opts.kms_endpoint.clone(),
            };
            let plaintext = kms
                .decrypt(
                    &key,
                    &env.wrapped_key,
                    &initsecret::context(namespace, &name),
                )
                .await
                .map_err(|source| ShowError::Kms {
                    name: full.clone(),
                    source,
                })?;
            let c = initsecret::open(&env, &plaintext, namespace, &name).map_err(format)?;
            Ok((
                c,
                Source::Envelope {
                    key_id: env.key_id.clone(),
                },
            ))
        }
    }
}

/// The text `show` prints (it holds the secrets: never log it).
pub fn render(
    full_name: &str,
    c: &InitContents,
    source: &Source,
    field: Option<Field>,
) -> Result<String, ShowError> {
    let mut out = String::new();
    match field {
        Some(Field::RootToken) => {
            let token = c
                .root_token
                .as_deref()
                .filter(|_| !c.root_token_revoked)
                .ok_or_else(|| ShowError::Revoked(full_name.to_owned()))?;
            out.push_str(token);
            out.push('\n');
            return Ok(out);
        }
        Some(Field::Keys) => {
            for k in &c.keys {
                let _ = writeln!(out, "{k}");
            }
            return Ok(out);
        }
        None => {}
    }
    let format = match source {
        Source::Plain => "in clear (plain-v1)".to_owned(),
        Source::Envelope { key_id } => format!("awskms-envelope-v1, data key of KMS key {key_id}"),
    };
    let _ = writeln!(out, "Secret        {full_name}");
    let _ = writeln!(out, "Stored        {format}");
    let _ = writeln!(out, "Key Type      {}", c.key_type.as_str());
    let _ = writeln!(out, "Threshold     {} of {}", c.threshold, c.keys.len());
    match (&c.root_token, c.root_token_revoked) {
        (_, true) => {
            let _ = writeln!(
                out,
                "Root Token    revoked after initialization (vault operator generate-root with the keys makes a new one)"
            );
        }
        (Some(t), false) => {
            let _ = writeln!(out, "Root Token    {t}");
        }
        (None, false) => {
            let _ = writeln!(out, "Root Token    (none stored)");
        }
    }
    for (i, k) in c.keys.iter().enumerate() {
        let _ = writeln!(out, "Key {:<9} {k}", i + 1);
    }
    Ok(out)
}

/// Runs `init-secret show`; returns what to print on stdout.
pub async fn show(
    name: &str,
    namespace: Option<&str>,
    field: Option<Field>,
    opts: &ShowOptions,
) -> Result<String, ShowError> {
    let client = kube::Client::try_default()
        .await
        .map_err(ShowError::Client)?;
    let ns = namespace
        .map(str::to_owned)
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let api: Api<Secret> = Api::namespaced(client, &ns);
    let secret = read(&api, &ns, name).await?;
    let full = format!(
        "{ns}/{}",
        secret.metadata.name.as_deref().unwrap_or_default()
    );
    let (c, source) = reveal(&secret, &ns, &AwsDataKeys, opts).await?;
    render(&full, &c, &source, field)
}

#[cfg(test)]
mod tests;
