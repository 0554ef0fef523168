//! Loads real filters into forked children.
//!
//! The children set no_new_privs first, which makes installing a filter
//! legal without CAP_SYS_ADMIN, so these run unprivileged too. After fork
//! in the (multi-threaded) test process a child may only make raw syscalls
//! and _exit; `install` does not allocate, and the programs are compiled
//! before forking.

use serde_json::json;

use super::*;

fn seccomp_available() -> bool {
    // SAFETY: PR_GET_SECCOMP takes no pointers.
    unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 }
}

/// Forks; the child runs `child` and exits with its return value. Returns
/// the raw wait status.
fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `child` (async-signal-safe by contract)
    // and then _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = child();
        // SAFETY: terminating the child without running atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    status
}

fn errno_now() -> i32 {
    // SAFETY: reading this thread's errno.
    unsafe { *libc::__errno_location() }
}

fn set_no_new_privs() -> bool {
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 }
}

#[test]
fn kernel_runs_compiled_filter() {
    if !seccomp_available() {
        eprintln!("skipping: kernel without seccomp");
        return;
    }
    let magic: u64 = 0xdead_0000_0001;
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [
            {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42,
             "args": [{"index": 0, "value": magic, "op": "SCMP_CMP_EQ"}]},
            {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 43},
        ]
    }));
    let status = in_child(|| {
        if !set_no_new_privs() {
            return 10;
        }
        if prog.install().is_err() {
            return 11;
        }
        // SAFETY: raw syscalls with integer arguments / a valid buffer.
        unsafe {
            // High word set: must hit the rule.
            if libc::syscall(libc::SYS_getpgid, magic) != -1 || errno_now() != 42 {
                return 12;
            }
            // Same low word, no high word: the rule must not match.
            let r = libc::syscall(libc::SYS_getpgid, magic & 0xffff_ffff);
            if r == -1 && errno_now() == 42 {
                return 13;
            }
            if libc::syscall(libc::SYS_getpgid, 0) < 0 {
                return 14;
            }
            let mut uts: libc::utsname = std::mem::zeroed();
            if libc::syscall(libc::SYS_uname, &mut uts as *mut libc::utsname) != -1
                || errno_now() != 43
            {
                return 15;
            }
        }
        0
    });
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child check failed");
}

#[test]
fn kernel_kills_on_kill_process() {
    if !seccomp_available() {
        eprintln!("skipping: kernel without seccomp");
        return;
    }
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]
    }));
    let status = in_child(|| {
        if !set_no_new_privs() || prog.install().is_err() {
            return 10;
        }
        // SAFETY: raw syscall without arguments.
        unsafe { libc::syscall(libc::SYS_getppid) };
        20
    });
    assert!(
        libc::WIFSIGNALED(status),
        "child was not killed: status {status:#x}"
    );
    assert_eq!(libc::WTERMSIG(status), libc::SIGSYS);
}

#[test]
fn kernel_accepts_docker_profile() {
    if !seccomp_available() {
        eprintln!("skipping: kernel without seccomp");
        return;
    }
    let cfg: LinuxSeccomp =
        serde_json::from_str(include_str!("../testdata/docker-default-amd64.json")).unwrap();
    let prog = compile(&cfg).unwrap();
    let status = in_child(|| {
        if !set_no_new_privs() || prog.install().is_err() {
            return 10;
        }
        // SAFETY: raw syscalls with integer arguments.
        unsafe {
            if libc::syscall(libc::SYS_getpid) <= 0 {
                return 11;
            }
            if libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno_now() != libc::EPERM {
                return 12;
            }
            if libc::syscall(libc::SYS_clone3, 0, 0) != -1 || errno_now() != libc::ENOSYS {
                return 13;
            }
        }
        0
    });
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child check failed");
}
