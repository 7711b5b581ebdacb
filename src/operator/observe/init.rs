//! Operator layer, step 4 of the pipeline (observe and auto-init): reading the init Secret (a
//! refusal by RBAC becomes a condition, not a retry loop) and running auto-init with its
//! Events. API, KMS and network I/O; the decisions are in `autoinit`.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::PodObservation;
use super::pods::{observe_all, pod_http};
use crate::api_client::Client as ServerClient;
use crate::operator::autoinit::{self, Decision};
use crate::operator::crd::SecretServer;
use crate::operator::observe;
use crate::operator::operator_auth::{self, setup::RoleSetup};
use crate::operator::reconcile::{Context, Error, key};
use crate::operator::report::publish;
use crate::operator::status::{InitFailure, InitState};
use crate::operator::validate::{self, Validated};

/// Where initialization stands, running auto-init when it is due. Returns the state and the
/// pods as they are afterwards (observed again after a successful auto-init: an auto-unseal
/// server unseals on init).
pub async fn init_state(
    ctx: &Context,
    ss: &SecretServer,
    v: &Validated,
    pods: Vec<PodObservation>,
) -> Result<(InitState, Vec<PodObservation>), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &v.namespace);
    let secret = match read_init_secret(&secrets, v, ctx.secrets_role.as_deref()).await? {
        // Without the Secret an initialized server is still reported as such (its Secret is
        // simply not visible); the refusal matters only where it blocks auto-init.
        Err(forbidden) => {
            let state = match autoinit::decide(v, &pods, autoinit::SecretState::Absent) {
                Decision::Initialize { .. } | Decision::Report(InitState::Pending) => forbidden,
                Decision::Report(other) => other,
            };
            return Ok((state, pods));
        }
        Ok(secret) => secret,
    };
    let secret_state = autoinit::secret_state(secret.as_ref(), &v.owner.uid);
    match autoinit::decide(v, &pods, secret_state.clone()) {
        Decision::Report(s) => Ok((s, pods)),
        Decision::Initialize { pod, ip } => {
            let state = auto_initialize(ctx, ss, v, &secrets, secret_state, &pod, &ip).await?;
            if matches!(state, InitState::Initialized { .. }) {
                return Ok((state, observe_all(ctx, v).await?));
            }
            Ok((state, pods))
        }
    }
}

/// Reads the init Secret. `Ok(Err(state))` when RBAC forbids it: a condition, not a retry loop.
async fn read_init_secret(
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
async fn auto_initialize(
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
    let done = autoinit::initialize(
        secrets,
        v,
        secret_state,
        pod,
        &client,
        ctx.kms.as_ref(),
        ctx.account.as_ref(),
    )
    .await;
    Ok(match done {
        Ok(autoinit::Initialized {
            secret,
            revoke,
            operator_role,
        }) => {
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
            match operator_role {
                RoleSetup::Created => {
                    publish(
                        ctx,
                        ss,
                        false,
                        "OperatorRoleCreated",
                        format!("Kubernetes auth is enabled and configured, and the policy and role {} the operator logs in with are written (its own least-privilege token; the operator does not use the root token after init)", operator_auth::ROLE_NAME),
                    )
                    .await;
                }
                RoleSetup::Skipped(why) if matches!(v.storage, validate::Storage::Raft(_)) => {
                    publish(ctx, ss, true, "OperatorRoleNotCreated", why).await;
                }
                RoleSetup::Skipped(_) => {}
                RoleSetup::Failed(msg) => {
                    publish(ctx, ss, true, "OperatorRoleFailed", msg).await;
                }
            }
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
            publish(ctx, ss, true, e.failure().reason().as_str(), e.to_string()).await;
            InitState::Failed {
                reason: e.failure(),
                message: e.to_string(),
            }
        }
    })
}
