//! Operator layer: the operator's own least-privilege identity on a raft server (issue 14,
//! step 3): the `sealkeep-operator` ACL policy (read the raft configuration and autopilot
//! state, `sys/step-down`, `sys/storage/raft/remove-peer`), the Kubernetes-auth role that binds
//! it to the operator's ServiceAccount, and the login request made with the operator's
//! projected service-account token. Pure request bodies; nothing here calls a server yet.
//!
//! Intended flow (not wired; `observe::token` still reads the root token from the init Secret):
//! right after auto-init, while the operator holds the root token from `sys/init`, it
//! `POST sys/auth/kubernetes {type: kubernetes}` (when not enabled), writes
//! `PUT sys/policies/acl/sealkeep-operator` ([`policy_request`]) and
//! `POST auth/kubernetes/role/sealkeep-operator` ([`role_request`]); from then on it logs in
//! with `POST auth/kubernetes/login` ([`login_request`]) and caches the client token per server
//! until it expires. The server reviews the operator's token with the TokenReview API, so its
//! ServiceAccount needs `system:auth-delegator`, which the operator binds today only with
//! `spec.auth.kubernetes.enabled`.

use serde_json::{Value, json};

/// The ACL policy and the Kubernetes-auth role the operator logs in with.
pub const POLICY_NAME: &str = "sealkeep-operator";
pub const ROLE_NAME: &str = "sealkeep-operator";
/// The audience of the projected token the operator logs in with (the role requires it, so a
/// token minted for another audience, such as the API server's, is refused).
pub const AUDIENCE: &str = "sealkeep";
/// The lifetime of a login: short, the operator logs in again when it expires.
pub const TOKEN_TTL: &str = "15m";

/// The policy: exactly the raft administration the operator performs.
pub fn policy_hcl() -> String {
    [
        "# Written by the sealkeep operator: what it needs to run raft upgrades and scaling.",
        "path \"sys/storage/raft/configuration\" {",
        "  capabilities = [\"read\"]",
        "}",
        "path \"sys/storage/raft/autopilot/state\" {",
        "  capabilities = [\"read\"]",
        "}",
        "path \"sys/step-down\" {",
        "  capabilities = [\"update\", \"sudo\"]",
        "}",
        "path \"sys/storage/raft/remove-peer\" {",
        "  capabilities = [\"update\", \"sudo\"]",
        "}",
        "",
    ]
    .join("\n")
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
}
