//! The last steps of every container process, shared by a container's init
//! and by `exec`: limits, identity, capabilities, no_new_privs, seccomp, and
//! the execve itself.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;
use oci_spec::runtime::{PosixRlimitType, Process};
use thiserror::Error;

use crate::capabilities::{self, CapabilityError};
use crate::seccomp::{SeccompError, SeccompProgram};

#[derive(Debug, Error)]
pub enum UserProcessError {
    #[error("process.args must name a program to run")]
    NoArgs,
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("exec: {0:?}: permission denied")]
    NotExecutable(String),
    #[error("argument, environment variable or path contains a NUL byte: {0:?}")]
    Nul(String),
    #[error("set rlimit {kind:?}: {source}")]
    Rlimit { kind: PosixRlimitType, source: nix::Error },
    #[error("write oom_score_adj: {0}")]
    OomScore(std::io::Error),
    #[error("chdir to cwd {path}: {source}")]
    Cwd { path: PathBuf, source: nix::Error },
    #[error("cwd {path} is outside the container's root")]
    CwdOutsideRoot { path: PathBuf },
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    #[error("set no_new_privs: {0}")]
    NoNewPrivs(nix::Error),
    #[error("seccomp: {0}")]
    Seccomp(#[from] SeccompError),
    #[error("exec {path:?}: {source}")]
    Exec { path: String, source: nix::Error },
    /// A step between the start gate and execve (hooks, namespaces, console).
    #[error("{0}")]
    Setup(String),
}

impl UserProcessError {
    /// The exit code of a process that failed here, as a shell would give.
    pub fn exit_code(&self) -> i32 {
        match self {
            UserProcessError::NotFound(_) => super::EXIT_NOT_FOUND,
            UserProcessError::NotExecutable(_) => super::EXIT_CANNOT_EXECUTE,
            UserProcessError::Exec { source: nix::errno::Errno::ENOENT, .. } => super::EXIT_NOT_FOUND,
            UserProcessError::Exec { .. } => super::EXIT_CANNOT_EXECUTE,
            _ => 1,
        }
    }
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn cstring(s: impl AsRef<[u8]>) -> Result<CString, UserProcessError> {
    CString::new(s.as_ref()).map_err(|_| UserProcessError::Nul(String::from_utf8_lossy(s.as_ref()).into_owned()))
}

/// Everything execve needs, resolved while errors can still be reported to
/// the caller (before `start`, as runc does: a missing program fails
/// `create`, not the container later).
pub struct Executable {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

impl Executable {
    /// Looks `args[0]` up in the process's own $PATH, inside the current root.
    pub fn resolve(process: &Process) -> Result<Self, UserProcessError> {
        let args = process.args().as_deref().unwrap_or_default();
        let program = args.first().ok_or(UserProcessError::NoArgs)?;
        let env = process.env().as_deref().unwrap_or_default();
        let path = if program.contains('/') {
            check_executable(Path::new(program), program)?;
            PathBuf::from(program)
        } else {
            let search = env.iter().find_map(|kv| kv.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
            find_in_path(program, search)?
        };
        let mut envp: Vec<CString> = env.iter().map(cstring).collect::<Result<_, _>>()?;
        if !env.iter().any(|kv| kv.starts_with("HOME=")) {
            // As runc: programs and shells expect HOME, and images rarely set it.
            envp.push(cstring(format!("HOME={}", home_of(process.user().uid())))?);
        }
        Ok(Executable { path: cstring(path.as_os_str().as_bytes())?, argv: args.iter().map(cstring).collect::<Result<_, _>>()?, envp })
    }

    /// Replaces this process. Only returns on failure.
    pub fn exec(&self) -> UserProcessError {
        let err = nix::unistd::execve(&self.path, &self.argv, &self.envp).unwrap_err();
        UserProcessError::Exec { path: self.path.to_string_lossy().into_owned(), source: err }
    }
}

/// The user's home in the container's /etc/passwd (we are past pivot_root),
/// or "/" for a user it does not list.
fn home_of(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() >= 6 && fields[2].parse() == Ok(uid))
        .map(|fields| fields[5].to_string())
        .filter(|home| !home.is_empty())
        .unwrap_or_else(|| "/".into())
}

fn check_executable(path: &Path, program: &str) -> Result<(), UserProcessError> {
    use nix::unistd::{access, AccessFlags};
    match std::fs::metadata(path) {
        Err(_) => Err(UserProcessError::NotFound(program.to_string())),
        Ok(m) if m.is_dir() => Err(UserProcessError::NotExecutable(program.to_string())),
        Ok(_) => access(path, AccessFlags::X_OK).map_err(|_| UserProcessError::NotExecutable(program.to_string())),
    }
}

fn find_in_path(program: &str, search: &str) -> Result<PathBuf, UserProcessError> {
    let mut denied = false;
    for dir in search.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(program);
        match check_executable(&candidate, program) {
            Ok(()) => return Ok(candidate),
            Err(UserProcessError::NotExecutable(_)) => denied = true,
            Err(_) => {}
        }
    }
    Err(if denied { UserProcessError::NotExecutable(program.to_string()) } else { UserProcessError::NotFound(program.to_string()) })
}

/// rlimits, umask and OOM score: things that are still allowed while we are
/// root in the container, before the user switch.
pub fn apply_limits(process: &Process) -> Result<(), UserProcessError> {
    for rlimit in process.rlimits().iter().flatten() {
        let kind = rlimit.typ();
        let resource = rlimit_resource(kind);
        let limit = libc::rlimit { rlim_cur: rlimit.soft(), rlim_max: rlimit.hard() };
        // SAFETY: setrlimit reads one rlimit struct.
        let rc = unsafe { libc::setrlimit(resource, &limit) };
        nix::errno::Errno::result(rc).map_err(|source| UserProcessError::Rlimit { kind, source })?;
    }
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(UserProcessError::OomScore)?;
    }
    if let Some(umask) = process.user().umask() {
        nix::sys::stat::umask(Mode::from_bits_truncate(umask));
    }
    Ok(())
}

fn rlimit_resource(kind: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match kind {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn chdir(process: &Process) -> Result<(), UserProcessError> {
    let path = process.cwd();
    nix::unistd::chdir(path).map_err(|source| UserProcessError::Cwd { path: path.clone(), source })?;
    // CVE-2024-21626: until execve our own fds are open, so a cwd such as
    // /proc/self/fd/7 would follow one of them to a directory outside the
    // container's root, and the program would start there. The kernel tells
    // such a cwd apart (getcwd fails with ENOENT: "unreachable").
    match nix::unistd::getcwd() {
        Ok(_) => Ok(()),
        Err(nix::errno::Errno::ENOENT) => Err(UserProcessError::CwdOutsideRoot { path: path.clone() }),
        Err(source) => Err(UserProcessError::Cwd { path: path.clone(), source }),
    }
}

/// Drops to the container's user and capabilities, then no_new_privs and
/// seccomp. Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, so it
/// goes before the capabilities are dropped (as runc does); with it, the
/// filter goes last so it constrains as little of our own set-up as possible.
pub fn become_user_process(process: &Process, seccomp: Option<&SeccompProgram>) -> Result<(), UserProcessError> {
    let caps = process.capabilities().as_ref();
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    capabilities::drop_bounding(caps)?;
    if let (Some(filter), false) = (seccomp, no_new_privs) {
        filter.install()?;
    }
    // A cwd the new user can reach but root cannot (root squashed over NFS)
    // is retried after the switch.
    let cwd_as_root = chdir(process);
    capabilities::switch_user(process.user())?;
    if cwd_as_root.is_err() {
        chdir(process)?;
    }
    capabilities::apply_sets(caps)?;
    if no_new_privs {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        nix::errno::Errno::result(rc).map_err(UserProcessError::NoNewPrivs)?;
        if let Some(filter) = seccomp {
            filter.install()?;
        }
    }
    Ok(())
}

/// Nothing of the runtime's or of its caller's (containerd's shim passes an
/// extra fd 3) may reach the container: every fd above stdio and the
/// preserved ones gets close-on-exec.
pub fn close_fds_on_exec(preserve_fds: u32) {
    let first = 3 + preserve_fds;
    // SAFETY: close_range only changes fd flags.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if rc != 0 {
        // Kernels before 5.11: walk /proc/self/fd instead.
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
            for fd in fds.into_iter().filter(|fd| *fd >= first as i32) {
                // SAFETY: only sets FD_CLOEXEC.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
}

/// Closes every fd from `first` up, except those in `keep`.
pub fn close_fds_except(first: i32, keep: &[i32]) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    // Collected first: closing while reading the directory would close its own fd.
    let fds: Vec<i32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    for fd in fds.into_iter().filter(|fd| *fd >= first && !keep.contains(fd)) {
        // SAFETY: the fd is ours; anything still using it was inherited and is not needed.
        unsafe { libc::close(fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_lookup_finds_sh_and_reports_missing() {
        assert!(find_in_path("sh", "/nonexistent:/bin:/usr/bin").is_ok());
        assert!(matches!(find_in_path("no-such-program-xyz", "/bin"), Err(UserProcessError::NotFound(_))));
        // A directory is found but cannot be executed.
        assert!(matches!(find_in_path("tmp", "/"), Err(UserProcessError::NotExecutable(_))));
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(UserProcessError::NotFound("x".into()).exit_code(), 127);
        assert_eq!(UserProcessError::NotExecutable("x".into()).exit_code(), 126);
    }
}
