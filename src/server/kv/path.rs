//! Logical layer: the path rules of secrets and mounts, and the decoding of raw request paths.
//! Pure functions, no I/O.
//!
//! A path is a `/`-separated list of segments. A segment is never empty, `.` or `..`, and never
//! holds a control character (NUL included). In a URL, a segment may be percent-encoded, but
//! never as an encoded slash (`%2F`): that would let one name mean two different paths.

/// Longest accepted secret path, in bytes (the storage key adds the mount prefix to it).
pub const MAX_PATH_LEN: usize = 1024;

/// Why a path was refused. Each message names the rule, so a client can fix its request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("segments must not be empty (no leading, doubled or trailing '/')")]
    EmptySegment,
    #[error("'.' and '..' segments are not allowed")]
    DotSegment,
    #[error("control characters (NUL included) are not allowed")]
    ControlChar,
    #[error("encoded slashes (%2F) are not allowed; use '/' to separate segments")]
    EncodedSlash,
    #[error("invalid percent-encoding; '%' must be followed by two hex digits")]
    BadEscape,
    #[error("the path is not valid UTF-8 once percent-decoded")]
    NotUtf8,
}

/// Checks one segment (already percent-decoded).
pub fn check_segment(segment: &str) -> Result<(), PathError> {
    if segment.is_empty() {
        Err(PathError::EmptySegment)
    } else if segment == "." || segment == ".." {
        Err(PathError::DotSegment)
    } else if segment.chars().any(char::is_control) {
        Err(PathError::ControlChar)
    } else {
        Ok(())
    }
}

/// Checks a secret's key inside its mount: non-empty, no trailing slash, valid segments.
pub fn check_key(key: &str) -> Result<(), PathError> {
    if key.is_empty() {
        return Err(PathError::Empty);
    }
    if key.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    key.split('/').try_for_each(check_segment)
}

/// Checks a LIST prefix inside a mount: empty (the mount's root) or segments ending in `/`.
/// Returns the prefix normalized to end in `/` (or empty).
pub fn list_prefix(prefix: &str) -> Result<String, PathError> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    check_key(trimmed)?;
    Ok(format!("{trimmed}/"))
}

/// Decodes the raw (still percent-encoded) path of a request after `/v1/`. One trailing `/` is
/// kept (it means "folder" to LIST); every other rule of [`check_segment`] applies, and encoded
/// slashes are refused before decoding.
pub fn decode_request_path(raw: &str) -> Result<String, PathError> {
    if raw.is_empty() {
        return Err(PathError::Empty);
    }
    if raw.len() > MAX_PATH_LEN * 3 {
        return Err(PathError::TooLong);
    }
    let (body, trailing) = match raw.strip_suffix('/') {
        Some(b) => (b, true),
        None => (raw, false),
    };
    let mut out = String::with_capacity(raw.len());
    for (i, segment) in body.split('/').enumerate() {
        let decoded = percent_decode(segment)?;
        check_segment(&decoded)?;
        if i > 0 {
            out.push('/');
        }
        out.push_str(&decoded);
    }
    if out.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if trailing {
        out.push('/');
    }
    Ok(out)
}

/// Percent-decodes one segment. `+` stays `+` (this is a path, not a form).
fn percent_decode(segment: &str) -> Result<String, PathError> {
    if !segment.contains('%') {
        return Ok(segment.to_owned());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let hi = bytes.get(i + 1).and_then(|c| hex_value(*c));
        let lo = bytes.get(i + 2).and_then(|c| hex_value(*c));
        let (Some(hi), Some(lo)) = (hi, lo) else {
            return Err(PathError::BadEscape);
        };
        let decoded = hi << 4 | lo;
        if decoded == b'/' {
            return Err(PathError::EncodedSlash);
        }
        out.push(decoded);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_segment_rules() {
        assert_eq!(check_key("app/db"), Ok(()));
        assert_eq!(check_key("a b/ü/x+y"), Ok(()));
        assert_eq!(check_key(""), Err(PathError::Empty));
        assert_eq!(check_key("a//b"), Err(PathError::EmptySegment));
        assert_eq!(check_key("/a"), Err(PathError::EmptySegment));
        assert_eq!(check_key("a/"), Err(PathError::EmptySegment));
        assert_eq!(check_key("a/../b"), Err(PathError::DotSegment));
        assert_eq!(check_key("./b"), Err(PathError::DotSegment));
        assert_eq!(check_key("a\0b"), Err(PathError::ControlChar));
        assert_eq!(check_key("a\nb"), Err(PathError::ControlChar));
        assert_eq!(check_key(&"x".repeat(1025)), Err(PathError::TooLong));
        assert_eq!(check_key(&"x".repeat(1024)), Ok(()));
    }

    #[test]
    fn list_prefixes_are_normalized() {
        assert_eq!(list_prefix("").as_deref(), Ok(""));
        assert_eq!(list_prefix("/").as_deref(), Ok(""));
        assert_eq!(list_prefix("app").as_deref(), Ok("app/"));
        assert_eq!(list_prefix("app/x/").as_deref(), Ok("app/x/"));
        assert_eq!(list_prefix("app//"), Err(PathError::EmptySegment));
        assert_eq!(list_prefix("../"), Err(PathError::DotSegment));
    }

    #[test]
    fn request_paths_are_decoded_and_checked() {
        assert_eq!(
            decode_request_path("secret/data/a%20b").as_deref(),
            Ok("secret/data/a b")
        );
        assert_eq!(
            decode_request_path("secret/metadata/app/").as_deref(),
            Ok("secret/metadata/app/")
        );
        assert_eq!(decode_request_path("a+b").as_deref(), Ok("a+b"));
        assert_eq!(
            decode_request_path("secret/data/a%2Fb"),
            Err(PathError::EncodedSlash)
        );
        assert_eq!(
            decode_request_path("secret/data/a%2fb"),
            Err(PathError::EncodedSlash)
        );
        assert_eq!(
            decode_request_path("secret/data/../x"),
            Err(PathError::DotSegment)
        );
        assert_eq!(
            decode_request_path("secret/data/%2E%2E/x"),
            Err(PathError::DotSegment)
        );
        assert_eq!(
            decode_request_path("secret/data//x"),
            Err(PathError::EmptySegment)
        );
        assert_eq!(
            decode_request_path("secret/data/x//"),
            Err(PathError::EmptySegment)
        );
        assert_eq!(
            decode_request_path("secret/data/a%00b"),
            Err(PathError::ControlChar)
        );
        assert_eq!(
            decode_request_path("secret/data/a%0Ab"),
            Err(PathError::ControlChar)
        );
        assert_eq!(
            decode_request_path("secret/data/a%zz"),
            Err(PathError::BadEscape)
        );
        assert_eq!(
            decode_request_path("secret/data/a%4"),
            Err(PathError::BadEscape)
        );
        assert_eq!(
            decode_request_path("secret/data/%ff"),
            Err(PathError::NotUtf8)
        );
        assert_eq!(decode_request_path(""), Err(PathError::Empty));
    }
}
