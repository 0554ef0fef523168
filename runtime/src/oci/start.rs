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
/// writing through; its one byte says it has passed the gate. The fifo is
/// then removed: its absence is what tells `created` from `running`.
fn release_init(container: &Container) -> Result<(), OciError> {
    let path = container.dir.exec_fifo();
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .map_err(OciError::io("open exec fifo"))?;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {
                if !container.init_alive() {
                    return Err(OciError::Container(format!("container {} init exited before start", container.id())));
                }
            }
            Ok(_) => {
                let mut byte = [0u8; 1];
                match fifo.read(&mut byte) {
                    Ok(1) => break,
                    Ok(_) | Err(_) if !container.init_alive() => {
                        return Err(OciError::Container(format!("container {} init exited before start", container.id())));
                    }
                    // Woken before the init wrote: wait for the byte.
                    _ => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            Err(e) => return Err(OciError::io("wait on exec fifo")(e.into())),
        }
    }
    std::fs::remove_file(&path).map_err(OciError::io("remove exec fifo"))
}

pub(super) fn run_poststart(container: &Container) {
    if let Ok(spec) = container.spec() {
        if let Some(h) = spec.hooks().as_ref().filter(|h| h.poststart().is_some()) {
            hooks::run_hooks_warn("poststart", h.poststart().as_ref(), &container.oci_state(Status::Running).to_string());
        }
    }
}
