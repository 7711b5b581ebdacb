//! HTTP layer: Vault's response envelope (`request_id`, `lease_id`, `renewable`,
//! `lease_duration`, `data`, `wrap_info`, `warnings`, `auth`, `mount_type`), built in one place
//! so every endpoint answers in the same shape.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Envelope {
    data: Value,
    auth: Value,
    warnings: Vec<String>,
    mount_type: Option<&'static str>,
    inject_data: bool,
}

impl Envelope {
    /// An envelope around `data` (`Value::Null` for none).
    pub(crate) fn new(data: Value) -> Self {
        Self {
            data,
            ..Self::default()
        }
    }

    /// The `mount_type` Vault reports for the backend that answered (`kv`, `token`, `system`).
    pub(crate) fn mount_type(mut self, mount_type: &'static str) -> Self {
        self.mount_type = Some(mount_type);
        self
    }

    /// Warnings; none are sent as `null`, as Vault does.
    pub(crate) fn warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }

    /// The `auth` block of a login or token creation.
    pub(crate) fn auth(mut self, auth: Value) -> Self {
        self.auth = auth;
        self
    }

    /// Repeats `data`'s fields at the top level, as Vault answers its older `sys/` routes
    /// (its `injectDataIntoTopRoutes`); the envelope's own fields win a name clash.
    pub(crate) fn inject_data(mut self) -> Self {
        self.inject_data = true;
        self
    }

    pub(crate) fn into_value(self) -> Value {
        let mut body = match (&self.data, self.inject_data) {
            (Value::Object(fields), true) => fields.clone(),
            _ => Map::new(),
        };
        body.insert("request_id".into(), json!(uuid::Uuid::new_v4().to_string()));
        body.insert("lease_id".into(), json!(""));
        body.insert("renewable".into(), json!(false));
        body.insert("lease_duration".into(), json!(0));
        body.insert("data".into(), self.data);
        body.insert("wrap_info".into(), Value::Null);
        let warnings = if self.warnings.is_empty() {
            Value::Null
        } else {
            json!(self.warnings)
        };
        body.insert("warnings".into(), warnings);
        body.insert("auth".into(), self.auth);
        if let Some(mount_type) = self.mount_type {
            body.insert("mount_type".into(), json!(mount_type));
        }
        Value::Object(body)
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        Json(self.into_value()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_as_vault_sends_them() {
        let v = Envelope::new(json!({"a": 1})).into_value();
        assert_eq!(v["data"], json!({"a": 1}));
        assert_eq!(v["warnings"], Value::Null);
        assert_eq!(v["auth"], Value::Null);
        assert_eq!(v["wrap_info"], Value::Null);
        assert_eq!(v["lease_id"], json!(""));
        assert_eq!(v["renewable"], json!(false));
        assert_eq!(v["lease_duration"], json!(0));
        assert!(v.get("mount_type").is_none());
        assert!(
            v.get("a").is_none(),
            "data stays inside data unless injected"
        );
        let id = v["request_id"].as_str().expect("request_id");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert_ne!(
            Envelope::new(Value::Null).into_value()["request_id"],
            v["request_id"]
        );
    }

    #[test]
    fn warnings_auth_mount_type_and_injection() {
        let v = Envelope::new(json!({"keys": ["x"], "lease_id": "clash"}))
            .warnings(vec!["careful".into()])
            .auth(json!({"client_token": "t"}))
            .mount_type("system")
            .inject_data()
            .into_value();
        assert_eq!(v["warnings"], json!(["careful"]));
        assert_eq!(v["auth"]["client_token"], json!("t"));
        assert_eq!(v["mount_type"], json!("system"));
        assert_eq!(v["keys"], json!(["x"]));
        assert_eq!(
            v["lease_id"],
            json!(""),
            "the envelope's field wins a clash"
        );
        assert_eq!(v["data"]["lease_id"], json!("clash"));
    }
}
