//! CVE-2019-5736: a container must not be able to overwrite the minirun
//! binary on the host.
//!
//! Every process minirun puts into a container starts as a clone of minirun
//! and execs the container's program from there. If that program is a
//! script starting with `#!/proc/self/exe`, the kernel resolves the
//! interpreter in minirun's own context and runs the host's minirun binary
//! inside the container, where the container's other processes can open
//! `/proc/<pid>/exe` and write to it once it exits.
//!
//! So before a verb that makes container processes, minirun re-executes
//! itself from a private, detached, read-only bind mount of its own binary
//! (`open_tree` + `mount_setattr`): `/proc/<pid>/exe` of every process it
//! makes then leads to that mount, and opening it for writing fails with
//! EROFS. No copy is made, so the page cache stays shared with the binary
//! (runc 1.1's memfd copy costs every container the binary's size), and
//! the mount is attached nowhere, so nothing shows in any mount table or
//! propagates. Where the new mount API is refused (older kernels, no
//! CAP_SYS_ADMIN), a sealed memfd copy is the fallback.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// Set across the re-exec so that a second failure to see a protected
/// binary is an error rather than an endless loop.
const REEXEC_MARK: &str = "_MINIRUN_EXE_GUARDED";

/// The verbs whose process makes or joins containers: the OCI `create`,
/// `run` and `exec`, the front end's `run` and `exec`, and the detached
/// monitor. Matching any argument (not only the verb's position, which
/// global flags with values move) only errs on the side of protecting.
const GUARDED_VERBS: &[&str] = &["create", "run", "exec", "__monitor"];

pub fn needs_guard(args: &[OsString]) -> bool {
    args.iter().skip(1).any(|a| GUARDED_VERBS.iter().any(|verb| a.as_bytes() == verb.as_bytes()))
}

/// Re-executes the current process from a read-only view of its own binary,
/// unless it already runs from one. Returns only when nothing needs doing;
/// otherwise it either execs or fails.
pub fn ensure_read_only_exe(args: &[OsString]) -> io::Result<()> {
    let marked = std::env::var_os(REEXEC_MARK).is_some();
    // SAFETY: called from main before any thread exists.
    unsafe { std::env::remove_var(REEXEC_MARK) };
    let exe = File::open("/proc/self/exe")?;
    if runs_read_only(&exe)? {
        name_after(args);
        return Ok(());
    }
    if marked {
        return Err(io::Error::other("re-executed, yet /proc/self/exe is still writable"));
    }
    let protected = match read_only_bind_of(&exe) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM | libc::EINVAL)) => sealed_copy_of(&exe)?,
        Err(e) => return Err(e),
    };
    drop(exe);
    // SAFETY: still single-threaded (see above).
    unsafe { std::env::set_var(REEXEC_MARK, "1") };
    Err(exec_fd(&protected, args))
}

/// An exec through an fd or /proc/self/exe names the process "4" or "exe"
/// (its comm, what ps and top show): it gets its own name back.
fn name_after(args: &[OsString]) {
    let Some(name) = args.first().and_then(|a| std::path::Path::new(a).file_name()) else { return };
    // The kernel keeps the first 15 bytes.
    if let Ok(name) = CString::new(name.as_bytes()) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string that outlives the call.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    }
}

/// Already protected: started from a read-only mount (ours, or a binary
/// installed on a read-only file system) or from a sealed memfd.
fn runs_read_only(exe: &File) -> io::Result<bool> {
    let stat = nix::sys::statvfs::fstatvfs(exe).map_err(io::Error::from)?;
    if stat.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Ok(true);
    }
    // SAFETY: F_GET_SEALS only reads the seals; EINVAL for non-memfd files.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    Ok(seals >= 0 && seals & libc::F_SEAL_WRITE != 0)
}

fn read_only_bind_of(exe: &File) -> io::Result<OwnedFd> {
    let empty = c"";
    // SAFETY: open_tree with AT_EMPTY_PATH on our own fd; the result is a new fd.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            exe.as_raw_fd(),
            empty.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    };
    if tree < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: attr lives across the call and its size is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
}

fn sealed_copy_of(exe: &File) -> io::Result<OwnedFd> {
    // SAFETY: memfd_create returns a new fd or -1.
    let memfd = unsafe { libc::memfd_create(c"minirun".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if memfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us.
    let mut copy = unsafe { File::from_raw_fd(memfd) };
    io::copy(&mut &*exe, &mut copy)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: adds seals to a memfd we own.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OwnedFd::from(copy))
}

/// Execs the binary behind `fd` with the same argv and environment; returns
/// only the error.
fn exec_fd(fd: &OwnedFd, args: &[OsString]) -> io::Error {
    let to_c = |s: &[u8]| CString::new(s).map_err(|_| io::Error::other("NUL in an argument"));
    let argv: Vec<CString> = match args.iter().map(|a| to_c(a.as_bytes())).collect() {
        Ok(argv) => argv,
        Err(e) => return e,
    };
    let envp: Vec<CString> = match std::env::vars_os()
        .map(|(k, v)| to_c(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect()
    {
        Ok(envp) => envp,
        Err(e) => return e,
    };
    let ptrs = |v: &[CString]| v.iter().map(|s| s.as_ptr().cast_mut()).chain(std::iter::once(std::ptr::null_mut())).collect::<Vec<_>>();
    let (argv_ptrs, envp_ptrs) = (ptrs(&argv), ptrs(&envp));
    // SAFETY: NUL-terminated arrays of C strings that outlive the call.
    unsafe { libc::execveat(fd.as_raw_fd(), c"".as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr(), libc::AT_EMPTY_PATH) };
    io::Error::last_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_container_making_verbs_are_guarded() {
        assert!(needs_guard(&args(&["minirun", "run", "-d", "busybox"])));
        assert!(needs_guard(&args(&["minirun-runc", "--root", "/r", "create", "--bundle", "b", "x"])));
        assert!(needs_guard(&args(&["minirun", "exec", "x", "sh"])));
        assert!(needs_guard(&args(&["minirun", "__monitor", "abc"])));
        assert!(!needs_guard(&args(&["minirun", "ps", "-a"])));
        assert!(!needs_guard(&args(&["minirun-runc", "state", "x"])));
        // The binary's own name is never a verb.
        assert!(!needs_guard(&args(&["run"])));
    }
}
