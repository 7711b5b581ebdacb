//! Unit tests of the create plan: the policy subset rule, root tokens, orphans, periodic and
//! limited-use parents, TTLs and display names.

use serde_json::{Map, Value, json};

use super::create::plan;
use super::ttl::SYSTEM_TTL;
use super::*;

const H: u64 = 3600;
const NOW: u64 = 1_700_000_000;

fn body(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("test body must be an object"),
    }
}

fn entry(policies: &[&str], ttl: u64) -> TokenEntry {
    serde_json::from_value(json!({
        "hash": "p".repeat(64),
        "accessor": "acc",
        "policies": policies,
        "display_name": "parent",
        "creation_time": NOW - 10,
        "ttl": ttl,
    }))
    .expect("entry")
}

fn opts(sudo: bool) -> CreateOptions {
    CreateOptions {
        sudo,
        orphan: false,
        path: "auth/token/create".into(),
    }
}

fn req(v: Value) -> CreateRequest {
    CreateRequest::from_json(&body(v)).expect("request")
}

fn err_text(r: Result<(TokenEntry, Vec<String>), TokenError>) -> String {
    r.expect_err("should fail").to_string()
}

#[test]
fn child_policies_must_be_a_subset_unless_sudo() {
    let parent = entry(&["default", "web", "db"], H);
    let (e, _) = plan(
        &parent,
        &req(json!({"policies": ["web"]})),
        &opts(false),
        SYSTEM_TTL,
        NOW,
    )
    .expect("subset");
    assert_eq!(
        e.policies,
        ["default", "web"],
        "default added when the parent has it"
    );
    let (e, _) = plan(&parent, &req(json!({})), &opts(false), SYSTEM_TTL, NOW).expect("inherit");
    assert_eq!(e.policies, ["db", "default", "web"]);
    let (e, _) = plan(
        &parent,
        &req(json!({"policies": ["web"], "no_default_policy": true})),
        &opts(false),
        SYSTEM_TTL,
        NOW,
    )
    .expect("no default");
    assert_eq!(e.policies, ["web"]);
    let r = plan(
        &parent,
        &req(json!({"policies": ["web", "admin"]})),
        &opts(false),
        SYSTEM_TTL,
        NOW,
    );
    assert_eq!(err_text(r), "child policies must be subset of parent");
    let (e, _) = plan(
        &parent,
        &req(json!({"policies": ["admin"]})),
        &opts(true),
        SYSTEM_TTL,
        NOW,
    )
    .expect("sudo may assign any");
    assert_eq!(e.policies, ["admin", "default"]);
    // Nobody but root creates root tokens; nobody assigns internal policies.
    let r = plan(
        &parent,
        &req(json!({"policies": ["root"]})),
        &opts(true),
        SYSTEM_TTL,
        NOW,
    );
    assert_eq!(
        err_text(r),
        "root tokens may not be created without parent token being root"
    );
    let r = plan(
        &parent,
        &req(json!({"policies": ["response-wrapping"]})),
        &opts(true),
        SYSTEM_TTL,
        NOW,
    );
    assert_eq!(err_text(r), "cannot assign policy \"response-wrapping\"");
}

#[test]
fn root_children_ttl_renewable_and_display_name() {
    let root = entry(&["root"], 0);
    let (e, w) = plan(&root, &req(json!({})), &opts(true), SYSTEM_TTL, NOW).expect("root child");
    assert_eq!(
        (e.policies.clone(), e.ttl, e.expire_time, e.renewable),
        (vec!["root".to_owned()], 0, 0, false)
    );
    assert!(w.is_empty());
    assert_eq!(e.parent.as_deref(), Some(root.hash.as_str()));
    assert_eq!(e.display_name, "token");
    let (e, _) = plan(
        &root,
        &req(json!({"ttl": "1h", "display_name": "my app!"})),
        &opts(true),
        SYSTEM_TTL,
        NOW,
    )
    .expect("root child with ttl");
    assert_eq!((e.ttl, e.expire_time, e.renewable), (H, NOW + H, true));
    assert_eq!(e.display_name, "token-my-app");
    let (e, _) = plan(
        &root,
        &req(json!({"explicit_max_ttl": "2h"})),
        &opts(true),
        SYSTEM_TTL,
        NOW,
    )
    .expect("root bound by explicit max");
    assert_eq!((e.ttl, e.explicit_max_ttl), (2 * H, 2 * H));
    let (e, _) = plan(
        &root,
        &req(json!({"policies": ["web"]})),
        &opts(true),
        SYSTEM_TTL,
        NOW,
    )
    .expect("non-root child");
    assert_eq!(
        (e.ttl, e.renewable, e.policies.clone()),
        (768 * H, true, vec!["default".to_owned(), "web".to_owned()])
    );
    // An expiring root token cannot mint a non-expiring one.
    let expiring_root = entry(&["root"], H);
    let r = plan(
        &expiring_root,
        &req(json!({})),
        &opts(true),
        SYSTEM_TTL,
        NOW,
    );
    assert!(err_text(r).starts_with("expiring root tokens cannot create non-expiring root tokens"));
}

#[test]
fn orphan_period_and_restricted_use_rules() {
    let parent = entry(&["default", "web"], H);
    let r = plan(
        &parent,
        &req(json!({"no_parent": true})),
        &opts(false),
        SYSTEM_TTL,
        NOW,
    );
    assert!(err_text(r).starts_with("root or sudo privileges required to create orphan token"));
    let (e, _) = plan(
        &parent,
        &req(json!({"no_parent": true})),
        &opts(true),
        SYSTEM_TTL,
        NOW,
    )
    .expect("sudo orphan");
    assert_eq!(e.parent, None);
    let orphan_endpoint = CreateOptions {
        orphan: true,
        ..opts(false)
    };
    let (e, _) =
        plan(&parent, &req(json!({})), &orphan_endpoint, SYSTEM_TTL, NOW).expect("create-orphan");
    assert_eq!((e.parent, e.path.as_str()), (None, "auth/token/create"));
    let r = plan(
        &parent,
        &req(json!({"period": "1h"})),
        &opts(false),
        SYSTEM_TTL,
        NOW,
    );
    assert_eq!(
        err_text(r),
        "root or sudo privileges required to create periodic token"
    );
    let (e, _) = plan(
        &parent,
        &req(json!({"period": "1h", "ttl": "5h"})),
        &opts(true),
        SYSTEM_TTL,
        NOW,
    )
    .expect("periodic");
    assert_eq!((e.ttl, e.period), (H, H));
    let mut limited = parent.clone();
    limited.num_uses = 3;
    let r = plan(&limited, &req(json!({})), &opts(true), SYSTEM_TTL, NOW);
    assert_eq!(
        err_text(r),
        "restricted use token cannot generate child tokens"
    );
}
