//! `--console-socket`: the container's terminal is a pty made inside the
//! container (on its own devpts), whose master end is handed to the caller
//! (conmon, containerd's shim) over a unix socket with SCM_RIGHTS.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConsoleError {
    #[error("connect to console socket {path}: {source}")]
    Connect { path: String, source: std::io::Error },
    #[error("{what}: {source}")]
    Pty { what: &'static str, source: nix::Error },
}

pub fn connect(path: &Path) -> Result<UnixStream, ConsoleError> {
    UnixStream::connect(path).map_err(|source| ConsoleError::Connect { path: path.display().to_string(), source })
}

/// Opens a new pty on the devpts of the current mount namespace, sends its
/// master to `socket`, and makes the slave this process's controlling
/// terminal and stdio. Runs in the container, after pivot_root.
pub fn setup_terminal(socket: &UnixStream, size: Option<(u16, u16)>) -> Result<(), ConsoleError> {
    let pty = |what| move |source| ConsoleError::Pty { what, source };
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).map_err(pty("open /dev/ptmx"))?;
    grantpt(&master).map_err(pty("grantpt"))?;
    unlockpt(&master).map_err(pty("unlockpt"))?;
    let slave_name = ptsname_r(&master).map_err(pty("ptsname"))?;
    if let Some((height, width)) = size {
        let ws = libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize struct.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    let slave: OwnedFd = nix::fcntl::open(slave_name.as_str(), OFlag::O_RDWR | OFlag::O_NOCTTY, nix::sys::stat::Mode::empty())
        .map(|fd| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
        .map_err(pty("open pty slave"))?;
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(socket.as_raw_fd(), &[IoSlice::new(slave_name.as_bytes())], &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .map_err(pty("send pty master over console socket"))?;
    drop(master);
    make_controlling_terminal(slave.as_raw_fd()).map_err(pty("set controlling terminal"))?;
    for target in 0..=2 {
        nix::unistd::dup2(slave.as_raw_fd(), target).map_err(pty("dup pty slave onto stdio"))?;
    }
    Ok(())
}

fn make_controlling_terminal(fd: RawFd) -> nix::Result<()> {
    // A new session has no controlling terminal yet; EPERM means we already
    // lead one (init made its session at clone time).
    match nix::unistd::setsid() {
        Ok(_) | Err(nix::errno::Errno::EPERM) => {}
        Err(e) => return Err(e),
    }
    // SAFETY: TIOCSCTTY takes an integer argument.
    nix::errno::Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}
