//! Operator layer: the SecretServer field reference as Markdown, generated from the CRD's
//! OpenAPI schema (so it cannot drift from the Rust types). Pure. `docs/secretserver.md` holds
//! its output; a unit test fails when that file is stale.

use std::fmt::Write;

use kube::CustomResourceExt;
use serde_json::Value;

use super::SecretServer;

/// The reference document.
pub fn markdown() -> String {
    let crd = serde_json::to_value(SecretServer::crd()).unwrap_or(Value::Null);
    let version = &crd["spec"]["versions"][0];
    let schema = &version["schema"]["openAPIV3Schema"]["properties"];
    let mut out = String::from(
        "# SecretServer reference (sealkeep.dev/v1alpha1)\n\n\
         Generated from `src/operator/crd.rs` by `sealkeep crd --reference`; do not edit.\n\
         `kubectl explain secretserver.spec` shows the same text.\n\n",
    );
    for (section, title) in [
        ("spec", "Spec"),
        ("status", "Status (written by the operator)"),
    ] {
        let _ = writeln!(out, "## {title}\n");
        let _ = writeln!(
            out,
            "| field | type | default | description |\n|---|---|---|---|"
        );
        fields(&schema[section], section, &mut out);
        out.push('\n');
    }
    out.push_str("## Validation rules (checked by the API server)\n\n");
    let mut rules = Vec::new();
    collect_rules(&schema["spec"], "spec", &mut rules);
    for (path, message) in rules {
        let _ = writeln!(out, "- `{path}`: {message}");
    }
    out
}

fn type_name(v: &Value) -> String {
    match v["type"].as_str() {
        Some("array") => format!("[]{}", type_name(&v["items"])),
        Some("object") if v["properties"].is_null() && v["additionalProperties"].is_object() => {
            format!("map[string]{}", type_name(&v["additionalProperties"]))
        }
        Some(t) => t.to_owned(),
        None if v["x-kubernetes-int-or-string"] == true => "int or string".into(),
        None => "object".into(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn fields(v: &Value, path: &str, out: &mut String) {
    let Some(props) = v["properties"].as_object() else {
        return;
    };
    for (name, field) in props {
        let p = format!("{path}.{name}");
        let default = match &field["default"] {
            Value::Null => String::new(),
            d => format!("`{d}`"),
        };
        let _ = writeln!(
            out,
            "| `{p}` | {} | {default} | {} |",
            type_name(field),
            one_line(field["description"].as_str().unwrap_or(""))
        );
        // Recurse into our own types; Kubernetes core types (resources, affinity, env, ...)
        // are documented upstream.
        let core = matches!(
            name.as_str(),
            "resources"
                | "affinity"
                | "tolerations"
                | "topologySpreadConstraints"
                | "env"
                | "conditions"
        );
        if !core {
            fields(field, &p, out);
            if field["type"] == "array" {
                fields(&field["items"], &format!("{p}[]"), out);
            }
        }
    }
}

fn collect_rules(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    if let Some(rules) = v["x-kubernetes-validations"].as_array() {
        for r in rules {
            if let Some(m) = r["message"].as_str() {
                out.push((path.to_owned(), m.to_owned()));
            }
        }
    }
    if let Some(props) = v["properties"].as_object() {
        for (name, field) in props {
            if !matches!(
                name.as_str(),
                "resources" | "affinity" | "tolerations" | "topologySpreadConstraints" | "env"
            ) {
                collect_rules(field, &format!("{path}.{name}"), out);
            }
        }
    }
}
