//! Resolving a container path inside the rootfs the way the kernel would
//! resolve it once the rootfs is `/`.
//!
//! Mount destinations come from the image and the config, and images may
//! contain symlinks such as `/evil -> /etc` or `../../..`. Resolving them
//! naively against the host root would let a container mount over host
//! paths, so every symlink is re-interpreted with the rootfs as `/`.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// filepath-securejoin's budget of symlinks for one resolution; beyond it
/// the image has a loop, or is trying to make us spin.
const MAX_SYMLINKS: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum SecurePathError {
    #[error("path {path:?} contains a NUL byte")]
    NulByte { path: PathBuf },
    #[error("resolving {path:?} inside {root:?}: too many levels of symbolic links")]
    TooManySymlinks { root: PathBuf, path: PathBuf },
    #[error("resolving {path:?} inside {root:?}: cannot inspect {component:?}: {source}")]
    Io {
        root: PathBuf,
        path: PathBuf,
        component: PathBuf,
        source: io::Error,
    },
}

/// Joins `unsafe_path` onto `root` as if `root` were `/`: symlinks are
/// followed, but absolute targets restart at `root` and `..` never climbs
/// above it. Components that do not exist yet are appended lexically, so the
/// result can be created afterwards.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf, SecurePathError> {
    if unsafe_path.as_os_str().as_bytes().contains(&0) {
        return Err(SecurePathError::NulByte {
            path: unsafe_path.to_path_buf(),
        });
    }
    let mut pending: VecDeque<OsString> = components(unsafe_path).collect();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0usize;

    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&part);

        let meta = match std::fs::symlink_metadata(&candidate) {
            Ok(meta) => meta,
            // What does not exist cannot be a symlink; the rest is lexical.
            // ENOTDIR means a parent is a file: creating it will fail later
            // with a clearer message than we could give here.
            Err(e) if is_missing(&e) => {
                resolved.push(part);
                continue;
            }
            Err(source) => {
                return Err(SecurePathError::Io {
                    root: root.to_path_buf(),
                    path: unsafe_path.to_path_buf(),
                    component: candidate,
                    source,
                })
            }
        };
        if !meta.file_type().is_symlink() {
            resolved.push(part);
            continue;
        }

        links += 1;
        if links > MAX_SYMLINKS {
            return Err(SecurePathError::TooManySymlinks {
                root: root.to_path_buf(),
                path: unsafe_path.to_path_buf(),
            });
        }
        let target = std::fs::read_link(&candidate).map_err(|source| SecurePathError::Io {
            root: root.to_path_buf(),
            path: unsafe_path.to_path_buf(),
            component: candidate.clone(),
            source,
        })?;
        if target.is_absolute() {
            resolved.clear();
        }
        for (i, c) in components(&target).enumerate() {
            pending.insert(i, c);
        }
    }

    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}

/// Resolves `.` and `..` without looking at the filesystem, never climbing
/// above `/`. Used where symlinks must not be followed at all.
pub fn lexical_clean(path: &Path) -> PathBuf {
    let mut parts: Vec<OsString> = Vec::new();
    for c in components(path) {
        if c == ".." {
            parts.pop();
        } else {
            parts.push(c);
        }
    }
    let mut out = PathBuf::from("/");
    out.extend(parts);
    out
}

/// The normal and `..` components of a path; the root and `.` carry no
/// meaning once everything is relative to the rootfs.
fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonicalize");
        (dir, root)
    }

    #[test]
    fn plain_paths_are_joined() {
        let (_d, root) = setup();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        assert_eq!(
            secure_join(&root, Path::new("/a/b")).unwrap(),
            root.join("a/b")
        );
        assert_eq!(
            secure_join(&root, Path::new("a/b/")).unwrap(),
            root.join("a/b")
        );
        assert_eq!(secure_join(&root, Path::new("/")).unwrap(), root);
        assert_eq!(secure_join(&root, Path::new("")).unwrap(), root);
        assert_eq!(
            secure_join(&root, Path::new("//a/./b")).unwrap(),
            root.join("a/b")
        );
    }

    #[test]
    fn dotdot_cannot_escape() {
        let (_d, root) = setup();
        assert_eq!(
            secure_join(&root, Path::new("/../../../etc")).unwrap(),
            root.join("etc")
        );
        assert_eq!(
            secure_join(&root, Path::new("a/../../b")).unwrap(),
            root.join("b")
        );
        assert_eq!(secure_join(&root, Path::new("../..")).unwrap(), root);
    }

    #[test]
    fn absolute_symlinks_are_rerooted() {
        let (_d, root) = setup();
        std::fs::create_dir_all(root.join("real/dir")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("/etc", root.join("hostetc")).unwrap();
        assert_eq!(
            secure_join(&root, Path::new("/abs/dir")).unwrap(),
            root.join("real/dir")
        );
        // /etc does not exist in the rootfs: it must not become the host's.
        assert_eq!(
            secure_join(&root, Path::new("/hostetc/passwd")).unwrap(),
            root.join("etc/passwd")
        );
    }

    #[test]
    fn relative_symlinks_cannot_escape() {
        let (_d, root) = setup();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        symlink("../../../../../../../tmp", root.join("a/b/up")).unwrap();
        symlink("../sibling", root.join("a/b/rel")).unwrap();
        assert_eq!(
            secure_join(&root, Path::new("/a/b/up/x")).unwrap(),
            root.join("tmp/x")
        );
        assert_eq!(
            secure_join(&root, Path::new("/a/b/rel/x")).unwrap(),
            root.join("a/sibling/x")
        );
    }

    #[test]
    fn dotdot_applies_after_resolving_symlinks() {
        let (_d, root) = setup();
        std::fs::create_dir_all(root.join("x/y/z")).unwrap();
        symlink("/x/y/z", root.join("link")).unwrap();
        // Like the kernel: link/.. is the parent of the target, not of link.
        assert_eq!(
            secure_join(&root, Path::new("/link/..")).unwrap(),
            root.join("x/y")
        );
    }

    #[test]
    fn dangling_symlinks_resolve_to_their_target() {
        let (_d, root) = setup();
        symlink("/does/not/exist", root.join("dangling")).unwrap();
        assert_eq!(
            secure_join(&root, Path::new("/dangling/more")).unwrap(),
            root.join("does/not/exist/more")
        );
    }

    #[test]
    fn symlink_chains_are_followed() {
        let (_d, root) = setup();
        std::fs::create_dir_all(root.join("end")).unwrap();
        symlink("l2", root.join("l1")).unwrap();
        symlink("/l3", root.join("l2")).unwrap();
        symlink("end", root.join("l3")).unwrap();
        assert_eq!(
            secure_join(&root, Path::new("l1")).unwrap(),
            root.join("end")
        );
    }

    #[test]
    fn symlink_loops_are_errors() {
        let (_d, root) = setup();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("/loop1", root.join("loop2")).unwrap();
        symlink("self", root.join("self")).unwrap();
        let err = secure_join(&root, Path::new("/loop1/x")).unwrap_err();
        assert!(
            matches!(err, SecurePathError::TooManySymlinks { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("/loop1/x"), "{err}");
        assert!(matches!(
            secure_join(&root, Path::new("self")),
            Err(SecurePathError::TooManySymlinks { .. })
        ));
    }

    #[test]
    fn components_under_files_are_lexical() {
        let (_d, root) = setup();
        std::fs::write(root.join("file"), b"x").unwrap();
        assert_eq!(
            secure_join(&root, Path::new("/file/sub")).unwrap(),
            root.join("file/sub")
        );
    }

    #[test]
    fn nul_bytes_are_rejected() {
        let (_d, root) = setup();
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/a\0b"));
        assert!(matches!(
            secure_join(&root, p),
            Err(SecurePathError::NulByte { .. })
        ));
    }

    #[test]
    fn lexical_clean_stays_at_root() {
        assert_eq!(
            lexical_clean(Path::new("/a/../../b/./c/")),
            PathBuf::from("/b/c")
        );
        assert_eq!(lexical_clean(Path::new("dev")), PathBuf::from("/dev"));
        assert_eq!(lexical_clean(Path::new("/")), PathBuf::from("/"));
    }
}
