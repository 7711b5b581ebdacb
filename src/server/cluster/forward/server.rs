//! Cluster layer: the active node's side of request forwarding. [`forward_routes`] adds the
//! forwarding route to the cluster port: it rebuilds the original request from the wire format
//! (parsed as untrusted input: precise 400s, no panics), runs it through the API router with
//! the original client's address, and returns the API's response as it is. Does no I/O itself.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tower::ServiceExt;

use super::{
    CLIENT_HEADER, FORWARD_PATH, FORWARDED_HEADER, Forwarded, METHOD_HEADER, RELAYED_HEADER,
    URI_HEADER, end_to_end,
};

/// The forwarding route, to be merged into the cluster port's router
/// ([`crate::server::cluster::router`]). `api` is the node's API router
/// ([`crate::server::http::router`]); forwarded requests pass all of its layers (front door,
/// ACL, audit) as if the client had sent them here. The listener's mutual TLS means only
/// cluster members reach it.
pub fn forward_routes(api: Router) -> Router {
    Router::new()
        .route(FORWARD_PATH, post(forwarded))
        .with_state(api)
}

async fn forwarded(State(api): State<Router>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let original = match Original::parse(&parts.headers) {
        Ok(o) => o,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let head = original.method == Method::HEAD;
    let mut rebuilt = Request::new(body);
    *rebuilt.method_mut() = original.method;
    *rebuilt.uri_mut() = original.uri;
    let headers = rebuilt.headers_mut();
    *headers = end_to_end(&parts.headers);
    headers.insert(FORWARDED_HEADER, HeaderValue::from_static("1"));
    rebuilt.extensions_mut().insert(Forwarded);
    if let Some(client) = original.client {
        rebuilt.extensions_mut().insert(ConnectInfo(client));
    }
    let response = match api.oneshot(rebuilt).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (mut parts, body) = response.into_parts();
    parts.headers = end_to_end(&parts.headers);
    if head {
        // The answer to a HEAD has no body whatever its Content-Length says, but it travels
        // as the answer to a POST, where HTTP/2 holds the two to match.
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    }
    parts
        .headers
        .insert(RELAYED_HEADER, HeaderValue::from_static("1"));
    Response::from_parts(parts, Body::new(body))
}

/// The original request line and client, from the forward headers.
#[derive(Debug)]
struct Original {
    method: Method,
    uri: Uri,
    client: Option<SocketAddr>,
}

impl Original {
    fn parse(headers: &HeaderMap) -> Result<Self, String> {
        let method = one(headers, METHOD_HEADER)?.ok_or_else(|| missing(METHOD_HEADER))?;
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("{METHOD_HEADER} {method:?} is not an HTTP method"))?;
        let uri = one(headers, URI_HEADER)?.ok_or_else(|| missing(URI_HEADER))?;
        if !uri.starts_with('/') || uri.starts_with("//") {
            return Err(format!(
                "{URI_HEADER} {uri:?} is not an absolute path (it must start with one '/')"
            ));
        }
        let parsed: Uri = uri
            .parse()
            .map_err(|e| format!("{URI_HEADER} {uri:?} is not a valid path and query: {e}"))?;
        if parsed.scheme().is_some() || parsed.authority().is_some() {
            return Err(format!(
                "{URI_HEADER} {uri:?} must be a path and query only"
            ));
        }
        let client = one(headers, CLIENT_HEADER)?
            .map(|c| {
                c.parse::<SocketAddr>()
                    .map_err(|_| format!("{CLIENT_HEADER} {c:?} is not an IP:PORT socket address"))
            })
            .transpose()?;
        Ok(Self {
            method,
            uri: parsed,
            client,
        })
    }
}

/// The one value of header `name` as text; more than one, or not text, is an error.
fn one<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!(
            "{name} appears more than once; send it exactly once"
        ));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| format!("{name} is not visible ASCII text"))
}

fn missing(name: &str) -> String {
    format!(
        "a forwarded request needs the {name} header; the sending node is not a compatible version"
    )
}
