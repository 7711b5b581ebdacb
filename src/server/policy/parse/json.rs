//! Core layer: the JSON form of an ACL policy, converted to the HCL1 syntax tree so both forms
//! share one validator ([`super::parse`]). Pure; linear in the size of the text.

use std::collections::HashMap;

use super::{ParseError, ParseErrorKind, err};
use crate::server::config::hcl1::{self, Attr, Body, Item, Value};

/// The JSON form, converted to the HCL tree so both share one validator. A key's position is
/// its first occurrence as a key after its parent's key, which is exact for policies (where
/// sibling blocks repeat `capabilities`).
pub(super) fn body(src: &str) -> Result<Body, ParseError> {
    let keys = scan_json(src)?;
    let value: serde_json::Value = serde_json::from_str(src).map_err(|e| ParseError {
        line: e.line(),
        // serde_json says column 0 for an error right after a newline; columns start at 1.
        column: e.column().max(1),
        kind: ParseErrorKind::Syntax(format!("invalid JSON policy: {e}")),
    })?;
    match json_value(&keys, &value, 0) {
        Value::Object(body) => Ok(body),
        _ => Err(err(
            src,
            0,
            ParseErrorKind::Syntax(
                "a JSON policy must be an object, as in {\"path\": {\"secret/*\": {\"capabilities\": [\"read\"]}}}".into(),
            ),
        )),
    }
}

/// One linear pass over a JSON policy before serde_json parses it: refuses nesting deeper than
/// [`hcl1::MAX_DEPTH`] (as the HCL form does, naming the bracket's position), and maps each
/// object key to the byte offsets where it appears as a key, in ascending order. Searching the
/// whole text once per key instead made a policy of n paths cost O(n^2). Invalid JSON is left
/// to serde_json.
fn scan_json(src: &str) -> Result<HashMap<String, Vec<usize>>, ParseError> {
    let bytes = src.as_bytes();
    let mut keys = HashMap::new();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > hcl1::MAX_DEPTH {
                    let what = if b == b'[' {
                        "this array"
                    } else {
                        "this object"
                    };
                    return Err(err(src, i, ParseErrorKind::Syntax(hcl1::too_deep(what))));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i;
                let mut escaped = false;
                i += 1;
                // Bytes of multi-byte characters are never a quote or a backslash: bytes will do.
                while let Some(&c) = bytes.get(i) {
                    match c {
                        b'"' => break,
                        b'\\' => {
                            escaped = true;
                            i += 2;
                        }
                        _ => i += 1,
                    }
                }
                let (Some(literal), Some(rest)) = (src.get(start..=i), bytes.get(i + 1..)) else {
                    break; // unterminated: serde_json names the error
                };
                let is_key = rest.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b':');
                let key = match (is_key, escaped) {
                    (false, _) => None,
                    (true, false) => literal.get(1..literal.len() - 1).map(str::to_owned),
                    (true, true) => serde_json::from_str::<String>(literal).ok(),
                };
                if let Some(key) = key {
                    keys.entry(key).or_insert_with(Vec::new).push(start);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(keys)
}

/// Converts `value`, whose key (if any) is at byte `after - 1`.
fn json_value(
    keys: &HashMap<String, Vec<usize>>,
    value: &serde_json::Value,
    after: usize,
) -> Value {
    use serde_json::Value as J;
    match value {
        J::Null => Value::List(Vec::new()),
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Number(n.to_string()),
        J::String(s) => Value::Str(s.clone()),
        J::Array(items) => Value::List(items.iter().map(|v| json_value(keys, v, after)).collect()),
        J::Object(map) => Value::Object(Body {
            items: map
                .iter()
                .map(|(k, v)| {
                    let pos = keys.get(k).map_or(0, |all| {
                        let next = all.partition_point(|p| *p < after);
                        all.get(next).or(all.first()).copied().unwrap_or(0)
                    });
                    Item::Attr(Attr {
                        key: k.clone(),
                        value: json_value(keys, v, pos + 1),
                        pos,
                    })
                })
                .collect(),
        }),
    }
}
