//! Core layer: parsing of Vault's weakly typed request fields (durations, booleans, integers,
//! string lists) and of the `auth/token/create` body. Pure, no I/O; every error names the
//! field and how to fix it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::TokenError;

/// A parsed `auth/token/create` body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// `None` (or empty): inherit the parent's policies.
    pub policies: Option<Vec<String>>,
    pub meta: BTreeMap<String, String>,
    pub no_parent: bool,
    pub no_default_policy: bool,
    /// Default true.
    pub renewable: Option<bool>,
    pub ttl: Option<u64>,
    pub explicit_max_ttl: Option<u64>,
    pub display_name: Option<String>,
    pub num_uses: i64,
    pub period: Option<u64>,
}

impl CreateRequest {
    /// Parses Vault's create parameters, weakly typed as Vault accepts them.
    pub fn from_json(body: &Map<String, Value>) -> Result<Self, TokenError> {
        if parse_string("id", body.get("id"))?.is_some_and(|s| !s.is_empty()) {
            return Err(TokenError::invalid(
                "id: custom token IDs are not supported by Sealkeep; omit id and use the generated client_token",
            ));
        }
        if parse_string("entity_alias", body.get("entity_alias"))?.is_some_and(|s| !s.is_empty()) {
            return Err(TokenError::invalid(
                "'entity_alias' is only allowed in combination with token role; token roles are not supported by Sealkeep, omit entity_alias",
            ));
        }
        match parse_string("type", body.get("type"))?.as_deref() {
            None | Some("" | "service" | "default" | "default-service") => {}
            Some("batch" | "default-batch") => {
                return Err(TokenError::invalid(
                    "type: batch tokens are not supported by Sealkeep; omit type or use \"service\"",
                ));
            }
            Some(_) => {
                return Err(TokenError::invalid(
                    "invalid 'token_type' value; use \"service\"",
                ));
            }
        }
        let num_uses = parse_int("num_uses", body.get("num_uses"))?.unwrap_or(0);
        if num_uses < 0 {
            return Err(TokenError::invalid("number of uses cannot be negative"));
        }
        let ttl = match parse_duration("ttl", body.get("ttl"))? {
            Some(t) => Some(t),
            None => parse_duration("lease", body.get("lease"))?,
        };
        let meta_value = body.get("meta").or_else(|| body.get("metadata"));
        Ok(Self {
            policies: parse_string_list("policies", body.get("policies"))?,
            meta: parse_meta(meta_value)?,
            no_parent: parse_bool("no_parent", body.get("no_parent"))?.unwrap_or(false),
            no_default_policy: parse_bool("no_default_policy", body.get("no_default_policy"))?
                .unwrap_or(false),
            renewable: parse_bool("renewable", body.get("renewable"))?,
            ttl,
            explicit_max_ttl: parse_duration("explicit_max_ttl", body.get("explicit_max_ttl"))?,
            display_name: parse_string("display_name", body.get("display_name"))?,
            num_uses,
            period: parse_duration("period", body.get("period"))?,
        })
    }
}

fn parse_meta(value: Option<&Value>) -> Result<BTreeMap<String, String>, TokenError> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                _ => Err(TokenError::invalid(format!(
                    "meta: the value of {k:?} must be a string; send {{\"meta\": {{\"key\": \"value\"}}}}"
                ))),
            })
            .collect(),
        Some(_) => Err(TokenError::invalid(
            "meta: expected an object of strings such as {\"team\": \"web\"}",
        )),
    }
}

const DURATION_HINT: &str =
    "use whole seconds (3600) or a duration string such as \"1h\", \"30m\", \"90s\" or \"1h30m\"";

/// Vault's `TypeDurationSecond`: an integer number of seconds, a numeric string, or a
/// duration string. Absent, `null` and `""` are `None`; negative values are refused.
pub fn parse_duration(field: &str, value: Option<&Value>) -> Result<Option<u64>, TokenError> {
    let bad = |what: &str| {
        TokenError::invalid(format!(
            "{field}: {what} is not a valid duration; {DURATION_HINT}"
        ))
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                Ok(Some(v))
            } else if n.as_i64().is_some() {
                Err(TokenError::invalid(format!("{field} must be positive")))
            } else {
                Err(bad(&n.to_string()))
            }
        }
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else if s.starts_with('-') {
                Err(TokenError::invalid(format!("{field} must be positive")))
            } else if s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().map(Some).map_err(|_| bad(&format!("{s:?}")))
            } else {
                humantime::parse_duration(s)
                    .map(|d| Some(d.as_secs()))
                    .map_err(|_| bad(&format!("{s:?}")))
            }
        }
        Some(other) => Err(bad(&other.to_string())),
    }
}

/// Vault's weakly typed bool: `true`/`false`, or the strings and numbers Go's `ParseBool`
/// accepts.
pub fn parse_bool(field: &str, value: Option<&Value>) -> Result<Option<bool>, TokenError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.trim() {
            "" => Ok(None),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
            other => Err(TokenError::invalid(format!(
                "{field}: {other:?} is not a boolean; use true or false"
            ))),
        },
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
        Some(other) => Err(TokenError::invalid(format!(
            "{field}: {other} is not a boolean; use true or false"
        ))),
    }
}

/// A signed integer field (an integer or a numeric string).
pub fn parse_int(field: &str, value: Option<&Value>) -> Result<Option<i64>, TokenError> {
    let bad = |what: String| {
        TokenError::invalid(format!("{field}: {what} is not an integer; use e.g. 5"))
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| bad(n.to_string())),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| bad(format!("{s:?}"))),
        Some(other) => Err(bad(other.to_string())),
    }
}

/// A string field; numbers and booleans are taken as their text, as Vault's weak decoding
/// does.
pub fn parse_string(field: &str, value: Option<&Value>) -> Result<Option<String>, TokenError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
        Some(other) => Err(TokenError::invalid(format!(
            "{field}: expected a string, got {}",
            kind(other)
        ))),
    }
}

/// Vault's `TypeCommaStringSlice`: a list of strings, or one comma-separated string.
pub fn parse_string_list(
    field: &str,
    value: Option<&Value>,
) -> Result<Option<Vec<String>>, TokenError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.split(',').map(str::to_owned).collect())),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                parse_string(field, Some(v))?.ok_or_else(|| {
                    TokenError::invalid(format!("{field}: list items must be strings"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(TokenError::invalid(format!(
            "{field}: expected a list of strings such as [\"a\",\"b\"] or \"a,b\", got {}",
            kind(other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
