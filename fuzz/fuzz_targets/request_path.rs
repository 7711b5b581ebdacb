//! Fuzz target (HTTP front door, pure): the request path decoder on arbitrary UTF-8. What it
//! accepts must be a clean path: no empty, `.` or `..` segment, no control character, no `/`
//! that was percent-encoded, at most `MAX_PATH_LEN` bytes; and the canonical URI the front door
//! routes on decodes back to the same path (one decode, whatever the router sees).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealkeep::server::http::path::{RequestPath, decode as decode_request_path};
use sealkeep::server::kv::path::MAX_PATH_LEN;

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
    // The canonical URI the router matches decodes to the same request path.
    if let Ok(once) = RequestPath::decode(raw) {
        let canonical = once.canonical_uri_path();
        let again = canonical
            .strip_prefix("/v1/")
            .map(RequestPath::decode)
            .and_then(Result::ok);
        assert_eq!(again.as_ref(), Some(&once), "{raw:?} -> {canonical:?}");
    }
});
