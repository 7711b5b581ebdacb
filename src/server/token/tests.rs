//! Unit tests of the pure token rules: TTL calculation, field parsing, policy and display-name
//! sanitizing, and the create plan (policy subset, root, orphan, period rules).

use serde_json::{Map, Value, json};

use super::create::{plan, sanitize_policies};
use super::fields;
use super::ttl::{self, SYSTEM_TTL, SysTtl, TtlInput};
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
fn ttl_defaults_caps_and_warnings() {
    let calc = |input: TtlInput| ttl::calculate(SYSTEM_TTL, input, NOW).expect("ttl");
    let base = TtlInput {
        start: NOW,
        ..TtlInput::default()
    };
    assert_eq!(calc(base), (768 * H, vec![]));
    assert_eq!(calc(TtlInput { ttl: H, ..base }).0, H);
    // Above the system max: capped, with Vault's warning.
    let (t, w) = calc(TtlInput {
        ttl: 1000 * H,
        ..base
    });
    assert_eq!(t, 768 * H);
    assert!(w[0].contains("exceeded the effective max_ttl"), "{w:?}");
    // explicit_max_ttl and an auth method's max_ttl cap too.
    let capped = TtlInput {
        ttl: 10 * H,
        explicit_max_ttl: 2 * H,
        ..base
    };
    assert_eq!(calc(capped).0, 2 * H);
    assert_eq!(
        calc(TtlInput {
            max_ttl: 3 * H,
            ..capped
        })
        .0,
        2 * H
    );
    assert_eq!(
        calc(TtlInput {
            ttl: 10 * H,
            max_ttl: 3 * H,
            ..base
        })
        .0,
        3 * H
    );
    // Periodic tokens get the period; only explicit_max_ttl bounds them.
    assert_eq!(calc(TtlInput { period: H, ..base }).0, H);
    assert_eq!(
        calc(TtlInput {
            period: 1000 * H,
            ..base
        })
        .0,
        768 * H
    );
}

#[test]
fn renewal_ttl_counts_caps_from_issue_time() {
    let sys = SysTtl {
        default: H,
        max: 10 * H,
    };
    let start = NOW - 9 * H;
    // An increment wins over the last TTL; the cap is what is left of max since issue.
    let r = |input| ttl::calculate(sys, input, NOW);
    let input = TtlInput {
        increment: 5 * H,
        ttl: H,
        start,
        ..TtlInput::default()
    };
    assert_eq!(r(input).expect("renew").0, H);
    let no_increment = TtlInput {
        increment: 0,
        ttl: 1800,
        ..input
    };
    assert_eq!(r(no_increment).expect("renew").0, 1800);
    let expired = TtlInput {
        start: NOW - 10 * H,
        ..input
    };
    assert_eq!(
        r(expired).expect_err("past max").to_string(),
        "past the max TTL, cannot renew"
    );
    // A periodic token renews to its period even past the system max, unless explicit.
    let periodic = TtlInput {
        period: 2 * H,
        start: NOW - 100 * H,
        ..TtlInput::default()
    };
    assert_eq!(r(periodic).expect("periodic").0, 2 * H);
    let periodic_capped = TtlInput {
        explicit_max_ttl: 101 * H,
        ..periodic
    };
    assert_eq!(r(periodic_capped).expect("periodic").0, H);
}

#[test]
fn durations_accept_vault_formats_and_refuse_the_rest() {
    let p = |v: Value| fields::parse_duration("ttl", Some(&v));
    assert_eq!(p(json!(90)).expect("int"), Some(90));
    assert_eq!(p(json!("3600")).expect("numeric string"), Some(3600));
    assert_eq!(p(json!("1h")).expect("1h"), Some(3600));
    assert_eq!(p(json!("30m")).expect("30m"), Some(1800));
    assert_eq!(p(json!("90s")).expect("90s"), Some(90));
    assert_eq!(p(json!("1h30m")).expect("1h30m"), Some(5400));
    assert_eq!(p(json!("2d")).expect("days"), Some(2 * 24 * 3600));
    assert_eq!(p(json!("")).expect("empty"), None);
    assert_eq!(p(Value::Null).expect("null"), None);
    assert_eq!(fields::parse_duration("ttl", None).expect("absent"), None);
    assert_eq!(
        p(json!(-5)).expect_err("neg").to_string(),
        "ttl must be positive"
    );
    assert_eq!(
        p(json!("-1h")).expect_err("neg").to_string(),
        "ttl must be positive"
    );
    for bad in [
        json!("soon"),
        json!(1.5),
        json!({"h": 1}),
        json!([1]),
        json!(true),
    ] {
        let e = p(bad.clone()).expect_err("bad").to_string();
        assert!(e.starts_with("ttl: ") && e.contains("\"1h\""), "{bad}: {e}");
    }
}

#[test]
fn scalar_fields_are_weakly_typed_like_vault() {
    assert_eq!(
        fields::parse_bool("b", Some(&json!("true"))).expect("b"),
        Some(true)
    );
    assert_eq!(
        fields::parse_bool("b", Some(&json!(0))).expect("b"),
        Some(false)
    );
    assert!(fields::parse_bool("renewable", Some(&json!("maybe"))).is_err());
    assert_eq!(
        fields::parse_int("n", Some(&json!("7"))).expect("n"),
        Some(7)
    );
    assert!(fields::parse_int("num_uses", Some(&json!(1.5))).is_err());
    assert_eq!(
        fields::parse_string_list("policies", Some(&json!("a, b"))).expect("list"),
        Some(vec!["a".to_owned(), " b".to_owned()])
    );
    assert!(fields::parse_string_list("policies", Some(&json!({"a": 1}))).is_err());
    assert!(fields::parse_string_list("policies", Some(&json!([["a"]]))).is_err());
    assert_eq!(ttl::rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(ttl::rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
}

#[test]
fn policies_are_sanitized_like_vault() {
    let s = |p: &[&str], d| {
        sanitize_policies(&p.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>(), d)
    };
    assert_eq!(
        s(&[" Web", "db", "web", ""], true),
        ["db", "default", "web"]
    );
    assert_eq!(s(&["web", "ROOT"], true), ["root"]);
    assert_eq!(s(&[], true), ["default"]);
    assert!(s(&[], false).is_empty());
}

#[test]
fn create_request_parsing_names_the_bad_field() {
    let r = req(json!({
        "policies": "web,db", "meta": {"team": "a", "n": 3}, "renewable": "false",
        "ttl": "1h", "explicit_max_ttl": 7200, "num_uses": "2", "display_name": "x", "type": "service"
    }));
    assert_eq!(r.policies, Some(vec!["web".to_owned(), "db".to_owned()]));
    assert_eq!(r.meta.get("n").map(String::as_str), Some("3"));
    assert_eq!(
        (r.renewable, r.ttl, r.explicit_max_ttl, r.num_uses),
        (Some(false), Some(3600), Some(7200), 2)
    );
    assert_eq!(req(json!({"lease": "10m"})).ttl, Some(600));
    let cases = [
        (json!({"ttl": "abc"}), "ttl: "),
        (json!({"explicit_max_ttl": "x"}), "explicit_max_ttl: "),
        (json!({"period": -1}), "period must be positive"),
        (json!({"num_uses": -1}), "number of uses cannot be negative"),
        (json!({"num_uses": "many"}), "num_uses: "),
        (json!({"policies": 5}), "policies: "),
        (json!({"meta": {"a": {"b": 1}}}), "meta: "),
        (json!({"meta": "x"}), "meta: "),
        (json!({"renewable": "maybe"}), "renewable: "),
        (json!({"type": "batch"}), "batch tokens are not supported"),
        (json!({"type": "weird"}), "invalid 'token_type' value"),
        (json!({"id": "my-token"}), "id: custom token IDs"),
        (json!({"entity_alias": "x"}), "'entity_alias'"),
        (json!({"display_name": ["x"]}), "display_name: "),
    ];
    for (input, expected) in cases {
        let e = CreateRequest::from_json(&body(input.clone()))
            .expect_err("should fail")
            .to_string();
        assert!(
            e.starts_with(expected) || e.contains(expected),
            "{input}: {e}"
        );
    }
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

#[test]
fn entries_written_before_new_fields_still_load() {
    let old: TokenEntry = serde_json::from_value(json!({
        "hash": "a".repeat(64), "accessor": "x", "policies": ["root"],
        "display_name": "root", "creation_time": 5, "ttl": 10
    }))
    .expect("old entry");
    assert_eq!(
        (old.expires_at(), old.num_uses, old.parent.clone()),
        (15, 0, None)
    );
    assert!(old.is_expired(15) && !old.is_expired(14));
    assert_eq!(old.last_ttl(), 10);
    assert_eq!(old.path, "auth/token/create");
}
