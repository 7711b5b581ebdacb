//! Logical layer: the path rules of secrets and mounts. Pure functions, no I/O. Raw request
//! paths are decoded once, by the HTTP front door ([`crate::server::http::path`]), with these
//! rules.
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
}
