//! flock(2) locks on files under `locks/`. A lock belongs to the open file,
//! so two handles in one process exclude each other like two processes do.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

pub struct FileLock {
    _file: File,
}

#[derive(Clone, Copy)]
pub enum Mode {
    Shared,
    Exclusive,
}

impl FileLock {
    /// Waits for the lock.
    pub fn acquire(path: &Path, mode: Mode) -> io::Result<Self> {
        Self::lock(path, mode, false)
            .map(|l| l.ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock)))?
    }

    /// `None` when someone else holds a conflicting lock.
    pub fn try_acquire(path: &Path, mode: Mode) -> io::Result<Option<Self>> {
        Self::lock(path, mode, true)
    }

    fn lock(path: &Path, mode: Mode, nonblocking: bool) -> io::Result<Option<Self>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut op = match mode {
            Mode::Shared => libc::LOCK_SH,
            Mode::Exclusive => libc::LOCK_EX,
        };
        if nonblocking {
            op |= libc::LOCK_NB;
        }
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(Some(Self { _file: file }));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) if nonblocking => return Ok(None),
                _ => return Err(err),
            }
        }
    }
}
