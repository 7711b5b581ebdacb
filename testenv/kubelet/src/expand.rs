//! Kubernetes `$(VAR)` expansion for env values, command, args and subPathExpr (pure, no I/O).
//!
//! Same semantics as `k8s.io/kubernetes/third_party/forked/golang/expansion`: `$$` is an escaped
//! `$`, `$(NAME)` is replaced when NAME is defined and left verbatim otherwise, an unterminated
//! `$(` and a `$` before anything else are copied unchanged.

/// Expands `$(NAME)` references in `input`; `lookup` returns the value of a defined variable.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.extend_from_slice(&bytes[checkpoint..cursor]);
            let rest = &bytes[cursor + 1..];
            let advance = match rest[0] {
                b'$' => {
                    out.push(b'$');
                    1
                }
                b'(' => match rest.iter().position(|&b| b == b')') {
                    Some(close) => {
                        // Slicing at ASCII bytes keeps the name valid UTF-8.
                        let name = String::from_utf8_lossy(&rest[1..close]);
                        match lookup(&name) {
                            Some(value) => out.extend_from_slice(value.as_bytes()),
                            None => {
                                out.push(b'$');
                                out.extend_from_slice(&rest[..=close]);
                            }
                        }
                        close + 1
                    }
                    None => {
                        out.extend_from_slice(b"$(");
                        1
                    }
                },
                other => {
                    out.push(b'$');
                    out.push(other);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.extend_from_slice(&bytes[checkpoint.min(bytes.len())..]);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Expands against an ordered list of `(name, value)` pairs; a later pair wins.
pub fn expand_with(input: &str, vars: &[(String, String)]) -> String {
    expand(input, |name| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![
            ("VAR_A".into(), "A".into()),
            ("VAR_B".into(), "B".into()),
            ("EMPTY".into(), String::new()),
            ("VAR_A".into(), "A2".into()),
        ]
    }

    fn x(s: &str) -> String {
        expand_with(s, &vars())
    }

    #[test]
    fn replaces_defined_and_keeps_undefined() {
        assert_eq!(x("$(VAR_B)"), "B");
        assert_eq!(x("pre-$(VAR_B)-post"), "pre-B-post");
        assert_eq!(x("$(VAR_A)"), "A2", "later definition wins");
        assert_eq!(x("$(UNDEFINED)"), "$(UNDEFINED)");
        assert_eq!(x("x$(EMPTY)y"), "xy");
        assert_eq!(x("$(VAR_B)$(VAR_B)"), "BB");
    }

    #[test]
    fn escapes_and_malformed_input() {
        assert_eq!(x("$$(VAR_B)"), "$(VAR_B)");
        assert_eq!(x("$$$(VAR_B)"), "$B");
        assert_eq!(x("$$$$(VAR_B)"), "$$(VAR_B)");
        assert_eq!(x("$(VAR_B"), "$(VAR_B");
        assert_eq!(x("$VAR_B"), "$VAR_B");
        assert_eq!(x("$"), "$");
        assert_eq!(x("a$"), "a$");
        assert_eq!(x("$)"), "$)");
        assert_eq!(x("$()"), "$()");
        assert_eq!(x(""), "");
        assert_eq!(x("$(VAR_B)$"), "B$");
    }

    #[test]
    fn keeps_multibyte_text() {
        assert_eq!(x("ü$(VAR_B)é$ü"), "üBé$ü");
        assert_eq!(x("$(ünknown)"), "$(ünknown)");
    }
}
