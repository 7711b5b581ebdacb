//! The operator: reconciles `SecretServer` resources into running, auto-unsealed servers.
//! Pipeline: validate -> build -> apply -> observe -> status (see `reconcile`).

pub mod apply;
pub mod autoinit;
pub mod build;
pub mod controller;
pub mod crd;
pub mod initsecret;
pub mod metrics;
pub mod observe;
pub mod operator_auth;
pub mod reconcile;
pub mod report;
pub mod status;
pub mod upgrade;
pub mod validate;
