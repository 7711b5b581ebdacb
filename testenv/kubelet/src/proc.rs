//! Container processes: spawning through `__pod-init`, liveness via /proc, signals (process I/O).

use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::podinit::{InitSpec, SUBCOMMAND};

/// State letter and start time (clock ticks since boot) of a process, from `/proc/<pid>/stat`.
pub fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<(char, u64)> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 (starttime) is the 20th after the command name.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Whether `pid` still is the process that started at `start_ticks` (zombies count as dead).
pub fn is_alive(pid: i32, start_ticks: u64) -> bool {
    matches!(stat(pid), Some((state, start)) if start == start_ticks && state != 'Z' && state != 'X')
}

/// Sends `sig` to the process group led by `pid`; a vanished group is not an error.
pub fn signal_group(pid: i32, sig: Signal) {
    if pid <= 1 {
        return;
    }
    if let Err(e) = killpg(Pid::from_raw(pid), sig)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pid, ?sig, error = %e, "signalling process group");
    }
}

/// A started container process.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    pub pid: i32,
    pub start_ticks: u64,
    /// Log length before this process wrote anything.
    pub log_offset: u64,
}

/// Starts `spec` via `self_exe __pod-init` with exactly `env`, in a new process group, with
/// stdout and stderr appended to `log`. The process outlives the kubelet.
pub fn spawn(
    self_exe: &Path,
    spec: &InitSpec,
    env: &[(String, String)],
    log: &Path,
) -> std::io::Result<Spawned> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    let log_offset = out.metadata().map(|m| m.len()).unwrap_or(0);
    let child = Command::new(self_exe)
        .arg(SUBCOMMAND)
        .args(spec.to_args())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(false)
        .spawn()?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| std::io::Error::other("no pid"))?;
    let start_ticks = stat(pid).map(|(_, s)| s).unwrap_or_default();
    Ok(Spawned {
        child,
        pid,
        start_ticks,
        log_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let line = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_alive() {
        let pid = i32::try_from(std::process::id()).expect("pid fits");
        let (state, start) = stat(pid).expect("own stat");
        assert_ne!(state, 'Z');
        assert!(is_alive(pid, start));
        assert!(
            !is_alive(pid, start + 1),
            "different start time means PID reuse"
        );
    }
}
