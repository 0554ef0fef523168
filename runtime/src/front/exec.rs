//! `minirun exec [-i] [-t] [-u] [-w] [-e] CONTAINER CMD...`: a new process
//! in every namespace and the cgroup of a running container, with its
//! capabilities, seccomp filter and environment.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use super::engine::terminal::{copy_window_size, receive_master, RawMode};
use super::engine::{Engine, EngineError};
use crate::oci::embed;
use crate::process::wait::{wait_exit_code, SignalForwarding};

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct ExecArgs {
    #[arg(long, short)]
    pub interactive: bool,
    #[arg(long, short)]
    pub tty: bool,
    #[arg(long, short)]
    pub detach: bool,
    /// USER or UID[:GID] (numeric in this version).
    #[arg(long, short)]
    pub user: Option<String>,
    #[arg(long, short)]
    pub workdir: Option<String>,
    #[arg(long, short)]
    pub env: Vec<String>,
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

pub fn exec(engine: &Engine, args: &ExecArgs) -> Result<i32, EngineError> {
    let record = engine.store.resolve(&args.container)?;
    if !record.is_running() {
        return Err(EngineError::Conflict(format!("container {} is not running", args.container)));
    }
    let mut process = embed::container_process(&engine.runtime_root(), &record.id)?;
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.tty));
    let mut env = process.env().clone().unwrap_or_default();
    for kv in &args.env {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|old| old.split('=').next() != Some(key));
        match kv.contains('=') {
            true => env.push(kv.clone()),
            false => env.extend(std::env::var(kv).ok().map(|v| format!("{kv}={v}"))),
        }
    }
    process.set_env(Some(env));
    if let Some(dir) = &args.workdir {
        process.set_cwd(dir.into());
    }
    if let Some(user) = &args.user {
        let (uid, gid) = user.split_once(':').map(|(u, g)| (u, Some(g))).unwrap_or((user, None));
        let number = |s: &str| s.parse::<u32>().map_err(|_| EngineError::Usage(format!("invalid --user {user:?}: give UID[:GID] as numbers")));
        let mut u = process.user().clone();
        u.set_uid(number(uid)?);
        u.set_gid(gid.map(number).transpose()?.unwrap_or(0));
        u.set_additional_gids(None);
        process.set_user(u);
    }
    let forwarding = (!args.detach).then(SignalForwarding::install);
    let (console, ours) = match args.tty {
        true => {
            let (ours, theirs) = UnixStream::pair().map_err(EngineError::io("console socket pair"))?;
            (Some(theirs), Some(ours))
        }
        false => (None, None),
    };
    let pid = {
        let _stdio = StdioForExec::swap(args)?;
        embed::exec(&engine.runtime_root(), &record.id, &process, console)?
    };
    if args.detach {
        return Ok(0);
    }
    if let Some(forwarding) = &forwarding {
        forwarding.forward_to(pid);
    }
    if let Some(socket) = ours {
        let master = receive_master(&socket).map_err(EngineError::io("receive the exec's pty"))?;
        let stdin = std::io::stdin();
        copy_window_size(std::os::fd::AsFd::as_fd(&stdin), &master);
        let _raw = RawMode::enable(std::os::fd::AsFd::as_fd(&stdin));
        proxy(std::fs::File::from(master), args.interactive);
    }
    Ok(wait_exit_code(pid))
}

/// The exec'd process inherits our stdio at its clone. Docker gives it
/// stdin only with -i, and no stdio at all with -d (it would otherwise
/// write to our terminal after we have returned). So for the spawn, ours
/// point at /dev/null, and are put back on drop for our own messages.
struct StdioForExec {
    saved: Vec<(RawFd, OwnedFd)>,
}

impl StdioForExec {
    fn swap(args: &ExecArgs) -> Result<Self, EngineError> {
        let fds: &[RawFd] = match (args.detach, args.interactive || args.tty) {
            (true, _) => &[0, 1, 2],
            (false, false) => &[0],
            (false, true) => &[],
        };
        let mut swap = StdioForExec { saved: Vec::new() };
        if fds.is_empty() {
            return Ok(swap);
        }
        let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(EngineError::io("open /dev/null"))?;
        for &fd in fds {
            // SAFETY: fcntl(F_DUPFD_CLOEXEC) on one of our stdio fds; the new fd is ours.
            let saved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
            if saved < 0 {
                // A closed stdio fd: the process gets /dev/null there too, nothing to restore.
                // SAFETY: dup2 onto a stdio fd number.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
                continue;
            }
            // SAFETY: the kernel just returned this fd to us.
            swap.saved.push((fd, unsafe { std::os::fd::FromRawFd::from_raw_fd(saved) }));
            // SAFETY: dup2 onto a stdio fd number we saved above.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
        Ok(swap)
    }
}

impl Drop for StdioForExec {
    fn drop(&mut self) {
        for (fd, saved) in self.saved.drain(..) {
            // SAFETY: puts back the fd we saved in swap.
            unsafe { libc::dup2(saved.as_raw_fd(), fd) };
        }
    }
}

/// Our terminal to the exec's pty and back, until the pty closes.
fn proxy(mut pty: std::fs::File, interactive: bool) {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 16 * 1024];
    let mut stdin_open = interactive;
    loop {
        let mut fds = vec![libc::pollfd { fd: pty.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        if stdin_open {
            fds.push(libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 });
        }
        // SAFETY: fds is a valid array of its length.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            match pty.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let _ = std::io::stdout().write_all(&buf[..n]);
                    let _ = std::io::stdout().flush();
                }
            }
        }
        if stdin_open && fds[1].revents != 0 {
            match std::io::stdin().read(&mut buf) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    let _ = pty.write_all(b"\x04");
                }
                Ok(n) => {
                    let _ = pty.write_all(&buf[..n]);
                }
            }
        }
    }
}
