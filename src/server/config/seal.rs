//! Server configuration: the `seal "awskms"` and `seal "shamir"` blocks, with Vault's
//! environment overrides (`VAULT_AWSKMS_SEAL_KEY_ID`, `AWS_REGION`, `AWS_KMS_ENDPOINT`). Pure.

use std::time::Duration;

use super::hcl::{Ctx, attributes, single_label};
use super::hcl1::Block;
use super::{AwsKmsConfig, ConfigError, DEFAULT_MAX_BACKOFF, Env, SealConfig};

pub(super) fn parse_seal(
    ctx: &Ctx<'_>,
    b: &Block,
    env: &dyn Env,
) -> Result<SealConfig, ConfigError> {
    match single_label(ctx, b, "seal", &["awskms", "shamir"])? {
        "shamir" => {
            attributes(ctx, &b.body, "seal \"shamir\"", &[])?;
            Ok(SealConfig::Shamir)
        }
        _ => {
            let attrs = attributes(
                ctx,
                &b.body,
                "seal \"awskms\"",
                &["region", "kms_key_id", "endpoint", "max_backoff"],
            )?;
            let mut region = None;
            let mut key_id = None;
            let mut endpoint = None;
            let mut max_backoff = DEFAULT_MAX_BACKOFF;
            for a in attrs {
                match a.key.as_str() {
                    "region" => region = Some(ctx.string(a)?),
                    "kms_key_id" => key_id = Some(ctx.string(a)?),
                    "endpoint" => endpoint = Some(ctx.string(a)?),
                    "max_backoff" => {
                        max_backoff = ctx.duration(a)?;
                        if max_backoff < Duration::from_millis(100) {
                            return Err(ctx.err(
                                a.pos,
                                format!("max_backoff {max_backoff:?} is too short"),
                                "use at least \"100ms\" (the default is \"10s\")",
                            ));
                        }
                    }
                    _ => unreachable!("filtered by attributes()"),
                }
            }
            let cfg = awskms_from_env(ctx, Some(b), region, key_id, max_backoff, env)?;
            Ok(SealConfig::AwsKms(AwsKmsConfig {
                endpoint: endpoint_override(env).or(endpoint),
                ..cfg
            }))
        }
    }
}

fn endpoint_override(env: &dyn Env) -> Option<String> {
    env.var("AWS_KMS_ENDPOINT")
}

/// Applies Vault's precedence: the environment wins over the file for the key ID and region.
pub(super) fn awskms_from_env(
    ctx: &Ctx<'_>,
    block: Option<&Block>,
    region: Option<String>,
    key_id: Option<String>,
    max_backoff: Duration,
    env: &dyn Env,
) -> Result<AwsKmsConfig, ConfigError> {
    let kms_key_id = env
        .var("SEALKEEP_AWSKMS_SEAL_KEY_ID")
        .or_else(|| env.var("VAULT_AWSKMS_SEAL_KEY_ID"))
        .or(key_id)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ctx.err(
                block.map_or(0, |b| b.pos),
                "seal \"awskms\" has no kms_key_id".into(),
                "add kms_key_id = \"alias/NAME\" (or a key ID or ARN) to the seal block, or set SEALKEEP_AWSKMS_SEAL_KEY_ID",
            )
        })?;
    let region = env
        .var("AWS_REGION")
        .or_else(|| env.var("AWS_DEFAULT_REGION"))
        .or(region)
        .unwrap_or_else(|| "us-east-1".into());
    Ok(AwsKmsConfig {
        region,
        kms_key_id,
        endpoint: endpoint_override(env),
        max_backoff,
    })
}
