//! A new process inside a running container (`exec`): it joins every
//! namespace and the cgroup of the container's init, then finishes as any
//! container process does (`user_process`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::Process;
use thiserror::Error;

use super::user_process::{self, Executable, UserProcessError};
use crate::cgroups::CgroupManager;
use crate::seccomp::SeccompProgram;

#[derive(Debug, Error)]
pub enum JoinError {
    #[error("open namespace {name} of pid {pid}: {source}")]
    Open { name: &'static str, pid: Pid, source: std::io::Error },
    #[error("enter pid namespace: {0}")]
    PidNamespace(nix::Error),
    #[error("fork: {0}")]
    Fork(nix::Error),
    #[error("pipe: {0}")]
    Pipe(nix::Error),
    /// The process failed before its execve; `exit_code` is what a shell would report.
    #[error("{message}")]
    Failed { message: String, exit_code: i32 },
}

pub struct JoinPlan<'a> {
    pub init_pid: Pid,
    pub process: &'a Process,
    pub seccomp: Option<&'a SeccompProgram>,
    pub console: Option<UnixStream>,
    pub cgroup: &'a dyn CgroupManager,
    pub preserve_fds: u32,
}

/// Namespaces in the order they are joined: user first for its
/// capabilities, mount last because it changes how paths resolve. pid is
/// joined by the parent, since it only applies to children.
const JOIN_ORDER: [(&str, libc::c_int); 7] = [
    ("user", libc::CLONE_NEWUSER),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
    ("mnt", libc::CLONE_NEWNS),
];

/// A namespace of the init's that is not already ours (setns into one's own
/// user namespace is EINVAL, and the others would be wasted work).
fn foreign_namespace(pid: Pid, name: &'static str) -> Result<Option<File>, JoinError> {
    let theirs = File::open(format!("/proc/{pid}/ns/{name}")).map_err(|source| JoinError::Open { name, pid, source })?;
    let same = match (std::fs::metadata(format!("/proc/self/ns/{name}")), theirs.metadata()) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    };
    Ok((!same).then_some(theirs))
}

/// Forks the process into the container and returns its pid once it has
/// execve'd (or the reason it could not).
pub fn spawn_in_container(plan: JoinPlan) -> Result<Pid, JoinError> {
    let mut joins = Vec::new();
    for (name, flag) in JOIN_ORDER {
        if let Some(file) = foreign_namespace(plan.init_pid, name)? {
            joins.push((file, CloneFlags::from_bits_retain(flag)));
        }
    }
    let own_pid_ns = File::open("/proc/self/ns/pid").map_err(|source| JoinError::Open { name: "pid", pid: Pid::this(), source })?;
    let their_pid_ns = foreign_namespace(plan.init_pid, "pid")?;
    if let Some(ns) = &their_pid_ns {
        nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWPID).map_err(JoinError::PidNamespace)?;
    }
    let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(JoinError::Pipe)?;
    // SAFETY: the runtime is single-threaded on this path.
    let fork = unsafe { nix::unistd::fork() };
    if their_pid_ns.is_some() {
        // Only our future children were affected; return before anything else forks.
        let _ = nix::sched::setns(own_pid_ns.as_fd(), CloneFlags::CLONE_NEWPID);
    }
    match fork.map_err(JoinError::Fork)? {
        ForkResult::Child => {
            drop(report_read);
            let err = become_process(&plan, &joins);
            let mut pipe = File::from(report_write);
            let _ = write!(pipe, "{}\n{}", err.exit_code(), err);
            // SAFETY: _exit skips the runtime's atexit handlers, as a failed exec should.
            unsafe { libc::_exit(err.exit_code()) }
        }
        ForkResult::Parent { child } => {
            drop(report_write);
            wait_for_exec(child, report_read)
        }
    }
}

/// The report pipe is close-on-exec: EOF with nothing written means the
/// execve succeeded.
fn wait_for_exec(child: Pid, report: OwnedFd) -> Result<Pid, JoinError> {
    let mut text = String::new();
    let _ = File::from(report).read_to_string(&mut text);
    if text.is_empty() {
        return Ok(child);
    }
    let _ = nix::sys::wait::waitpid(child, None);
    let (code, message) = text.split_once('\n').unwrap_or(("1", &text));
    Err(JoinError::Failed { message: message.to_string(), exit_code: code.parse().unwrap_or(1) })
}

fn become_process(plan: &JoinPlan, joins: &[(File, CloneFlags)]) -> UserProcessError {
    let fail = |what: &str, e: &dyn std::fmt::Display| UserProcessError::Setup(format!("{what}: {e}"));
    // SAFETY: prctl with integer arguments only. See init.rs for why.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if let Err(e) = plan.cgroup.add_task(Pid::this()) {
        return fail("join container cgroup", &e);
    }
    for (file, flag) in joins {
        if let Err(e) = nix::sched::setns(file.as_fd(), *flag) {
            return fail(&format!("join namespace {flag:?}"), &e);
        }
    }
    if let Some(socket) = &plan.console {
        if let Err(e) = crate::console::setup_terminal(socket, plan.process.console_size().as_ref().map(|b| (b.height() as u16, b.width() as u16))) {
            return fail("console", &e);
        }
    }
    let run = || -> Result<Executable, UserProcessError> {
        user_process::apply_limits(plan.process)?;
        user_process::chdir(plan.process)?;
        let executable = Executable::resolve(plan.process)?;
        user_process::become_user_process(plan.process, plan.seccomp)?;
        Ok(executable)
    };
    match run() {
        Ok(executable) => {
            user_process::close_fds_on_exec(plan.preserve_fds);
            executable.exec()
        }
        Err(e) => e,
    }
}
