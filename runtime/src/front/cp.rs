//! `minirun cp X:PATH DEST` and `minirun cp SRC X:PATH`: files in and out
//! of a running container, as its processes see them. The container's side
//! is resolved inside its root (`secure_join`), so its symlinks cannot lead
//! the copy out.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::engine::Engine;

pub fn cp(engine: &Engine, from: &str, to: &str) -> Result<(), String> {
    match (split(from), split(to)) {
        (Some((name, inside)), None) => {
            let source = resolve(engine, name, inside)?;
            let dest = into_dir(Path::new(to), &source);
            copy_tree(&source, &dest).map_err(|e| format!("copy {from} to {to}: {e}"))
        }
        (None, Some((name, inside))) => {
            let dest = resolve(engine, name, inside)?;
            let source = Path::new(from);
            let dest = into_dir(&dest, source);
            copy_tree(source, &dest).map_err(|e| format!("copy {from} to {to}: {e}"))
        }
        _ => Err("cp copies between a container and the host: one of the two must be CONTAINER:PATH".into()),
    }
}

/// `name:/path` (a host path such as `./a:b` has a slash before the colon).
fn split(arg: &str) -> Option<(&str, &str)> {
    let (name, path) = arg.split_once(':')?;
    (!name.is_empty() && !name.contains('/')).then_some((name, path))
}

fn resolve(engine: &Engine, name: &str, inside: &str) -> Result<PathBuf, String> {
    let record = engine.store.resolve(name).map_err(|e| e.to_string())?;
    if !record.is_running() {
        return Err(format!("container {name} is not running (an exited container keeps no filesystem in this version)"));
    }
    // The container's own view of its files, bind mounts (/etc/hosts, -v)
    // and tmpfs included: its init's root.
    let init = record.state.init.map(|i| i.pid).unwrap_or(0);
    let root = PathBuf::from(format!("/proc/{init}/root"));
    minirun_rootfs::secure_join(&root, Path::new(inside)).map_err(|e| format!("{name}:{inside}: {e}"))
}

/// Copying onto an existing directory puts the source inside it, as cp(1).
fn into_dir(dest: &Path, source: &Path) -> PathBuf {
    match (dest.is_dir(), source.file_name()) {
        (true, Some(name)) => dest.join(name),
        _ => dest.to_path_buf(),
    }
}

fn copy_tree(source: &Path, dest: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(source)?;
    if meta.file_type().is_symlink() {
        let _ = fs::remove_file(dest);
        return std::os::unix::fs::symlink(fs::read_link(source)?, dest);
    }
    if meta.is_dir() {
        fs::create_dir_all(dest)?;
        for entry in fs::read_dir(source)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
        }
        return fs::set_permissions(dest, meta.permissions());
    }
    fs::copy(source, dest).map(drop)
}
