//! HTTP layer: the front door. Exactly one place decodes a request path: [`admit`] runs
//! before routing, percent-decodes the path after `/v1/` once ([`decode`]), refuses `..`, `.`,
//! empty segments, encoded `/` and control characters, and hands every layer after it
//! the decoded [`RequestPath`] (as a request extension). It also rewrites the URI to the
//! canonical encoding of that path, so the router matches the same path the ACL checks. No
//! handler decodes a path again. Pure apart from the request it rewrites.

use axum::extract::Request;
use axum::http::Uri;

use super::ApiError;
use crate::server::kv::path::{MAX_PATH_LEN, PathError, check_segment};

/// The decoded path of a `/v1/` request, without `/v1/` and without a trailing `/`: the path
/// the ACL checks, the audit log records and the handlers serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    path: String,
    trailing_slash: bool,
}

impl RequestPath {
    /// The decoded path (`secret/data/app`).
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Whether the client's path ended in `/` (a folder, to LIST).
    pub fn trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// The rest of the path after `prefix` (`sys/mounts/` of `sys/mounts/team/kv` is
    /// `team/kv`), with the trailing `/` the client sent.
    pub fn after(&self, prefix: &str) -> Option<String> {
        let rest = self.path.strip_prefix(prefix)?;
        Some(if self.trailing_slash && !rest.is_empty() {
            format!("{rest}/")
        } else {
            rest.to_owned()
        })
    }

    /// Decodes the raw path of a request after `/v1/`.
    pub fn decode(raw: &str) -> Result<Self, PathError> {
        if raw.is_empty() {
            return Ok(Self {
                path: String::new(),
                trailing_slash: false,
            });
        }
        let decoded = decode(raw)?;
        Ok(match decoded.strip_suffix('/') {
            Some(p) => Self {
                path: p.to_owned(),
                trailing_slash: true,
            },
            None => Self {
                path: decoded,
                trailing_slash: false,
            },
        })
    }

    /// The canonical URI path: `/v1/` and every segment percent-encoded where it must be, so
    /// that routing sees exactly this path.
    pub fn canonical_uri_path(&self) -> String {
        let mut out = String::with_capacity(self.path.len() + 8);
        out.push_str("/v1/");
        for (i, segment) in self.path.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            for b in segment.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
        if self.trailing_slash {
            out.push('/');
        }
        out
    }
}

/// The front door's first step: decodes `/v1/` paths once (a refusal is 400 naming the rule),
/// stores the [`RequestPath`] and rewrites the URI to its canonical form, which the router
/// matches. `/metrics` is `sys/metrics`; other paths pass as they are.
pub(super) fn admit(mut req: Request) -> Result<Request, ApiError> {
    let Some(raw) = req.uri().path().strip_prefix("/v1/") else {
        // Prometheus' conventional `/metrics` is `sys/metrics` to the ACL.
        if req.uri().path() == "/metrics" {
            req.extensions_mut().insert(RequestPath {
                path: "sys/metrics".into(),
                trailing_slash: false,
            });
        }
        return Ok(req);
    };
    let path = match RequestPath::decode(raw) {
        Ok(p) => p,
        Err(e) => {
            return Err(ApiError::bad_request(format!("invalid request path: {e}")));
        }
    };
    let canonical = path.canonical_uri_path();
    if canonical != req.uri().path() {
        let with_query = match req.uri().query() {
            Some(q) => format!("{canonical}?{q}"),
            None => canonical,
        };
        match with_query.parse::<Uri>() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => {
                return Err(ApiError::bad_request(
                    "invalid request path: cannot be routed",
                ));
            }
        }
    }
    req.extensions_mut().insert(path);
    Ok(req)
}

/// Decodes the raw (still percent-encoded) path of a request after `/v1/`. One trailing `/` is
/// kept (it means "folder" to LIST); every other rule of [`check_segment`] applies, and encoded
/// slashes are refused before decoding.
pub fn decode(raw: &str) -> Result<String, PathError> {
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
    fn canonical_paths_round_trip_through_one_decode() {
        for raw in [
            "secret/data/a%20b",
            "sys/mounts/v%2569ctim",
            "secret/metadata/app/",
            "a+b/%C3%BC",
            "estr###########;\\/A###t#L#####;###",
        ] {
            let once = RequestPath::decode(raw).expect(raw);
            let canonical = once.canonical_uri_path();
            let again =
                RequestPath::decode(canonical.strip_prefix("/v1/").expect("prefix")).expect(raw);
            assert_eq!(once, again, "{raw} -> {canonical}");
        }
        // Decoded exactly once: a doubly encoded name stays encoded once.
        assert_eq!(
            RequestPath::decode("sys/mounts/v%2569ctim")
                .expect("ok")
                .as_str(),
            "sys/mounts/v%69ctim"
        );
        assert_eq!(
            RequestPath::decode("sys/mounts/a/")
                .expect("ok")
                .after("sys/mounts/"),
            Some("a/".to_owned())
        );
    }

    #[test]
    fn request_paths_are_decoded_and_checked() {
        assert_eq!(
            decode("secret/data/a%20b").as_deref(),
            Ok("secret/data/a b")
        );
        assert_eq!(
            decode("secret/metadata/app/").as_deref(),
            Ok("secret/metadata/app/")
        );
        assert_eq!(decode("a+b").as_deref(), Ok("a+b"));
        assert_eq!(decode("secret/data/a%2Fb"), Err(PathError::EncodedSlash));
        assert_eq!(decode("secret/data/a%2fb"), Err(PathError::EncodedSlash));
        assert_eq!(decode("secret/data/../x"), Err(PathError::DotSegment));
        assert_eq!(decode("secret/data/%2E%2E/x"), Err(PathError::DotSegment));
        assert_eq!(decode("secret/data//x"), Err(PathError::EmptySegment));
        assert_eq!(decode("secret/data/x//"), Err(PathError::EmptySegment));
        assert_eq!(decode("secret/data/a%00b"), Err(PathError::ControlChar));
        assert_eq!(decode("secret/data/a%0Ab"), Err(PathError::ControlChar));
        assert_eq!(decode("secret/data/a%zz"), Err(PathError::BadEscape));
        assert_eq!(decode("secret/data/a%4"), Err(PathError::BadEscape));
        assert_eq!(decode("secret/data/%ff"), Err(PathError::NotUtf8));
        assert_eq!(decode(""), Err(PathError::Empty));
        // A backslash is an ordinary character (it separates nothing), encoded or not, so the
        // canonical URI of any decoded path decodes back to it (found by the fuzz target).
        assert_eq!(decode("a%5Cb").as_deref(), Ok("a\\b"));
    }
}
