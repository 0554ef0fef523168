//! The two file primitives the network store and the lease files share: an
//! flock'ed lock file that may be deleted while held, and atomic replacement.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// An exclusive flock on a file, held until drop. flock belongs to the open
/// file description, so every `acquire` opens the file anew: two threads of
/// one process exclude each other just as two processes do.
pub(crate) struct LockFile {
    path: PathBuf,
    _file: File,
}

impl LockFile {
    /// Blocks until the lock is held. A lock file can be unlinked by its
    /// holder (a network being removed); a waiter then wakes up holding a lock
    /// on a file nobody else will open, so it checks that the path still
    /// names the inode it locked and starts over if not.
    pub(crate) fn acquire(path: &Path) -> io::Result<Self> {
        loop {
            // Never truncated: it holds nothing, only its inode matters.
            let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
            flock_exclusive(&file)?;
            let held = file.metadata()?;
            match fs::metadata(path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(LockFile { path: path.to_path_buf(), _file: file });
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Deletes the lock file while still holding it, so that waiters notice
    /// (see `acquire`) and nothing is left behind for a removed network.
    pub(crate) fn unlink(self) -> io::Result<()> {
        remove_if_present(&self.path)
    }
}

fn flock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor we own; it touches no memory.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Replaces `path` with `bytes` so that a reader, or the file after a crash
/// or power cut, shows either the old content or the new, never a mix. The
/// temporary name is fixed: callers write only while holding the file's lock.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
    file.write_all(bytes)?;
    // No fsync: it cost 3.5 ms per container start. A power cut is a reboot,
    // after which every lease is stale anyway, and an empty lease file left
    // by one is read as "no leases" (see Ipam's loader).
    fs::rename(&tmp, path)
}

/// The file's content, or None if it does not exist.
pub(crate) fn read_if_present(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn waiter_on_an_unlinked_lock_file_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = LockFile::acquire(&path).unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (path, got) = (path.clone(), got.clone());
            std::thread::spawn(move || {
                let lock = LockFile::acquire(&path).unwrap();
                got.store(true, Ordering::SeqCst);
                lock
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!got.load(Ordering::SeqCst), "the lock is exclusive");
        held.unlink().unwrap();
        let lock = waiter.join().unwrap();
        // The waiter ends up holding the file that is now at the path.
        assert!(path.exists());
        drop(lock);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(read_if_present(&path).unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(read_if_present(&dir.path().join("none")).unwrap(), None);
    }
}
