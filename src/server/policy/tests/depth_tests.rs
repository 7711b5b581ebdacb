//! Core layer: the depth and size limits of the parsers of untrusted text reached through the
//! API: HCL and JSON policies, and the serde_json limit that request bodies rely on. Each limit
//! is tested at the limit and past it, in debug and release builds (`scripts/test-all.sh` runs
//! `depth_limit_` and `size_limit_` with `--release` too). Pure.

use super::super::{ParseError, ParseErrorKind, parse};
use crate::server::config::hcl1::{MAX_DEPTH, MAX_LEN, too_deep, too_long};

const MILLION: usize = 1_000_000;

/// A valid HCL policy whose `comment` (accepted, never read) nests `lists` lists inside the
/// path block, so the deepest bracket is at level `lists + 1`.
fn hcl_policy(lists: usize) -> String {
    format!(
        "path \"secret/*\" {{\n  capabilities = [\"read\"]\n  comment = {}\"c\"{}\n}}\n",
        "[".repeat(lists),
        "]".repeat(lists)
    )
}

/// The JSON form of [`hcl_policy`]: three objects, then `lists` arrays.
fn json_policy(lists: usize) -> String {
    format!(
        "{{\"path\": {{\"secret/*\": {{\n\"capabilities\": [\"read\"],\n\"comment\": {}\"c\"{}}}}}}}",
        "[".repeat(lists),
        "]".repeat(lists)
    )
}

fn assert_too_deep(e: &ParseError, line: usize, column: usize, what: &str) {
    assert_eq!((e.line, e.column), (line, column), "{e}");
    assert_eq!(e.kind, ParseErrorKind::Syntax(too_deep(what)));
    assert!(e.to_string().contains("deeper than 64 levels"), "{e}");
    assert!(e.to_string().contains("flatten the structure"), "{e}");
}

#[test]
fn depth_limit_policy_hcl_at_the_limit_parses_and_past_it_fails() {
    let p = parse(&hcl_policy(MAX_DEPTH - 1)).expect("at the limit");
    assert_eq!(p.rules.len(), 1);
    assert_eq!(p.rules[0].pattern, "secret/*");
    let e = parse(&hcl_policy(MAX_DEPTH)).expect_err("past the limit");
    // Line 3 is `  comment = [[...`; its 64th '[' (column 13 + 63) is level 65.
    assert_too_deep(&e, 3, 13 + 63, "this list");
}

#[test]
fn depth_limit_policy_json_at_the_limit_parses_and_past_it_fails() {
    let p = parse(&json_policy(MAX_DEPTH - 3)).expect("at the limit");
    assert_eq!(p.rules.len(), 1);
    assert_eq!(p.rules[0].pattern, "secret/*");
    let e = parse(&json_policy(MAX_DEPTH - 2)).expect_err("past the limit");
    // Line 3 is `"comment": [[...`; its 62nd '[' (column 12 + 61) is level 65.
    assert_too_deep(&e, 3, 12 + 61, "this array");
    let objects = format!(
        "{}{}",
        "{\"a\": ".repeat(MAX_DEPTH + 1),
        "}".repeat(MAX_DEPTH + 1)
    );
    let e = parse(&objects).expect_err("objects past the limit");
    assert_too_deep(&e, 1, 6 * MAX_DEPTH + 1, "this object");
}

/// The finding of issue 11: a ~2 KB body of `[[[[...` overflowed the stack and aborted the
/// server. A million brackets, closed or not, are now a syntax error at the 65th.
#[test]
fn depth_limit_policy_a_million_brackets_fail_without_overflowing_the_stack() {
    let hcl = format!("path \"a\" {{ capabilities = {}", "[".repeat(MILLION));
    assert_too_deep(&parse(&hcl).expect_err("hcl"), 1, 27 + 63, "this list");
    let closed = format!("{}{}", "[".repeat(MILLION), "]".repeat(MILLION));
    let e = parse(&format!("path \"a\" {{ capabilities = {closed} }}")).expect_err("closed");
    assert_too_deep(&e, 1, 27 + 63, "this list");
    let json = format!("{{\"path\": {}", "[".repeat(MILLION));
    assert_too_deep(&parse(&json).expect_err("json"), 1, 10 + 63, "this array");
    let e = parse(&format!("{{\"path\": {closed}}}")).expect_err("json closed");
    assert_too_deep(&e, 1, 10 + 63, "this array");
    let e = parse(&"{".repeat(MILLION)).expect_err("json objects");
    assert_too_deep(&e, 1, 65, "this object");
    // Brackets inside strings do not count.
    let quoted = format!(
        "{{\"path\": {{\"a\": {{\"comment\": \"{}\"}}}}}}",
        "[".repeat(MILLION)
    );
    assert_eq!(parse(&quoted).expect("brackets in a string").rules.len(), 1);
}

#[test]
fn size_limit_policy_refuses_text_past_4_mib_in_both_forms() {
    let rule = "path \"secret/*\" { capabilities = [\"read\"] }\n";
    let at = format!("{rule}#{}", "x".repeat(MAX_LEN - rule.len() - 1));
    assert_eq!(at.len(), MAX_LEN);
    assert_eq!(parse(&at).expect("at the limit").rules.len(), 1);
    for past in [
        format!("{at}x"),
        format!(
            "{{\"path\": {{\"a\": {{\"comment\": \"{}\"}}}}}}",
            "x".repeat(MAX_LEN)
        ),
    ] {
        let e = parse(&past).expect_err("past the limit");
        assert_eq!(e.kind, ParseErrorKind::Syntax(too_long(past.len())));
        assert!(e.to_string().contains("split it into smaller"), "{e}");
    }
}

/// n `path` rules in the JSON form, the last with an unknown capability on the last line.
fn large_json_policy(n: usize) -> String {
    let mut s = String::from("{\"path\": {\n");
    for i in 0..n - 1 {
        s.push_str(&format!(
            "  \"secret/data/app{i}/*\": {{\"capabilities\": [\"read\", \"list\"]}},\n"
        ));
    }
    s.push_str(&format!(
        "  \"secret/data/app{}\": {{\"capabilities\": [\"fly\"]}}\n}}}}",
        n - 1
    ));
    s
}

/// Issue 11: each key's position was a search of the whole text, O(n^2) for n paths (20,000
/// paths, 1.3 MB: 58 s in a debug build, against 0.2 s for the same policy in HCL). One pass
/// now finds them (0.37 s); they must still be exact.
#[test]
fn large_json_policy_parses_every_path_and_positions_stay_exact() {
    const N: usize = 20_000;
    let text = large_json_policy(N);
    let e = parse(&text).expect_err("the last rule is invalid");
    assert_eq!(e.kind, ParseErrorKind::UnknownCapability("fly".into()));
    assert_eq!(
        (e.line, e.column),
        (N + 1, 3 + format!("\"secret/data/app{}\": {{", N - 1).len())
    );
    let valid = text.replace("[\"fly\"]", "[\"read\"]");
    let p = parse(&valid).expect("valid");
    assert_eq!(p.rules.len(), N);
    assert!(
        p.rules
            .iter()
            .any(|r| r.pattern == "secret/data/app12345/*")
    );
}

/// A key's position is where it appears as a key (not as an equal string value), escapes
/// decoded, after its parent's key (`capabilities` repeats in every path).
#[test]
fn json_positions_point_at_keys_with_escapes() {
    let text = "{\"path\": {\n \"x\": {\"comment\": \"a*/x\"},\n \"a\\u002a/x\": {}}}";
    let e = parse(text).expect_err("invalid pattern");
    assert!(
        matches!(&e.kind, ParseErrorKind::InvalidPath { pattern, .. } if pattern == "a*/x"),
        "{e}"
    );
    assert_eq!((e.line, e.column), (3, 2), "{e}");
    let text =
        "{\"path\": {\n \"a\": {\"capabilities\": []},\n \"b\": {\"capabilities\": [\"x\"]}}}";
    let e = parse(text).expect_err("unknown capability");
    assert_eq!((e.line, e.column), (3, 8), "{e}");
}

/// Request bodies are parsed by serde_json (axum's `Json`, `serde_json::from_slice`), whose
/// recursion limit is 128: 127 nested arrays parse, the 128th is an error, and so is a million,
/// without a stack overflow. This fails if a dependency turns on serde_json's `unbounded_depth`.
#[test]
fn depth_limit_request_json_is_serde_jsons_128() {
    use serde_json::Value;
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    let v: Value = serde_json::from_slice(&nested(127)).expect("127 levels");
    let mut depth = 0;
    let mut cur = &v;
    while let Some(inner) = cur.as_array() {
        depth += 1;
        match inner.first() {
            Some(next) => cur = next,
            None => break,
        }
    }
    assert_eq!(depth, 127);
    for n in [128, 129, MILLION] {
        let e = serde_json::from_slice::<Value>(&nested(n)).expect_err("past the limit");
        assert!(
            e.to_string().starts_with("recursion limit exceeded"),
            "{n}: {e}"
        );
    }
    let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)).into_bytes();
    assert!(serde_json::from_slice::<Value>(&objects(127)).is_ok_and(|v| v["a"]["a"].is_object()));
    let e = serde_json::from_slice::<Value>(&objects(MILLION)).expect_err("a million objects");
    assert!(e.to_string().starts_with("recursion limit exceeded"), "{e}");
    // Typed bodies (axum's Json<T>) share the limit.
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        data: serde_json::Map<String, Value>,
    }
    let body = |n: usize| format!("{{\"data\": {}1{}}}", "{\"a\":".repeat(n), "}".repeat(n));
    assert!(serde_json::from_str::<Body>(&body(126)).is_ok());
    let e = serde_json::from_str::<Body>(&body(127)).expect_err("past the limit");
    assert!(e.to_string().starts_with("recursion limit exceeded"), "{e}");
}
