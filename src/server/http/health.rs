//! HTTP layer: `sys/health` (every Vault query parameter and default code),
//! `sys/seal-backend-status` (with the last auto-unseal error) and `sys/metrics`.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::sys::BUILD_DATE;
use super::{ApiError, AppState, Caller};
use crate::server::core::{SealBackend, VERSION};

/// Status codes chosen by `sys/health` query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HealthCodes {
    pub standby_ok: bool,
    pub perf_standby_ok: bool,
    pub active: StatusCode,
    pub standby: StatusCode,
    pub dr_secondary: StatusCode,
    pub perf_standby: StatusCode,
    pub sealed: StatusCode,
    pub uninit: StatusCode,
    pub ha_unhealthy: StatusCode,
    pub removed: StatusCode,
}

impl Default for HealthCodes {
    fn default() -> Self {
        let code = |c| StatusCode::from_u16(c).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self {
            standby_ok: false,
            perf_standby_ok: false,
            active: StatusCode::OK,
            standby: StatusCode::TOO_MANY_REQUESTS,
            dr_secondary: code(472),
            perf_standby: code(473),
            sealed: StatusCode::SERVICE_UNAVAILABLE,
            uninit: StatusCode::NOT_IMPLEMENTED,
            ha_unhealthy: code(474),
            removed: code(530),
        }
    }
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "t" => Ok(true),
        "false" | "0" | "f" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "bad value for {name} parameter: {v:?} is not a boolean"
        ))),
    }
}

fn parse_code(name: &str, v: &str) -> Result<StatusCode, ApiError> {
    v.parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "bad code for {name} parameter: {v:?} is not an HTTP status code"
            ))
        })
}

pub(super) fn parse_health_query(query: Option<&str>) -> Result<HealthCodes, ApiError> {
    let mut c = HealthCodes::default();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "standbyok" => c.standby_ok = parse_bool(&k, &v)?,
            "perfstandbyok" => c.perf_standby_ok = parse_bool(&k, &v)?,
            "activecode" => c.active = parse_code(&k, &v)?,
            "standbycode" => c.standby = parse_code(&k, &v)?,
            "drsecondarycode" => c.dr_secondary = parse_code(&k, &v)?,
            "performancestandbycode" => c.perf_standby = parse_code(&k, &v)?,
            "sealedcode" => c.sealed = parse_code(&k, &v)?,
            "uninitcode" => c.uninit = parse_code(&k, &v)?,
            "haunhealthycode" => c.ha_unhealthy = parse_code(&k, &v)?,
            "removedcode" => c.removed = parse_code(&k, &v)?,
            // Vault ignores parameters it does not know.
            _ => {}
        }
    }
    Ok(c)
}

pub(super) async fn health(
    State(state): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::method_not_allowed());
    }
    let codes = parse_health_query(query.as_deref())?;
    let st = state.core.seal_status().await;
    let ha = state.core.ha_status();
    // An unsealed raft node that is not the leader is a standby (never a DR secondary or a
    // performance standby here). A standby that knows no leader cannot serve at all: 474.
    let standby = !st.sealed && ha.ha_enabled && !ha.is_self;
    let leader_known = !ha.leader_address.is_empty();
    let status = if !st.initialized {
        codes.uninit
    } else if st.sealed {
        codes.sealed
    } else if standby && !codes.standby_ok {
        codes.standby
    } else if standby && !leader_known {
        codes.ha_unhealthy
    } else {
        codes.active
    };
    if method == Method::HEAD {
        return Ok(status.into_response());
    }
    let mut body = json!({
        "initialized": st.initialized,
        "sealed": st.sealed,
        "standby": standby,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": crate::server::unix_now(),
        "version": VERSION,
        "build_date": BUILD_DATE,
        "enterprise": false,
        "echo_duration_ms": 0,
        "clock_skew_ms": 0,
        "removed_from_cluster": false,
    });
    if standby {
        body["ha_connection_healthy"] = json!(leader_known);
    }
    if let Some(c) = &st.cluster {
        body["cluster_name"] = json!(c.cluster_name);
        body["cluster_id"] = json!(c.cluster_id);
    }
    Ok((status, Json(body)).into_response())
}

fn time_str(t: Option<SystemTime>) -> String {
    t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_default()
}

pub(super) async fn seal_backend_status(
    State(state): State<AppState>,
    method: Method,
) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let body: Value = match state.core.seal_backend() {
        SealBackend::Shamir => json!({
            "healthy": true,
            "unhealthy_since": "",
            "backends": [{ "name": "shamir", "healthy": true, "unhealthy_since": "" }],
        }),
        SealBackend::AwsKms(kms) => {
            let h = kms.health();
            // Unknown (no check finished yet) is reported as unhealthy: nothing is proven.
            let healthy = h.healthy.unwrap_or(false);
            let (class, message) = h
                .last_error
                .as_ref()
                .map(|e| (e.class.as_str(), e.message.clone()))
                .unwrap_or(("", String::new()));
            json!({
                "healthy": healthy,
                "unhealthy_since": time_str(h.unhealthy_since),
                "backends": [{
                    "name": "awskms",
                    "healthy": healthy,
                    "unhealthy_since": time_str(h.unhealthy_since),
                    "configured": true,
                    "disabled": false,
                    "key_id": kms.key_id(),
                    "endpoint": kms.kms_endpoint(),
                }],
                "last_check_time": time_str(h.last_check),
                "last_error_class": class,
                "last_error": message,
                "last_error_time": time_str(h.last_error_time),
            })
        }
    };
    Ok(Json(body).into_response())
}

/// `sys/metrics` (and `/metrics`). As Vault: the token must grant `read` on `sys/metrics`,
/// unless the listener sets `telemetry { unauthenticated_metrics_access = true }`.
pub(super) async fn metrics(
    State(state): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
    uri: axum::http::Uri,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    if !state.unauthenticated_metrics {
        // The one front door: token resolved once, `read` on `sys/metrics` checked.
        let (mut parts, _) = req.into_parts();
        Caller::from_request_parts(&mut parts, &state).await?;
    }
    let prometheus = uri.path() == "/metrics"
        || form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .any(|(k, v)| k == "format" && v == "prometheus");
    if !prometheus {
        return Err(ApiError::bad_request(
            "only the Prometheus format is served: request /v1/sys/metrics?format=prometheus",
        ));
    }
    let text = state
        .core
        .metrics()
        .encode()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_vault() {
        let c = parse_health_query(None).expect("parse");
        assert_eq!(c.active.as_u16(), 200);
        assert_eq!(c.standby.as_u16(), 429);
        assert_eq!(c.dr_secondary.as_u16(), 472);
        assert_eq!(c.perf_standby.as_u16(), 473);
        assert_eq!(c.sealed.as_u16(), 503);
        assert_eq!(c.uninit.as_u16(), 501);
    }

    #[test]
    fn overrides_and_bad_values() {
        let c = parse_health_query(Some(
            "standbyok=true&sealedcode=204&uninitcode=204&activecode=299",
        ))
        .expect("parse");
        assert!(c.standby_ok);
        assert_eq!(c.sealed.as_u16(), 204);
        assert_eq!(c.uninit.as_u16(), 204);
        assert_eq!(c.active.as_u16(), 299);
        assert!(parse_health_query(Some("sealedcode=abc")).is_err());
        assert!(parse_health_query(Some("sealedcode=7")).is_err());
        assert!(parse_health_query(Some("standbyok=perhaps")).is_err());
        assert!(parse_health_query(Some("unknown=1")).is_ok());
    }

    /// As Vault: no token, or one without `read` on `sys/metrics`, is refused; root and a
    /// policy granting it are served; the listener option serves everyone.
    #[tokio::test]
    async fn metrics_need_a_token_unless_the_listener_allows_it() {
        use super::super::tests::TestServer;
        let (s, root) = TestServer::unsealed().await;
        let prom = "/v1/sys/metrics?format=prometheus";
        for path in [prom, "/metrics"] {
            let (st, v) = s.call("GET", path, None, None).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{path}: {v}");
            assert_eq!(v["errors"][0], "permission denied", "{path}: {v}");
            let (st, v) = s.call("GET", path, Some("not-a-token"), None).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{path}: {v}");
            let (st, v) = s.call("GET", path, Some(&root), None).await;
            assert_eq!(st, StatusCode::OK, "{path}: {v}");
            assert!(
                v.as_str().unwrap_or("").contains("sealkeep_sealed 0"),
                "{v}"
            );
        }

        let token_with = |policy: &'static str| {
            let s = &s;
            let root = root.clone();
            async move {
                let body = serde_json::json!({ "policy": policy }).to_string();
                let (st, v) = s
                    .call("PUT", "/v1/sys/policies/acl/p", Some(&root), Some(&body))
                    .await;
                assert!(st.is_success(), "{v}");
                let (st, v) = s
                    .call(
                        "POST",
                        "/v1/auth/token/create",
                        Some(&root),
                        Some(r#"{"policies":["p"]}"#),
                    )
                    .await;
                assert_eq!(st, StatusCode::OK, "{v}");
                v["auth"]["client_token"]
                    .as_str()
                    .expect("token")
                    .to_owned()
            }
        };
        let reader = token_with(r#"path "sys/metrics" { capabilities = ["read"] }"#).await;
        for path in [prom, "/metrics"] {
            let (st, v) = s.call("GET", path, Some(&reader), None).await;
            assert_eq!(st, StatusCode::OK, "{path}: {v}");
        }
        let other = token_with(r#"path "secret/*" { capabilities = ["read"] }"#).await;
        let (st, _) = s.call("GET", prom, Some(&other), None).await;
        assert_eq!(
            st,
            StatusCode::FORBIDDEN,
            "read on other paths is not enough"
        );

        let open = crate::server::http::router(AppState {
            core: std::sync::Arc::clone(&s.core),
            max_body: 1024,
            body_timeout: std::time::Duration::from_secs(30),
            unauthenticated_metrics: true,
            forwarder: Default::default(),
        });
        let open = TestServer { app: open, ..s };
        for path in [prom, "/metrics"] {
            let (st, v) = open.call("GET", path, None, None).await;
            assert_eq!(st, StatusCode::OK, "{path}: {v}");
        }
    }
}
