//! Logical layer: the KV v2 records as stored (JSON behind the barrier) and as Vault returns
//! them, plus Vault's time and duration formats. Pure, no I/O.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Versions kept per key when neither the key nor the mount sets `max_versions`.
pub const DEFAULT_MAX_VERSIONS: u32 = 10;

/// Nanoseconds since the Unix epoch, the unit of every stored time.
pub type Nanos = u64;

pub fn now() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Go's `time.RFC3339Nano` in UTC, as Vault prints times: trailing zeros of the fraction are
/// dropped (`2019-06-28T15:53:30.395814Z`, or `...:30Z` for a whole second).
pub fn rfc3339(t: Nanos) -> String {
    let full = humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(t)).to_string();
    let Some((secs, frac)) = full.split_once('.') else {
        return full;
    };
    let digits = frac.trim_end_matches('Z').trim_end_matches('0');
    if digits.is_empty() {
        format!("{secs}Z")
    } else {
        format!("{secs}.{digits}Z")
    }
}

/// Seconds as Go's `time.Duration.String()` prints them (`0s`, `45s`, `3m0s`, `3h25m19s`).
pub fn go_duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{sign}{m}m{sec}s")
    } else {
        format!("{sign}{sec}s")
    }
}

/// Parses a duration as Vault's `TypeDurationSecond` does: a number of seconds (JSON number or
/// digit string), or a Go duration string with units `ns us µs ms s m h` plus `d` for days
/// (`"3h25m19s"`, `"90m"`, `"1.5h"`, `"7d"`). Sub-second parts are truncated.
pub fn parse_duration(value: &serde_json::Value) -> Result<i64, String> {
    let bad = || format!("{value} is not a duration: use seconds or a string like \"3h25m19s\"");
    match value {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(bad),
        serde_json::Value::String(s) => parse_duration_str(s.trim()).ok_or_else(bad),
        _ => Err(bad()),
    }
}

fn parse_duration_str(s: &str) -> Option<i64> {
    if s.is_empty() {
        return Some(0);
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let (num, tail) = rest.split_at(num_len);
        let number: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            _ => return None,
        };
        nanos += number * scale;
        rest = tail;
    }
    let secs = (nanos / 1e9).trunc();
    if !secs.is_finite() || secs > i64::MAX as f64 {
        return None;
    }
    Some(if neg { -(secs as i64) } else { secs as i64 })
}

/// The engine-wide settings of a mount (`<mount>/config`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// 0 means the default of [`DEFAULT_MAX_VERSIONS`].
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds; 0 means unset, a negative value disables `delete_version_after` on every key.
    pub delete_version_after: i64,
}

/// The state of one version, kept in its key's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionState {
    pub created_time: Nanos,
    /// When the version is (or was) soft-deleted; may be in the future (`delete_version_after`).
    pub deletion_time: Option<Nanos>,
    pub destroyed: bool,
}

impl VersionState {
    /// Soft-deleted now (a deletion time that has passed), as Vault's `deletionTime.Before(now)`.
    pub fn is_deleted(&self, now: Nanos) -> bool {
        self.deletion_time.is_some_and(|t| t < now)
    }

    /// Data is readable: neither destroyed nor deleted.
    pub fn is_live(&self, now: Nanos) -> bool {
        !self.destroyed && !self.is_deleted(now)
    }
}

/// A key's metadata (`<mount>/metadata/<key>`): settings plus the state of every kept version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMetadata {
    pub current_version: u64,
    pub oldest_version: u64,
    pub created_time: Nanos,
    pub updated_time: Nanos,
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds; 0 means unset.
    pub delete_version_after: i64,
    /// `None` until set, which Vault reports as `null`.
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub versions: BTreeMap<u64, VersionState>,
}

impl KeyMetadata {
    pub fn new(now: Nanos) -> Self {
        Self {
            created_time: now,
            updated_time: now,
            ..Self::default()
        }
    }

    /// Vault's `AddVersion`: records version `current + 1` and slides the window of kept
    /// versions. The effective limit is the larger of the key's and the mount's `max_versions`
    /// (10 when both are 0), as the current kv plugin computes it. Returns the new version and
    /// the versions that fell out of the window (their data must be deleted).
    pub fn add_version(&mut self, state: VersionState, config_max: u32) -> (u64, Vec<u64>) {
        self.current_version += 1;
        let version = self.current_version;
        self.updated_time = state.created_time;
        if self.created_time == 0 {
            self.created_time = state.created_time;
        }
        self.versions.insert(version, state);
        let max = match self.max_versions.max(config_max) {
            0 => DEFAULT_MAX_VERSIONS,
            m => m,
        };
        let mut pruned = Vec::new();
        if self.current_version - self.oldest_version >= u64::from(max) {
            let last = self.current_version - u64::from(max);
            for v in self.oldest_version..=last {
                if self.versions.remove(&v).is_some() {
                    pruned.push(v);
                }
            }
            self.oldest_version = last + 1;
        }
        (version, pruned)
    }

    /// The deletion time a version created (or undeleted) at `at` gets: `at` plus the smaller
    /// non-zero of the mount's and the key's `delete_version_after`, unless the mount disables it.
    pub fn deletion_time(&self, config: &Config, at: Nanos) -> Option<Nanos> {
        if config.delete_version_after < 0 {
            return None;
        }
        let secs = match (config.delete_version_after, self.delete_version_after) {
            (0, 0) => return None,
            (0, k) => k,
            (c, 0) => c,
            (c, k) => c.min(k),
        };
        let secs = u64::try_from(secs).ok()?;
        Some(at.saturating_add(secs.saturating_mul(1_000_000_000)))
    }

    /// What Vault returns for a version: in `data.metadata` of a read, or as a write's `data`.
    pub fn version_info(&self, version: u64) -> Option<VersionInfo> {
        self.versions.get(&version).map(|v| VersionInfo {
            created_time: rfc3339(v.created_time),
            custom_metadata: self.custom_metadata.clone(),
            deletion_time: v.deletion_time.map(rfc3339).unwrap_or_default(),
            destroyed: v.destroyed,
            version,
        })
    }

    /// What `GET <mount>/metadata/<key>` returns as `data`.
    pub fn info(&self) -> MetadataInfo {
        MetadataInfo {
            cas_required: self.cas_required,
            created_time: rfc3339(self.created_time),
            current_version: self.current_version,
            custom_metadata: self.custom_metadata.clone(),
            delete_version_after: go_duration(self.delete_version_after),
            max_versions: self.max_versions,
            oldest_version: self.oldest_version,
            updated_time: rfc3339(self.updated_time),
            versions: self
                .versions
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        VersionSummary {
                            created_time: rfc3339(v.created_time),
                            deletion_time: v.deletion_time.map(rfc3339).unwrap_or_default(),
                            destroyed: v.destroyed,
                        },
                    )
                })
                .collect(),
        }
    }
}

/// One version's metadata as Vault returns it (`deletion_time` is `""` when not deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    pub created_time: String,
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub deletion_time: String,
    pub destroyed: bool,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionSummary {
    pub created_time: String,
    pub deletion_time: String,
    pub destroyed: bool,
}

/// A key's metadata as Vault returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetadataInfo {
    pub cas_required: bool,
    pub created_time: String,
    pub current_version: u64,
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub delete_version_after: String,
    pub max_versions: u32,
    pub oldest_version: u64,
    pub updated_time: String,
    /// Keyed by the version number as a string, as in Vault's JSON.
    pub versions: BTreeMap<String, VersionSummary>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn times_print_like_go_rfc3339nano() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500_000_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(rfc3339(1_000_000_123), "1970-01-01T00:00:01.000000123Z");
    }

    #[test]
    fn durations_parse_and_print_like_vault() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(45), "45s");
        assert_eq!(go_duration(180), "3m0s");
        assert_eq!(go_duration(12319), "3h25m19s");
        assert_eq!(go_duration(-1), "-1s");
        for (input, secs) in [
            (json!(30), 30),
            (json!("30"), 30),
            (json!("3h25m19s"), 12319),
            (json!("1.5h"), 5400),
            (json!("7d"), 604_800),
            (json!("1500ms"), 1),
            (json!("-1s"), -1),
            (json!(""), 0),
        ] {
            assert_eq!(parse_duration(&input), Ok(secs), "{input}");
        }
        for bad in [
            json!("soon"),
            json!("3x"),
            json!("h"),
            json!(true),
            json!(1.5),
        ] {
            assert!(parse_duration(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_version_slides_the_window_like_vault() {
        let mut m = KeyMetadata::new(1);
        let state = |t| VersionState {
            created_time: t,
            deletion_time: None,
            destroyed: false,
        };
        for i in 1..=9 {
            assert_eq!(m.add_version(state(i), 0), (i, vec![]));
        }
        assert_eq!(m.oldest_version, 0);
        // The tenth write moves oldest_version to 1 and prunes nothing (Vault's quirk).
        assert_eq!(m.add_version(state(10), 0), (10, vec![]));
        assert_eq!(m.oldest_version, 1);
        assert_eq!(m.add_version(state(11), 0), (11, vec![1]));
        assert_eq!(m.oldest_version, 2);
        assert_eq!(m.versions.len(), 10);
        // Lowering the limit prunes several versions on the next write.
        m.max_versions = 3;
        assert_eq!(m.add_version(state(12), 0).1, (2..=9).collect::<Vec<_>>());
        assert_eq!(m.versions.keys().copied().collect::<Vec<_>>(), [10, 11, 12]);
        // The mount's larger limit wins over the key's.
        assert_eq!(m.add_version(state(13), 20).1, Vec::<u64>::new());
    }

    #[test]
    fn deletion_time_uses_the_smaller_non_zero_setting() {
        let mut m = KeyMetadata::new(0);
        let mut c = Config::default();
        assert_eq!(m.deletion_time(&c, 5), None);
        c.delete_version_after = 10;
        assert_eq!(m.deletion_time(&c, 5), Some(5 + 10_000_000_000));
        m.delete_version_after = 3;
        assert_eq!(m.deletion_time(&c, 5), Some(5 + 3_000_000_000));
        c.delete_version_after = 0;
        assert_eq!(m.deletion_time(&c, 0), Some(3_000_000_000));
        c.delete_version_after = -1;
        assert_eq!(m.deletion_time(&c, 0), None);
    }
}
