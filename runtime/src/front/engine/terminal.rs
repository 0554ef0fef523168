//! The user's side of a container's pty (`-t`): the master end received
//! from the container's init, the user's terminal in raw mode while it is
//! proxied, and window sizes passed on.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};

/// Receives the pty master the container's init sends over its console
/// socket (see `crate::console::setup_terminal`).
pub fn receive_master(socket: &UnixStream) -> std::io::Result<OwnedFd> {
    let mut name = [0u8; 128];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let message = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: SCM_RIGHTS gave us a new fd that nothing else owns.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(std::io::Error::other("the container's init sent no pty"))
}

/// The user's terminal in raw mode, so that keys (Ctrl-C included) reach
/// the container's pty as typed; restored on drop.
pub struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    /// None when `fd` is not a terminal (input from a pipe or a file).
    pub fn enable(fd: BorrowedFd) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd: fd.as_raw_fd(), saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd outlives us (it is our stdin).
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &self.saved);
    }
}

/// Copies the window size of terminal `from` to the pty `to` (whose
/// foreground process group then gets SIGWINCH from the kernel).
pub fn copy_window_size(from: BorrowedFd, to: impl AsFd) {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ and TIOCSWINSZ read or write one winsize struct.
    unsafe {
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(to.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &size);
        }
    }
}
