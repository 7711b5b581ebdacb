//! Jepsen harness (test code): a scenario's report: the summary table row, the durability
//! problems, and the unavailability windows (fault to the next acknowledged write) overall and
//! per kind of fault. Pure: no I/O.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::checker;
use super::history::Counts;
use super::nemesis::Fault;

#[derive(Debug)]
pub struct Report {
    pub name: String,
    pub seed: u64,
    pub duration: Duration,
    pub counts: Counts,
    pub faults: Vec<Fault>,
    /// Per fault: time to the next acknowledged write.
    pub windows: Vec<Option<Duration>>,
    pub verdict: checker::Verdict,
    pub split_brains: Vec<(u64, BTreeSet<usize>)>,
    pub converged: Result<u64, String>,
    pub missing: Vec<String>,
    pub hashes: Vec<Result<(String, usize), String>>,
    pub acked: usize,
    pub out_dir: PathBuf,
}

impl Report {
    /// Durability: converged, no acknowledged write lost, one state-machine hash, one leader
    /// per term. Empty when all hold.
    pub fn durability_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = &self.converged {
            p.push(e.clone());
        }
        p.extend(self.missing.iter().take(20).cloned());
        let hashes: Vec<_> = self.hashes.iter().collect();
        if hashes.iter().any(|h| h.is_err()) || hashes.windows(2).any(|w| w[0] != w[1]) {
            p.push(format!("state machines differ between nodes: {hashes:?}"));
        }
        for (term, nodes) in &self.split_brains {
            p.push(format!("two leaders in term {term}: nodes {nodes:?}"));
        }
        p
    }

    pub fn max_window(&self) -> Option<Duration> {
        self.windows.iter().flatten().max().copied()
    }

    fn percentile(&self, q: f64) -> Option<Duration> {
        percentile(self.windows.iter().flatten().copied().collect(), q)
    }

    /// The unavailability windows per kind of fault (in the order kinds first occurred): one
    /// line each with the count of faults, how many saw a write acknowledged after them, and
    /// p50/p99/max.
    pub fn windows_by_kind(&self) -> String {
        let mut kinds: Vec<&str> = Vec::new();
        for f in &self.faults {
            if !kinds.contains(&f.kind) {
                kinds.push(f.kind);
            }
        }
        let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{}ms", d.as_millis()));
        let mut out = format!(
            "{:<10} {:>6} {:>6} {:>9} {:>9} {:>9}\n",
            "nemesis", "faults", "acked", "p50", "p99", "max"
        );
        for k in kinds {
            let all: Vec<Option<Duration>> = self
                .faults
                .iter()
                .zip(&self.windows)
                .filter(|(f, _)| f.kind == k)
                .map(|(_, w)| *w)
                .collect();
            let w: Vec<Duration> = all.iter().flatten().copied().collect();
            out.push_str(&format!(
                "{k:<10} {:>6} {:>6} {:>9} {:>9} {:>9}\n",
                all.len(),
                w.len(),
                ms(percentile(w.clone(), 0.5)),
                ms(percentile(w.clone(), 0.99)),
                ms(percentile(w, 1.0)),
            ));
        }
        out
    }

    pub fn table_header() -> String {
        format!(
            "{:<24} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8}",
            "scenario",
            "seed",
            "secs",
            "ops",
            "ok",
            "fail",
            "info",
            "faults",
            "linear",
            "durable",
            "unav p50",
            "unav p99",
            "unav max"
        )
    }

    pub fn table_row(&self) -> String {
        let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{}ms", d.as_millis()));
        format!(
            "{:<24} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8}",
            self.name,
            self.seed,
            self.duration.as_secs(),
            self.counts.ops,
            self.counts.ok,
            self.counts.fail,
            self.counts.info,
            self.faults.len(),
            match self.verdict.code {
                0 => "yes",
                1 => "NO",
                _ => "?",
            },
            if self.durability_problems().is_empty() {
                "yes"
            } else {
                "NO"
            },
            ms(self.percentile(0.5)),
            ms(self.percentile(0.99)),
            ms(self.max_window()),
        )
    }

    /// Every fault, in order.
    pub fn fault_list(&self) -> String {
        self.faults
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Everything a failed assertion should show.
    pub fn explain(&self) -> String {
        format!(
            "{}\n{}\nchecker (exit {}):\n{}\ndurability: {:?}\nfaults: {}\nartifacts: {}",
            Self::table_header(),
            self.table_row(),
            self.verdict.code,
            self.verdict.output,
            self.durability_problems(),
            self.fault_list(),
            self.out_dir.display()
        )
    }
}

/// The `q` quantile (nearest rank) of `w`; `None` when empty.
fn percentile(mut w: Vec<Duration>, q: f64) -> Option<Duration> {
    if w.is_empty() {
        return None;
    }
    w.sort();
    let i = ((w.len() as f64 - 1.0) * q).round() as usize;
    w.get(i).copied()
}
