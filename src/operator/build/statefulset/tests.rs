use std::collections::HashSet;

use super::*;
use crate::operator::build::fixtures;

const HASH: &str = "0123456789abcdef";

fn spec(s: &StatefulSet) -> &StatefulSetSpec {
    s.spec.as_ref().expect("spec")
}

fn pod(s: &StatefulSet) -> &PodSpec {
    spec(s).template.spec.as_ref().expect("pod spec")
}

fn server(s: &StatefulSet) -> &Container {
    let containers = &pod(s).containers;
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn env_names(c: &Container) -> Vec<&str> {
    c.env.iter().flatten().map(|e| e.name.as_str()).collect()
}

fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

fn volume<'a>(s: &'a StatefulSet, name: &str) -> Option<&'a Volume> {
    pod(s).volumes.iter().flatten().find(|v| v.name == name)
}

fn mount_path<'a>(c: &'a Container, name: &str) -> Option<(&'a str, Option<bool>)> {
    c.volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == name)
        .map(|m| (m.mount_path.as_str(), m.read_only))
}

#[test]
fn statefulset_shape() {
    let v = fixtures::awskms_role();
    let s = stateful_set(&v, HASH);
    assert_eq!(s.metadata.name.as_deref(), Some("vault"));
    assert_eq!(s.metadata.namespace.as_deref(), Some(fixtures::NAMESPACE));
    let spec = spec(&s);
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.service_name.as_deref(), Some("vault-internal"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(spec.selector.match_labels, Some(selector_labels(&v)));
    let strategy = spec.update_strategy.as_ref().expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let retention = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .expect("retention");
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
    assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
    let pod = pod(&s);
    assert_eq!(pod.service_account_name.as_deref(), Some("vault"));
    assert_eq!(pod.termination_grace_period_seconds, Some(30));
    assert_eq!(pod.enable_service_links, Some(false));
    let c = server(&s);
    assert_eq!(c.name, "server");
    assert_eq!(c.image.as_deref(), Some(fixtures::DEFAULT_IMAGE));
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(c.command, Some(vec!["sealkeep".to_owned()]));
    assert_eq!(
        c.args,
        Some(vec![
            "server".to_owned(),
            "--config".to_owned(),
            "/sealkeep/config/sealkeep.hcl".to_owned()
        ])
    );
    let ports = c.ports.as_ref().expect("ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].container_port, 8200);
    assert_eq!(ports[0].name.as_deref(), Some("http"));
}

#[test]
fn data_claim_template_has_size_class_labels_and_no_owner() {
    let v = fixtures::overrides();
    let s = stateful_set(&v, HASH);
    let claims = spec(&s).volume_claim_templates.as_ref().expect("claims");
    assert_eq!(claims.len(), 1);
    let claim = &claims[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("data"));
    assert_eq!(claim.metadata.labels, Some(selector_labels(&v)));
    assert_eq!(claim.metadata.owner_references, None);
    assert_eq!(claim.metadata.namespace, None);
    let cs = claim.spec.as_ref().expect("claim spec");
    assert_eq!(cs.access_modes, Some(vec!["ReadWriteOnce".to_owned()]));
    assert_eq!(cs.storage_class_name.as_deref(), Some("gp3"));
    let requests = cs.resources.as_ref().and_then(|r| r.requests.as_ref());
    assert_eq!(
        requests.and_then(|r| r.get("storage")),
        Some(&Quantity("5Gi".into()))
    );

    // Defaults: 1Gi and the cluster's default class.
    let s = stateful_set(&fixtures::shamir(), HASH);
    let cs = spec(&s).volume_claim_templates.as_ref().expect("claims")[0]
        .spec
        .clone()
        .expect("claim spec");
    assert_eq!(cs.storage_class_name, None);
    let requests = cs.resources.and_then(|r| r.requests).expect("requests");
    assert_eq!(requests["storage"], Quantity("1Gi".into()));
}

#[test]
fn security_contexts_are_non_root_and_locked_down() {
    let s = stateful_set(&fixtures::shamir(), HASH);
    let psc = pod(&s)
        .security_context
        .as_ref()
        .expect("pod security context");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(65532));
    assert_eq!(psc.run_as_group, Some(65532));
    assert_eq!(psc.fs_group, Some(65532));
    assert_eq!(
        psc.fs_group_change_policy.as_deref(),
        Some("OnRootMismatch")
    );
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );
    let csc = server(&s).security_context.as_ref().expect("container ctx");
    assert_eq!(csc.allow_privilege_escalation, Some(false));
    assert_eq!(csc.read_only_root_filesystem, Some(true));
    assert_eq!(csc.run_as_non_root, Some(true));
    assert_eq!(csc.privileged, None);
    let drop = csc.capabilities.as_ref().and_then(|c| c.drop.clone());
    assert_eq!(drop, Some(vec!["ALL".to_owned()]));
}

#[test]
fn probes_never_kill_a_sealed_or_uninitialized_pod() {
    let s = stateful_set(&fixtures::shamir(), HASH);
    let c = server(&s);
    let ready = c.readiness_probe.as_ref().expect("readiness");
    let get = ready.http_get.as_ref().expect("httpGet");
    assert_eq!(get.path.as_deref(), Some("/v1/sys/health?standbyok=true"));
    assert_eq!(get.port, IntOrString::Int(8200));
    assert_eq!(get.scheme.as_deref(), Some("HTTP"));
    assert_eq!(
        (
            ready.period_seconds,
            ready.timeout_seconds,
            ready.failure_threshold
        ),
        (Some(2), Some(2), Some(3))
    );
    let live = c.liveness_probe.as_ref().expect("liveness");
    let get = live.http_get.as_ref().expect("httpGet");
    let path = get.path.as_deref().expect("path");
    assert!(path.contains("sealedcode=204"), "{path}");
    assert!(path.contains("uninitcode=204"), "{path}");
    assert!(path.contains("standbyok=true"), "{path}");
    assert_eq!(get.scheme.as_deref(), Some("HTTP"));
    assert_eq!(
        (
            live.initial_delay_seconds,
            live.period_seconds,
            live.timeout_seconds,
            live.failure_threshold
        ),
        (Some(10), Some(10), Some(3), Some(6))
    );
}

#[test]
fn irsa_token_volume_and_env_only_with_role_arn() {
    let s = stateful_set(&fixtures::awskms_role(), HASH);
    let c = server(&s);
    assert_eq!(
        env_value(c, "AWS_ROLE_ARN"),
        Some("arn:aws:iam::123456789012:role/sealkeep")
    );
    assert_eq!(
        env_value(c, "AWS_WEB_IDENTITY_TOKEN_FILE"),
        Some("/var/run/secrets/eks.amazonaws.com/serviceaccount/token")
    );
    let projected = volume(&s, "aws-iam-token")
        .and_then(|v| v.projected.as_ref())
        .expect("projected aws-iam-token volume");
    let sources = projected.sources.as_ref().expect("sources");
    assert_eq!(sources.len(), 1);
    let token = sources[0].service_account_token.as_ref().expect("token");
    assert_eq!(token.audience.as_deref(), Some("sts.amazonaws.com"));
    assert_eq!(token.expiration_seconds, Some(86_400));
    assert_eq!(token.path, "token");
    assert_eq!(
        mount_path(c, "aws-iam-token"),
        Some((
            "/var/run/secrets/eks.amazonaws.com/serviceaccount",
            Some(true)
        ))
    );

    for v in [fixtures::shamir(), fixtures::tls()] {
        let s = stateful_set(&v, HASH);
        let c = server(&s);
        assert_eq!(env_value(c, "AWS_ROLE_ARN"), None, "{}", v.name);
        assert_eq!(env_value(c, "AWS_WEB_IDENTITY_TOKEN_FILE"), None);
        assert!(volume(&s, "aws-iam-token").is_none());
        assert!(mount_path(c, "aws-iam-token").is_none());
    }
}

#[test]
fn env_order_field_refs_and_user_env_appended() {
    let v = fixtures::overrides();
    let s = stateful_set(&v, HASH);
    let c = server(&s);
    assert_eq!(
        env_names(c),
        vec![
            "POD_IP",
            "POD_NAME",
            "POD_NAMESPACE",
            "HOSTNAME",
            "SEALKEEP_ADDR",
            "AWS_REGION",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ENDPOINT_URL",
            "RUST_LOG",
        ]
    );
    let field = |name: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.as_ref())
            .and_then(|f| f.field_ref.as_ref())
            .map(|f| f.field_path.clone())
    };
    assert_eq!(field("POD_IP").as_deref(), Some("status.podIP"));
    assert_eq!(field("POD_NAME").as_deref(), Some("metadata.name"));
    assert_eq!(
        field("POD_NAMESPACE").as_deref(),
        Some("metadata.namespace")
    );
    assert_eq!(field("HOSTNAME").as_deref(), Some("metadata.name"));
    assert_eq!(env_value(c, "SEALKEEP_ADDR"), Some("http://127.0.0.1:8200"));
    assert_eq!(env_value(c, "AWS_REGION"), Some("ap-southeast-2"));
    assert_eq!(
        env_value(c, "AWS_ENDPOINT_URL"),
        Some("http://localstack:4566")
    );
    assert_eq!(env_value(c, "RUST_LOG"), Some("debug"));
}

#[test]
fn user_region_variable_replaces_the_pinned_region() {
    let mut v = fixtures::awskms_role();
    v.env.push(EnvVar {
        name: "AWS_DEFAULT_REGION".into(),
        value: Some("us-west-2".into()),
        ..EnvVar::default()
    });
    let s = stateful_set(&v, HASH);
    let c = server(&s);
    assert_eq!(env_value(c, "AWS_REGION"), None);
    assert_eq!(env_value(c, "AWS_DEFAULT_REGION"), Some("us-west-2"));
    // Shamir has no KMS region to pin.
    let s = stateful_set(&fixtures::shamir(), HASH);
    assert_eq!(env_value(server(&s), "AWS_REGION"), None);
}

#[test]
fn no_duplicate_env_volume_or_mount_names() {
    let all = [
        fixtures::awskms_role(),
        fixtures::shamir(),
        fixtures::tls(),
        fixtures::overrides(),
    ];
    for v in &all {
        let s = stateful_set(v, HASH);
        let c = server(&s);
        let names = env_names(c);
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{}: env {names:?}", v.name);

        let vols: Vec<_> = pod(&s).volumes.iter().flatten().map(|v| &v.name).collect();
        let unique: HashSet<_> = vols.iter().collect();
        assert_eq!(unique.len(), vols.len(), "{}: volumes {vols:?}", v.name);
        assert!(
            !vols.iter().any(|n| *n == "data"),
            "data comes from the claim template"
        );

        let mounts: Vec<_> = c.volume_mounts.iter().flatten().collect();
        let unique: HashSet<_> = mounts.iter().map(|m| &m.name).collect();
        assert_eq!(unique.len(), mounts.len(), "{}", v.name);
        let paths: HashSet<_> = mounts.iter().map(|m| &m.mount_path).collect();
        assert_eq!(paths.len(), mounts.len(), "{}", v.name);
        // Every mount has a volume (or is the claim template's `data`).
        for m in &mounts {
            assert!(m.name == "data" || vols.contains(&&m.name), "{}", m.name);
        }
    }
}

#[test]
fn config_data_and_tmp_volumes() {
    let s = stateful_set(&fixtures::shamir(), HASH);
    let c = server(&s);
    let config = volume(&s, "config").and_then(|v| v.config_map.as_ref());
    assert_eq!(config.map(|c| c.name.as_str()), Some("shamir-config"));
    assert_eq!(
        mount_path(c, "config"),
        Some(("/sealkeep/config", Some(true)))
    );
    assert_eq!(mount_path(c, "data"), Some(("/sealkeep/data", None)));
    let tmp = volume(&s, "tmp")
        .and_then(|v| v.empty_dir.as_ref())
        .expect("tmp");
    assert_eq!(tmp.medium.as_deref(), Some("Memory"));
    assert_eq!(tmp.size_limit, Some(Quantity("16Mi".into())));
    assert_eq!(mount_path(c, "tmp"), Some(("/tmp", None)));
    assert!(volume(&s, "tls").is_none());
}

#[test]
fn tls_mounts_the_secret_and_switches_the_scheme() {
    let v = fixtures::tls();
    let s = stateful_set(&v, HASH);
    let c = server(&s);
    let secret = volume(&s, "tls")
        .and_then(|v| v.secret.as_ref())
        .expect("tls");
    assert_eq!(secret.secret_name.as_deref(), Some("tls-cert"));
    assert_eq!(secret.default_mode, Some(0o440));
    assert_eq!(mount_path(c, "tls"), Some(("/sealkeep/tls", Some(true))));
    assert_eq!(
        env_value(c, "SEALKEEP_ADDR"),
        Some("https://127.0.0.1:8200")
    );
    assert_eq!(c.image.as_deref(), Some("registry.example/sealkeep:1.2.3"));
    let ports = c.ports.as_ref().expect("ports");
    assert_eq!(ports[0].name.as_deref(), Some("https"));
    for probe in [&c.readiness_probe, &c.liveness_probe] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("get");
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
    }
}

#[test]
fn user_pod_labels_cannot_override_selector_labels() {
    let v = fixtures::overrides();
    let s = stateful_set(&v, HASH);
    let meta = spec(&s).template.metadata.as_ref().expect("template meta");
    let labels = meta.labels.as_ref().expect("labels");
    assert_eq!(labels["app.kubernetes.io/instance"], "vault");
    assert_eq!(labels["app.kubernetes.io/name"], "sealkeep");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "sealkeep-operator");
    assert_eq!(labels["team"], "secrets");
    for (k, val) in selector_labels(&v) {
        assert_eq!(labels.get(&k), Some(&val), "{k}");
    }
    let annotations = meta.annotations.as_ref().expect("annotations");
    assert_eq!(annotations["example.com/owner"], "platform");
    assert_eq!(annotations[CONFIG_HASH_ANNOTATION], HASH);
}

#[test]
fn scheduling_and_resources_come_from_the_spec() {
    let v = fixtures::overrides();
    let s = stateful_set(&v, HASH);
    let pod = pod(&s);
    assert_eq!(
        pod.node_selector
            .as_ref()
            .map(|n| n["kubernetes.io/os"].as_str()),
        Some("linux")
    );
    let tolerations = pod.tolerations.as_ref().expect("tolerations");
    assert_eq!(tolerations[0].key.as_deref(), Some("dedicated"));
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    let requests = server(&s)
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .expect("requests");
    assert_eq!(requests["cpu"], Quantity("100m".into()));

    let s = stateful_set(&fixtures::shamir(), HASH);
    let pod = self::pod(&s);
    assert_eq!(pod.node_selector, None);
    assert_eq!(pod.tolerations, None);
    assert_eq!(pod.affinity, None);
    assert_eq!(pod.priority_class_name, None);
    assert_eq!(server(&s).resources, None);
}

#[test]
fn config_hash_is_the_template_annotation() {
    let v = fixtures::shamir();
    let a = stateful_set(&v, "aaaa");
    let b = stateful_set(&v, "bbbb");
    assert_ne!(spec(&a).template, spec(&b).template);
    let annotations = spec(&a)
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .expect("annotations");
    assert_eq!(annotations[CONFIG_HASH_ANNOTATION], "aaaa");
}

#[test]
fn raft_pods_are_replaced_only_by_the_operator() {
    let v = fixtures::validated(fixtures::RAFT3_YAML);
    let s = stateful_set(&v, HASH);
    let spec = spec(&s);
    assert_eq!(spec.replicas, Some(3));
    let strategy = spec.update_strategy.as_ref().expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("OnDelete"));
    assert_eq!(strategy.rolling_update, None);
    assert_eq!(spec.service_name.as_deref(), Some("vault-internal"));
    // Spread over nodes and zones by default (build/scheduling.rs).
    let pod = pod(&s);
    assert!(pod.affinity.is_some(), "{:?}", pod.affinity);
    assert!(pod.topology_spread_constraints.is_some());
}

#[test]
fn raft_pods_get_their_dns_addresses_node_name_and_cluster_port() {
    let v = fixtures::validated(fixtures::RAFT3_YAML);
    let s = stateful_set(&v, HASH);
    let c = server(&s);
    let names = env_names(c);
    let pos = |n: &str| names.iter().position(|x| *x == n).expect(n);
    // `$(POD_NAME)` expands only from a variable defined earlier.
    assert!(pos("POD_NAME") < pos("VAULT_API_ADDR"));
    assert_eq!(
        env_value(c, "VAULT_API_ADDR"),
        Some("http://$(POD_NAME).vault-internal:8200")
    );
    assert_eq!(
        env_value(c, "VAULT_CLUSTER_ADDR"),
        Some("https://$(POD_NAME).vault-internal:8201")
    );
    assert_eq!(env_value(c, "VAULT_RAFT_NODE_ID"), Some("$(POD_NAME)"));
    assert!(
        !names.contains(&"VAULT_RAFT_PATH"),
        "the config file has the path"
    );
    let ports: Vec<(Option<&str>, i32)> = c
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.container_port))
        .collect();
    assert_eq!(ports, [(Some("http"), 8200), (Some("cluster"), 8201)]);
    // The data volume holds the raft directory.
    assert_eq!(mount_path(c, "data"), Some(("/sealkeep/data", None)));
}

#[test]
fn file_servers_get_no_raft_environment() {
    for v in [fixtures::shamir(), fixtures::overrides(), fixtures::tls()] {
        let s = stateful_set(&v, HASH);
        let names = env_names(server(&s));
        for raft in ["VAULT_API_ADDR", "VAULT_CLUSTER_ADDR", "VAULT_RAFT_NODE_ID"] {
            assert!(!names.contains(&raft), "{raft} in {names:?}");
        }
    }
}
