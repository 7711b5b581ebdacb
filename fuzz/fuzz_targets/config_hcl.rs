//! Fuzz target (config layer, pure): the server's HCL config parser on arbitrary UTF-8, with an
//! empty environment. It must return a config or an error naming a line, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealkeep::server::config::{Env, ServerConfig};

struct NoEnv;

impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = ServerConfig::parse("fuzz.hcl", text, &NoEnv) {
        assert!(!e.message.is_empty(), "an error without a cause: {e:?}");
        assert!(!e.fix.is_empty(), "an error without a fix: {e:?}");
        // The position is inside the text.
        assert!(e.line >= 1 && e.column >= 1, "no position: {e:?}");
        assert!(
            e.line <= text.lines().count() + 1,
            "line past the end: {e:?}"
        );
    }
});
