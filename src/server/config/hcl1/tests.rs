//! Config layer: unit tests of the HCL1 parser, its depth and size limits included.

use super::*;

#[test]
fn vault_style_one_line_blocks_and_comments() {
    let b = parse(
        "# comment\nlistener \"tcp\" { address = \"127.0.0.1:8200\"  tls_disable = 1 } // c\n/* x */ ui = true\nlist = [\"a\", \"b\",]\nobj = { k = \"v\" }\n",
    )
    .expect("parse");
    assert_eq!(b.items.len(), 4);
    let Item::Block(l) = &b.items[0] else {
        panic!("block")
    };
    assert_eq!(
        (l.ident.as_str(), l.labels.as_slice()),
        ("listener", ["tcp".to_owned()].as_slice())
    );
    assert_eq!(l.body.items.len(), 2);
    let Item::Attr(a) = &l.body.items[1] else {
        panic!("attr")
    };
    assert_eq!(a.value, Value::Number("1".into()));
    let Item::Attr(list) = &b.items[2] else {
        panic!("attr")
    };
    assert_eq!(
        list.value,
        Value::List(vec![Value::Str("a".into()), Value::Str("b".into())])
    );
}

#[test]
fn heredoc_and_escapes() {
    let b = parse("a = <<EOF\nline1\nline2\nEOF\nb = \"q\\\"x\"\n").expect("parse");
    let Item::Attr(a) = &b.items[0] else {
        panic!("attr")
    };
    assert_eq!(a.value, Value::Str("line1\nline2\n".into()));
    let Item::Attr(bb) = &b.items[1] else {
        panic!("attr")
    };
    assert_eq!(bb.value, Value::Str("q\"x".into()));
}

#[test]
fn errors_have_positions_and_never_panic() {
    for bad in [
        "a = ",
        "a = \"x",
        "listener {",
        "a = b",
        "{",
        "a = [",
        "/* x",
        "a = <<EOF\nx",
        "é = 1",
        "a \"l\" = 1",
    ] {
        let e = parse(bad).expect_err(bad);
        assert!(e.pos <= bad.len(), "{bad:?}: {e:?}");
    }
    let deep = "a = ".to_owned() + &"{ b = ".repeat(100);
    assert!(parse(&deep).is_err());
}

/// `a = ` then `n` nested lists around `"x"`, closed when `closed`.
fn nested_lists(n: usize, closed: bool) -> String {
    let close = if closed { "]".repeat(n) } else { String::new() };
    format!("a = {}\"x\"{close}", "[".repeat(n))
}

/// `n` nested blocks, `b { b { ... } }`, closed when `closed`.
fn nested_blocks(n: usize, closed: bool) -> String {
    let close = if closed { "}".repeat(n) } else { String::new() };
    format!("{}{close}", "b {".repeat(n))
}

/// `a = ` then `n` nested objects, `{ b = { b = ... {} } }`.
fn nested_objects(n: usize) -> String {
    format!("a = {}{{}}{}", "{ b = ".repeat(n - 1), " }".repeat(n - 1))
}

/// The depth of the first list, block or object in a parsed body.
fn depth_of(body: &Body) -> usize {
    fn value_depth(v: &Value) -> usize {
        match v {
            Value::List(items) => 1 + items.first().map_or(0, value_depth),
            Value::Object(b) => 1 + depth_of(b),
            _ => 0,
        }
    }
    match body.items.first() {
        Some(Item::Attr(a)) => value_depth(&a.value),
        Some(Item::Block(b)) => 1 + depth_of(&b.body),
        None => 0,
    }
}

/// The error must name the position of the first bracket past the limit, the cause and the fix.
fn assert_too_deep(src: &str, pos: usize, what: &str) {
    let e = parse(src).expect_err("past the depth limit");
    assert_eq!(e.pos, pos, "{e:?}");
    assert_eq!(e.message, too_deep(what));
    assert!(e.message.contains("deeper than 64 levels"), "{}", e.message);
    assert!(e.message.contains("flatten"), "{}", e.message);
}

#[test]
fn depth_limit_hcl1_lists_at_the_limit_parse_and_past_it_fail() {
    let b = parse(&nested_lists(MAX_DEPTH, true)).expect("at the limit");
    assert_eq!(depth_of(&b), MAX_DEPTH);
    // `a = ` is 4 bytes, so the 65th '[' is at offset 4 + 64.
    assert_too_deep(
        &nested_lists(MAX_DEPTH + 1, true),
        4 + MAX_DEPTH,
        "this list",
    );
}

#[test]
fn depth_limit_hcl1_blocks_and_objects_at_the_limit_parse_and_past_it_fail() {
    let b = parse(&nested_blocks(MAX_DEPTH, true)).expect("blocks at the limit");
    assert_eq!(depth_of(&b), MAX_DEPTH);
    assert_too_deep(
        &nested_blocks(MAX_DEPTH + 1, true),
        3 * MAX_DEPTH + 2,
        "this block",
    );
    let b = parse(&nested_objects(MAX_DEPTH)).expect("objects at the limit");
    assert_eq!(depth_of(&b), MAX_DEPTH);
    assert_too_deep(
        &nested_objects(MAX_DEPTH + 1),
        4 + 6 * MAX_DEPTH,
        "this object",
    );
}

#[test]
fn depth_limit_hcl1_counts_lists_and_objects_together() {
    // { b = [ { b = [ ... : alternate, 64 levels in all, then one more.
    let at = format!("a = {}1{}", "{ b = [".repeat(32), "] }".repeat(32));
    assert_eq!(
        depth_of(&parse(&at).expect("mixed at the limit")),
        MAX_DEPTH
    );
    let past = format!("a = {}{{", "{ b = [".repeat(32));
    assert_too_deep(&past, 4 + 7 * 32, "this object");
}

#[test]
fn depth_limit_hcl1_a_million_brackets_fail_without_overflowing_the_stack() {
    // A million, or as many as fit in MAX_LEN.
    const N: usize = 1_000_000;
    assert_too_deep(&nested_lists(N, false), 4 + MAX_DEPTH, "this list");
    assert_too_deep(&nested_lists(N, true), 4 + MAX_DEPTH, "this list");
    assert_too_deep(&nested_blocks(N, false), 3 * MAX_DEPTH + 2, "this block");
    assert_too_deep(
        &format!("a = {}", "{ b = ".repeat(N / 2)),
        4 + 6 * MAX_DEPTH,
        "this object",
    );
    // Depth is counted per nesting, not per file: many shallow lists are fine.
    let wide = "a = [[1]]\n".repeat(10_000);
    assert_eq!(parse(&wide).expect("wide").items.len(), 10_000);
}

#[test]
fn size_limit_hcl1_refuses_text_past_4_mib() {
    let at = format!("#{}", "x".repeat(MAX_LEN - 1));
    assert_eq!(parse(&at).expect("at the limit").items, Vec::new());
    let past = format!("#{}", "x".repeat(MAX_LEN));
    let e = parse(&past).expect_err("past the limit");
    assert_eq!(e.pos, MAX_LEN);
    assert_eq!(e.message, too_long(MAX_LEN + 1));
    assert!(e.message.contains("4 MiB"), "{}", e.message);
}

/// The server config goes through the same parser: the error names file, line and column.
#[test]
fn depth_limit_config_file_errors_name_file_line_and_column() {
    struct NoEnv;
    impl crate::server::config::Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }
    let parse = |text: &str| crate::server::config::ServerConfig::parse("s.hcl", text, &NoEnv);
    let listener = "listener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_disable = 1\n";
    let text = format!(
        "storage \"inmem\" {{}}\n{listener}  x = {}\n}}\n",
        "[".repeat(1_000_000)
    );
    let e = parse(&text).expect_err("deep list in a config");
    // The listener block is level 1, so the 64th '[' of line 5 (after "  x = ") is the 65th.
    assert_eq!((e.file.as_str(), e.line, e.column), ("s.hcl", 5, 6 + 64));
    assert!(e.message.contains("nests deeper than 64"), "{e}");
    assert!(
        e.to_string()
            .starts_with("s.hcl:5:70: HCL syntax error: this list"),
        "{e}"
    );
    let blocks = format!(
        "storage \"inmem\" {{}}\n{}",
        "telemetry {\n".repeat(100_000)
    );
    let e = parse(&blocks).expect_err("deep blocks in a config");
    assert_eq!((e.line, e.column), (66, 11), "{e}");
    let big = format!("storage \"inmem\" {{}}\n#{}", "x".repeat(MAX_LEN));
    let e = parse(&big).expect_err("too big");
    assert!(e.message.contains("more than the limit of 4194304"), "{e}");
}
