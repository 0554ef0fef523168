//! The container's init, from the moment it is cloned until it becomes the
//! container's first process. It runs in a copy of the runtime's memory
//! (there is no re-exec of minirun), single-threaded, and reports every
//! failure to the runtime over the channel before it exits.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use super::channel::{FromInit, InitSide, ToInit};
use super::user_process::{self, Executable};
use crate::hooks;
use crate::namespaces::{self, NamespacePlan};
use crate::seccomp::SeccompProgram;

/// How the init waits for `start`.
pub enum StartGate {
    /// `create`: open the exec fifo (held as an O_PATH fd) for writing, which
    /// blocks until `minirun start` opens it for reading.
    Fifo(OwnedFd),
    /// `run`: the runtime that made us says Start over the channel.
    Channel,
}

/// What the runtime prepared for the init before cloning it.
pub struct InitPlan<'a> {
    pub spec: &'a Spec,
    pub process: &'a Process,
    pub rootfs: PathBuf,
    pub namespaces: &'a NamespacePlan,
    pub seccomp: Option<&'a SeccompProgram>,
    pub console: Option<UnixStream>,
    /// fds to become the init's stdin, stdout and stderr instead of ours.
    pub stdio: Option<[RawFd; 3]>,
    pub gate: StartGate,
    pub preserve_fds: u32,
    /// runc's --no-pivot: MS_MOVE and chroot instead of pivot_root.
    pub no_pivot: bool,
    pub cgroup_host_paths: Vec<(String, PathBuf)>,
    /// The hooks' state JSON, with the pid left to fill in.
    pub hook_state: serde_json::Value,
}

/// Runs the init and never returns.
pub fn run(plan: InitPlan, channel: InitSide) -> ! {
    match prepare(&plan, &channel) {
        Ok(executable) => {
            let mut started = None;
            let err = start(&plan, executable, &mut started);
            match started {
                // `start` reads the fifo until EOF: what follows the gate byte is an error.
                Some(mut writer) => {
                    use std::io::Write;
                    let _ = write!(writer, "{err}");
                    eprintln!("minirun: container init: {err}");
                }
                // `run` still listens on the channel until we exec.
                None if matches!(plan.gate, StartGate::Channel) => {
                    let _ = channel.send(&FromInit::Error { message: err.to_string(), exit_code: err.exit_code() });
                }
                None => eprintln!("minirun: container init: {err}"),
            }
            // SAFETY: _exit is always safe; skips atexit handlers copied from the runtime.
            unsafe { libc::_exit(err.exit_code()) }
        }
        Err(failure) => {
            let _ = channel.send(&FromInit::Error { message: failure.message, exit_code: failure.exit_code });
            // SAFETY: as above.
            unsafe { libc::_exit(failure.exit_code) }
        }
    }
}

/// Why set-up failed, with the exit code a shell would give it.
struct SetupFailure {
    message: String,
    exit_code: i32,
}

impl From<&str> for SetupFailure {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

impl From<String> for SetupFailure {
    fn from(message: String) -> Self {
        SetupFailure { message, exit_code: 1 }
    }
}

fn prepare(plan: &InitPlan, channel: &InitSide) -> Result<Executable, SetupFailure> {
    if let Some(stdio) = plan.stdio {
        for (target, fd) in stdio.into_iter().enumerate() {
            // dup2 onto itself would keep close-on-exec; the caller never
            // hands us 0, 1 or 2 in their own places.
            nix::unistd::dup2(fd, target as RawFd).map_err(|e| format!("dup2 stdio: {e}"))?;
        }
    }
    close_inherited_fds(plan, channel);
    // If the runtime dies during set-up, so do we: nothing half-made survives.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        // Container processes must not be able to open /proc/1/exe (the
        // minirun binary) while we are still minirun (CVE-2019-5736).
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let host_pid = match channel.recv().map_err(|e| e.to_string())? {
        ToInit::Go { host_pid } => host_pid,
        other => return Err(format!("unexpected {other:?} before Go").into()),
    };
    let ns = plan.namespaces;
    if ns.creates(LinuxNamespaceType::User) {
        // In a new user namespace we are nobody until we take the mapped root.
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).map_err(|e| format!("setgid 0 in user namespace: {e}"))?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).map_err(|e| format!("setuid 0 in user namespace: {e}"))?;
    }
    for join in ns.join.iter().filter(|j| !matches!(j.kind, LinuxNamespaceType::Pid | LinuxNamespaceType::Time)) {
        namespaces::join(join).map_err(|e| e.to_string())?;
    }
    namespaces::unshare(ns.unshare_flags()).map_err(|e| e.to_string())?;
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    if ns.creates(LinuxNamespaceType::Network) {
        minirun_netsetup::loopback_up().map_err(|e| e.to_string())?;
    }
    set_names(plan.spec, ns)?;
    if !ns.isolates(LinuxNamespaceType::Mount) {
        return Err("a mount namespace is required (add {\"type\": \"mount\"} to linux.namespaces)".into());
    }
    let rootfs_config = minirun_rootfs::RootfsConfig {
        spec: plan.spec,
        rootfs: plan.rootfs.clone(),
        new_user_ns: ns.isolates(LinuxNamespaceType::User),
        new_cgroup_ns: ns.isolates(LinuxNamespaceType::Cgroup),
        cgroup_host_paths: plan.cgroup_host_paths.clone(),
    };
    minirun_rootfs::prepare_rootfs(&rootfs_config).map_err(|e| e.to_string())?;

    let mut state = plan.hook_state.clone();
    state["pid"] = host_pid.into();
    let hooks = plan.spec.hooks().as_ref();
    if hooks.is_some_and(|h| h.prestart().is_some() || h.create_runtime().is_some()) {
        channel.send(&FromInit::MountsReady).map_err(|e| e.to_string())?;
        match channel.recv().map_err(|e| e.to_string())? {
            ToInit::HooksDone => {}
            other => return Err(format!("unexpected {other:?} while hooks ran").into()),
        }
    }
    if let Some(h) = hooks {
        hooks::run_hooks("createContainer", h.create_container().as_ref(), &state.to_string()).map_err(|e| e.to_string())?;
    }

    minirun_rootfs::pivot_into(&plan.rootfs, plan.no_pivot).map_err(|e| e.to_string())?;
    // Before finalize: /proc/sys is usually among the read-only paths.
    write_sysctls(plan.spec)?;
    minirun_rootfs::finalize_rootfs(plan.spec).map_err(|e| e.to_string())?;
    if let Some(socket) = &plan.console {
        let size = plan.process.console_size().as_ref().map(|b| (b.height() as u16, b.width() as u16));
        crate::console::setup_terminal(socket, size).map_err(|e| e.to_string())?;
    }
    user_process::apply_limits(plan.process).map_err(|e| e.to_string())?;
    // cwd is checked now so a bad one fails `create`; it is set again after
    // the user switch.
    user_process::chdir(plan.process).map_err(|e| e.to_string())?;
    let executable = Executable::resolve(plan.process).map_err(|e| SetupFailure { message: e.to_string(), exit_code: e.exit_code() })?;

    if matches!(plan.gate, StartGate::Fifo(_)) {
        // The runtime exits after Ready: from here on we must outlive it.
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
    }
    channel.send(&FromInit::Ready).map_err(|e| e.to_string())?;
    if let StartGate::Channel = plan.gate {
        match channel.recv().map_err(|e| e.to_string())? {
            ToInit::Start { detach } => {
                if detach {
                    // SAFETY: prctl with integer arguments only.
                    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
                }
            }
            other => return Err(format!("unexpected {other:?} instead of Start").into()),
        }
    }
    Ok(executable)
}

/// Past the gate: the startContainer hooks, the user switch, execve. The
/// runtime learns that execve happened when the close-on-exec end it watches
/// (the fifo writer or the channel) closes without an error on it.
fn start(plan: &InitPlan, executable: Executable, started: &mut Option<std::fs::File>) -> user_process::UserProcessError {
    let fail = user_process::UserProcessError::Setup;
    if let StartGate::Fifo(fd) = &plan.gate {
        match wait_for_start(fd) {
            Ok(writer) => *started = Some(writer),
            Err(e) => return fail(format!("waiting for start: {e}")),
        }
    }
    let mut state = plan.hook_state.clone();
    state["pid"] = 1.into();
    state["status"] = "created".into();
    if let Some(h) = plan.spec.hooks() {
        if let Err(e) = hooks::run_hooks("startContainer", h.start_container().as_ref(), &state.to_string()) {
            return fail(e.to_string());
        }
    }
    if let Err(e) = user_process::become_user_process(plan.process, plan.seccomp) {
        return e;
    }
    user_process::close_fds_on_exec(plan.preserve_fds);
    executable.exec()
}

/// We are a clone of the runtime, not a new program: every fd it had is
/// ours too, among them the flock'ed state dir, which would keep every later
/// command on this container waiting for as long as we live. Only what the
/// init needs, stdio and the fds the caller asked to preserve stay open.
fn close_inherited_fds(plan: &InitPlan, channel: &InitSide) {
    let mut keep = vec![channel.as_raw_fd()];
    keep.extend(plan.namespaces.join.iter().map(|j| j.file.as_raw_fd()));
    keep.extend(plan.console.as_ref().map(|c| c.as_raw_fd()));
    if let StartGate::Fifo(fd) = &plan.gate {
        keep.push(fd.as_raw_fd());
    }
    user_process::close_fds_except(3 + plan.preserve_fds as i32, &keep);
}

/// Opening the fifo for writing blocks until `start` opens it for reading.
/// It is reopened through /proc/self/fd because its path lies outside the
/// container's root, which we have pivoted into. The writer stays open
/// (close-on-exec) so that `start` sees EOF exactly when execve happens.
fn wait_for_start(fifo: &OwnedFd) -> std::io::Result<std::fs::File> {
    use std::io::Write;
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let mut writer = std::fs::OpenOptions::new().write(true).open(path)?;
    writer.write_all(b"0")?;
    Ok(writer)
}

fn set_names(spec: &Spec, ns: &NamespacePlan) -> Result<(), String> {
    let own_uts = ns.isolates(LinuxNamespaceType::Uts);
    if let Some(hostname) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        if !own_uts {
            return Err("hostname is set but the container has no UTS namespace of its own".into());
        }
        nix::unistd::sethostname(hostname).map_err(|e| format!("sethostname {hostname:?}: {e}"))?;
    }
    if let Some(domain) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        if !own_uts {
            return Err("domainname is set but the container has no UTS namespace of its own".into());
        }
        // SAFETY: the pointer and length describe a live byte slice.
        let rc = unsafe { libc::setdomainname(domain.as_ptr().cast(), domain.len()) };
        nix::errno::Errno::result(rc).map_err(|e| format!("setdomainname {domain:?}: {e}"))?;
    }
    Ok(())
}

/// `linux.sysctl`, written through the container's own /proc so that
/// namespaced keys (net.*, kernel.shm*, ...) land in its namespaces.
fn write_sysctls(spec: &Spec) -> Result<(), String> {
    let sysctls = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    for (key, value) in sysctls.into_iter().flatten() {
        if key.split(['.', '/']).any(|part| part.is_empty() || part == "..") {
            return Err(format!("invalid sysctl key {key:?}"));
        }
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| format!("sysctl {key}={value}: {e}"))?;
    }
    Ok(())
}
