//! Fuzz target (logical layer, pure): KV v2 request bodies, as the HTTP layer parses them
//! (`serde_json`, recursion limit 128), then the pure functions a write, patch or metadata
//! update applies to them: merge patch (RFC 7386), subkeys, durations, custom metadata. Never
//! a panic; the merge patch is idempotent and its result stores and loads back.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sealkeep::server::kv::{self, model};
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Some(Value::Object(patch)) = body.get("data") {
        // Patch the stored data with the body's data, as PATCH does; `options` stands in for
        // the stored version so both sides are fuzzed.
        let stored = body
            .get("options")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let patch = Value::Object(patch.clone());
        let mut once = stored;
        kv::merge_patch(&mut once, &patch);
        let mut twice = once.clone();
        kv::merge_patch(&mut twice, &patch);
        assert_eq!(once, twice, "merge patch is not idempotent");
        // What is stored loads back (no deeper than serde_json's limit, whatever was merged).
        let stored = serde_json::to_vec(&once).expect("serialize");
        assert!(
            serde_json::from_slice::<Value>(&stored).is_ok(),
            "stored data does not load"
        );
        if let Value::Object(map) = &once {
            for depth in 0..3 {
                let keys = kv::subkeys(map, depth);
                assert!(keys.keys().eq(map.keys()), "subkeys lost a key");
            }
        }
    }
    for field in ["delete_version_after", "ttl", "max_versions"] {
        if let Some(v) = body.get(field) {
            if let Ok(secs) = model::parse_duration(v) {
                let _ = model::go_duration(secs);
            }
        }
    }
    if let Some(Value::Object(m)) = body.get("custom_metadata") {
        let map: BTreeMap<String, String> = m
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect();
        let _ = kv::validate_custom_metadata(&map);
    }
});
