//! Shared helpers for the root-only rootfs tests: a busybox rootfs, running
//! set-up code in a forked child with its own mount namespace, and host-side
//! leak checks.

#![allow(dead_code)]

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const BUSYBOX: &str = "/bin/busybox";

/// Root tests need CAP_SYS_ADMIN and a static busybox; without them they are
/// skipped with a note rather than failed.
pub fn can_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: needs root");
        return false;
    }
    if !wait_for_busybox() {
        eprintln!("skipping {test}: {BUSYBOX} is missing (apt-get install busybox-static)");
        return false;
    }
    true
}

/// busybox-static may still be being installed by another process; give it
/// a moment, then try installing it ourselves.
fn wait_for_busybox() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(find_or_install_busybox)
}

fn find_or_install_busybox() -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if Path::new(BUSYBOX).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let _ = std::process::Command::new("apt-get")
        .args(["install", "-y", "busybox-static"])
        .status();
    Path::new(BUSYBOX).exists()
}

/// A minimal rootfs: busybox and the directories an image usually has.
pub fn busybox_rootfs(parent: &Path) -> PathBuf {
    let rootfs = parent.join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "mnt"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs dir");
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("copy busybox");
    for applet in [
        "sh", "ls", "cat", "test", "[", "echo", "touch", "grep", "stat", "readlink", "mount",
    ] {
        symlink("busybox", rootfs.join("bin").join(applet)).expect("applet symlink");
    }
    rootfs.canonicalize().expect("canonical rootfs")
}

/// Runs `f` in a forked child that has its own mount namespace and returns
/// (exit code, everything the child reported). The child's stdout/stderr are
/// redirected into a pipe so that its messages (and those of programs it
/// runs) reach the assertion message.
pub fn in_child(f: impl FnOnce(&mut Report) -> i32) -> (i32, String) {
    let (r, w) = pipe();
    // SAFETY: the child only runs the closure and then _exits; it never
    // returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        drop(r);
        // SAFETY: plain dup2 of valid fds.
        unsafe {
            libc::dup2(w.as_raw_fd(), 1);
            libc::dup2(w.as_raw_fd(), 2);
        }
        let mut report = Report { failures: 0 };
        let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut report))) {
            Ok(code) => code,
            Err(_) => {
                report.say("child panicked");
                101
            }
        };
        // SAFETY: leaving the forked child without running the harness's
        // atexit handlers or destructors.
        unsafe { libc::_exit(code) }
    }
    drop(w);
    let mut out = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut out);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    (code, out)
}

/// Close-on-exec, so that children forked by tests running in parallel do
/// not hold our write end open and delay our EOF.
fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2")
}

/// Collects check results in the child. Writes go straight to fd 2: the
/// test harness's captured stderr lives in the parent and its locks may have
/// been held by another thread at fork time.
pub struct Report {
    pub failures: u32,
}

impl Report {
    pub fn say(&mut self, msg: &str) {
        let line = format!("{msg}\n");
        // SAFETY: fd 2 is the pipe set up in in_child.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(2) };
        let _ = nix::unistd::write(fd, line.as_bytes());
    }

    pub fn check(&mut self, ok: bool, what: &str) {
        if !ok {
            self.failures += 1;
            self.say(&format!("FAILED: {what}"));
        }
    }

    pub fn code(&self) -> i32 {
        if self.failures == 0 {
            0
        } else {
            1
        }
    }
}

pub fn unshare_mount_ns(report: &mut Report) -> bool {
    match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS) {
        Ok(()) => true,
        Err(e) => {
            report.say(&format!("unshare(CLONE_NEWNS): {e}"));
            false
        }
    }
}

/// Mount points of the test's (host) mount namespace below `dir`.
pub fn host_mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.to_string_lossy().into_owned();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.starts_with(&dir))
        .map(str::to_string)
        .collect()
}

pub fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

// The width of f_type differs between architectures.
#[allow(clippy::unnecessary_cast)]
pub fn fs_magic(path: &str) -> Option<i64> {
    nix::sys::statfs::statfs(path)
        .ok()
        .map(|s| s.filesystem_type().0 as i64)
}

pub fn is_read_only(path: &str) -> bool {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        .unwrap_or(false)
}

pub fn flags_of(path: &str) -> nix::sys::statvfs::FsFlags {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.flags())
        .unwrap_or(nix::sys::statvfs::FsFlags::empty())
}

pub const TMPFS_MAGIC: i64 = 0x0102_1994;
pub const PROC_MAGIC: i64 = 0x9fa0;
pub const SYSFS_MAGIC: i64 = 0x6265_6572;
pub const DEVPTS_MAGIC: i64 = 0x1cd1;
pub const MQUEUE_MAGIC: i64 = 0x1980_0202;
pub const CGROUP_MAGIC: i64 = 0x0027_e0eb;
pub const CGROUP2_MAGIC: i64 = 0x6367_7270;

/// Runs `f` like `in_child`, but as root of a new user namespace (ids
/// 0-65535 mapped to the host's) and pid 1 of a new pid namespace, the way a
/// rootless-style container init runs. Before entering the user namespace a
/// private mount namespace gets a nosuid,nodev,noexec tmpfs at `locked_src`,
/// so that mounts copied into the user namespace carry locked flags.
pub fn in_userns_child(locked_src: &Path, f: impl FnOnce(&mut Report) -> i32) -> (i32, String) {
    let locked_src = locked_src.to_path_buf();
    in_child(move |r| {
        use nix::mount::{mount, MsFlags};
        use nix::sched::{unshare, CloneFlags};
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNS) {
            r.say(&format!("unshare(CLONE_NEWNS): {e}"));
            return 2;
        }
        let none: Option<&str> = None;
        if let Err(e) = mount(none, "/", none, MsFlags::MS_SLAVE | MsFlags::MS_REC, none) {
            r.say(&format!("make / rslave: {e}"));
            return 2;
        }
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if let Err(e) = mount(
            Some("tmpfs"),
            &locked_src,
            Some("tmpfs"),
            flags,
            Some("size=1m"),
        ) {
            r.say(&format!("mount locked tmpfs: {e}"));
            return 2;
        }
        let _ = std::fs::write(locked_src.join("data"), b"locked");

        let (to_helper_r, to_helper_w) = pipe();
        let (to_child_r, to_child_w) = pipe();
        let me = std::process::id();
        // SAFETY: the helper only does file writes and _exits.
        let helper = unsafe { libc::fork() };
        if helper == 0 {
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(to_helper_r.as_raw_fd(), &mut b);
            let ok = std::fs::write(format!("/proc/{me}/uid_map"), "0 0 65536\n").is_ok()
                && std::fs::write(format!("/proc/{me}/gid_map"), "0 0 65536\n").is_ok();
            let _ = nix::unistd::write(&to_child_w, if ok { b"1" } else { b"0" });
            // SAFETY: leaving the helper.
            unsafe { libc::_exit(0) }
        }
        drop(to_child_w);
        if let Err(e) = unshare(CloneFlags::CLONE_NEWUSER) {
            r.say(&format!("unshare(CLONE_NEWUSER): {e}"));
            return 2;
        }
        let _ = nix::unistd::write(&to_helper_w, b"x");
        let mut b = [0u8; 1];
        let _ = nix::unistd::read(to_child_r.as_raw_fd(), &mut b);
        // SAFETY: reaping our helper.
        unsafe { libc::waitpid(helper, std::ptr::null_mut(), 0) };
        if &b != b"1" {
            r.say("writing uid_map/gid_map failed");
            return 2;
        }
        if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
            r.say(&format!("unshare(CLONE_NEWPID): {e}"));
            return 2;
        }
        // SAFETY: the grandchild runs `f` and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(r))).unwrap_or(101);
            // SAFETY: leaving the grandchild.
            unsafe { libc::_exit(code) }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        }
    })
}
