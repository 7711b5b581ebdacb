//! File payloads of configMap, secret, downwardAPI and projected volumes (pure: objects and
//! tokens come pre-fetched).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, Volume};

use crate::atomic::{FileData, Payload};
use crate::env::{EnvError, PodFacts, Sources, field_ref};
use crate::resources::{ResourceError, resource_field_value};
use crate::token::{Tokens, key as token_key};

/// Why a volume's payload cannot be built (the pod stays in ContainerCreating).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("configmap {0:?} not found")]
    ConfigMapMissing(String),
    #[error("secret {0:?} not found")]
    SecretMissing(String),
    #[error("key {key:?} not found in {kind} {name:?}")]
    KeyMissing {
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("no token for {0} yet")]
    TokenMissing(String),
    #[error("unsupported projected source in volume {0:?}")]
    Unsupported(String),
    #[error(transparent)]
    Field(#[from] EnvError),
    #[error(transparent)]
    Resource(#[from] ResourceError),
}

/// Everything a payload is built from.
pub struct Inputs<'a> {
    pub pod: &'a Pod,
    pub sources: &'a Sources,
    pub facts: &'a PodFacts,
    pub tokens: &'a Tokens,
}

const DEFAULT_MODE: u32 = 0o644;

fn mode(m: Option<i32>, default: u32) -> u32 {
    m.and_then(|m| u32::try_from(m).ok())
        .map_or(default, |m| m & 0o7777)
}

/// One configMap or secret referenced by a volume.
struct KeySource<'a> {
    kind: &'static str,
    name: &'a str,
    entries: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&'a Vec<KeyToPath>>,
    optional: bool,
}

impl<'a> KeySource<'a> {
    fn configmap(
        inp: &Inputs<'_>,
        name: &'a str,
        items: Option<&'a Vec<KeyToPath>>,
        optional: Option<bool>,
    ) -> Self {
        let entries = inp.sources.configmap_entries(name);
        KeySource {
            kind: "configmap",
            name,
            entries,
            items,
            optional: optional == Some(true),
        }
    }

    fn secret(
        inp: &Inputs<'_>,
        name: &'a str,
        items: Option<&'a Vec<KeyToPath>>,
        optional: Option<bool>,
    ) -> Self {
        let entries = inp.sources.secret_entries(name);
        KeySource {
            kind: "secret",
            name,
            entries,
            items,
            optional: optional == Some(true),
        }
    }
}

/// Adds the entries of one configMap/secret (all keys, or `items`) to `out`.
fn add_keys(out: &mut Payload, src: KeySource<'_>, default_mode: u32) -> Result<(), PayloadError> {
    let Some(entries) = src.entries else {
        return match (src.optional, src.kind) {
            (true, _) => Ok(()),
            (false, "secret") => Err(PayloadError::SecretMissing(src.name.into())),
            (false, _) => Err(PayloadError::ConfigMapMissing(src.name.into())),
        };
    };
    let Some(items) = src.items else {
        for (k, v) in entries {
            out.insert(
                k,
                FileData {
                    data: v,
                    mode: default_mode,
                },
            );
        }
        return Ok(());
    };
    for it in items {
        match entries.get(&it.key) {
            Some(v) => {
                out.insert(
                    it.path.clone(),
                    FileData {
                        data: v.clone(),
                        mode: mode(it.mode, default_mode),
                    },
                );
            }
            None if src.optional => {}
            None => {
                let (kind, name, key) = (src.kind, src.name.into(), it.key.clone());
                return Err(PayloadError::KeyMissing { kind, name, key });
            }
        }
    }
    Ok(())
}

fn add_downward(
    out: &mut Payload,
    items: &[DownwardAPIVolumeFile],
    inp: &Inputs<'_>,
    default_mode: u32,
) -> Result<(), PayloadError> {
    let containers = inp
        .pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    for it in items {
        let value = if let Some(f) = &it.field_ref {
            field_ref(inp.pod, &f.field_path, inp.facts)?
        } else if let Some(r) = &it.resource_field_ref {
            resource_field_value(&containers, None, r, inp.facts.node)?
        } else {
            String::new()
        };
        out.insert(
            it.path.clone(),
            FileData {
                data: value.into_bytes(),
                mode: mode(it.mode, default_mode),
            },
        );
    }
    Ok(())
}

/// The files of a data volume, or `None` for volumes that are not payload-backed.
pub fn build(vol: &Volume, inp: &Inputs<'_>) -> Result<Option<Payload>, PayloadError> {
    let mut out = Payload::new();
    if let Some(cm) = &vol.config_map {
        let src = KeySource::configmap(inp, &cm.name, cm.items.as_ref(), cm.optional);
        add_keys(&mut out, src, mode(cm.default_mode, DEFAULT_MODE))?;
    } else if let Some(s) = &vol.secret {
        let name = s.secret_name.as_deref().unwrap_or_default();
        let src = KeySource::secret(inp, name, s.items.as_ref(), s.optional);
        add_keys(&mut out, src, mode(s.default_mode, DEFAULT_MODE))?;
    } else if let Some(d) = &vol.downward_api {
        let dm = mode(d.default_mode, DEFAULT_MODE);
        add_downward(&mut out, d.items.as_deref().unwrap_or_default(), inp, dm)?;
    } else if let Some(p) = &vol.projected {
        let dm = mode(p.default_mode, DEFAULT_MODE);
        for src in p.sources.iter().flatten() {
            if let Some(cm) = &src.config_map {
                add_keys(
                    &mut out,
                    KeySource::configmap(inp, &cm.name, cm.items.as_ref(), cm.optional),
                    dm,
                )?;
            } else if let Some(s) = &src.secret {
                add_keys(
                    &mut out,
                    KeySource::secret(inp, &s.name, s.items.as_ref(), s.optional),
                    dm,
                )?;
            } else if let Some(d) = &src.downward_api {
                add_downward(&mut out, d.items.as_deref().unwrap_or_default(), inp, dm)?;
            } else if let Some(t) = &src.service_account_token {
                let k = token_key(&vol.name, &t.path);
                let token = inp
                    .tokens
                    .get(&k)
                    .ok_or_else(|| PayloadError::TokenMissing(k.clone()))?;
                out.insert(
                    t.path.clone(),
                    FileData {
                        data: token.as_bytes().to_vec(),
                        mode: dm,
                    },
                );
            } else {
                return Err(PayloadError::Unsupported(vol.name.clone()));
            }
        }
    } else {
        return Ok(None);
    }
    Ok(Some(out))
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
