//! The operator as the end-to-end tests and the operator benchmark run it: the CRD, a
//! ServiceAccount bound to the chart's RBAC rules (charts/sealkeep/files/*.yaml: the namespaced
//! rules and the cluster rules cluster-wide, Secrets only in the namespaces an operator is
//! started for), the chart's ValidatingAdmissionPolicy for that ServiceAccount, and a
//! kubeconfig with only that ServiceAccount's token, then `sealkeep operator` as a host process
//! with AWS credentials for moto (its KMS data keys for the init Secret).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::k8s::*;

pub const OPERATOR_NS: &str = "sealkeep-system";
pub const OPERATOR_SA: &str = "sealkeep-operator";
pub const IMAGE: &str = "ghcr.io/sealkeep/sealkeep:e2e";
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/sealkeep-e2e";
pub const BRIDGE_IP: &str = "198.18.0.1";
/// The ClusterRole with the chart's Secret rules; bound per namespace by [`Operator::start`].
pub const SECRETS_ROLE: &str = "sealkeep-operator-e2e-secrets";
/// The release name the chart's admission policy is rendered with (its fullname).
pub const POLICY_RELEASE: &str = "sealkeep-operator-e2e";

pub fn moto_url() -> String {
    testenv()
        .get("SEALKEEP_TESTENV_MOTO_URL")
        .cloned()
        .unwrap_or_else(|| format!("http://{BRIDGE_IP}:5000"))
}

pub fn kms_alias() -> String {
    testenv()
        .get("SEALKEEP_TESTENV_KMS_ALIAS")
        .cloned()
        .unwrap_or_else(|| "alias/sealkeep-testenv".into())
}

/// A SecretServer with the awskms seal through IRSA (moto's STS), as YAML for `apply`.
pub fn awskms_server(ns: &str, name: &str, key_id: &str, kms_endpoint: &str) -> String {
    format!(
        "apiVersion: sealkeep.dev/v1alpha1\nkind: SecretServer\nmetadata: {{ name: {name}, namespace: {ns} }}\nspec:\n  \
         seal:\n    awsKms:\n      keyId: {key_id}\n      region: us-east-1\n      endpoint: {kms_endpoint}\n      roleArn: {ROLE_ARN}\n  \
         env:\n    - name: AWS_ENDPOINT_URL_STS\n      value: {}\n",
        moto_url()
    )
}

pub fn scratch_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-operator");
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// The CRD, the operator's ServiceAccount, its ClusterRole (from the chart's rules file) and
/// binding, and a kubeconfig that authenticates as that ServiceAccount only.
pub fn operator_kubeconfig() -> &'static PathBuf {
    static KC: OnceLock<PathBuf> = OnceLock::new();
    KC.get_or_init(|| {
        apply_crd();
        if !kubectl(&["get", "namespace", OPERATOR_NS]).0 {
            kubectl_ok(&["create", "namespace", OPERATOR_NS]);
        }
        let rules_of = |file: &str| -> String {
            std::fs::read_to_string(repo().join("charts/sealkeep/files").join(file))
                .expect("rules file")
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let role = |name: &str, rules: &str| {
            format!(
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{ name: {name} }}\n{rules}---\n\
                 apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{ name: {name} }}\n\
                 roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {name} }}\n\
                 subjects: [{{ kind: ServiceAccount, name: {OPERATOR_SA}, namespace: {OPERATOR_NS} }}]\n---\n"
            )
        };
        let unbound = |name: &str, rules: &str| {
            format!(
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{ name: {name} }}\n{rules}---\n"
            )
        };
        apply(&format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{ name: {OPERATOR_SA}, namespace: {OPERATOR_NS} }}\n---\n{}{}{}",
            role("sealkeep-operator-e2e", &rules_of("operator-rules.yaml")),
            role("sealkeep-operator-e2e-cluster", &rules_of("operator-cluster-rules.yaml")),
            unbound(SECRETS_ROLE, &rules_of("operator-secret-rules.yaml")),
        ));
        apply(&admission_policy());
        let token = kubectl_ok(&["-n", OPERATOR_NS, "create", "token", OPERATOR_SA, "--duration=3h"]);
        let server = kubectl_ok(&["config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"]);
        let ca = kubectl_ok(&[
            "config",
            "view",
            "--minify",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ]);
        let path = scratch_dir().join("operator-kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
                 users:\n- name: operator\n  user:\n    token: {}\ncontexts:\n- name: operator\n  context: {{ cluster: testenv, user: operator }}\n\
                 current-context: operator\n",
                token.trim()
            ),
        )
        .expect("write kubeconfig");
        path
    })
}

/// The e2e operator's login token for the SecretServers' Kubernetes auth: what the chart's
/// projected volume holds (audience `sealkeep`), in a file the operator reads per login.
pub fn login_token_file() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        operator_kubeconfig();
        let token = kubectl_ok(&[
            "-n",
            OPERATOR_NS,
            "create",
            "token",
            OPERATOR_SA,
            "--audience=sealkeep",
            "--duration=3h",
        ]);
        let path = scratch_dir().join("operator-login-token");
        std::fs::write(&path, token.trim()).expect("write the login token");
        path
    })
}

/// The chart's ValidatingAdmissionPolicy and its binding, rendered by Helm for the e2e
/// operator's ServiceAccount.
pub fn admission_policy() -> String {
    let out = cmd("helm")
        .args([
            "template",
            POLICY_RELEASE,
            &repo().join("charts/sealkeep").display().to_string(),
            "-n",
            OPERATOR_NS,
            "--set",
            &format!("serviceAccount.name={OPERATOR_SA}"),
            "-s",
            "templates/admission-policy.yaml",
        ])
        .output()
        .expect("helm on the testenv PATH");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Lets the e2e operator keep Secrets in `ns` (the opt-in RoleBinding the chart's NOTES show).
pub fn grant_secrets(ns: &str) {
    apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{ name: {SECRETS_ROLE}, namespace: {ns} }}\n\
         roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {SECRETS_ROLE} }}\n\
         subjects: [{{ kind: ServiceAccount, name: {OPERATOR_SA}, namespace: {OPERATOR_NS} }}]\n"
    ));
}

/// `sealkeep init-secret show NAME -n NS [--field FIELD]` as a human with moto credentials
/// (the testenv's admin kubeconfig and AWS variables); returns (success, stdout, stderr).
pub fn init_secret_show(ns: &str, name: &str, field: Option<&str>) -> (bool, String, String) {
    let mut c = sealkeep_cli();
    c.args(["init-secret", "show", name, "-n", ns]);
    if let Some(f) = field {
        c.args(["--field", f]);
    }
    let out = c.output().expect("sealkeep init-secret show");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `sealkeep` binary with the testenv's kubeconfig and explicit moto credentials (the
/// `testenv env` line `export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing` holds two
/// assignments, which [`testenv`]'s one-assignment-per-line parser reads as one).
pub fn sealkeep_cli() -> Command {
    let mut c = cmd(env!("CARGO_BIN_EXE_sealkeep"));
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_KMS", moto_url())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

/// The root token of SecretServer `ns/name`, through `sealkeep init-secret show`.
pub fn root_token(ns: &str, name: &str) -> String {
    let (ok, out, err) = init_secret_show(ns, name, Some("root-token"));
    assert!(ok, "sealkeep init-secret show {ns}/{name}: {err}");
    out.trim().to_owned()
}

/// A running `sealkeep operator` watching one namespace; killed on drop.
pub struct Operator {
    child: Child,
    log: PathBuf,
    metrics_port: u16,
}

impl Operator {
    pub fn start(ns: &str) -> Self {
        Self::start_with(ns, &format!("e2e-{ns}"), &[])
    }

    pub fn start_with(ns: &str, identity: &str, extra: &[&str]) -> Self {
        Self::spawn(ns, identity, extra, true, true)
    }

    /// An operator that does not know its own ServiceAccount (run outside the chart): it writes
    /// no Kubernetes-auth role at init and has no token of its own.
    pub fn start_without_account(ns: &str) -> Self {
        Self::spawn(ns, &format!("e2e-{ns}-noaccount"), &[], true, false)
    }

    /// An operator with no AWS identity at all: it cannot get KMS data keys.
    pub fn start_without_aws(ns: &str) -> Self {
        Self::spawn(ns, &format!("e2e-{ns}-noaws"), &[], false, true)
    }

    fn spawn(ns: &str, identity: &str, extra: &[&str], aws: bool, account: bool) -> Self {
        let kubeconfig = operator_kubeconfig();
        let login_token = login_token_file();
        grant_secrets(ns);
        let log = scratch_dir().join(format!("operator-{identity}.log"));
        let metrics_port = super::free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sealkeep"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "sealkeep=debug,kube=info")
            // No instance-metadata lookups from a developer machine.
            .env("AWS_EC2_METADATA_DISABLED", "true");
        if aws {
            // moto accepts any key; the KMS endpoint comes from each SecretServer's spec.
            command
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing");
        }
        command
            .args([
                "operator",
                "--namespace",
                ns,
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--default-image",
                IMAGE,
                "--identity",
                identity,
            ])
            .args(extra);
        if account {
            // What the chart passes through the downward API and a projected volume.
            command.args([
                "--service-account",
                OPERATOR_SA,
                "--service-account-namespace",
                OPERATOR_NS,
                "--login-token-file",
                &login_token.display().to_string(),
            ]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start the operator");
        let op = Self {
            child,
            log,
            metrics_port,
        };
        wait_for("operator /readyz", Duration::from_secs(30), || {
            op.get("/readyz").is_some_and(|(code, _)| code == 200)
        });
        op
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let url = format!("http://127.0.0.1:{}{path}", self.metrics_port);
        let out = Command::new("curl")
            .args(["-s", "-m", "2", "-w", "\n%{http_code}", &url])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n')?;
        Some((code.trim().parse().ok()?, body.to_owned()))
    }

    /// SIGTERM, then wait for a clean exit; returns whether it exited with success.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Process id of the operator (for /proc figures in the benchmark).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- operator log tail ---");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// (status, reason, message) of a condition.
pub fn condition(s: &Value, type_: &str) -> (String, String, String) {
    s["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
                c["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .unwrap_or_default()
}

pub fn sks_json(ns: &str, name: &str) -> Value {
    json(&["-n", ns, "get", "secretserver", name])
}

pub fn is_ready(s: &Value) -> bool {
    s["status"]["ready"] == "1/1"
        && s["status"]["sealed"] == false
        && s["status"]["initialized"] == true
        && condition(s, "Ready").0 == "True"
}

/// Waits for a SecretServer to satisfy `pred`; shows the last status on failure.
pub fn wait_sks(
    ns: &str,
    name: &str,
    what: &str,
    limit: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < limit {
        let (ok, out, _) = kubectl(&["-n", ns, "get", "secretserver", name, "-o", "json"]);
        if ok && let Ok(v) = serde_json::from_str::<Value>(&out) {
            if pred(&v) {
                eprintln!("{what}: {:?}", start.elapsed());
                return v;
            }
            last = v;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "{what}: not within {limit:?}; last status: {}",
        serde_json::to_string_pretty(&last["status"]).unwrap_or_default()
    );
}

pub fn events(ns: &str) -> Vec<(String, String, String)> {
    json(&["-n", ns, "get", "events"])["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| {
                    (
                        e["type"].as_str().unwrap_or("").to_owned(),
                        e["reason"].as_str().unwrap_or("").to_owned(),
                        e["message"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
