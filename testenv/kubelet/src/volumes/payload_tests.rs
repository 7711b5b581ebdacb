//! Unit tests of volume payloads (pure).

use super::*;
use std::net::Ipv4Addr;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use crate::resources::NodeResources;

fn pod() -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-0", "namespace": "team", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}]}
    }))
    .expect("pod")
}

fn sources() -> Sources {
    let cm = ConfigMap {
        data: Some(BTreeMap::from([
            ("ca.crt".to_string(), "CA".to_string()),
            ("b".to_string(), "B".to_string()),
        ])),
        ..Default::default()
    };
    let s = Secret {
        data: Some(BTreeMap::from([(
            "pw".to_string(),
            ByteString(b"hunter2".to_vec()),
        )])),
        ..Default::default()
    };
    Sources {
        configmaps: BTreeMap::from([("kube-root-ca.crt".to_string(), cm)]),
        secrets: BTreeMap::from([("creds".to_string(), s)]),
    }
}

fn facts() -> PodFacts {
    PodFacts {
        pod_ip: Some(Ipv4Addr::new(198, 18, 1, 1)),
        host_ip: Ipv4Addr::new(198, 18, 0, 1),
        node: NodeResources {
            cpus: 2,
            memory_bytes: 1 << 30,
            ephemeral_bytes: 1 << 33,
        },
    }
}

fn volume(v: serde_json::Value) -> Volume {
    serde_json::from_value(v).expect("volume")
}

fn build_with(v: serde_json::Value, tokens: &Tokens) -> Result<Option<Payload>, PayloadError> {
    let (p, s, f) = (pod(), sources(), facts());
    build(
        &volume(v),
        &Inputs {
            pod: &p,
            sources: &s,
            facts: &f,
            tokens,
        },
    )
}

fn text(p: &Payload, k: &str) -> (String, u32) {
    let f = p.get(k).unwrap_or_else(|| panic!("no {k} in {p:?}"));
    (String::from_utf8_lossy(&f.data).into_owned(), f.mode)
}

#[test]
fn configmap_all_keys_and_items() {
    let t = Tokens::default();
    let all = build_with(
        serde_json::json!({"name": "v", "configMap": {"name": "kube-root-ca.crt"}}),
        &t,
    )
    .expect("ok")
    .expect("payload");
    assert_eq!(all.len(), 2);
    assert_eq!(text(&all, "ca.crt"), ("CA".into(), 0o644));
    let items = build_with(
        serde_json::json!({"name": "v", "configMap": {"name": "kube-root-ca.crt", "defaultMode": 0o400,
            "items": [{"key": "b", "path": "dir/b.txt"}, {"key": "ca.crt", "path": "ca", "mode": 0o600}]}}),
        &t,
    )
    .expect("ok")
    .expect("payload");
    assert_eq!(text(&items, "dir/b.txt"), ("B".into(), 0o400));
    assert_eq!(text(&items, "ca"), ("CA".into(), 0o600));
}

#[test]
fn missing_objects_and_keys() {
    let t = Tokens::default();
    let r = build_with(
        serde_json::json!({"name": "v", "configMap": {"name": "nope"}}),
        &t,
    );
    assert_eq!(r, Err(PayloadError::ConfigMapMissing("nope".into())));
    let r = build_with(
        serde_json::json!({"name": "v", "secret": {"secretName": "nope", "optional": true}}),
        &t,
    );
    assert_eq!(r, Ok(Some(Payload::new())));
    let r = build_with(
        serde_json::json!({"name": "v", "secret": {"secretName": "creds", "items": [{"key": "x", "path": "x"}]}}),
        &t,
    );
    assert_eq!(
        r,
        Err(PayloadError::KeyMissing {
            kind: "secret",
            name: "creds".into(),
            key: "x".into()
        })
    );
    assert_eq!(
        build_with(serde_json::json!({"name": "v", "emptyDir": {}}), &t),
        Ok(None)
    );
}

#[test]
fn downward_api_files() {
    let t = Tokens::default();
    let p = build_with(
        serde_json::json!({"name": "v", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}
        ]}}),
        &t,
    )
    .expect("ok")
    .expect("payload");
    assert_eq!(text(&p, "labels").0, "app=\"web\"");
    assert_eq!(text(&p, "ns").0, "team");
    assert_eq!(text(&p, "mem").0, "64");
}

#[test]
fn projected_kube_api_access_needs_token() {
    let v = serde_json::json!({"name": "kube-api-access-x", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
    ]}});
    let r = build_with(v, &Tokens::default());
    assert_eq!(
        r,
        Err(PayloadError::TokenMissing("kube-api-access-x/token".into()))
    );
}
