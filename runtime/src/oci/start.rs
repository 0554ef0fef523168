use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::cli::OciCli;
use super::{Container, OciError};
use crate::container::Status;
use crate::hooks;

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    pub id: String,
}

pub fn start(cli: &OciCli, args: &StartArgs) -> Result<(), OciError> {
    let container = Container::open(&cli.root, &args.id)?;
    match container.status() {
        Status::Created => {}
        status => return Err(OciError::WrongStatus { id: args.id.clone(), status, action: "cannot start a container that is not created" }),
    }
    release_init(&container)?;
    run_poststart(&container);
    Ok(())
}

/// Opens the exec fifo for reading, which lets the init's blocked open for
/// writing through. Its one byte says the init passed the gate; EOF after it
/// says the init has exec'd the container's process (its writer is
/// close-on-exec), which is when poststart hooks may run. The fifo is then
/// removed: its absence is what tells `created` from `running`.
fn release_init(container: &Container) -> Result<(), OciError> {
    let path = container.dir.exec_fifo();
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(OciError::io("open exec fifo"))?;
    let exited = || OciError::Container(format!("container {} init exited before its process started", container.id()));
    let mut got_byte = false;
    let mut failure = Vec::new();
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {
                if !container.init_alive() {
                    return Err(exited());
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => return Err(OciError::io("wait on exec fifo")(e.into())),
        }
        let mut buf = [0u8; 512];
        match fifo.read(&mut buf) {
            Ok(0) if got_byte => break,
            // EOF before any writer came means nothing yet.
            Ok(0) => std::thread::sleep(Duration::from_millis(1)),
            Ok(n) if !got_byte => {
                got_byte = true;
                failure.extend_from_slice(&buf[1..n]);
            }
            Ok(n) => failure.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(OciError::io("read exec fifo")(e)),
        }
    }
    std::fs::remove_file(&path).map_err(OciError::io("remove exec fifo"))?;
    // Anything written after the gate byte is the init's reason for not
    // reaching execve. Nothing means it exec'd (the process may already
    // have exited, which is fine).
    if !failure.is_empty() {
        return Err(OciError::Container(String::from_utf8_lossy(&failure).into_owned()));
    }
    Ok(())
}

pub(super) fn run_poststart(container: &Container) {
    if let Ok(spec) = container.spec() {
        if let Some(h) = spec.hooks().as_ref().filter(|h| h.poststart().is_some()) {
            hooks::run_hooks_warn("poststart", h.poststart().as_ref(), &container.oci_state(Status::Running).to_string());
        }
    }
}
