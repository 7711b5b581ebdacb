//! Jepsen harness (test code): the operation history. Every client operation is an `invoke`
//! event followed by one completion from the same process: `ok`, `fail` (certainly did not
//! happen) or `info` (indeterminate: a timeout or an ambiguous error; it may have happened).
//! Times are monotonic nanoseconds since the history began. Written as JSON Lines for the Go
//! checker (tests/jepsen/checker). File I/O only in [`write_jsonl`].

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The operations of the workload. KV v2 ones act on a key; token ones on a token the
/// workload names by a key of its own (`tok-...`): a create makes it exist, a lookup reads
/// whether it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    Read,
    Write,
    Cas,
    /// KV v2 delete of the latest version (a soft delete).
    Delete,
    TokenCreate,
    TokenLookup,
}

impl Op {
    /// Whether the operation changes state (a write, for the unavailability windows).
    pub fn writes(self) -> bool {
        !matches!(self, Self::Read | Self::TokenLookup)
    }
}

/// An event's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One history event (the checker's input format; see tests/jepsen/checker/main.go).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub process: u64,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub f: Op,
    pub key: String,
    /// The value written (invoke of write/cas) or read (ok of read; `None` = absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// The version a cas expects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<i64>,
    /// The version read, or created by a write or matched cas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Whether a cas matched (it wrote).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<bool>,
    /// Nanoseconds since the history began.
    pub time: u64,
    /// The node the request was sent to.
    pub node: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// An indeterminate operation that the final state shows took effect, at some time after
    /// its invoke (the checker gives it no return time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late: Option<bool>,
}

impl Event {
    /// An `invoke` of `f` on `key` by `process` through `node` (time set by [`History::record`]).
    pub fn invoke(process: u64, f: Op, key: &str, node: usize) -> Self {
        Self {
            process,
            kind: Kind::Invoke,
            f,
            key: key.to_owned(),
            value: None,
            expect: None,
            version: None,
            matched: None,
            time: 0,
            node,
            error: None,
            late: None,
        }
    }
}

/// Counts per completion type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub ops: usize,
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
}

pub struct History {
    start: Instant,
    events: Mutex<Vec<Event>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            events: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the history began.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records `ev`, stamping it with the current time.
    pub fn record(&self, mut ev: Event) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        ev.time = self.now();
        events.push(ev);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn counts(&self) -> Counts {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let mut c = Counts::default();
        for e in events.iter() {
            match e.kind {
                Kind::Invoke => c.ops += 1,
                Kind::Ok => c.ok += 1,
                Kind::Fail => c.fail += 1,
                Kind::Info => c.info += 1,
            }
        }
        // An invoke with no completion (the run ended) is indeterminate.
        c.info += c.ops - c.ok - c.fail - c.info;
        c
    }

    /// Times (since the start) at which operations that change state were acknowledged (`ok`
    /// and, for cas, matched): the points where the cluster was available for writes.
    pub fn acked_write_times(&self) -> Vec<u64> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events
            .iter()
            .filter(|e| e.kind == Kind::Ok && e.f.writes() && e.matched != Some(false))
            .map(|e| e.time)
            .collect()
    }
}

/// Writes `events` as JSON Lines to `path`.
pub fn write_jsonl(events: &[Event], path: &Path) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for e in events {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// For each fault time, how long until the first write acknowledged after it (the
/// unavailability window); `None` when no write was acknowledged after it.
pub fn unavailability(fault_times: &[u64], acked: &[u64]) -> Vec<Option<Duration>> {
    let mut acked = acked.to_vec();
    acked.sort_unstable();
    fault_times
        .iter()
        .map(|t| {
            let i = acked.partition_point(|a| a <= t);
            acked.get(i).map(|a| Duration::from_nanos(a - t))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailability_is_the_time_to_the_next_acknowledged_write() {
        let w = unavailability(&[10, 50, 100], &[5, 20, 60, 61]);
        assert_eq!(
            w,
            vec![
                Some(Duration::from_nanos(10)),
                Some(Duration::from_nanos(10)),
                None
            ]
        );
    }
}
