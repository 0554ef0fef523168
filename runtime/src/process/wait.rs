//! Waiting for a container process in the foreground (`run`, `exec`), with
//! the signals a user sends to minirun passed on to it.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

static TARGET: AtomicI32 = AtomicI32::new(0);

const FORWARDED: [Signal; 8] =
    [Signal::SIGHUP, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTERM, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGWINCH, Signal::SIGPIPE];

extern "C" fn forward(signal: libc::c_int) {
    let pid = TARGET.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, signal) };
    }
}

pub struct SignalForwarding(());

impl SignalForwarding {
    /// Installs the handlers now; signals that arrive before `forward_to`
    /// are dropped rather than killing minirun with the container alive.
    pub fn install() -> Self {
        let action = SigAction::new(SigHandler::Handler(forward), SaFlags::SA_RESTART, SigSet::empty());
        for signal in FORWARDED {
            // SAFETY: the handler only calls kill().
            let _ = unsafe { sigaction(signal, &action) };
        }
        SignalForwarding(())
    }

    pub fn forward_to(&self, pid: Pid) {
        TARGET.store(pid.as_raw(), Ordering::Relaxed);
    }
}

/// The exit code as a shell reports it: the status, or 128 + the signal.
pub fn wait_exit_code(pid: Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}
