//! Operator layer, step 4 of the pipeline (observe), token part: the token the operator reads
//! raft state and calls `sys/step-down` with. API and KMS I/O, with a per-server cache held in
//! the controller's [`Context`] (no statics).
//!
//! Today this is the root token auto-init stored in the `<name>-init` Secret (decrypted with
//! the operator's own KMS identity for awskms servers), read once per SecretServer and kept in
//! memory. Issue 14 asks for a least-privilege token instead (Kubernetes auth role
//! `sealkeep-operator` with the policy in `crate::operator::operator_auth`); until that login is
//! wired, a server whose root token was revoked (`spec.init.revokeRootToken`) or that was
//! initialized by hand has no operator token, and its upgrade waits with a message that says so.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use zeroize::Zeroizing;

use crate::operator::autoinit;
use crate::operator::initsecret::{self, Stored};
use crate::operator::reconcile::Context;
use crate::operator::validate::Validated;

/// Tokens by SecretServer (`namespace/name/uid`).
#[derive(Default)]
pub struct TokenCache(Mutex<HashMap<String, Zeroizing<String>>>);

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("TokenCache").field("servers", &n).finish()
    }
}

impl TokenCache {
    fn get(&self, key: &str) -> Option<Zeroizing<String>> {
        self.0.lock().ok().and_then(|m| m.get(key).cloned())
    }
    fn put(&self, key: String, token: Zeroizing<String>) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key, token);
        }
    }
    /// Forgets a server's token (the server refused it).
    pub fn forget(&self, v: &Validated) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&cache_key(v));
        }
    }
}

fn cache_key(v: &Validated) -> String {
    format!("{}/{}/{}", v.namespace, v.name, v.owner.uid)
}

/// The operator's token for `v`, or why there is none (a sentence for the status).
pub async fn operator_token(ctx: &Context, v: &Validated) -> Result<Zeroizing<String>, String> {
    let key = cache_key(v);
    if let Some(t) = ctx.tokens.get(&key) {
        return Ok(t);
    }
    let name = v.init_secret_name();
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), &v.namespace)
        .get_opt(&name)
        .await
        .map_err(|e| format!("reading Secret {name} for the operator's token: {e}"))?
        .ok_or_else(|| {
            format!("Secret {name} does not exist, so the operator has no token to read the raft configuration with (initialized by hand?)")
        })?;
    let data = secret.data.unwrap_or_default();
    let stored = initsecret::parse(&data).map_err(|e| format!("Secret {name}: {e}"))?;
    let contents = match stored {
        Stored::Plain(c) => c,
        Stored::Envelope(env) => {
            let mut kms = autoinit::kms_key(v).ok_or_else(|| {
                format!("Secret {name} is KMS-encrypted but the server has no awskms seal")
            })?;
            kms.key_id.clone_from(&env.key_id);
            kms.region.clone_from(&env.region);
            let context = initsecret::context(&v.namespace, &name);
            let plain = ctx
                .kms
                .decrypt(&kms, &env.wrapped_key, &context)
                .await
                .map_err(|e| format!("decrypting Secret {name}: {e}"))?;
            initsecret::open(&env, &plain, &v.namespace, &name)
                .map_err(|e| format!("opening Secret {name}: {e}"))?
        }
    };
    if contents.root_token_revoked {
        return Err(format!(
            "the root token in Secret {name} was revoked (spec.init.revokeRootToken) and the operator's own Kubernetes-auth token is not implemented yet, so it cannot read the raft configuration"
        ));
    }
    let token = contents
        .root_token
        .clone()
        .map(Zeroizing::new)
        .ok_or_else(|| format!("Secret {name} holds no root token"))?;
    ctx.tokens.put(key, token.clone());
    Ok(token)
}
