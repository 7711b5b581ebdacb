//! Core layer: ACL policies (Vault's HCL policy language) and their evaluation.
//! PLACEHOLDER until the policy module lands: only the root policy grants anything.

use crate::server::barrier::{Barrier, BarrierError};
use crate::server::token::TokenEntry;

/// A capability a policy path rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    Sudo,
    Deny,
}

/// Whether `entry`'s policies grant `cap` on `path` (no leading `/v1/`).
pub async fn check(
    _barrier: &Barrier,
    entry: &TokenEntry,
    _path: &str,
    _cap: Capability,
) -> Result<bool, BarrierError> {
    Ok(entry.policies.iter().any(|p| p == "root"))
}
