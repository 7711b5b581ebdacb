//! Unit tests of the policy module: parser, matching and priority, store and cache.

mod acl_tests;
mod depth_tests;
mod parse_tests;
mod store_tests;

use super::{Acl, parse};

/// An ACL from policy texts that must parse.
fn acl(texts: &[&str]) -> Acl {
    let policies: Vec<_> = texts
        .iter()
        .map(|t| parse(t).unwrap_or_else(|e| panic!("{t}: {e}")))
        .collect();
    Acl::new(&policies)
}

/// `path "P" { capabilities = [C...] }` for each (pattern, capabilities) pair.
fn hcl(rules: &[(&str, &[&str])]) -> String {
    rules
        .iter()
        .map(|(p, caps)| {
            let caps: Vec<String> = caps.iter().map(|c| format!("{c:?}")).collect();
            format!("path {p:?} {{ capabilities = [{}] }}\n", caps.join(", "))
        })
        .collect()
}
