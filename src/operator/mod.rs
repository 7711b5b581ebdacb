//! The operator: reconciles `SecretServer` resources into running, auto-unsealed servers.
//! Pipeline: validate -> build -> apply -> observe -> status (see `reconcile`).

pub mod build;
pub mod crd;
pub mod validate;
