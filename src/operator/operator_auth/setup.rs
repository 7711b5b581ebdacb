//! Operator layer, auto-init part: writes the operator's Kubernetes-auth role on a freshly
//! initialized raft server with the root token from `sys/init` (enable the method, configure
//! it for the in-cluster API server, the `sealkeep-operator` policy, the role). Idempotent:
//! what exists is left as it is (method, config) or rewritten with the same content (policy,
//! role). Network I/O; the request bodies are the pure builders of the parent module.

use std::time::Duration;

use reqwest::Method;

use super::{
    Identity, POLICY_NAME, ROLE_NAME, config_request, enable_request, policy_request, role_request,
};
use crate::api_client::{Client, ClientError};

/// What became of the operator's role after auto-init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleSetup {
    /// The role and its policy are in place.
    Created,
    /// Not attempted; why (a file server, or the operator does not know its ServiceAccount).
    Skipped(String),
    /// Attempted and failed; the message says why and what to do.
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "the server is sealed after init (Shamir seal: it waits for its unseal keys), so the operator could not write its role {ROLE_NAME} with the root token"
    )]
    Sealed,
    #[error("{step} failed: {source}")]
    Call {
        step: &'static str,
        #[source]
        source: ClientError,
    },
}

impl SetupError {
    /// Worth another attempt: the server is not reachable or not active yet (5xx).
    fn transient(&self) -> bool {
        match self {
            Self::Sealed => false,
            Self::Call { source, .. } => match source {
                ClientError::Unreachable { .. } => true,
                ClientError::Status { status, .. } => *status >= 500,
                ClientError::Decode { .. } => false,
            },
        }
    }
}

fn call(step: &'static str) -> impl FnOnce(ClientError) -> SetupError {
    move |source| SetupError::Call { step, source }
}

/// Whether `e` is an HTTP `code` answer.
fn is_status(e: &ClientError, code: u16) -> bool {
    matches!(e, ClientError::Status { status, .. } if *status == code)
}

/// One pass over the steps.
async fn once(client: &Client, root: &str, id: &Identity) -> Result<(), SetupError> {
    let seal = client
        .seal_status()
        .await
        .map_err(call("sys/seal-status"))?;
    if seal.sealed {
        if seal.seal_type == "shamir" {
            return Err(SetupError::Sealed);
        }
        // An auto-unseal server unseals itself within moments of init.
        return Err(SetupError::Call {
            step: "waiting for the server to unseal",
            source: ClientError::Status {
                addr: client.addr().to_owned(),
                status: 503,
                body: "sealed".into(),
            },
        });
    }
    let methods = client
        .call(Method::GET, "sys/auth", root, None)
        .await
        .map_err(call("GET sys/auth"))?
        .unwrap_or_default();
    let enabled = methods.get("kubernetes/").is_some()
        || methods
            .get("data")
            .and_then(|d| d.get("kubernetes/"))
            .is_some();
    if !enabled {
        match client
            .call(
                Method::POST,
                "sys/auth/kubernetes",
                root,
                Some(&enable_request()),
            )
            .await
        {
            Ok(_) => {}
            // Enabled meanwhile (another replica, a retry after a lost answer).
            Err(e) if is_status(&e, 400) && e.to_string().contains("already in use") => {}
            Err(e) => return Err(call("POST sys/auth/kubernetes")(e)),
        }
    }
    match client
        .call(Method::GET, "auth/kubernetes/config", root, None)
        .await
    {
        Ok(_) => {} // configured already (by the user): keep it
        Err(e) if is_status(&e, 404) => {
            client
                .call(
                    Method::POST,
                    "auth/kubernetes/config",
                    root,
                    Some(&config_request()),
                )
                .await
                .map_err(call("POST auth/kubernetes/config"))?;
        }
        Err(e) => return Err(call("GET auth/kubernetes/config")(e)),
    }
    client
        .call(
            Method::PUT,
            &format!("sys/policies/acl/{POLICY_NAME}"),
            root,
            Some(&policy_request()),
        )
        .await
        .map_err(call("PUT sys/policies/acl/sealkeep-operator"))?;
    client
        .call(
            Method::POST,
            &format!("auth/kubernetes/role/{ROLE_NAME}"),
            root,
            Some(&role_request(&id.namespace, &id.service_account)),
        )
        .await
        .map_err(call("POST auth/kubernetes/role/sealkeep-operator"))?;
    Ok(())
}

/// Writes the operator's role through `client` with the `root` token, retrying while the
/// server is not reachable, not unsealed or not active yet (about 15 s in all).
pub async fn run(client: &Client, root: &str, id: &Identity) -> Result<(), SetupError> {
    let mut attempt = 0u32;
    loop {
        match once(client, root, id).await {
            Ok(()) => return Ok(()),
            Err(e) if e.transient() && attempt < 6 => {
                tracing::debug!(error = %e, attempt, "writing the operator's role; retrying");
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
