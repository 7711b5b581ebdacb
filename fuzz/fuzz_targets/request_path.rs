//! Fuzz target (HTTP front door, pure): the request path decoder on arbitrary UTF-8. What it
//! accepts must be a clean path: no empty, `.` or `..` segment, no control character, no `/`
//! that was percent-encoded, at most `MAX_PATH_LEN` bytes. Written against
//! `kv::path::decode_request_path`; retarget it when the front door's one decoder replaces it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealkeep::server::kv::path::{MAX_PATH_LEN, decode_request_path};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = decode_request_path(raw) else {
        return;
    };
    let body = path.strip_suffix('/').unwrap_or(&path);
    assert!(body.len() <= MAX_PATH_LEN, "{path:?} is too long");
    for segment in body.split('/') {
        assert!(!segment.is_empty(), "{raw:?} -> {path:?}: empty segment");
        assert!(
            segment != "." && segment != "..",
            "{raw:?} -> {path:?}: dot segment"
        );
        assert!(
            !segment.chars().any(char::is_control),
            "{raw:?} -> {path:?}: control character"
        );
    }
    // Every '/' of the result was a '/' of the request: none came from %2F.
    assert_eq!(
        path.matches('/').count(),
        raw.matches('/').count(),
        "{raw:?} -> {path:?}: an encoded slash was decoded"
    );
    // Decoding happens once: the result, with '%' encoded again, decodes to itself.
    let reencoded = path.replace('%', "%25");
    if reencoded.len() <= MAX_PATH_LEN * 3 {
        assert_eq!(decode_request_path(&reencoded).as_deref(), Ok(&*path));
    }
});
