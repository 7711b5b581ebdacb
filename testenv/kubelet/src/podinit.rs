//! `sealkeep-pkubelet __pod-init ...`: the in-between process that enters a pod's network
//! namespace, creates private mount + UTS namespaces, sets the hostname, bind-mounts volumes
//! and /etc/hosts, then execs the container program (same pid throughout). Does I/O; it is a
//! fresh single-threaded process, so no unsafe `pre_exec` code is needed.
//!
//! Arguments: `--netns PATH --hostname NAME [--workdir DIR] [--mount ro|rw SRC DST]... -- PROG ARGS...`

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};

/// First argument that selects the helper mode.
pub const SUBCOMMAND: &str = "__pod-init";

/// Errors of the helper; printed to the container log before exiting 127.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("bad __pod-init arguments: {0}")]
    Usage(String),
    #[error("{what} {path}: {source}")]
    Sys {
        what: &'static str,
        path: String,
        source: nix::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// One bind mount into the container's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub read_only: bool,
    pub src: PathBuf,
    pub dst: PathBuf,
}

/// Parsed helper invocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InitSpec {
    pub netns: PathBuf,
    pub hostname: String,
    pub workdir: Option<PathBuf>,
    pub mounts: Vec<Bind>,
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl InitSpec {
    /// The helper's argument list (after the subcommand).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![
            "--netns".into(),
            self.netns.clone().into(),
            "--hostname".into(),
            self.hostname.clone().into(),
        ];
        if let Some(w) = &self.workdir {
            a.extend(["--workdir".into(), w.clone().into()]);
        }
        for m in &self.mounts {
            let mode = if m.read_only { "ro" } else { "rw" };
            a.extend([
                "--mount".into(),
                mode.into(),
                m.src.clone().into(),
                m.dst.clone().into(),
            ]);
        }
        a.push("--".into());
        a.push(self.program.clone().into());
        a.extend(self.args.iter().cloned());
        a
    }

    /// Parses what [`InitSpec::to_args`] produced.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Self, InitError> {
        let mut it = args.into_iter();
        let mut spec = InitSpec::default();
        let usage = |m: &str| InitError::Usage(m.to_string());
        loop {
            let flag = it.next().ok_or_else(|| usage("missing --"))?;
            let mut value = || it.next().ok_or_else(|| usage("flag without value"));
            match flag.to_str() {
                Some("--netns") => spec.netns = value()?.into(),
                Some("--hostname") => spec.hostname = value()?.to_string_lossy().into_owned(),
                Some("--workdir") => spec.workdir = Some(value()?.into()),
                Some("--mount") => {
                    let mode = value()?;
                    let read_only = mode == "ro";
                    spec.mounts.push(Bind {
                        read_only,
                        src: value()?.into(),
                        dst: value()?.into(),
                    });
                }
                Some("--") => break,
                _ => return Err(usage(&format!("unknown flag {flag:?}"))),
            }
        }
        spec.program = it.next().ok_or_else(|| usage("missing program"))?.into();
        spec.args = it.collect();
        if spec.netns.as_os_str().is_empty() || spec.hostname.is_empty() {
            return Err(usage("--netns and --hostname are required"));
        }
        Ok(spec)
    }
}

fn sys(what: &'static str, path: &Path) -> impl FnOnce(nix::Error) -> InitError {
    let path = path.display().to_string();
    move |source| InitError::Sys { what, path, source }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InitError {
    let path = path.display().to_string();
    move |source| InitError::Io { what, path, source }
}

/// Sets up the namespaces and mounts, then execs; returns only on failure.
pub fn run(spec: &InitSpec) -> InitError {
    // Opened before the mounts: a volume mounted over a directory on the program's path (an
    // emptyDir at /tmp while the binary lives under /tmp, say) would hide it afterwards.
    let program = std::fs::File::open(&spec.program).ok();
    match setup(spec) {
        Ok(()) => {
            let path = match &program {
                Some(f) if !spec.program.exists() => PathBuf::from(format!(
                    "/proc/self/fd/{}",
                    std::os::fd::AsRawFd::as_raw_fd(f)
                )),
                _ => spec.program.clone(),
            };
            let err = std::process::Command::new(&path)
                .arg0(&spec.program)
                .args(&spec.args)
                .exec();
            InitError::Io {
                what: "exec",
                path: spec.program.display().to_string(),
                source: err,
            }
        }
        Err(e) => e,
    }
}

fn setup(spec: &InitSpec) -> Result<(), InitError> {
    let ns = std::fs::File::open(&spec.netns).map_err(io("open netns", &spec.netns))?;
    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(sys("setns", &spec.netns))?;
    drop(ns);
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)
        .map_err(sys("unshare", Path::new("mnt+uts")))?;
    let root = Path::new("/");
    // Nothing mounted below may propagate back to the host.
    mount::<str, Path, str, str>(
        None,
        root,
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(sys("make-rprivate", root))?;
    nix::unistd::sethostname(&spec.hostname)
        .map_err(sys("sethostname", Path::new(&spec.hostname)))?;
    for m in &spec.mounts {
        bind(m)?;
    }
    let wd = spec.workdir.as_deref().unwrap_or(root);
    if !wd.exists() {
        std::fs::create_dir_all(wd).map_err(io("mkdir workdir", wd))?;
    }
    std::env::set_current_dir(wd).map_err(io("chdir", wd))
}

fn bind(m: &Bind) -> Result<(), InitError> {
    let src_is_dir = std::fs::metadata(&m.src)
        .map_err(io("stat mount source", &m.src))?
        .is_dir();
    if src_is_dir {
        std::fs::create_dir_all(&m.dst).map_err(io("mkdir mount target", &m.dst))?;
    } else if !m.dst.exists() {
        if let Some(parent) = m.dst.parent() {
            std::fs::create_dir_all(parent).map_err(io("mkdir mount target parent", parent))?;
        }
        std::fs::File::create(&m.dst).map_err(io("create mount target", &m.dst))?;
    }
    mount::<Path, Path, str, str>(
        Some(&m.src),
        &m.dst,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(sys("bind mount", &m.dst))?;
    if m.read_only {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount::<str, Path, str, str>(None, &m.dst, None, flags, None)
            .map_err(sys("remount ro", &m.dst))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let spec = InitSpec {
            netns: "/run/netns/sk-1".into(),
            hostname: "web-0".into(),
            workdir: Some("/work dir".into()),
            mounts: vec![
                Bind {
                    read_only: true,
                    src: "/s/v/token".into(),
                    dst: "/var/run/secrets".into(),
                },
                Bind {
                    read_only: false,
                    src: "/s/hosts".into(),
                    dst: "/etc/hosts".into(),
                },
            ],
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "echo -- $HOME".into(), "--mount".into()],
        };
        assert_eq!(InitSpec::parse(spec.to_args()).expect("parses"), spec);
    }

    #[test]
    fn rejects_bad_args() {
        let parse = |a: &[&str]| InitSpec::parse(a.iter().map(OsString::from));
        assert!(
            parse(&["--netns", "/x", "--hostname", "h", "--"]).is_err(),
            "no program"
        );
        assert!(parse(&["--bogus", "--", "/bin/true"]).is_err());
        assert!(
            parse(&["--", "/bin/true"]).is_err(),
            "netns and hostname required"
        );
        assert!(parse(&["--netns", "/x", "--hostname", "h", "--", "/bin/true"]).is_ok());
    }
}
