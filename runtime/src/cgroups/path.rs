//! `linux.cgroupsPath` to a directory relative to each hierarchy's root.
//!
//! Rules (runc's cgroupfs driver, simplified):
//! * absent or empty: `/minirun/<id>`;
//! * absolute: relative to the root of every hierarchy;
//! * relative: also relative to the hierarchy root. runc would nest it
//!   under runc's own cgroup instead, which depends on where the runtime
//!   happens to be running; a fixed meaning is easier to reason about;
//! * with `--systemd-cgroup`: `slice:prefix:name` becomes the path systemd
//!   would give the scope, e.g. `system.slice:libpod:abc` ->
//!   `/system.slice/libpod-abc.scope`, `a-b.slice:p:n` ->
//!   `/a.slice/a-b.slice/p-n.scope`.
//!
//! `..` is rejected everywhere: the result is joined onto real mountpoints
//! and later removed recursively by `destroy`.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use super::CgroupError;

const DEFAULT_PARENT: &str = "minirun";
const SLICE_SUFFIX: &str = ".slice";

/// A validated, non-empty cgroup path, stored relative to the hierarchy
/// root. Displays with a leading `/` as `/proc/<pid>/cgroup` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPath(PathBuf);

impl CgroupPath {
    /// Validates an absolute or relative cgroup path; `.` and empty
    /// components are dropped, `..` is an error, and so is the root itself.
    pub fn new(path: &str) -> Result<CgroupPath, CgroupError> {
        let invalid = |reason: &str| CgroupError::InvalidPath {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if path.contains('\0') {
            return Err(invalid("contains a NUL byte"));
        }
        let mut rel = PathBuf::new();
        for component in Path::new(path).components() {
            match component {
                Component::Normal(c) => rel.push(c),
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir => return Err(invalid("\"..\" is not allowed")),
                Component::Prefix(_) => return Err(invalid("not a cgroup path")),
            }
        }
        if rel.as_os_str().is_empty() {
            return Err(invalid("it names the root cgroup, which is shared with the host"));
        }
        Ok(CgroupPath(rel))
    }

    pub fn relative(&self) -> &Path {
        &self.0
    }

    /// The directory for this cgroup in the hierarchy mounted at `mountpoint`.
    pub fn under(&self, mountpoint: &Path) -> PathBuf {
        mountpoint.join(&self.0)
    }
}

impl fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0.display())
    }
}

/// Resolves config.json's `linux.cgroupsPath` (see the module docs).
pub fn resolve_cgroup_path(
    cgroups_path: Option<&str>,
    container_id: &str,
    systemd_cgroup: bool,
) -> Result<CgroupPath, CgroupError> {
    let given = cgroups_path.filter(|p| !p.is_empty());
    if systemd_cgroup {
        let spec = match given {
            Some(p) => p.to_owned(),
            None => {
                check_name(container_id, "container id", container_id)?;
                format!("system.slice:{DEFAULT_PARENT}:{container_id}")
            }
        };
        let path = systemd_path_to_cgroupfs(&spec)?;
        return CgroupPath::new(&path);
    }
    match given {
        Some(p) => CgroupPath::new(p),
        None => {
            // The id becomes a single path component; anything that would
            // make it several (or point at the shared parent) must go.
            check_name(container_id, "container id", container_id)?;
            CgroupPath::new(&format!("/{DEFAULT_PARENT}/{container_id}"))
        }
    }
}

/// Converts systemd's `slice:prefix:name` to the cgroupfs path of the unit
/// systemd would create. An empty slice means `system.slice`; a name ending
/// in `.slice` names a slice rather than a scope.
pub fn systemd_path_to_cgroupfs(spec: &str) -> Result<String, CgroupError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [slice, prefix, name] = parts.as_slice() else {
        return Err(CgroupError::InvalidPath {
            path: spec.to_owned(),
            reason: "with --systemd-cgroup it must have the form \"slice:prefix:name\"".into(),
        });
    };
    check_name(name, "unit name", spec)?;
    if prefix.contains('/') {
        return Err(CgroupError::InvalidPath {
            path: spec.to_owned(),
            reason: "the prefix must not contain \"/\"".into(),
        });
    }
    if name.ends_with(SLICE_SUFFIX) {
        return expand_slice(name);
    }
    let slice = if slice.is_empty() { "system.slice" } else { slice };
    let parent = expand_slice(slice)?;
    let unit = if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(format!("{}/{unit}", parent.trim_end_matches('/')))
}

/// systemd's slice nesting: `a-b-c.slice` lives in
/// `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
pub fn expand_slice(slice: &str) -> Result<String, CgroupError> {
    let invalid = |reason: &str| CgroupError::InvalidPath {
        path: slice.to_owned(),
        reason: reason.to_owned(),
    };
    let Some(base) = slice.strip_suffix(SLICE_SUFFIX) else {
        return Err(invalid("a systemd slice name must end in \".slice\""));
    };
    if base.is_empty() {
        return Err(invalid("a systemd slice name cannot be just \".slice\""));
    }
    if slice.contains('/') {
        return Err(invalid("a systemd slice name must not contain \"/\""));
    }
    if base == "-" {
        return Ok("/".to_owned());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for component in base.split('-') {
        if component.is_empty() {
            return Err(invalid(
                "empty component in slice name (leading, trailing or doubled \"-\")",
            ));
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(component);
        path.push_str(SLICE_SUFFIX);
        prefix.push_str(component);
        prefix.push('-');
    }
    Ok(path)
}

fn check_name(name: &str, what: &str, whole: &str) -> Result<(), CgroupError> {
    let reason = if name.is_empty() {
        format!("the {what} is empty")
    } else if name == "." || name == ".." {
        format!("the {what} {name:?} is not allowed")
    } else if name.contains('/') || name.contains('\0') {
        format!("the {what} {name:?} must not contain \"/\" or NUL")
    } else {
        return Ok(());
    };
    Err(CgroupError::InvalidPath {
        path: whole.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(p: Option<&str>, id: &str, systemd: bool) -> String {
        resolve_cgroup_path(p, id, systemd).unwrap().to_string()
    }

    #[test]
    fn default_path() {
        assert_eq!(resolve(None, "abc", false), "/minirun/abc");
        assert_eq!(resolve(Some(""), "abc", false), "/minirun/abc");
        for bad in ["", ".", "..", "a/b"] {
            assert!(
                resolve_cgroup_path(None, bad, false).is_err(),
                "id {bad:?} accepted"
            );
        }
    }

    #[test]
    fn absolute_and_relative_paths() {
        assert_eq!(resolve(Some("/a/b"), "x", false), "/a/b");
        assert_eq!(resolve(Some("a/b"), "x", false), "/a/b");
        assert_eq!(resolve(Some("//a/./b/"), "x", false), "/a/b");
        let p = resolve_cgroup_path(Some("/a/b"), "x", false).unwrap();
        assert_eq!(p.relative(), Path::new("a/b"));
        assert_eq!(p.under(Path::new("/sys/fs/cgroup/memory")), PathBuf::from("/sys/fs/cgroup/memory/a/b"));
        // A colon is an ordinary character without --systemd-cgroup.
        assert_eq!(resolve(Some("a:b:c"), "x", false), "/a:b:c");
    }

    #[test]
    fn rejects_dotdot_and_root() {
        for bad in ["/a/../b", "..", "../x", "a/..", "/", "//", "/./", "a\0b"] {
            let err = resolve_cgroup_path(Some(bad), "x", false).unwrap_err();
            assert!(matches!(err, CgroupError::InvalidPath { .. }), "{bad:?}: {err}");
        }
        let msg = CgroupPath::new("/a/../b").unwrap_err().to_string();
        assert!(msg.contains("\"..\""), "{msg}");
    }

    #[test]
    fn systemd_paths() {
        assert_eq!(
            resolve(Some("system.slice:libpod:abc"), "x", true),
            "/system.slice/libpod-abc.scope"
        );
        assert_eq!(
            resolve(Some("machine.slice:crio:xyz"), "x", true),
            "/machine.slice/crio-xyz.scope"
        );
        assert_eq!(resolve(Some(":libpod:abc"), "x", true), "/system.slice/libpod-abc.scope");
        assert_eq!(
            resolve(Some("user-1000.slice:docker:c1"), "x", true),
            "/user.slice/user-1000.slice/docker-c1.scope"
        );
        assert_eq!(
            resolve(Some("a-b-c.slice:p:n"), "x", true),
            "/a.slice/a-b.slice/a-b-c.slice/p-n.scope"
        );
        assert_eq!(resolve(Some("-.slice:p:n"), "x", true), "/p-n.scope");
        assert_eq!(resolve(Some("system.slice::n"), "x", true), "/system.slice/n.scope");
        assert_eq!(
            resolve(Some("system.slice:p:my-app.slice"), "x", true),
            "/my.slice/my-app.slice"
        );
        assert_eq!(resolve(None, "abc", true), "/system.slice/minirun-abc.scope");
    }

    #[test]
    fn bad_systemd_paths() {
        for bad in [
            "/a/b",
            "a:b",
            "a:b:c:d",
            "notaslice:p:n",
            ".slice:p:n",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            "a/b.slice:p:n",
            "system.slice:p:..",
            "system.slice:p:a/b",
            "system.slice:p/q:n",
            "system.slice:p:",
        ] {
            assert!(
                resolve_cgroup_path(Some(bad), "x", true).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn expand_slices() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(expand_slice("a-b.slice").unwrap(), "/a.slice/a-b.slice");
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        assert!(expand_slice("a-.slice").is_err());
    }
}
