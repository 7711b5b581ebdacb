//! Operator layer, build step: the server StatefulSet (pod template, probes, security contexts,
//! volumes, IRSA token and the data claim template). Pure (no I/O).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, SeccompProfile, SecretVolumeSource, SecurityContext,
    ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::{CONFIG_DIR, DATA_DIR, TLS_DIR, config_path, raft};
use super::scheduling;
use super::service::{CLUSTER_PORT_NAME, port_name};
use super::serviceaccount::irsa_role_arn;
use super::{API_PORT, CLUSTER_PORT, labels, meta, selector_labels};
use crate::operator::validate::{Seal, Storage, Validated};

/// Pod annotation with the ConfigMap's hash: a config change changes the template, which
/// rolls the pod.
pub const CONFIG_HASH_ANNOTATION: &str = "sealkeep.dev/config-hash";
/// The server container's name.
pub const CONTAINER_NAME: &str = "server";
/// The non-root user and group of the server (distroless `nonroot`). Also the pod's fsGroup, so
/// the server can read projected tokens and the TLS Secret.
pub const RUN_AS_ID: i64 = 65532;
/// Volume names.
pub const CONFIG_VOLUME: &str = "config";
pub const DATA_VOLUME: &str = "data";
pub const TMP_VOLUME: &str = "tmp";
pub const TLS_VOLUME: &str = "tls";
/// The volume name EKS's pod identity webhook uses: when it already exists, the webhook does
/// not inject a second one.
pub const AWS_TOKEN_VOLUME: &str = "aws-iam-token";
/// Where EKS mounts the web-identity token, and the token's path and audience.
pub const AWS_TOKEN_DIR: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
pub const AWS_TOKEN_FILE: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";
pub const AWS_TOKEN_AUDIENCE: &str = "sts.amazonaws.com";
pub const AWS_TOKEN_EXPIRATION_SECONDS: i64 = 86_400;
/// Ready: initialized, unsealed, active or standby.
pub const READINESS_PATH: &str = "/v1/sys/health?standbyok=true";
/// Alive: the server answers. Sealed and uninitialized answer 204, so the kubelet never kills a
/// pod that waits for unseal keys or for initialization.
pub const LIVENESS_PATH: &str = "/v1/sys/health?standbyok=true&sealedcode=204&uninitcode=204";

/// The StatefulSet `v.name`. `config_hash` is [`super::configmap::config_hash`] of the
/// ConfigMap built from the same `v`.
pub fn stateful_set(v: &Validated, config_hash: &str) -> StatefulSet {
    StatefulSet {
        metadata: meta(v, v.name.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(v.replicas),
            service_name: Some(v.headless_service_name()),
            pod_management_policy: Some("Parallel".to_owned()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(v)),
                ..LabelSelector::default()
            },
            update_strategy: Some(update_strategy(v)),
            // Deleting the SecretServer (or scaling down) never deletes the data.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".to_owned()),
                    when_scaled: Some("Retain".to_owned()),
                },
            ),
            template: pod_template(v, config_hash),
            volume_claim_templates: Some(vec![data_claim(v)]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// `RollingUpdate` for a file server (its one pod is replaced by the StatefulSet controller).
/// `OnDelete` for raft: the StatefulSet controller never replaces a pod by itself, because
/// replacing raft voters in ordinal order, regardless of which one leads, is what loses
/// quorum; the operator chooses the order of every replacement.
fn update_strategy(v: &Validated) -> StatefulSetUpdateStrategy {
    let type_ = match v.storage {
        Storage::File => "RollingUpdate",
        Storage::Raft(_) => "OnDelete",
    };
    StatefulSetUpdateStrategy {
        type_: Some(type_.to_owned()),
        ..StatefulSetUpdateStrategy::default()
    }
}

/// The `data` claim template. No owner reference: the claims outlive the SecretServer.
fn data_claim(v: &Validated) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_owned()),
            labels: Some(selector_labels(v)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: v.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    v.storage_size.clone(),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

fn pod_template(v: &Validated, config_hash: &str) -> PodTemplateSpec {
    // The operator's labels win over the user's: the selector must keep matching.
    let mut pod_labels = v.pod_labels.clone();
    pod_labels.extend(labels(v));
    let mut annotations = v.pod_annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), config_hash.to_owned());
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(v.service_account.clone()),
            node_selector: (!v.node_selector.is_empty()).then(|| v.node_selector.clone()),
            tolerations: (!v.tolerations.is_empty()).then(|| v.tolerations.clone()),
            affinity: scheduling::affinity(v),
            topology_spread_constraints: scheduling::topology_spread(v),
            priority_class_name: v.priority_class_name.clone(),
            termination_grace_period_seconds: Some(30),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS_ID),
                run_as_group: Some(RUN_AS_ID),
                fs_group: Some(RUN_AS_ID),
                fs_group_change_policy: Some("OnRootMismatch".to_owned()),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![container(v)],
            volumes: Some(volumes(v)),
            ..PodSpec::default()
        }),
    }
}

fn container(v: &Validated) -> Container {
    Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(v.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec!["sealkeep".to_owned()]),
        args: Some(vec![
            "server".to_owned(),
            "--config".to_owned(),
            config_path(),
        ]),
        ports: Some(ports(v)),
        env: Some(env(v)),
        resources: v.resources.clone(),
        volume_mounts: Some(volume_mounts(v)),
        // A short period: the pod (and the SecretServer) turns Ready about a second after the
        // server unseals, and a sealed server leaves the Service within ~6 s.
        readiness_probe: Some(Probe {
            period_seconds: Some(2),
            timeout_seconds: Some(2),
            failure_threshold: Some(3),
            ..health_probe(v, READINESS_PATH)
        }),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(10),
            period_seconds: Some(10),
            timeout_seconds: Some(3),
            failure_threshold: Some(6),
            ..health_probe(v, LIVENESS_PATH)
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

/// The API port, and for raft the cluster port.
fn ports(v: &Validated) -> Vec<ContainerPort> {
    let mut ports = vec![port(port_name(v), API_PORT)];
    if matches!(v.storage, Storage::Raft(_)) {
        ports.push(port(CLUSTER_PORT_NAME, CLUSTER_PORT));
    }
    ports
}

fn health_probe(v: &Validated, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(API_PORT),
            scheme: Some(v.scheme().to_ascii_uppercase()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

fn value_env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".to_owned()),
                field_path: field_path.to_owned(),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The container's environment: the operator's variables, then the user's `spec.env`
/// (`validate` refuses user variables that collide with the operator's reserved names).
fn env(v: &Validated) -> Vec<EnvVar> {
    let mut env = vec![
        field_env("POD_IP", "status.podIP"),
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("HOSTNAME", "metadata.name"),
        value_env(
            "SEALKEEP_ADDR",
            format!("{}://127.0.0.1:{API_PORT}", v.scheme()),
        ),
    ];
    if matches!(v.storage, Storage::Raft(_)) {
        // Each pod's own addresses and raft node name: `$(POD_NAME)` is expanded by the
        // kubelet from the variable above.
        env.extend([
            value_env("VAULT_API_ADDR", raft::api_addr(v, "$(POD_NAME)")),
            value_env("VAULT_CLUSTER_ADDR", raft::cluster_addr(v, "$(POD_NAME)")),
            value_env("VAULT_RAFT_NODE_ID", "$(POD_NAME)"),
        ]);
    }
    if let Seal::AwsKms { region, .. } = &v.seal {
        // The server lets AWS_REGION override the config file's region (Vault's precedence),
        // and EKS's webhook injects the cluster's region when no region variable is set: pin it
        // to the key's region, unless the user set a region variable on purpose.
        let user_sets_region = v
            .env
            .iter()
            .any(|e| e.name == "AWS_REGION" || e.name == "AWS_DEFAULT_REGION");
        if !user_sets_region {
            env.push(value_env("AWS_REGION", region.clone()));
        }
    }
    if let Some(arn) = irsa_role_arn(v) {
        env.push(value_env("AWS_ROLE_ARN", arn));
        env.push(value_env("AWS_WEB_IDENTITY_TOKEN_FILE", AWS_TOKEN_FILE));
    }
    env.extend(v.env.iter().cloned());
    env
}

fn volumes(v: &Validated) -> Vec<Volume> {
    let mut volumes = vec![
        Volume {
            name: CONFIG_VOLUME.to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: v.config_map_name(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: TMP_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_owned()),
                size_limit: Some(Quantity("16Mi".to_owned())),
            }),
            ..Volume::default()
        },
    ];
    if let Some(secret) = &v.tls_secret {
        volumes.push(Volume {
            name: TLS_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    if irsa_role_arn(v).is_some() {
        volumes.push(Volume {
            name: AWS_TOKEN_VOLUME.to_owned(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(AWS_TOKEN_AUDIENCE.to_owned()),
                        expiration_seconds: Some(AWS_TOKEN_EXPIRATION_SECONDS),
                        path: "token".to_owned(),
                    }),
                    ..VolumeProjection::default()
                }]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    volumes
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn volume_mounts(v: &Validated) -> Vec<VolumeMount> {
    let mut mounts = vec![
        mount(CONFIG_VOLUME, CONFIG_DIR, true),
        mount(DATA_VOLUME, DATA_DIR, false),
        mount(TMP_VOLUME, "/tmp", false),
    ];
    if v.tls_secret.is_some() {
        mounts.push(mount(TLS_VOLUME, TLS_DIR, true));
    }
    if irsa_role_arn(v).is_some() {
        mounts.push(mount(AWS_TOKEN_VOLUME, AWS_TOKEN_DIR, true));
    }
    mounts
}

#[cfg(test)]
mod tests;
