//! Operator layer, step 4 of the pipeline (observe and auto-init): reading the init Secret (a
//! refusal by RBAC becomes a condition, not a retry loop) and running auto-init with its
//! Events. API, KMS and network I/O; the decisions are in `autoinit`.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::{Context, Error, key, pod_http, publish};
use crate::api_client::Client as ServerClient;
use crate::operator::autoinit;
use crate::operator::crd::SecretServer;
use crate::operator::observe;
use crate::operator::status::{InitFailure, InitState};
use crate::operator::validate::{self, Validated};

/// Reads the init Secret. `Ok(Err(state))` when RBAC forbids it: a condition, not a retry loop.
pub(super) async fn read_init_secret(
    secrets: &Api<Secret>,
    v: &Validated,
    secrets_role: Option<&str>,
) -> Result<Result<Option<Secret>, InitState>, Error> {
    let name = v.init_secret_name();
    match secrets.get_opt(&name).await {
        Ok(s) => Ok(Ok(s)),
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(Err(InitState::Failed {
            reason: InitFailure::SecretForbidden,
            message: format!(
                "the operator may not read Secret {name} in namespace {ns}: Secrets are granted only in the namespaces the operator watches. Add {ns} to the chart's watchNamespaces, or bind the ClusterRole {role} to the operator's ServiceAccount with a RoleBinding in {ns} ({})",
                e.message,
                ns = v.namespace,
                role = secrets_role.unwrap_or("<release>-secrets")
            ),
        })),
        Err(source) => Err(Error::Kube {
            what: format!("reading Secret {name}"),
            source,
        }),
    }
}

/// Runs auto-init through pod `pod` and publishes what happened.
pub(super) async fn auto_initialize(
    ctx: &Context,
    ss: &SecretServer,
    v: &Validated,
    secrets: &Api<Secret>,
    secret_state: autoinit::SecretState,
    pod: &str,
    ip: &str,
) -> Result<InitState, Error> {
    let http = pod_http(ctx, v).await?;
    let client = ServerClient::with_http(&observe::pod_addr(v.scheme(), ip), http);
    tracing::info!(secretserver = %key(ss), pod = %pod, "auto-initializing");
    let done = autoinit::initialize(secrets, v, secret_state, pod, &client, ctx.kms.as_ref()).await;
    Ok(match done {
        Ok(autoinit::Initialized { secret, revoke }) => {
            let sealed = if matches!(v.seal, validate::Seal::AwsKms { .. }) {
                "encrypted with a data key of the seal's KMS key"
            } else {
                "in clear (Shamir seal: protect the Secret with RBAC)"
            };
            publish(
                ctx,
                ss,
                false,
                "Initialized",
                format!("initialized through pod {pod}; root token and key shares stored in Secret {secret}, {sealed}"),
            )
            .await;
            match revoke {
                autoinit::Revoke::NotRequested => {}
                autoinit::Revoke::Revoked => {
                    publish(
                        ctx,
                        ss,
                        false,
                        "RootTokenRevoked",
                        format!("revoked the root token (spec.init.revokeRootToken); Secret {secret} records it, and its key shares still allow generate-root"),
                    )
                    .await;
                }
                autoinit::Revoke::Failed(msg) => {
                    publish(ctx, ss, true, "RootTokenRevokeFailed", msg).await;
                }
            }
            InitState::Initialized {
                secret: Some(secret),
            }
        }
        Err(e) => {
            publish(ctx, ss, true, e.failure().reason(), e.to_string()).await;
            InitState::Failed {
                reason: e.failure(),
                message: e.to_string(),
            }
        }
    })
}
