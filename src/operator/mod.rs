//! The operator: reconciles `SecretServer` resources into running, auto-unsealed servers.

pub mod crd;
