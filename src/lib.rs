//! Sealkeep: a Kubernetes-native secrets server with a Vault-compatible API, and its operator.
#![forbid(unsafe_code)]

pub mod api_client;
pub mod cmd;
pub mod operator;
pub mod server;
pub mod telemetry;
pub mod yaml;
