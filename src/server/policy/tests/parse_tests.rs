//! Parser tests: accepted forms, and every error with its position and message.

use proptest::prelude::*;

use super::super::{CapSet, Capability, ParseErrorKind, parse};

fn caps(names: &[Capability]) -> CapSet {
    names.iter().copied().collect()
}

#[test]
fn hcl_blocks_comments_legacy_and_leading_slash() {
    let p = parse(
        r#"
# hash comment
// slash comment
/* block
   comment */
name = "ignored"
path "secret/data/app/*" {
  capabilities = ["read", "list"]
  comment      = "apps read their own secrets"
}
path "/sys/policies/acl/+" { capabilities = ["create", "update", "patch", "delete", "sudo"] }
path "old/read"  { policy = "read" }
path "old/write" { policy = "write" }
path "old/sudo"  { policy = "sudo" }
path "old/deny"  { policy = "deny" capabilities = ["read"] }
path "events/*"  { capabilities = ["subscribe", "recover"] subscribe_event_types = ["*"] }
path "empty" { capabilities = [] }
"#,
    )
    .expect("parse");
    use Capability::*;
    let got: Vec<(&str, CapSet)> = p
        .rules
        .iter()
        .map(|r| (r.pattern.as_str(), r.caps))
        .collect();
    assert_eq!(
        got,
        vec![
            ("secret/data/app/*", caps(&[Read, List])),
            (
                "sys/policies/acl/+",
                caps(&[Create, Update, Patch, Delete, Sudo])
            ),
            ("old/read", caps(&[Read, List])),
            ("old/write", caps(&[Create, Read, Update, Delete, List])),
            (
                "old/sudo",
                caps(&[Create, Read, Update, Delete, List, Sudo])
            ),
            ("old/deny", CapSet::DENY),
            ("events/*", caps(&[Subscribe, Recover])),
            ("empty", CapSet::default()),
        ]
    );
    assert!(p.rules.iter().all(|r| !r.templated));
}

#[test]
fn deny_in_a_list_leaves_only_deny() {
    let p = parse(r#"path "a" { capabilities = ["read", "deny", "update"] }"#).expect("parse");
    assert_eq!(p.rules[0].caps, CapSet::DENY);
    assert_eq!(p.rules[0].caps.names(), vec!["deny"]);
}

#[test]
fn json_and_object_forms() {
    let json = r#"{
  "path": {
    "secret/data/*": {"capabilities": ["read"]},
    "sys/capabilities-self": {"capabilities": ["update"]}
  }
}"#;
    let p = parse(json).expect("json");
    let mut got: Vec<_> = p.rules.iter().map(|r| r.pattern.clone()).collect();
    got.sort();
    assert_eq!(got, vec!["secret/data/*", "sys/capabilities-self"]);

    let list = r#"{"path": [{"a/*": {"policy": "read"}}, {"b": {"capabilities": ["list"]}}]}"#;
    assert_eq!(parse(list).expect("json list").rules.len(), 2);

    let object = "path = {\n  \"x/*\" = { capabilities = [\"read\"] }\n  \"y\" { capabilities = [\"list\"] }\n}\n";
    let p = parse(object).expect("object form");
    assert_eq!(
        p.rules
            .iter()
            .map(|r| (r.pattern.as_str(), r.caps))
            .collect::<Vec<_>>(),
        vec![
            ("x/*", caps(&[Capability::Read])),
            ("y", caps(&[Capability::List]))
        ]
    );
}

#[test]
fn templated_patterns_are_kept_but_marked() {
    let p =
        parse(r#"path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }"#)
            .expect("parse");
    assert!(p.rules[0].templated);
}

/// (policy text, line, column, full message)
const ERRORS: &[(&str, usize, usize, &str)] = &[
    (
        "path \"secret/*\" {\n\n  capabilities = [\"raed\"]\n}\n",
        3,
        3,
        "failed to parse policy: line 3, column 3: unknown capability \"raed\"; use one of create, read, update, patch, delete, list, sudo, deny, subscribe, recover",
    ),
    (
        "path \"a\" { policy = \"admin\" }",
        1,
        12,
        "failed to parse policy: line 1, column 12: invalid policy \"admin\"; use one of deny, read, write, sudo, or a capabilities list instead",
    ),
    (
        "path \"a\" {\n  capabilites = [\"read\"]\n}",
        2,
        3,
        "failed to parse policy: line 2, column 3: unknown setting \"capabilites\" in path \"a\"; a path block takes capabilities (and the legacy policy, comment)",
    ),
    (
        "path \"a\" {\n  capabilities = [\"update\"]\n  allowed_parameters = { \"k\" = [] }\n}",
        3,
        3,
        "failed to parse policy: line 3, column 3: \"allowed_parameters\" in path \"a\" is not enforced by this server; remove it (ignoring it would grant more than the policy says)",
    ),
    (
        "path \"a\" { capabilities = [\"read\"] }\nrule \"b\" { }",
        2,
        1,
        "failed to parse policy: line 2, column 1: unknown top-level setting \"rule\"; a policy holds only path \"PATTERN\" { capabilities = [...] } blocks",
    ),
    (
        "path \"\" { capabilities = [\"read\"] }",
        1,
        1,
        "failed to parse policy: line 1, column 1: invalid path \"\": the pattern is empty; name a path such as \"secret/data/app\", or \"*\" for every path",
    ),
    (
        "path \"secret/+*\" { capabilities = [\"read\"] }",
        1,
        1,
        "failed to parse policy: line 1, column 1: invalid path \"secret/+*\": '+*' is forbidden; use \"+\" for one whole segment, or put '*' after literal text",
    ),
    (
        "\n  path \"secret/*/config\" { capabilities = [\"read\"] }",
        2,
        3,
        "failed to parse policy: line 2, column 3: invalid path \"secret/*/config\": '*' may only be the last character; use \"+\" to match one path segment, as in \"secret/+/config\"",
    ),
    // Found by the policy_hcl fuzz target: "//" normalized to "/", a rule that never matches.
    (
        "path \"//\" { policy = \"deny\" }",
        1,
        1,
        "failed to parse policy: line 1, column 1: invalid path \"//\": it has an empty segment ('//'), which no request path has, so it could never match; remove the extra '/'",
    ),
    (
        "path \"sys/mounts//victim\" { capabilities = [\"deny\"] }",
        1,
        1,
        "failed to parse policy: line 1, column 1: invalid path \"sys/mounts//victim\": it has an empty segment ('//'), which no request path has, so it could never match; remove the extra '/'",
    ),
    (
        "path \"secret/+app/x\" { capabilities = [\"read\"] }",
        1,
        1,
        "failed to parse policy: line 1, column 1: invalid path \"secret/+app/x\": '+' must be a whole path segment, as in \"secret/+/config\"",
    ),
    (
        "path \"a/{{identity.entity.id\" { capabilities = [\"read\"] }",
        1,
        1,
        "failed to parse policy: line 1, column 1: invalid path \"a/{{identity.entity.id\": a {{ template is not closed with }}",
    ),
    (
        "path \"a\" { capabilities = \"read\" }",
        1,
        12,
        "failed to parse policy: line 1, column 12: \"capabilities\" must be a list of strings, found a string",
    ),
    (
        "path \"a\" { capabilities = [1] }",
        1,
        12,
        "failed to parse policy: line 1, column 12: \"capabilities\" must be a list of strings, found a number",
    ),
    (
        "path \"a\" {\n  capabilities = [\"read\"]\n  capabilities = [\"list\"]\n}",
        3,
        3,
        "failed to parse policy: line 3, column 3: \"capabilities\" is set twice in path \"a\"; merge the values into one",
    ),
    (
        "path { capabilities = [\"read\"] }",
        1,
        1,
        "failed to parse policy: line 1, column 1: a path block needs exactly one quoted pattern, as in path \"secret/data/*\" { capabilities = [\"read\"] }",
    ),
    (
        "path \"a\" \"b\" { capabilities = [\"read\"] }",
        1,
        1,
        "failed to parse policy: line 1, column 1: a path block needs exactly one quoted pattern, as in path \"secret/data/*\" { capabilities = [\"read\"] }",
    ),
    (
        "path \"a\" {\n  capabilities = [\"read]\n}",
        2,
        19,
        "failed to parse policy: line 2, column 19: unterminated string (newline before the closing quote)",
    ),
    (
        "path \"a\" {\n  capabilities = [\"read\"]\n",
        3,
        1,
        "failed to parse policy: line 3, column 1: missing '}' before the end of the file",
    ),
    (
        "path = \"a\"",
        1,
        1,
        "failed to parse policy: line 1, column 1: \"path\" must be a block, found a string",
    ),
    (
        "{\"path\": {\"a\": {\"capabilities\": [\"raed\"]}}}",
        1,
        17,
        "failed to parse policy: line 1, column 17: unknown capability \"raed\"; use one of create, read, update, patch, delete, list, sudo, deny, subscribe, recover",
    ),
];

#[test]
fn errors_name_position_cause_and_fix() {
    for (text, line, column, message) in ERRORS {
        let e = parse(text).expect_err(text);
        assert_eq!(
            (e.line, e.column, e.to_string().as_str()),
            (*line, *column, *message),
            "{text}"
        );
    }
}

#[test]
fn json_syntax_errors_have_positions() {
    let e = parse("{\"path\": {\n  \"a\": [,]\n}}").expect_err("bad json");
    assert_eq!((e.line, e.column), (2, 9));
    assert!(matches!(&e.kind, ParseErrorKind::Syntax(m) if m.starts_with("invalid JSON policy")));
    let e = parse("{} x").expect_err("trailing");
    assert!(e.to_string().contains("trailing characters"), "{e}");
    // serde_json's column 0 (the end of the text, after a newline) is reported as column 1.
    let e = parse("{\"path\":\n").expect_err("truncated");
    assert_eq!((e.line, e.column), (2, 1), "{e}");
}

#[test]
fn every_unsupported_constraint_is_refused() {
    for key in [
        "allowed_parameters = {}",
        "denied_parameters = {}",
        "required_parameters = []",
        "min_wrapping_ttl = \"1h\"",
        "max_wrapping_ttl = \"1h\"",
        "mfa_methods = []",
        "control_group { ttl = \"1h\" }",
    ] {
        let e = parse(&format!("path \"a\" {{ {key} }}")).expect_err(key);
        assert!(
            matches!(e.kind, ParseErrorKind::UnsupportedPathKey { .. }),
            "{key}: {e}"
        );
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn policy_like_text_never_panics(
        text in "(path|capabilities|policy|\"[a-z/+*{}]{0,8}\"|[=\\[\\]{},\n ]|#|/){0,40}"
    ) {
        let _ = parse(&text);
    }
}
