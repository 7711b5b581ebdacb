//! Pod volumes on the host: `$state/pods/<uid>/volumes/<name>` (or the PVC directory), and the
//! bind mounts each container gets (file, mount and API I/O).

pub mod payload;

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, Pod, Volume};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use nix::mount::{MntFlags, MsFlags};

use crate::atomic::{self, AtomicError};
use crate::env::{PodFacts, Sources};
use crate::expand::expand_with;
use crate::podinit::Bind;
use crate::settings::Settings;
use crate::token::{TokenError, Tokens, key as token_key};
use payload::{Inputs, PayloadError};

/// Why volumes could not be set up (reported as FailedMount; retried).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume:?}: {source}")]
    Payload {
        volume: String,
        source: PayloadError,
    },
    #[error("volume {volume:?}: {source}")]
    Write { volume: String, source: AtomicError },
    #[error("volume {volume:?}: {source}")]
    Token { volume: String, source: TokenError },
    #[error("volume {volume:?}: unsupported volume type")]
    Unsupported { volume: String },
    #[error("persistentvolumeclaim {claim:?} not found")]
    PvcMissing { claim: String },
    #[error("persistentvolumeclaim {claim:?}: {source}")]
    PvcApi { claim: String, source: kube::Error },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mounting tmpfs on {path}: {source}")]
    Tmpfs { path: PathBuf, source: nix::Error },
    #[error("container mounts volume {0:?}, which the pod does not define")]
    UnknownVolume(String),
}

/// Host directory backing a volume.
pub fn host_path(settings: &Settings, pod: &Pod, vol: &Volume) -> PathBuf {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    if let Some(pvc) = &vol.persistent_volume_claim {
        settings.pvc_dir(ns, &pvc.claim_name)
    } else if let Some(hp) = &vol.host_path {
        PathBuf::from(&hp.path)
    } else {
        settings.volume_dir(uid, &vol.name)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError {
    let path = path.to_path_buf();
    move |source| VolumeError::Io { path, source }
}

/// Materialises every volume of the pod; returns the memory-backed emptyDir mount points.
pub async fn sync(
    client: &Client,
    settings: &Settings,
    pod: &Pod,
    sources: &Sources,
    facts: &PodFacts,
    tokens: &mut Tokens,
) -> Result<Vec<PathBuf>, VolumeError> {
    let mut tmpfs = Vec::new();
    for vol in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = host_path(settings, pod, vol);
        if let Some(ed) = &vol.empty_dir {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            if ed.medium.as_deref() == Some("Memory") {
                mount_tmpfs(&dir)?;
                tmpfs.push(dir);
            }
        } else if let Some(pvc) = &vol.persistent_volume_claim {
            if bind_claim(client, pod, &pvc.claim_name).await? && dir.exists() {
                // A claim bound for the first time is a new volume: data left by an earlier
                // claim of the same name (deleted before housekeeping ran) must not reappear.
                tracing::info!(claim = %pvc.claim_name, dir = %dir.display(), "new claim: clearing stale data");
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        } else if let Some(hp) = &vol.host_path {
            if matches!(hp.type_.as_deref(), Some("DirectoryOrCreate")) {
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            }
        } else {
            for t in vol
                .projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
            {
                if let Some(sat) = &t.service_account_token {
                    let k = token_key(&vol.name, &sat.path);
                    tokens
                        .ensure(client, pod, &k, sat)
                        .await
                        .map_err(|source| VolumeError::Token {
                            volume: vol.name.clone(),
                            source,
                        })?;
                }
            }
            let inputs = Inputs {
                pod,
                sources,
                facts,
                tokens,
            };
            let files = payload::build(vol, &inputs)
                .map_err(|source| VolumeError::Payload {
                    volume: vol.name.clone(),
                    source,
                })?
                .ok_or_else(|| VolumeError::Unsupported {
                    volume: vol.name.clone(),
                })?;
            atomic::write(&dir, &files).map_err(|source| VolumeError::Write {
                volume: vol.name.clone(),
                source,
            })?;
        }
    }
    Ok(tmpfs)
}

fn is_mount_point(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_ref()))
}

fn mount_tmpfs(dir: &Path) -> Result<(), VolumeError> {
    if is_mount_point(dir) {
        return Ok(());
    }
    nix::mount::mount::<str, Path, str, str>(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0777"),
    )
    .map_err(|source| VolumeError::Tmpfs {
        path: dir.into(),
        source,
    })
}

/// Lazily unmounts a host mount made for a pod (memory emptyDir); absent mounts are fine.
pub fn unmount(dir: &Path) {
    if is_mount_point(dir)
        && let Err(e) = nix::mount::umount2(dir, MntFlags::MNT_DETACH)
    {
        tracing::warn!(path = %dir.display(), error = %e, "unmounting");
    }
}

/// Marks the claim Bound with its requested capacity (there is no PV controller). Returns
/// whether it was bound just now (a new, empty volume).
async fn bind_claim(client: &Client, pod: &Pod, claim: &str) -> Result<bool, VolumeError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pvc = api
        .get_opt(claim)
        .await
        .map_err(|source| VolumeError::PvcApi {
            claim: claim.into(),
            source,
        })?
        .ok_or_else(|| VolumeError::PvcMissing {
            claim: claim.into(),
        })?;
    if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
        return Ok(false);
    }
    let spec = pvc.spec.unwrap_or_default();
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned();
    let patch = serde_json::json!({"status": {
        "phase": "Bound",
        "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
        "capacity": storage.map(|s| serde_json::json!({"storage": s})),
    }});
    api.patch_status(claim, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| VolumeError::PvcApi {
            claim: claim.into(),
            source,
        })?;
    tracing::info!(claim, namespace = ns, "persistentvolumeclaim bound");
    Ok(true)
}

/// The bind mounts of one container: its volumeMounts (with subPath/subPathExpr expanded
/// against `env`) plus the pod's /etc/hosts and /etc/resolv.conf.
pub fn container_binds(
    settings: &Settings,
    pod: &Pod,
    container: &Container,
    env: &[(String, String)],
    pod_dir: &Path,
) -> Result<Vec<Bind>, VolumeError> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    let mut binds = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let vol = volumes
            .and_then(|vs| vs.iter().find(|v| v.name == vm.name))
            .ok_or_else(|| VolumeError::UnknownVolume(vm.name.clone()))?;
        let mut src = host_path(settings, pod, vol);
        let sub = match (&vm.sub_path, &vm.sub_path_expr) {
            (Some(p), _) if !p.is_empty() => Some(p.clone()),
            (_, Some(e)) if !e.is_empty() => Some(expand_with(e, env)),
            _ => None,
        };
        if let Some(sub) = sub.filter(|s| !s.split('/').any(|c| c == "..") && !s.starts_with('/')) {
            src = src.join(sub);
            if !src.exists() {
                std::fs::create_dir_all(&src).map_err(io(&src))?;
            }
        }
        binds.push(Bind {
            read_only: vm.read_only == Some(true),
            src,
            dst: PathBuf::from(&vm.mount_path),
        });
    }
    // Parents before children, so that nested mountPaths stack correctly.
    binds.sort_by_key(|b| b.dst.components().count());
    binds.push(Bind {
        read_only: false,
        src: pod_dir.join("etc-hosts"),
        dst: "/etc/hosts".into(),
    });
    binds.push(Bind {
        read_only: false,
        src: pod_dir.join("resolv.conf"),
        dst: "/etc/resolv.conf".into(),
    });
    Ok(binds)
}
