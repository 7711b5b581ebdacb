//! Core layer: auth methods besides tokens. Only the Kubernetes method exists, mounted at
//! `auth/kubernetes/` once enabled through `sys/auth/kubernetes`.

pub mod kubernetes;
