//! Image -> host executable mapping and program resolution (pure apart from `Path::exists`).
//!
//! There are no images: an image's repository (tag and digest stripped) is matched by suffix,
//! on a path-component boundary, against a table. `command[0]` may also name a host program.

use std::path::{Path, PathBuf};

/// Errors of image mapping and program resolution; they become container waiting reasons.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("invalid --image-map entry {0:?}: expected REPO-SUFFIX=PATH")]
    BadMapEntry(String),
    #[error("image {image:?} is not mapped to a host executable and the container has no command")]
    NotMapped { image: String },
    #[error("command {program:?} of image {image:?} was not found on the host")]
    ProgramNotFound { image: String, program: String },
}

impl ImageError {
    /// The container waiting reason shown in the pod status.
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::BadMapEntry(_) | ImageError::NotMapped { .. } => "ImageNotMapped",
            ImageError::ProgramNotFound { .. } => "RunContainerError",
        }
    }
}

/// Repository suffix -> executable table; earlier entries win.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    entries: Vec<(String, PathBuf)>,
}

/// The program and arguments a container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub path: PathBuf,
    pub args: Vec<String>,
}

/// Standard PATH given to pods and used to find `command[0]` on the host.
pub const STD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ImageMap {
    /// Builds the table: `--image-map` entries first, then `sealkeep/sealkeep` -> `sealkeep_bin`.
    pub fn new(extra: &[String], sealkeep_bin: &Path) -> Result<Self, ImageError> {
        let mut entries = Vec::new();
        for e in extra {
            let (suffix, path) = e
                .split_once('=')
                .filter(|(s, p)| !s.trim_matches('/').is_empty() && !p.is_empty())
                .ok_or_else(|| ImageError::BadMapEntry(e.clone()))?;
            entries.push((suffix.trim_matches('/').to_string(), PathBuf::from(path)));
        }
        entries.push(("sealkeep/sealkeep".to_string(), sealkeep_bin.to_path_buf()));
        Ok(Self { entries })
    }

    /// The executable an image maps to, if any.
    pub fn lookup(&self, image: &str) -> Option<&Path> {
        let repo = repository(image);
        self.entries
            .iter()
            .find(|(suffix, _)| {
                repo == suffix
                    || repo
                        .strip_suffix(suffix.as_str())
                        .is_some_and(|head| head.ends_with('/'))
            })
            .map(|(_, p)| p.as_path())
    }

    /// Resolves what a container runs from its image, `command` and (already expanded) `args`.
    ///
    /// With a command, `command[0]` is the mapped executable when its file name equals the
    /// mapped executable's or the repository's last component (`/usr/bin/sealkeep` in image
    /// `x/sealkeep/sealkeep`); otherwise it is a host program (absolute, or found in PATH).
    pub fn resolve(
        &self,
        image: &str,
        command: &[String],
        args: &[String],
        exists: impl Fn(&Path) -> bool,
    ) -> Result<Program, ImageError> {
        let mapped = self.lookup(image);
        let Some((first, rest)) = command.split_first() else {
            let path = mapped.ok_or_else(|| ImageError::NotMapped {
                image: image.into(),
            })?;
            return Ok(Program {
                path: path.to_path_buf(),
                args: args.to_vec(),
            });
        };
        let mut all_args: Vec<String> = rest.to_vec();
        all_args.extend_from_slice(args);
        let base = Path::new(first)
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or(first);
        if let Some(path) = mapped {
            let mapped_base = path.file_name().and_then(|s| s.to_str());
            let repo_last = repository(image).rsplit('/').next();
            if Some(base) == mapped_base || Some(base) == repo_last {
                return Ok(Program {
                    path: path.to_path_buf(),
                    args: all_args,
                });
            }
        }
        let found = if first.contains('/') {
            Some(PathBuf::from(first)).filter(|p| p.is_absolute() && exists(p))
        } else {
            STD_PATH
                .split(':')
                .map(|d| Path::new(d).join(first))
                .find(|p| exists(p))
        };
        found
            .map(|path| Program {
                path,
                args: all_args,
            })
            .ok_or_else(|| ImageError::ProgramNotFound {
                image: image.into(),
                program: first.clone(),
            })
    }
}

/// The repository part of an image reference: digest (`@...`) and tag (`:tag`) removed.
pub fn repository(image: &str) -> &str {
    let no_digest = image.split_once('@').map_or(image, |(r, _)| r);
    match no_digest.rfind(':') {
        Some(colon) if !no_digest[colon..].contains('/') => &no_digest[..colon],
        _ => no_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> ImageMap {
        let extra = vec!["library/busybox=/bin/busybox".to_string()];
        ImageMap::new(&extra, Path::new("/opt/sk/sealkeep")).expect("valid map")
    }

    fn no_files(_: &Path) -> bool {
        false
    }

    #[test]
    fn repository_strips_tag_and_digest() {
        assert_eq!(
            repository("ghcr.io/sealkeep/sealkeep:0.1.0"),
            "ghcr.io/sealkeep/sealkeep"
        );
        assert_eq!(
            repository("localhost:5000/sealkeep/sealkeep"),
            "localhost:5000/sealkeep/sealkeep"
        );
        assert_eq!(
            repository("localhost:5000/a/b:v1@sha256:abc"),
            "localhost:5000/a/b"
        );
        assert_eq!(
            repository("sealkeep/sealkeep@sha256:abc"),
            "sealkeep/sealkeep"
        );
        assert_eq!(repository("busybox"), "busybox");
    }

    #[test]
    fn lookup_matches_suffix_on_component_boundary() {
        let m = map();
        let sk = Some(Path::new("/opt/sk/sealkeep"));
        assert_eq!(m.lookup("ghcr.io/sealkeep/sealkeep:0.1.0"), sk);
        assert_eq!(m.lookup("sealkeep/sealkeep"), sk);
        assert_eq!(m.lookup("docker.io/sealkeep/sealkeep@sha256:00"), sk);
        assert_eq!(m.lookup("ghcr.io/notsealkeep/sealkeep:1"), None);
        assert_eq!(m.lookup("ghcr.io/sealkeep/sealkeep-operator:1"), None);
        assert_eq!(
            m.lookup("docker.io/library/busybox:1.36"),
            Some(Path::new("/bin/busybox"))
        );
    }

    #[test]
    fn bad_map_entries_are_rejected() {
        let e = ImageMap::new(&["nopath".to_string()], Path::new("/x"));
        assert_eq!(e.err(), Some(ImageError::BadMapEntry("nopath".into())));
        assert!(ImageMap::new(&["=/bin/x".to_string()], Path::new("/x")).is_err());
    }

    #[test]
    fn resolve_without_command_uses_mapping() {
        let m = map();
        let args = vec!["server".to_string(), "--dev".to_string()];
        let p = m
            .resolve("ghcr.io/sealkeep/sealkeep:0.1.0", &[], &args, no_files)
            .expect("mapped");
        assert_eq!(
            p,
            Program {
                path: "/opt/sk/sealkeep".into(),
                args
            }
        );
        let e = m
            .resolve("quay.io/other/thing:1", &[], &[], no_files)
            .expect_err("unmapped");
        assert_eq!(e.reason(), "ImageNotMapped");
    }

    #[test]
    fn resolve_with_command() {
        let m = map();
        let cmd = vec!["/usr/local/bin/sealkeep".to_string(), "server".to_string()];
        let args = vec!["--dev".to_string()];
        let p = m
            .resolve("ghcr.io/sealkeep/sealkeep:0.1.0", &cmd, &args, no_files)
            .expect("mapped");
        assert_eq!(p.path, Path::new("/opt/sk/sealkeep"));
        assert_eq!(p.args, vec!["server".to_string(), "--dev".to_string()]);

        let sh = vec!["sh".to_string(), "-c".to_string(), "echo hi".to_string()];
        let exists = |p: &Path| p == Path::new("/usr/bin/sh");
        let p = m
            .resolve("ghcr.io/sealkeep/sealkeep:0.1.0", &sh, &[], exists)
            .expect("host sh");
        assert_eq!(p.path, Path::new("/usr/bin/sh"));
        assert_eq!(p.args, vec!["-c".to_string(), "echo hi".to_string()]);

        let p = m
            .resolve("unknown/image", &["/bin/true".to_string()], &[], |_| true)
            .expect("abs");
        assert_eq!(p.path, Path::new("/bin/true"));
        let e = m
            .resolve("unknown/image", &["nothere".to_string()], &[], no_files)
            .expect_err("x");
        assert!(matches!(e, ImageError::ProgramNotFound { .. }), "{e:?}");
        assert!(e.to_string().contains("nothere"));
    }
}
