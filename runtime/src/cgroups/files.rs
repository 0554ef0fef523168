//! Reading and writing cgroupfs files, shared by v1 and v2.

use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::CgroupError;

pub(super) const CGROUP_PROCS: &str = "cgroup.procs";

/// How long destroy waits out EBUSY in total: the kernel answers EBUSY for
/// a short while after the last process exited (until it is reaped and its
/// references drop), but a cgroup with live processes stays busy.
pub(super) const REMOVE_PATIENCE: Duration = Duration::from_millis(1300);

/// One write(2) of the whole value. No O_CREAT: a missing file means a
/// missing controller or kernel feature, which must not silently become a
/// regular file. O_TRUNC matters only for plain files (test trees).
pub(super) fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
    file.write_all(value.as_bytes())
}

pub(super) fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    write_raw(&path, value).map_err(|source| CgroupError::Write {
        path,
        value: value.to_owned(),
        source,
    })
}

pub(super) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })
}

pub(super) fn read_if_exists(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    match read(dir, file) {
        Ok(text) => Ok(Some(text)),
        Err(CgroupError::Read { source, .. }) if is_not_found(&source) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// A single number; "max" (v2's spelling of "no limit") is `None`.
pub(super) fn read_u64_if_exists(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    let Some(text) = read_if_exists(dir, file)? else {
        return Ok(None);
    };
    let text = text.trim();
    if text == "max" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| CgroupError::Parse {
        path: dir.join(file),
        reason: format!("expected a number, found {text:?}"),
    })
}

/// The value of `key` in a flat-keyed file such as memory.events
/// ("oom_kill 3") or cpu.stat.
pub(super) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(key))
            .then(|| parts.next())
            .flatten()
            .and_then(|v| v.parse().ok())
    })
}

pub(super) fn create_dir(dir: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(dir).map_err(|source| CgroupError::CreateDir {
        path: dir.to_owned(),
        source,
    })
}

pub(super) fn add_pid(dir: &Path, pid: Pid) -> Result<(), CgroupError> {
    write(dir, CGROUP_PROCS, &pid.as_raw().to_string())
}

/// Pids in `dir` and every sub-cgroup below it. A cgroup that disappears
/// while being walked (or was never created) just contributes nothing.
pub(super) fn pids_recursive(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut pids = Vec::new();
    collect_pids(dir, &mut pids)?;
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn collect_pids(dir: &Path, pids: &mut Vec<i32>) -> Result<(), CgroupError> {
    if let Some(text) = read_if_exists(dir, CGROUP_PROCS)? {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let pid = line.parse().map_err(|_| CgroupError::Parse {
                path: dir.join(CGROUP_PROCS),
                reason: format!("expected a pid, found {line:?}"),
            })?;
            pids.push(pid);
        }
    }
    for sub in subdirs(dir).map_err(|(path, source)| CgroupError::Read { path, source })? {
        collect_pids(&sub, pids)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, (PathBuf, io::Error)> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err((dir.to_owned(), e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| (dir.to_owned(), e))?;
        match entry.file_type() {
            Ok(t) if t.is_dir() => dirs.push(entry.path()),
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err((entry.path(), e)),
        }
    }
    Ok(dirs)
}

/// Removes `dir` and the cgroups below it (the container may have created
/// its own), deepest first, since cgroupfs refuses rmdir with children.
/// Only directories are removed: rmdir on a cgroup takes its control files
/// with it, and unlinking them is not allowed anyway. EBUSY is retried
/// until `deadline`, shared by all hierarchies of one destroy so a cgroup
/// with live processes fails in bounded time.
pub(super) fn remove_cgroup(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        match remove_tree(dir) {
            Ok(()) => return Ok(()),
            Err((_, e)) if e.raw_os_error() == Some(libc::EBUSY) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(CgroupError::Busy {
                        path: dir.to_owned(),
                        pids: pids_recursive(dir).unwrap_or_default(),
                        waited_ms: u64::try_from((now - start).as_millis()).unwrap_or(u64::MAX),
                    });
                }
                sleep(pause.min(deadline - now));
                pause *= 2;
            }
            Err((path, source)) => return Err(CgroupError::RemoveDir { path, source }),
        }
    }
}

fn remove_tree(dir: &Path) -> Result<(), (PathBuf, io::Error)> {
    for sub in subdirs(dir)? {
        remove_tree(&sub)?;
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err((dir.to_owned(), e)),
    }
}

fn is_not_found(e: &io::Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_values() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(text, "oom_kill"), Some(3));
        assert_eq!(keyed_value(text, "under_oom"), Some(0));
        assert_eq!(keyed_value(text, "oom"), None);
        assert_eq!(keyed_value("oom_kill x\n", "oom_kill"), None);
    }

    #[test]
    fn pids_are_recursive_and_missing_dirs_are_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("c");
        fs::create_dir_all(top.join("sub/deeper")).unwrap();
        fs::write(top.join(CGROUP_PROCS), "10\n20\n").unwrap();
        fs::write(top.join("sub/deeper").join(CGROUP_PROCS), "30\n10\n").unwrap();
        assert_eq!(pids_recursive(&top).unwrap(), vec![10, 20, 30]);
        assert_eq!(pids_recursive(&tmp.path().join("nope")).unwrap(), Vec::<i32>::new());
        fs::write(top.join(CGROUP_PROCS), "ten\n").unwrap();
        assert!(matches!(pids_recursive(&top), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn remove_is_recursive_and_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("c");
        fs::create_dir_all(top.join("a/b")).unwrap();
        fs::create_dir_all(top.join("d")).unwrap();
        let deadline = Instant::now() + REMOVE_PATIENCE;
        remove_cgroup(&top, deadline).unwrap();
        assert!(!top.exists());
        remove_cgroup(&top, deadline).unwrap();
    }

    #[test]
    fn writes_never_create_files() {
        let tmp = tempfile::tempdir().unwrap();
        let err = write(tmp.path(), "memory.max", "1").unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENOENT));
        assert!(err.to_string().contains("memory.max"), "{err}");
        assert!(!tmp.path().join("memory.max").exists());
    }
}
