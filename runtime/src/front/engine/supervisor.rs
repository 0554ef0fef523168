//! Supervising one container from create to exit: what conmon or
//! containerd's shim do for Docker and Podman. The foreground `minirun run`
//! supervises its own container; `run -d` hands it to a monitor process (a
//! hidden subcommand of the same binary). Either way the supervisor is a
//! subreaper and the init's parent, so it reaps it (this machine's pid 1
//! reaps nothing), records the exit, and releases what the container held.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

use minirun_netsetup::attach::AttachRequest;
use minirun_netsetup::container_files::hosts_file;
use minirun_netsetup::ipam::LeaseOwner;
use minirun_netsetup::ports::parse_port_spec;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::logs::{LogWriter, Stream};
use super::store::{NetworkMode, ProcessRef, Status};
use super::terminal::{copy_window_size, receive_master, RawMode};
use super::{Engine, EngineError};
use crate::oci::embed;
use crate::process::wait::SignalForwarding;

pub const LOG_FILE: &str = "container-json.log";

pub enum Supervision {
    /// `minirun run` without -d: the user's terminal is the container's.
    Foreground,
    /// The monitor of `run -d`; `ready` tells the waiting `run` how the
    /// start went ("0", or an exit code and a message).
    Detached { ready: File },
}

/// The container's output as the supervisor holds it.
enum ContainerIo {
    Pipes { stdout: OwnedFd, stderr: OwnedFd },
    Pty { master: OwnedFd },
}

/// Runs container `id` (already prepared by `run`) to its end and returns
/// its exit code as `docker run` reports it.
pub fn supervise(engine: &Engine, id: &str, supervision: Supervision) -> i32 {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let foreground = matches!(supervision, Supervision::Foreground);
    // Before the clone, so that no signal sent to us is lost in between.
    let forwarding = foreground.then(SignalForwarding::install);
    let launched = launch(engine, id, foreground);
    if let Supervision::Detached { mut ready } = supervision {
        let _ = match &launched {
            Ok(_) => ready.write_all(b"0"),
            Err(e) => write!(ready, "{}\n{e}", e.exit_code()),
        };
    }
    let (pid, io) = match launched {
        Ok(launched) => launched,
        Err(e) => {
            if foreground {
                eprintln!("minirun: {e}");
            }
            fail(engine, id, &e);
            return e.exit_code();
        }
    };
    if let Some(forwarding) = &forwarding {
        forwarding.forward_to(pid);
    }
    if !foreground {
        shed_startup_memory();
    }
    let dir = engine.store.dir(id);
    let mut log = LogWriter::append_to(&dir.join(LOG_FILE)).unwrap_or_else(|_| LogWriter::discard());
    pump(io, &mut log, foreground);
    let code = reap(pid);
    finish(engine, id, code);
    code
}

fn launch(engine: &Engine, id: &str, foreground: bool) -> Result<(Pid, ContainerIo), EngineError> {
    let mut locked = engine.store.lock(id)?;
    locked.record.state.monitor = ProcessRef::of(std::process::id() as i32);
    locked.save()?;
    let record = locked.record.clone();
    let dir = engine.store.dir(id);

    let devnull = File::options().read(true).write(true).open("/dev/null").map_err(EngineError::io("open /dev/null"))?;
    let null = devnull.as_raw_fd();
    let stdin = if foreground && record.interactive { 0 } else { null };
    let (pending, io) = if record.tty {
        let (ours, theirs) = UnixStream::pair().map_err(EngineError::io("console socket pair"))?;
        let pending = embed::create(&engine.runtime_root(), id, &dir, [null, null, null], Some(theirs))?;
        let master = receive_master(&ours).map_err(EngineError::io("receive the container's pty"))?;
        if foreground {
            copy_window_size(stdin_fd(), &master);
        }
        (pending, ContainerIo::Pty { master })
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let pending = embed::create(&engine.runtime_root(), id, &dir, [stdin, out_w.as_raw_fd(), err_w.as_raw_fd()], None)?;
        (pending, ContainerIo::Pipes { stdout: out_r, stderr: err_r })
    };
    let pid = pending.pid();
    crate::fault::point("launch:created");

    if let NetworkMode::Bridge(network) = &record.network {
        let ports = record.publish.iter().map(|spec| parse_port_spec(spec)).collect::<Result<Vec<_>, _>>().map_err(|e| EngineError::Usage(e.to_string()))?.concat();
        let netns = format!("/proc/{pid}/ns/net");
        let owner = LeaseOwner::of_process(pid.as_raw()).ok_or_else(|| EngineError::Other("the container's init exited during create".into()))?;
        let request = AttachRequest { network, container_id: id, netns: netns.as_ref(), owner, ports: &ports, address: None };
        let attachment = engine.net.attach(&request)?;
        // Rewritten in place: the file is already bind-mounted at /etc/hosts.
        write_in_place(&dir.join("hosts"), &hosts_file(&record.hostname, Some(attachment.address.addr())))?;
        locked.record.attachment = Some(attachment);
        locked.save()?;
        // Before the start, so that its first lookup already finds its peers.
        engine.refresh_hosts(network, Some(&locked.record));
        crate::fault::point("launch:attached");
    }

    let pid = pending.start()?;
    crate::fault::point("launch:started");
    let state = &mut locked.record.state;
    state.status = Some(Status::Running);
    state.init = ProcessRef::of(pid.as_raw());
    state.started_at = Some(crate::timefmt::now_rfc3339());
    locked.save()?;
    Ok((pid, io))
}

/// The container never ran: it stays as Created with the exit code and
/// error Docker would show (or goes, with --rm), holding nothing.
fn fail(engine: &Engine, id: &str, error: &EngineError) {
    let Ok(mut locked) = engine.store.lock(id) else { return };
    let released = engine.release(&locked.record);
    if locked.record.auto_remove && released.is_ok() {
        drop(locked);
        let _ = engine.store.remove(id);
        return;
    }
    let state = &mut locked.record.state;
    state.status = Some(Status::Created);
    state.exit_code = Some(error.exit_code());
    state.error = Some(error.to_string());
    state.monitor = None;
    let _ = locked.save();
}

fn finish(engine: &Engine, id: &str, code: i32) {
    let oom_killed = embed::oom_kill_count(&engine.runtime_root(), id).is_ok_and(|n| n > 0);
    let Ok(mut locked) = engine.store.lock(id) else { return };
    let released = engine.release(&locked.record);
    if let NetworkMode::Bridge(network) = &locked.record.network {
        // Its peers forget it (it no longer counts as running: its init is gone).
        engine.refresh_hosts(network, None);
    }
    if locked.record.auto_remove && released.is_ok() {
        drop(locked);
        let _ = engine.store.remove(id);
        return;
    }
    let state = &mut locked.record.state;
    state.status = Some(Status::Exited);
    state.exit_code = Some(code);
    state.finished_at = Some(crate::timefmt::now_rfc3339());
    state.oom_killed = oom_killed;
    state.error = released.err().map(|e| e.to_string());
    // An exited container has no address or ports any more (as in Docker).
    locked.record.attachment = None;
    let _ = locked.save();
}

/// A detached monitor stays for the container's whole life, and host
/// memory per container is what users compare with conmon. What it touched
/// to start the container (argument parsing, the spec, seccomp, netlink)
/// is not needed while it waits: the freed heap goes back to the kernel,
/// and the program's read-only file pages are unmapped from us (they stay
/// in the page cache and fault back in if used again). Only mappings with
/// no private copy of any page are dropped: a page written once (a
/// relocation) would otherwise come back as the file's original.
fn shed_startup_memory() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let mut candidate: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let read_only_file = (perms == "r-xp" || perms == "r--p") && path.starts_with('/');
            candidate = match (read_only_file, usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) {
                (true, Ok(start), Ok(end)) => Some((start, end)),
                _ => None,
            };
        } else if first == "Anonymous:" {
            if let Some((start, end)) = candidate.take().filter(|_| fields.next() == Some("0")) {
                // SAFETY: a whole read-only, file-backed mapping of ours
                // with no private pages: MADV_DONTNEED only zaps page table
                // entries, and the unchanged file content faults back in.
                unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
            }
        }
    }
}

/// Waits for the init, reaping whatever else is handed to us as subreaper.
fn reap(init: Pid) -> i32 {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == init => return code,
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == init => return 128 + signal as i32,
            Err(nix::errno::Errno::ECHILD) => return 255,
            _ => continue,
        }
    }
}

static WINDOW_CHANGED: AtomicBool = AtomicBool::new(false);

extern "C" fn note_window_change(_: libc::c_int) {
    WINDOW_CHANGED.store(true, Ordering::Relaxed);
}

#[derive(Clone, Copy, PartialEq)]
enum Source {
    Output(Stream),
    Master,
    Input,
}

/// Copies the container's output into its log (and, in the foreground, to
/// our stdout and stderr) and our stdin to its pty, until the container's
/// side is closed: all of its processes have exited.
fn pump(io: ContainerIo, log: &mut LogWriter, foreground: bool) {
    let mut sources: Vec<(RawFd, Source)> = Vec::new();
    let _raw;
    match &io {
        ContainerIo::Pipes { stdout, stderr } => {
            sources.push((stdout.as_raw_fd(), Source::Output(Stream::Stdout)));
            sources.push((stderr.as_raw_fd(), Source::Output(Stream::Stderr)));
        }
        ContainerIo::Pty { master } => {
            sources.push((master.as_raw_fd(), Source::Master));
            if foreground {
                _raw = RawMode::enable(stdin_fd());
                sources.push((0, Source::Input));
                let action = nix::sys::signal::SigAction::new(
                    nix::sys::signal::SigHandler::Handler(note_window_change),
                    nix::sys::signal::SaFlags::empty(),
                    nix::sys::signal::SigSet::empty(),
                );
                // SAFETY: the handler only stores to an atomic.
                let _ = unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGWINCH, &action) };
            }
        }
    }
    let master = match &io {
        ContainerIo::Pty { master } => Some(master.as_raw_fd()),
        ContainerIo::Pipes { .. } => None,
    };
    let mut buf = vec![0u8; 16 * 1024];
    while sources.iter().any(|(_, s)| *s != Source::Input) {
        let mut pollfds: Vec<libc::pollfd> = sources.iter().map(|(fd, _)| libc::pollfd { fd: *fd, events: libc::POLLIN, revents: 0 }).collect();
        // SAFETY: pollfds is a valid array of its length.
        let n = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if WINDOW_CHANGED.swap(false, Ordering::Relaxed) {
                if let Some(master) = master {
                    // SAFETY: the master outlives this loop.
                    copy_window_size(stdin_fd(), unsafe { BorrowedFd::borrow_raw(master) });
                }
            }
            continue;
        }
        let mut closed = Vec::new();
        for (pollfd, &(fd, source)) in pollfds.iter().zip(&sources) {
            if pollfd.revents == 0 {
                continue;
            }
            // SAFETY: fd is open for the whole loop (owned by `io`, or stdin).
            let mut file = std::mem::ManuallyDrop::new(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
            let n = match file.read(&mut buf) {
                Ok(0) | Err(_) => {
                    closed.push(fd);
                    if source == Source::Input {
                        // End of input is a ^D to the pty's line discipline.
                        if let Some(master) = master {
                            // SAFETY: writing one byte from a valid buffer.
                            unsafe { libc::write(master, b"\x04".as_ptr().cast(), 1) };
                        }
                    }
                    continue;
                }
                Ok(n) => n,
            };
            let data = &buf[..n];
            match source {
                Source::Output(stream) => {
                    let _ = log.write(stream, data);
                    if foreground {
                        write_to(if matches!(stream, Stream::Stdout) { 1 } else { 2 }, data);
                    }
                }
                Source::Master => {
                    let _ = log.write(Stream::Stdout, data);
                    if foreground {
                        write_to(1, data);
                    }
                }
                Source::Input => write_to(master.expect("input is only read for a pty"), data),
            }
        }
        sources.retain(|(fd, _)| !closed.contains(fd));
    }
    let _ = log.flush();
    drop(io);
}

fn write_to(fd: RawFd, data: &[u8]) {
    // SAFETY: fd stays open while we write; ManuallyDrop keeps it so.
    let mut file = std::mem::ManuallyDrop::new(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    let _ = file.write_all(data);
}

fn stdin_fd() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), EngineError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| EngineError::io("pipe")(e.into()))
}

/// Replaces a file's content without replacing the file: bind mounts of it
/// keep pointing at the same inode.
pub fn write_in_place(path: &std::path::Path, text: &str) -> Result<(), EngineError> {
    File::options().write(true).truncate(true).open(path).and_then(|mut f| f.write_all(text.as_bytes())).map_err(EngineError::io(format!("write {}", path.display())))
}
