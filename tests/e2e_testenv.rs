//! End-to-end tests on the local control plane (testenv: real etcd, kube-apiserver,
//! kube-controller-manager, the process kubelet, moto). Ignored by default because they need
//! root and the Go-built binaries; `scripts/test-all.sh` runs them with `--ignored` after
//! `testenv/testenv up`, and tears the environment down after them.

mod common;

use common::k8s::*;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// Whether the process kubelet's directory for a claim holds `file`.
fn pvc_has_file(ns: &str, claim: &str, file: &str) -> bool {
    let root = pvc_root(ns);
    std::fs::read_dir(&root)
        .map(|entries| {
            entries.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with(claim) && e.path().join(file).exists()
            })
        })
        .unwrap_or(false)
}

/// The process kubelet's PVC directory of a namespace.
fn pvc_root(ns: &str) -> PathBuf {
    let state = testenv()
        .get("SEALKEEP_TESTENV_DIR")
        .cloned()
        .unwrap_or_else(|| "/var/lib/sealkeep-testenv".into());
    PathBuf::from(state).join("kubelet/pvc").join(ns)
}

#[test]
#[ignore = "needs testenv (root, Go-built control plane): scripts/test-all.sh runs it"]
fn version_is_pinned_and_node_is_ready() {
    let v = json(&["version"]);
    let pinned = std::fs::read_to_string(repo().join("testenv/versions.env")).expect("versions");
    let kube = pinned
        .lines()
        .find_map(|l| l.strip_prefix("KUBE_VERSION="))
        .expect("KUBE_VERSION");
    assert_eq!(v["serverVersion"]["gitVersion"], kube);
    assert_eq!(v["clientVersion"]["gitVersion"], kube);
    let nodes = json(&["get", "nodes"]);
    let node = &nodes["items"][0];
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"].clone());
    assert_eq!(ready, Some(Value::from("True")), "{node}");
}

const DEV_DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: { name: dev, namespace: e2e-deploy }
spec:
  replicas: 1
  selector: { matchLabels: { app: dev } }
  template:
    metadata: { labels: { app: dev } }
    spec:
      containers:
      - name: server
        image: ghcr.io/sealkeep/sealkeep:0.1.0
        args: ["server", "--dev", "--dev-listen-address", "0.0.0.0:8200"]
        readinessProbe:
          httpGet: { path: /v1/sys/health, port: 8200 }
          periodSeconds: 1
"#;

#[test]
#[ignore = "needs testenv (root, Go-built control plane): scripts/test-all.sh runs it"]
fn deployment_becomes_available_and_gc_removes_dependents() {
    namespace("e2e-deploy");
    apply(DEV_DEPLOYMENT);
    wait_for("deployment Available", Duration::from_secs(90), || {
        let d = json(&["-n", "e2e-deploy", "get", "deployment", "dev"]);
        d["status"]["availableReplicas"] == 1
    });
    let pods = json(&["-n", "e2e-deploy", "get", "pods", "-l", "app=dev"]);
    let ip = pods["items"][0]["status"]["podIP"]
        .as_str()
        .expect("podIP")
        .to_owned();
    assert!(ip.starts_with("198.18."), "{ip}");
    // The dev server answers on its pod IP from the host.
    let st = seal_status(&ip);
    assert_eq!(st["sealed"], false);

    // Garbage collection: deleting the Deployment removes its ReplicaSet and pods.
    kubectl_ok(&[
        "-n",
        "e2e-deploy",
        "delete",
        "deployment",
        "dev",
        "--cascade=background",
    ]);
    wait_for("dependents collected", Duration::from_secs(90), || {
        let rs = json(&["-n", "e2e-deploy", "get", "replicasets"]);
        let pods = json(&["-n", "e2e-deploy", "get", "pods"]);
        rs["items"].as_array().is_some_and(Vec::is_empty)
            && pods["items"].as_array().is_some_and(Vec::is_empty)
    });
}

const STS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: { name: server-config, namespace: e2e-sts }
data:
  server.hcl: |
    storage "file" { path = "/data" }
    listener "tcp" { address = "0.0.0.0:8200"  tls_disable = 1 }
---
apiVersion: v1
kind: Service
metadata: { name: srv, namespace: e2e-sts }
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: { app: srv }
  ports: [{ name: http, port: 8200 }]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: srv, namespace: e2e-sts }
spec:
  serviceName: srv
  replicas: 3
  podManagementPolicy: Parallel
  selector: { matchLabels: { app: srv } }
  template:
    metadata: { labels: { app: srv } }
    spec:
      containers:
      - name: server
        image: ghcr.io/sealkeep/sealkeep:0.1.0
        args: ["server", "--config", "/etc/sealkeep/server.hcl"]
        volumeMounts:
        - { name: config, mountPath: /etc/sealkeep }
        - { name: data, mountPath: /data }
        readinessProbe:
          httpGet: { path: "/v1/sys/health?uninitcode=200&sealedcode=200", port: 8200 }
          periodSeconds: 1
      volumes:
      - name: config
        configMap: { name: server-config }
  volumeClaimTemplates:
  - metadata: { name: data }
    spec:
      accessModes: [ReadWriteOnce]
      resources: { requests: { storage: 1Gi } }
"#;

fn seal_status(ip: &str) -> Value {
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "5",
            &format!("http://{ip}:8200/v1/sys/seal-status"),
        ])
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn pod_ip(ns: &str, pod: &str) -> Option<String> {
    let p = json(&["-n", ns, "get", "pod", pod]);
    p["status"]["podIP"].as_str().map(str::to_owned)
}

#[test]
#[ignore = "needs testenv (root, Go-built control plane): scripts/test-all.sh runs it"]
fn statefulset_pods_get_ips_and_keep_pvc_data_across_recreation() {
    // A fresh namespace per run: PVC directories outlive their namespace by design.
    let ns = format!("e2e-sts-{}", std::process::id());
    namespace(&ns);
    apply(&STS.replace("namespace: e2e-sts", &format!("namespace: {ns}")));
    wait_for("statefulset ready", Duration::from_secs(120), || {
        json(&["-n", &ns, "get", "statefulset", "srv"])["status"]["readyReplicas"] == 3
    });
    let mut ips: Vec<String> = (0..3)
        .map(|i| pod_ip(&ns, &format!("srv-{i}")).expect("podIP"))
        .collect();
    assert!(ips.iter().all(|ip| ip.starts_with("198.18.")), "{ips:?}");
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "distinct pod IPs");
    let pvc = json(&["-n", &ns, "get", "pvc", "data-srv-0"]);
    assert_eq!(pvc["status"]["phase"], "Bound");

    // Initialize srv-0 (its storage lives on the PVC), then delete the pod.
    let ip0 = pod_ip(&ns, "srv-0").expect("ip");
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "10",
            "-X",
            "PUT",
            "-d",
            r#"{"secret_shares":1,"secret_threshold":1}"#,
        ])
        .arg(format!("http://{ip0}:8200/v1/sys/init"))
        .output()
        .expect("curl");
    let init: Value = serde_json::from_slice(&out.stdout).expect("init json");
    assert!(init["root_token"].is_string(), "{init}");
    let uid = json(&["-n", &ns, "get", "pod", "srv-0"])["metadata"]["uid"].clone();
    kubectl_ok(&[
        "-n",
        &ns,
        "delete",
        "pod",
        "srv-0",
        "--wait=true",
        "--timeout=60s",
    ]);
    // The old process is gone: nothing answers on its address until the new pod runs.
    wait_for(
        "srv-0 recreated and ready",
        Duration::from_secs(120),
        || {
            let p = json(&["-n", &ns, "get", "pod", "srv-0"]);
            p["metadata"]["uid"] != uid
                && p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        },
    );
    let ip = pod_ip(&ns, "srv-0").expect("ip");
    let st = seal_status(&ip);
    assert_eq!(
        st["initialized"], true,
        "PVC data must survive pod recreation: {st}"
    );
    assert!(pvc_has_file(&ns, "data-srv-0", "sealkeep.redb"));
    kubectl_ok(&["delete", "namespace", &ns, "--wait=false"]);
}

#[test]
#[ignore = "needs testenv (root, Go-built control plane): scripts/test-all.sh runs it"]
fn helm_installs_a_tiny_chart() {
    namespace("e2e-helm");
    let chart = repo().join("tests/fixtures/tiny-chart");
    let out = cmd("helm")
        .args(["install", "tiny"])
        .arg(&chart)
        .args(["-n", "e2e-helm", "--wait", "--timeout", "60s"])
        .output()
        .expect("helm on the testenv PATH");
    assert!(
        out.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = json(&["-n", "e2e-helm", "get", "configmap", "tiny-greeting"]);
    assert_eq!(cm["data"]["greeting"], "hello from helm");
    let out = cmd("helm")
        .args(["uninstall", "tiny", "-n", "e2e-helm"])
        .output()
        .expect("helm");
    assert!(out.status.success());
}

/// A pod that runs host tools (`sh`, `curl`, the pinned `kubectl`) with its own service account,
/// projected tokens and network namespace, and prints what it sees.
fn probe_manifest(ns: &str, kubectl: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{ name: reader, namespace: {ns} }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: read-configmaps, namespace: {ns} }}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: reader, namespace: {ns} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-configmaps }}
subjects: [{{ kind: ServiceAccount, name: reader, namespace: {ns} }}]
---
apiVersion: v1
kind: Service
metadata: {{ name: peers, namespace: {ns} }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {{ app: peer }}
  ports: [{{ name: http, port: 8200 }}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{ name: peer, namespace: {ns} }}
spec:
  serviceName: peers
  replicas: 2
  podManagementPolicy: Parallel
  selector: {{ matchLabels: {{ app: peer }} }}
  template:
    metadata: {{ labels: {{ app: peer }} }}
    spec:
      containers:
      - name: server
        image: ghcr.io/sealkeep/sealkeep:0.1.0
        args: ["server", "--dev", "--dev-listen-address", "0.0.0.0:8200"]
        readinessProbe:
          httpGet: {{ path: /v1/sys/health, port: 8200 }}
          periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {{ name: probe, namespace: {ns} }}
spec:
  serviceAccountName: reader
  restartPolicy: Never
  containers:
  - name: probe
    image: docker.io/library/busybox:1.36
    command: ["/bin/sh", "-c"]
    args:
    - |
      echo "HOSTNAME=$(hostname)"
      {kubectl} get configmaps -o name >/dev/null 2>&1; echo "LIST_CONFIGMAPS=$?"
      {kubectl} get secrets -o name >/dev/null 2>&1; echo "LIST_SECRETS=$?"
      {kubectl} get configmaps -n default -o name >/dev/null 2>&1; echo "OTHER_NAMESPACE=$?"
      T=/var/run/secrets/eks.amazonaws.com/serviceaccount/token
      echo "TOKEN_PAYLOAD=$(cut -d. -f2 $T)"
      curl -s -m 10 -X POST http://198.18.0.1:5000/ \
        --data-urlencode Action=AssumeRoleWithWebIdentity --data-urlencode Version=2011-06-15 \
        --data-urlencode RoleArn=arn:aws:iam::123456789012:role/probe \
        --data-urlencode RoleSessionName=probe --data-urlencode "WebIdentityToken=$(cat $T)" \
        | grep -q '<AccessKeyId>' ; echo "STS=$?"
      for p in peer-0 peer-1; do
        curl -s -m 5 http://$p.peers.{ns}.svc.cluster.local:8200/v1/sys/seal-status | grep -q '"sealed":false'; echo "PEER_$p=$?"
      done
      echo DONE
    volumeMounts:
    - {{ name: aws-token, mountPath: /var/run/secrets/eks.amazonaws.com/serviceaccount, readOnly: true }}
  volumes:
  - name: aws-token
    projected:
      sources:
      - serviceAccountToken: {{ audience: sts.amazonaws.com, expirationSeconds: 3600, path: token }}
"#
    )
}

#[test]
#[ignore = "needs testenv (root, Go-built control plane): scripts/test-all.sh runs it"]
fn pod_sees_rbac_tokens_hostname_peers_and_moto() {
    let ns = format!("e2e-probe-{}", std::process::id());
    namespace(&ns);
    let kubectl = testenv()
        .get("PATH")
        .and_then(|p| {
            p.split(':')
                .map(PathBuf::from)
                .find(|d| d.join("kubectl").exists())
        })
        .map(|d| d.join("kubectl").display().to_string())
        .expect("pinned kubectl on the testenv PATH");
    let manifest = probe_manifest(&ns, &kubectl);
    // The probe must start after its peers are ready, so apply it last.
    let (peers, probe) =
        manifest.split_at(manifest.find("apiVersion: v1\nkind: Pod").expect("pod"));
    apply(peers);
    wait_for("peers ready", Duration::from_secs(120), || {
        json(&["-n", &ns, "get", "statefulset", "peer"])["status"]["readyReplicas"] == 2
    });
    apply(probe);
    let log = finished_pod_log(&ns, "probe", "probe", Duration::from_secs(120));
    let vars: HashMap<&str, &str> = log.lines().filter_map(|l| l.split_once('=')).collect();
    assert!(log.contains("DONE"), "{log}");
    assert_eq!(vars.get("HOSTNAME"), Some(&"probe"), "{log}");
    assert_eq!(
        vars.get("LIST_CONFIGMAPS"),
        Some(&"0"),
        "RBAC allows configmaps: {log}"
    );
    assert_ne!(
        vars.get("LIST_SECRETS"),
        Some(&"0"),
        "RBAC must refuse secrets: {log}"
    );
    assert_ne!(
        vars.get("OTHER_NAMESPACE"),
        Some(&"0"),
        "RBAC must refuse other namespaces: {log}"
    );
    assert_eq!(
        vars.get("STS"),
        Some(&"0"),
        "moto STS must accept the token: {log}"
    );
    assert_eq!(vars.get("PEER_peer-0"), Some(&"0"), "{log}");
    assert_eq!(vars.get("PEER_peer-1"), Some(&"0"), "{log}");
    let payload = vars.get("TOKEN_PAYLOAD").expect("token payload");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            payload.trim_end_matches('='),
        )
        .expect("base64url"),
    )
    .expect("claims");
    assert_eq!(
        claims["aud"],
        serde_json::json!(["sts.amazonaws.com"]),
        "{claims}"
    );
    assert_eq!(claims["sub"], format!("system:serviceaccount:{ns}:reader"));
    kubectl_ok(&["delete", "namespace", &ns, "--wait=false"]);
}

#[test]
#[ignore = "needs testenv (root, Go-built control plane): scripts/test-all.sh runs it"]
fn secretserver_crd_validates_in_the_api_server() {
    apply_crd();
    let ns = format!("e2e-crd-{}", std::process::id());
    namespace(&ns);
    let object = |spec: &str| {
        format!(
            "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata: {{ name: s, namespace: {ns} }}\nspec:\n{spec}"
        )
    };
    for (spec, message) in [
        (
            "  replicas: 2\n  seal: { shamir: {} }\n",
            "replicas must be 1, 3 or 5",
        ),
        (
            "  seal: { shamir: {}, awsKms: { keyId: k, region: r } }\n",
            "set exactly one of seal.awsKms or seal.shamir",
        ),
        (
            "  seal: {}\n",
            "set exactly one of seal.awsKms or seal.shamir",
        ),
        (
            "  seal: { awsKms: { keyId: \"\", region: us-east-1 } }\n",
            "keyId must name a KMS key",
        ),
        (
            "  seal: { shamir: {} }\n  init: { recoveryShares: 2, recoveryThreshold: 3 }\n",
            "recoveryThreshold must be between 1 and init.recoveryShares",
        ),
        (
            "  seal: { shamir: {} }\n  storage: { size: lots }\n",
            "storage.size must be a positive quantity",
        ),
        (
            "  seal: { shamir: {} }\n  storage: { size: \"0\" }\n",
            "storage.size must be a positive quantity",
        ),
    ] {
        let err = apply_err(&object(spec));
        assert!(err.contains(message), "expected {message:?} in: {err}");
    }
    apply(&object(
        "  seal: { awsKms: { keyId: alias/k, region: us-east-1 } }\n  storage: { size: 2Gi }\n",
    ));
    let s = json(&["-n", &ns, "get", "secretserver", "s"]);
    assert_eq!(s["spec"]["replicas"], 1, "defaults: {s}");
    assert_eq!(s["spec"]["init"]["recoveryShares"], 5);
    let (ok, _, err) = kubectl(&[
        "-n",
        &ns,
        "patch",
        "sks",
        "s",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"storage":{"size":"1Gi"}}}"#,
    ]);
    assert!(!ok && err.contains("storage.size may not shrink"), "{err}");
    let (ok, _, _) = kubectl(&[
        "-n",
        &ns,
        "patch",
        "sks",
        "s",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"storage":{"size":"3Gi"}}}"#,
    ]);
    assert!(ok, "growing storage is allowed");
    let explain = kubectl_ok(&["explain", "secretserver.spec.seal.awsKms"]);
    assert!(explain.contains("AWS KMS auto-unseal"), "{explain}");
    let table = kubectl_ok(&["-n", &ns, "get", "secretservers"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "SEALED",
            "INITIALIZED",
            "SEAL",
            "ACTIVE",
            "AGE"
        ]
    );
    kubectl_ok(&["delete", "namespace", &ns, "--wait=false"]);
}
