//! Operator layer: the operator's own least-privilege identity on a raft server (issue 14,
//! step 3): the `sealkeep-operator` ACL policy (read the raft configuration and autopilot
//! state, `sys/step-down`, `sys/storage/raft/remove-peer`), the Kubernetes-auth role that binds
//! it to the operator's ServiceAccount, the login request made with the operator's projected
//! service-account token, and the sentences (with the exact commands) the status shows when
//! that login is impossible. Pure; the I/O is in [`setup`] (with the root token, right after
//! auto-init) and `observe::token` (the login and its cache).
//!
//! Flow: right after auto-init of a raft server, while the operator holds the root token from
//! `sys/init`, [`setup::run`] enables Kubernetes auth (`POST sys/auth/kubernetes`, when not
//! enabled), configures it for the in-cluster API server (when not configured), writes
//! `PUT sys/policies/acl/sealkeep-operator` ([`policy_request`]) and
//! `POST auth/kubernetes/role/sealkeep-operator` ([`role_request`]). From then on the operator
//! logs in with `POST auth/kubernetes/login` ([`login_request`]). The server reviews the
//! operator's token with the TokenReview API, so its ServiceAccount needs
//! `system:auth-delegator`: `build::rbac::needs_auth_delegator` binds it for every raft server.

use std::path::PathBuf;

use serde_json::{Value, json};

pub mod setup;

/// The ACL policy and the Kubernetes-auth role the operator logs in with.
pub const POLICY_NAME: &str = "sealkeep-operator";
pub const ROLE_NAME: &str = "sealkeep-operator";
/// The audience of the projected token the operator logs in with (the role requires it, so a
/// token minted for another audience, such as the API server's, is refused).
pub const AUDIENCE: &str = "sealkeep";
/// The lifetime of a login: short, the operator logs in again when it expires.
pub const TOKEN_TTL: &str = "15m";

/// The policy's rules: exactly the raft administration the operator performs.
const RULES: [(&str, &str); 4] = [
    ("sys/storage/raft/configuration", r#"["read"]"#),
    ("sys/storage/raft/autopilot/state", r#"["read"]"#),
    ("sys/step-down", r#"["update", "sudo"]"#),
    ("sys/storage/raft/remove-peer", r#"["update", "sudo"]"#),
];

/// The policy, as the operator writes it.
pub fn policy_hcl() -> String {
    let mut out = String::from(
        "# Written by the sealkeep operator: what it needs to run raft upgrades and scaling.\n",
    );
    for (path, caps) in RULES {
        out.push_str(&format!(
            "path \"{path}\" {{\n  capabilities = {caps}\n}}\n"
        ));
    }
    out
}

/// The same policy on one line, for the commands in a status message.
pub fn policy_hcl_one_line() -> String {
    RULES
        .iter()
        .map(|(path, caps)| format!("path \"{path}\" {{ capabilities = {caps} }}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Body of `PUT sys/policies/acl/sealkeep-operator`.
pub fn policy_request() -> Value {
    json!({ "policy": policy_hcl() })
}

/// Body of `POST auth/kubernetes/role/sealkeep-operator`: bound to the operator's
/// ServiceAccount only.
pub fn role_request(namespace: &str, service_account: &str) -> Value {
    json!({
        "bound_service_account_names": [service_account],
        "bound_service_account_namespaces": [namespace],
        "audience": AUDIENCE,
        "token_policies": [POLICY_NAME],
        "token_ttl": TOKEN_TTL,
        "token_max_ttl": TOKEN_TTL,
    })
}

/// Body of `POST auth/kubernetes/login`.
pub fn login_request(jwt: &str) -> Value {
    json!({ "role": ROLE_NAME, "jwt": jwt })
}

/// Body of `POST sys/auth/kubernetes` (enable the method at `kubernetes/`).
pub fn enable_request() -> Value {
    json!({ "type": "kubernetes" })
}

/// Body of `POST auth/kubernetes/config`, written only when the method has no config yet: no
/// `kubernetes_host`, CA or reviewer JWT, so the server uses the in-cluster API server
/// (`KUBERNETES_SERVICE_HOST`/`PORT`), its pod's CA and its own ServiceAccount token as the
/// reviewer (`server::auth::kubernetes::effective`). That ServiceAccount needs
/// `system:auth-delegator`.
pub fn config_request() -> Value {
    json!({ "disable_local_ca_jwt": false })
}

/// Where the chart mounts the operator's projected token (audience [`AUDIENCE`]).
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/sealkeep.dev/serviceaccount/token";

/// Who the operator is in Kubernetes: the subject of the role it writes and logs in with.
/// From the chart's downward API (`POD_NAMESPACE`, `POD_SERVICE_ACCOUNT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub namespace: String,
    pub service_account: String,
    /// The projected token (audience [`AUDIENCE`]), read again for every login (the kubelet
    /// rotates it).
    pub token_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "the operator's ServiceAccount {0:?} is not a valid ServiceAccount name (lowercase letters, digits, '-' and '.', at most 253): set --service-account / POD_SERVICE_ACCOUNT from the pod's spec.serviceAccountName (the chart does)"
    )]
    ServiceAccount(String),
    #[error(
        "the operator's namespace {0:?} is not a valid namespace name (lowercase letters, digits and '-', at most 63): set --service-account-namespace / POD_NAMESPACE from the pod's metadata.namespace (the chart does)"
    )]
    Namespace(String),
    #[error(
        "the operator knows its ServiceAccount ({0}) but not its namespace: set POD_NAMESPACE (or --service-account-namespace) from the pod's metadata.namespace"
    )]
    NoNamespace(String),
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_label)
}

impl Identity {
    /// Validates the operator's identity. No ServiceAccount (`None` or blank): `Ok(None)`, the
    /// operator runs outside the chart and has no token of its own (the status says so).
    pub fn new(
        namespace: Option<&str>,
        service_account: Option<&str>,
        token_file: PathBuf,
    ) -> Result<Option<Self>, IdentityError> {
        let Some(sa) = service_account.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if !dns_subdomain(sa) {
            return Err(IdentityError::ServiceAccount(sa.to_owned()));
        }
        let ns = namespace
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| IdentityError::NoNamespace(sa.to_owned()))?;
        if !dns_label(ns) {
            return Err(IdentityError::Namespace(ns.to_owned()));
        }
        Ok(Some(Self {
            namespace: ns.to_owned(),
            service_account: sa.to_owned(),
            token_file,
        }))
    }
}

/// Why the operator has no token of its own for a server, from the login's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginFailure {
    /// The server has no `sealkeep-operator` role, or Kubernetes auth is not enabled: it was
    /// initialized before the operator wrote the role, by hand, or sealed (Shamir) at init.
    NoRole,
    /// The server could not review the token (TokenReview refused or unreachable): its
    /// ServiceAccount lacks `system:auth-delegator`, or the config is wrong.
    Review(String),
    /// The role exists but refused this ServiceAccount (bound to another one).
    Denied,
    /// Anything else (unreachable, sealed, ...): transient.
    Other(String),
}

/// Classifies a failed login from the HTTP status and the server's error text.
pub fn classify_login(status: u16, body: &str) -> LoginFailure {
    let b = body.to_ascii_lowercase();
    if b.contains("invalid role name")
        || b.contains("kubernetes auth is not enabled")
        || b.contains("could not be found")
        || (status == 404)
    {
        LoginFailure::NoRole
    } else if b.contains("tokenreview") || b.contains("not configured") {
        LoginFailure::Review(body.trim().to_owned())
    } else if status == 403 || b.contains("permission denied") {
        LoginFailure::Denied
    } else {
        LoginFailure::Other(format!("HTTP {status}: {}", body.trim()))
    }
}

/// The commands that create the operator's role by hand, with a token allowed to (a root
/// token: the one in the init Secret unless it was revoked, else one from
/// `vault operator generate-root` with the key shares in that Secret).
pub fn manual_commands(
    server_namespace: &str,
    server_name: &str,
    scheme: &str,
    id: &Identity,
) -> String {
    format!(
        "kubectl -n {server_namespace} port-forward svc/{server_name} 8200:8200 & export VAULT_ADDR={scheme}://127.0.0.1:8200 VAULT_TOKEN=<root token>; \
vault auth enable kubernetes; \
vault write -f auth/kubernetes/config; \
echo '{policy}' | vault policy write {POLICY_NAME} -; \
vault write auth/kubernetes/role/{ROLE_NAME} bound_service_account_names={sa} bound_service_account_namespaces={ns} audience={AUDIENCE} token_policies={POLICY_NAME} token_ttl={TOKEN_TTL} token_max_ttl={TOKEN_TTL}",
        policy = policy_hcl_one_line(),
        sa = id.service_account,
        ns = id.namespace,
    )
}

/// The sentence for the status: why the operator has no token for a server and what to do.
pub fn explain(
    failure: &LoginFailure,
    server_namespace: &str,
    server_name: &str,
    scheme: &str,
    id: &Identity,
) -> String {
    let init = format!("{server_name}-init");
    match failure {
        LoginFailure::NoRole => format!(
            "the operator cannot log in to {server_namespace}/{server_name}: the server has no Kubernetes-auth role {ROLE_NAME} (it was initialized before the operator created one, by hand, or sealed at init under Shamir), so upgrades and scaling wait; the operator never falls back to a root token. Create the role with a root token (the one in Secret {init} unless revoked; else `vault operator generate-root` with the key shares in that Secret): {}",
            manual_commands(server_namespace, server_name, scheme, id)
        ),
        LoginFailure::Review(why) => format!(
            "the operator cannot log in to {server_namespace}/{server_name}: the server could not review its token ({why}). The server's ServiceAccount needs the ClusterRole system:auth-delegator (the operator binds it for the account it creates; bind it yourself for spec.serviceAccount.name), and auth/kubernetes/config must point at this cluster (`vault write -f auth/kubernetes/config` for the in-cluster API server)"
        ),
        LoginFailure::Denied => format!(
            "the operator cannot log in to {server_namespace}/{server_name}: permission denied, either the API server did not accept its token for audience {AUDIENCE} (the chart's projected token at --login-token-file must have that audience) or role {ROLE_NAME} does not admit ServiceAccount {ns}/{sa}; rewrite the role: vault write auth/kubernetes/role/{ROLE_NAME} bound_service_account_names={sa} bound_service_account_namespaces={ns} audience={AUDIENCE} token_policies={POLICY_NAME} token_ttl={TOKEN_TTL} token_max_ttl={TOKEN_TTL}",
            ns = id.namespace,
            sa = id.service_account,
        ),
        LoginFailure::Other(why) => format!(
            "the operator's login to {server_namespace}/{server_name} failed: {why}; it retries on the next reconcile"
        ),
    }
}

/// The sentence when the operator does not know its own ServiceAccount.
pub fn no_identity(server_namespace: &str, server_name: &str) -> String {
    format!(
        "the operator does not know its own ServiceAccount (POD_SERVICE_ACCOUNT / --service-account is unset; the chart sets it from spec.serviceAccountName), so it cannot log in to {server_namespace}/{server_name} and upgrades and scaling wait; it never falls back to a root token"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::policy::{Acl, Capability, parse};

    #[test]
    fn the_policy_grants_exactly_the_raft_administration() {
        let policy = parse(&policy_hcl()).expect("the server parses the policy");
        let acl = Acl::new([&policy]);
        assert!(acl.allows("sys/storage/raft/configuration", Capability::Read));
        assert!(acl.allows("sys/storage/raft/autopilot/state", Capability::Read));
        for p in ["sys/step-down", "sys/storage/raft/remove-peer"] {
            assert!(acl.allows(p, Capability::Update), "{p}");
            assert!(acl.allows(p, Capability::Sudo), "{p}");
        }
        assert!(!acl.allows("sys/storage/raft/configuration", Capability::Update));
        for p in [
            "sys/storage/raft/snapshot",
            "sys/storage/raft/snapshot-force",
            "sys/storage/raft/autopilot/configuration",
            "sys/seal",
            "sys/policies/acl/sealkeep-operator",
            "secret/data/anything",
            "auth/token/create",
        ] {
            assert!(acl.capabilities(p).iter().all(|c| *c == "deny"), "{p}");
        }
        assert_eq!(policy_request()["policy"], policy_hcl());
    }

    #[test]
    fn the_role_binds_only_the_operators_service_account() {
        let r = role_request("sealkeep-system", "sealkeep-operator");
        assert_eq!(
            r,
            json!({
                "bound_service_account_names": ["sealkeep-operator"],
                "bound_service_account_namespaces": ["sealkeep-system"],
                "audience": "sealkeep",
                "token_policies": ["sealkeep-operator"],
                "token_ttl": "15m",
                "token_max_ttl": "15m",
            })
        );
        // The server's role handler accepts the TTL as written.
        let ttl = crate::server::token::fields::parse_duration("token_ttl", r.get("token_ttl"));
        assert_eq!(ttl.ok().flatten(), Some(15 * 60));
        assert_eq!(
            login_request("eyJ.x.y"),
            json!({"role": "sealkeep-operator", "jwt": "eyJ.x.y"})
        );
    }

    fn id() -> Identity {
        Identity::new(
            Some("sealkeep-system"),
            Some("sealkeep"),
            PathBuf::from(DEFAULT_TOKEN_FILE),
        )
        .expect("valid")
        .expect("present")
    }

    #[test]
    fn the_one_line_policy_grants_the_same_as_the_written_one() {
        let full = parse(&policy_hcl()).expect("full");
        let line = parse(&policy_hcl_one_line()).expect("one line parses");
        assert!(!policy_hcl_one_line().contains('\n'));
        let (a, b) = (Acl::new([&full]), Acl::new([&line]));
        for p in [
            "sys/storage/raft/configuration",
            "sys/storage/raft/autopilot/state",
            "sys/step-down",
            "sys/storage/raft/remove-peer",
            "sys/storage/raft/snapshot",
            "secret/data/x",
        ] {
            assert_eq!(a.capabilities(p), b.capabilities(p), "{p}");
        }
    }

    #[test]
    fn enable_and_config_bodies_use_the_in_cluster_api_server() {
        assert_eq!(enable_request(), json!({"type": "kubernetes"}));
        // No host, CA or reviewer JWT: the server completes them from its own pod
        // (KUBERNETES_SERVICE_HOST, its ServiceAccount's CA and token).
        let c = config_request();
        assert!(c.get("kubernetes_host").is_none());
        assert!(c.get("token_reviewer_jwt").is_none());
        assert_eq!(c["disable_local_ca_jwt"], false);
    }

    #[test]
    fn the_operators_identity_is_explicit_and_validated() {
        let f = || PathBuf::from("/t");
        assert_eq!(Identity::new(Some("ns"), None, f()), Ok(None));
        assert_eq!(Identity::new(Some("ns"), Some("  "), f()), Ok(None));
        assert_eq!(
            Identity::new(Some("sealkeep-system"), Some("sealkeep"), f()),
            Ok(Some(Identity {
                namespace: "sealkeep-system".into(),
                service_account: "sealkeep".into(),
                token_file: f(),
            }))
        );
        assert_eq!(
            Identity::new(None, Some("sealkeep"), f()),
            Err(IdentityError::NoNamespace("sealkeep".into()))
        );
        assert_eq!(
            Identity::new(Some("ns"), Some("Sealkeep_Op"), f()),
            Err(IdentityError::ServiceAccount("Sealkeep_Op".into()))
        );
        assert_eq!(
            Identity::new(Some("a.b"), Some("op"), f()),
            Err(IdentityError::Namespace("a.b".into()))
        );
        // ServiceAccount names are DNS subdomains: dots are fine.
        assert!(matches!(
            Identity::new(Some("ns"), Some("op.v2"), f()),
            Ok(Some(_))
        ));
        let msg = IdentityError::NoNamespace("op".into()).to_string();
        assert!(msg.contains("POD_NAMESPACE"), "{msg}");
    }

    #[test]
    fn login_failures_are_classified_from_the_servers_answers() {
        // What this server answers (server::http::auth_kubernetes).
        assert_eq!(
            classify_login(
                400,
                r#"{"errors":["invalid role name \"sealkeep-operator\""]}"#
            ),
            LoginFailure::NoRole
        );
        assert_eq!(
            classify_login(
                404,
                r#"{"errors":["kubernetes auth is not enabled: enable it"]}"#
            ),
            LoginFailure::NoRole
        );
        assert!(matches!(
            classify_login(
                500,
                r#"{"errors":["TokenReview at https://10.0.0.1:443 failed: HTTP 403"]}"#
            ),
            LoginFailure::Review(_)
        ));
        assert_eq!(
            classify_login(403, r#"{"errors":["permission denied"]}"#),
            LoginFailure::Denied
        );
        assert!(matches!(
            classify_login(503, r#"{"errors":["Vault is sealed"]}"#),
            LoginFailure::Other(m) if m.contains("503")
        ));
    }

    #[test]
    fn without_the_role_the_status_gives_the_exact_commands_and_no_root_fallback() {
        let m = explain(&LoginFailure::NoRole, "payments", "vault", "https", &id());
        for want in [
            "no Kubernetes-auth role sealkeep-operator",
            "never falls back to a root token",
            "Secret vault-init",
            "vault operator generate-root",
            "kubectl -n payments port-forward svc/vault 8200:8200",
            "VAULT_ADDR=https://127.0.0.1:8200",
            "vault auth enable kubernetes",
            "vault write -f auth/kubernetes/config",
            "vault policy write sealkeep-operator -",
            "vault write auth/kubernetes/role/sealkeep-operator bound_service_account_names=sealkeep bound_service_account_namespaces=sealkeep-system audience=sealkeep token_policies=sealkeep-operator token_ttl=15m token_max_ttl=15m",
        ] {
            assert!(m.contains(want), "missing {want:?} in {m}");
        }
        assert!(m.contains(&policy_hcl_one_line()));
        let r = explain(
            &LoginFailure::Review("TokenReview at h failed".into()),
            "payments",
            "vault",
            "http",
            &id(),
        );
        assert!(
            r.contains("system:auth-delegator") && r.contains("TokenReview at h failed"),
            "{r}"
        );
        let d = explain(&LoginFailure::Denied, "payments", "vault", "http", &id());
        assert!(
            d.contains("audience sealkeep") && d.contains("bound_service_account_names=sealkeep"),
            "{d}"
        );
        let n = no_identity("payments", "vault");
        assert!(
            n.contains("POD_SERVICE_ACCOUNT") && n.contains("never falls back"),
            "{n}"
        );
    }

    /// The chart gives the operator what it logs in with: its ServiceAccount name through the
    /// downward API and a projected token with the role's audience where the flag's default
    /// looks.
    #[test]
    fn the_chart_mounts_the_login_token_with_the_roles_audience() {
        let d = include_str!("../../charts/sealkeep/templates/deployment.yaml");
        assert!(
            d.contains("- name: POD_SERVICE_ACCOUNT\n              valueFrom: { fieldRef: { fieldPath: spec.serviceAccountName } }"),
            "POD_SERVICE_ACCOUNT from the downward API"
        );
        assert!(d.contains(&format!("audience: {AUDIENCE}\n")));
        let dir = DEFAULT_TOKEN_FILE.strip_suffix("/token").expect("…/token");
        assert!(
            d.contains(&format!("mountPath: {dir}\n")),
            "mounted at {dir}"
        );
        let vol = d
            .split("- name: sealkeep-token\n          projected:")
            .nth(1)
            .expect("the volume");
        assert!(vol.trim_start().starts_with("sources:\n              - serviceAccountToken:\n                  audience: sealkeep"), "{vol}");
    }
}
