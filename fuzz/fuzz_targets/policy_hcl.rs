//! Fuzz target (core layer, pure): the ACL policy parser on arbitrary UTF-8 (HCL, or JSON when
//! the text starts with `{`), then an ACL built from what parsed. Never a panic; an error names
//! a line inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealkeep::server::policy::{Acl, Capability, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(text);
});

fn check(text: &str) {
    match parse(text) {
        Ok(policy) => {
            let acl = Acl::new([&policy]);
            for rule in &policy.rules {
                // Patterns come out normalized: not empty, no leading '/', no control character.
                assert!(!rule.pattern.is_empty() && !rule.pattern.starts_with('/'));
                assert!(
                    !rule.pattern.chars().any(char::is_control),
                    "{:?}",
                    rule.pattern
                );
                let path = rule.pattern.trim_end_matches('*');
                let _ = acl.capabilities(path);
                let _ = acl.allows(path, Capability::Read);
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1, "{e}");
            assert!(e.line <= text.lines().count() + 1, "line past the end: {e}");
        }
    }
}
