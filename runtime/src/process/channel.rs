//! A typed channel over a SOCK_SEQPACKET socketpair between the runtime and
//! the container's init: one JSON message per packet, so no framing is needed
//! and a closed peer shows up as an empty read.

use std::marker::PhantomData;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ChannelError {
    #[error("socketpair: {0}")]
    Create(nix::Error),
    #[error("send to {peer}: {source}")]
    Send { peer: &'static str, source: nix::Error },
    #[error("receive from {peer}: {source}")]
    Receive { peer: &'static str, source: nix::Error },
    #[error("{peer} exited before it finished setting up the container")]
    Closed { peer: &'static str },
    #[error("unexpected message from {peer}: {message}")]
    Unexpected { peer: &'static str, message: String },
}

/// What the runtime tells the container's init.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToInit {
    /// Id maps are written and the process is in its cgroup; `host_pid` is
    /// the init's pid as the host sees it, for the hooks' state.
    Go { host_pid: i32 },
    /// prestart and createRuntime hooks have run.
    HooksDone,
    /// `run` without an exec fifo: go ahead and execute the process. A
    /// detached init must outlive the runtime; a foreground one dies with it.
    Start { detach: bool },
}

/// What the container's init tells the runtime.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromInit {
    /// Mounts are prepared, pivot_root has not happened: time for the
    /// prestart and createRuntime hooks.
    MountsReady,
    /// Everything is set up; init now waits for `start`.
    Ready,
    /// Set-up failed; `exit_code` is what a shell would report for it (126
    /// or 127 when the program cannot be run, 1 otherwise).
    Error { message: String, exit_code: i32 },
}

pub struct Channel<Send, Recv> {
    fd: OwnedFd,
    peer: &'static str,
    _types: PhantomData<(Send, Recv)>,
}

pub type RuntimeSide = Channel<ToInit, FromInit>;
pub type InitSide = Channel<FromInit, ToInit>;

pub fn pair() -> Result<(RuntimeSide, InitSide), ChannelError> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(ChannelError::Create)?;
    Ok((Channel { fd: a, peer: "container init", _types: PhantomData }, Channel { fd: b, peer: "runtime", _types: PhantomData }))
}

impl<S, R> AsRawFd for Channel<S, R> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl<S: Serialize, R: DeserializeOwned> Channel<S, R> {
    pub fn send(&self, message: &S) -> Result<(), ChannelError> {
        let bytes = serde_json::to_vec(message).expect("channel messages always serialise");
        loop {
            // SAFETY: sends `bytes.len()` bytes from a live buffer.
            let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
            match nix::errno::Errno::result(n) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(source) => return Err(ChannelError::Send { peer: self.peer, source }),
            }
        }
    }

    pub fn recv(&self) -> Result<R, ChannelError> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            // SAFETY: receives into a live buffer of the given length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            match nix::errno::Errno::result(n) {
                Ok(n) => break n as usize,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(source) => return Err(ChannelError::Receive { peer: self.peer, source }),
            }
        };
        if n == 0 {
            return Err(ChannelError::Closed { peer: self.peer });
        }
        serde_json::from_slice(&buf[..n]).map_err(|e| ChannelError::Unexpected { peer: self.peer, message: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_and_a_closed_peer_is_reported() {
        let (runtime, init) = pair().unwrap();
        runtime.send(&ToInit::Go { host_pid: 7 }).unwrap();
        assert!(matches!(init.recv().unwrap(), ToInit::Go { host_pid: 7 }));
        init.send(&FromInit::Error { message: "boom".into(), exit_code: 127 }).unwrap();
        assert!(matches!(runtime.recv().unwrap(), FromInit::Error { message, exit_code: 127 } if message == "boom"));
        drop(init);
        assert!(matches!(runtime.recv(), Err(ChannelError::Closed { .. })));
    }
}
