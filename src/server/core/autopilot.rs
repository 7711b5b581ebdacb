//! Core layer: autopilot's configuration (`sys/storage/raft/autopilot/configuration`), stored
//! behind the barrier at [`AUTOPILOT_CONFIG_PATH`]. Parsing and validation are pure; `load` and
//! `save` do storage I/O through the barrier. The promotion and dead-server loop reads it with
//! [`AutopilotConfig::load`].

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::CoreError;
use crate::server::barrier::Barrier;

/// Where the configuration is stored (barrier-encrypted JSON, the API's shape).
pub const AUTOPILOT_CONFIG_PATH: &str = "core/raft/autopilot";

/// Autopilot's settings, Vault's fields and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutopilotConfig {
    /// Remove servers that have been out of contact for `dead_server_last_contact_threshold`.
    pub cleanup_dead_servers: bool,
    /// Contact older than this makes a server unhealthy.
    pub last_contact_threshold: Duration,
    /// Contact older than this makes a server dead (removed when `cleanup_dead_servers`).
    pub dead_server_last_contact_threshold: Duration,
    /// A server more than this many entries behind the leader is unhealthy.
    pub max_trailing_logs: u64,
    /// Dead-server cleanup never shrinks the voters below this.
    pub min_quorum: u64,
    /// How long a new server must be healthy before it is promoted to voter.
    pub server_stabilization_time: Duration,
}

impl Default for AutopilotConfig {
    fn default() -> Self {
        Self {
            cleanup_dead_servers: false,
            last_contact_threshold: Duration::from_secs(10),
            dead_server_last_contact_threshold: Duration::from_secs(24 * 3600),
            max_trailing_logs: 1000,
            min_quorum: 0,
            server_stabilization_time: Duration::from_secs(10),
        }
    }
}

/// A duration as Go's `time.Duration.String()` writes it (`10s`, `24h0m0s`, `1m30s`,
/// `500ms`), which is how Vault reports these fields.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if d < Duration::from_secs(1) {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let frac = d.subsec_millis();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let s = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

fn duration_field(name: &str, v: &Value) -> Result<Duration, String> {
    match v {
        Value::Number(n) => n.as_u64().map(Duration::from_secs).ok_or_else(|| {
            format!("{name} must be a duration such as \"10s\" or a whole number of seconds; got {n}")
        }),
        Value::String(s) => humantime::parse_duration(s.trim()).map_err(|e| {
            format!("{name} must be a duration such as \"10s\", \"5m\" or \"24h\"; {s:?} is not one ({e})")
        }),
        other => Err(format!(
            "{name} must be a duration such as \"10s\" or a whole number of seconds; got {other}"
        )),
    }
}

fn uint_field(name: &str, v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("{name} must be a non-negative whole number; got {n}")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be a non-negative whole number; got {s:?}")),
        other => Err(format!(
            "{name} must be a non-negative whole number; got {other}"
        )),
    }
}

fn bool_field(name: &str, v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
        other => Err(format!("{name} must be true or false; got {other}")),
    }
}

impl AutopilotConfig {
    /// The API's shape (Vault's field names; durations as Go writes them).
    pub fn to_json(&self) -> Value {
        json!({
            "cleanup_dead_servers": self.cleanup_dead_servers,
            "last_contact_threshold": go_duration(self.last_contact_threshold),
            "dead_server_last_contact_threshold": go_duration(self.dead_server_last_contact_threshold),
            "max_trailing_logs": self.max_trailing_logs,
            "min_quorum": self.min_quorum,
            "server_stabilization_time": go_duration(self.server_stabilization_time),
            "disable_upgrade_migration": false,
        })
    }

    /// `self` with the fields present in `update` changed (Vault's POST: absent fields keep
    /// their value), then validated. Errors name the field and what it accepts.
    pub fn updated(&self, update: &Map<String, Value>) -> Result<Self, String> {
        let mut c = self.clone();
        for (name, v) in update {
            match name.as_str() {
                "cleanup_dead_servers" => c.cleanup_dead_servers = bool_field(name, v)?,
                "last_contact_threshold" => c.last_contact_threshold = duration_field(name, v)?,
                "dead_server_last_contact_threshold" => {
                    c.dead_server_last_contact_threshold = duration_field(name, v)?;
                }
                "max_trailing_logs" => c.max_trailing_logs = uint_field(name, v)?,
                "min_quorum" => c.min_quorum = uint_field(name, v)?,
                "server_stabilization_time" => {
                    c.server_stabilization_time = duration_field(name, v)?;
                }
                // Enterprise-only in Vault (automated upgrades); accepted and ignored.
                "disable_upgrade_migration" => {
                    bool_field(name, v)?;
                }
                other => {
                    return Err(format!(
                        "unknown autopilot configuration field {other:?}; the fields are cleanup_dead_servers, last_contact_threshold, dead_server_last_contact_threshold, max_trailing_logs, min_quorum, server_stabilization_time"
                    ));
                }
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Vault's rules.
    pub fn validate(&self) -> Result<(), String> {
        if self.cleanup_dead_servers && self.min_quorum < 3 {
            return Err(format!(
                "min_quorum must be set to at least 3 when cleanup_dead_servers is true (it is {}), so dead-server cleanup cannot shrink the cluster below a fault-tolerant size",
                self.min_quorum
            ));
        }
        if self.dead_server_last_contact_threshold < Duration::from_secs(60) {
            return Err(format!(
                "dead_server_last_contact_threshold must be at least 1m (it is {}), so a briefly slow server is not removed as dead",
                go_duration(self.dead_server_last_contact_threshold)
            ));
        }
        if self.last_contact_threshold.is_zero() {
            return Err("last_contact_threshold must be greater than 0s".into());
        }
        if self.server_stabilization_time.is_zero() {
            return Err("server_stabilization_time must be greater than 0s".into());
        }
        Ok(())
    }

    /// The stored configuration, or the defaults when none was ever written.
    pub async fn load(barrier: &Barrier) -> Result<Self, CoreError> {
        let Some(raw) = barrier.get(AUTOPILOT_CONFIG_PATH).await? else {
            return Ok(Self::default());
        };
        let corrupt = |reason: String| CoreError::Corrupt {
            path: AUTOPILOT_CONFIG_PATH,
            reason,
        };
        let v: Value = serde_json::from_slice(&raw).map_err(|e| corrupt(e.to_string()))?;
        let Value::Object(map) = v else {
            return Err(corrupt("not a JSON object".into()));
        };
        Self::default().updated(&map).map_err(corrupt)
    }

    /// Stores the configuration (after [`Self::validate`]).
    pub async fn save(&self, barrier: &Barrier) -> Result<(), CoreError> {
        self.validate().map_err(CoreError::InvalidRequest)?;
        let raw = serde_json::to_vec(&self.to_json()).map_err(|e| CoreError::Corrupt {
            path: AUTOPILOT_CONFIG_PATH,
            reason: e.to_string(),
        })?;
        barrier.put(AUTOPILOT_CONFIG_PATH, &raw).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object expected"),
        }
    }

    #[test]
    fn defaults_render_like_vault() {
        let v = AutopilotConfig::default().to_json();
        assert_eq!(v["cleanup_dead_servers"], false);
        assert_eq!(v["last_contact_threshold"], "10s");
        assert_eq!(v["dead_server_last_contact_threshold"], "24h0m0s");
        assert_eq!(v["max_trailing_logs"], 1000);
        assert_eq!(v["min_quorum"], 0);
        assert_eq!(v["server_stabilization_time"], "10s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn updates_parse_durations_and_round_trip() {
        let c = AutopilotConfig::default()
            .updated(&obj(json!({
                "last_contact_threshold": "5s",
                "server_stabilization_time": 30,
                "max_trailing_logs": "200",
                "cleanup_dead_servers": true,
                "min_quorum": 3,
                "dead_server_last_contact_threshold": "1h",
            })))
            .expect("valid");
        assert_eq!(c.last_contact_threshold, Duration::from_secs(5));
        assert_eq!(c.server_stabilization_time, Duration::from_secs(30));
        assert_eq!(c.max_trailing_logs, 200);
        let again = AutopilotConfig::default()
            .updated(&obj(c.to_json()))
            .expect("round trip");
        assert_eq!(again, c);
    }

    #[test]
    fn invalid_updates_name_the_field() {
        let d = AutopilotConfig::default();
        for (body, needle) in [
            (json!({"cleanup_dead_servers": true}), "min_quorum"),
            (
                json!({"dead_server_last_contact_threshold": "10s"}),
                "at least 1m",
            ),
            (
                json!({"last_contact_threshold": "soon"}),
                "last_contact_threshold",
            ),
            (json!({"max_trailing_logs": -1}), "max_trailing_logs"),
            (json!({"min_quorum": 1.5}), "min_quorum"),
            (
                json!({"cleanup_dead_servers": "yes"}),
                "cleanup_dead_servers",
            ),
            (json!({"bogus": 1}), "unknown autopilot configuration field"),
            (json!({"last_contact_threshold": "0s"}), "greater than 0s"),
        ] {
            let err = d.updated(&obj(body.clone())).expect_err(&body.to_string());
            assert!(err.contains(needle), "{body}: {err}");
        }
    }
}
