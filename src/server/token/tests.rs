//! Unit tests of the pure token rules: TTL calculation, field parsing and policy sanitizing.

use serde_json::{Map, Value, json};

use super::create::sanitize_policies;
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

fn req(v: Value) -> CreateRequest {
    CreateRequest::from_json(&body(v)).expect("request")
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
