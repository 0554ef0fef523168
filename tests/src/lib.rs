//! Helpers shared by the integration tests: they drive the built `minirun`
//! binary (path in $MINIRUN, else the workspace's debug or release build)
//! as root, on busybox bundles, each test with its own `--root` and names
//! made unique by the test process's pid, and clean up even when they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Tests need root; under any other user they say so and pass vacuously.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

pub fn minirun_bin() -> PathBuf {
    if let Ok(p) = std::env::var("MINIRUN") {
        return PathBuf::from(p);
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    for profile in ["release", "debug"] {
        let p = target.join(profile).join("minirun");
        if p.exists() {
            return p;
        }
    }
    panic!("minirun binary not found: build it or set MINIRUN");
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `mrt<pid>-<n>-<tag>`: unique across parallel tests and test processes.
pub fn unique_name(tag: &str) -> String {
    format!("mrt{}-{}-{tag}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A `--root` of our own, and every container created through it deleted
/// on drop (with --force), so a failing test leaves nothing running.
pub struct Runtime {
    root: tempfile::TempDir,
    ids: std::cell::RefCell<Vec<String>>,
    pids: std::cell::RefCell<Vec<i32>>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn new() -> Self {
        // A created container's init outlives `create` and is reparented to
        // us, not to pid 1 (which reaps nothing here): we reap it on drop.
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        Runtime { root: tempfile::Builder::new().prefix("minirun-test-root").tempdir().unwrap(), ids: Default::default(), pids: Default::default() }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `minirun oci --root R ARGS...`
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(minirun_bin());
        c.arg("oci").arg("--root").arg(self.root.path());
        c
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(out.status.success(), "minirun {args:?} failed ({}): {}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Remembers `id` for clean-up.
    pub fn track(&self, id: &str) {
        self.ids.borrow_mut().push(id.to_string());
    }

    /// `create`, with the container's stdio in files of the bundle
    /// (`stdout`, `stderr`): a created init keeps its stdio open, so pipes
    /// would never reach EOF. Returns create's own exit status and stderr.
    pub fn create(&self, bundle: &Bundle, id: &str) -> Output {
        self.create_with(bundle, id, &[])
    }

    pub fn create_with(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
        self.track(id);
        let stdout = std::fs::File::create(bundle.path().join("stdout")).unwrap();
        let stderr = std::fs::File::create(bundle.path().join("stderr")).unwrap();
        let status = self
            .cmd()
            .arg("create")
            .arg("--bundle")
            .arg(bundle.path())
            .args(extra)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .status()
            .unwrap();
        Output { status, stdout: Vec::new(), stderr: std::fs::read(bundle.path().join("stderr")).unwrap() }
    }

    /// `run --detach`, stdio in files of the bundle as for `create`.
    pub fn run_detached(&self, bundle: &Bundle, id: &str) {
        let out = self.create_with(bundle, id, &[]);
        assert!(out.status.success(), "create {id}: {}", String::from_utf8_lossy(&out.stderr));
        self.ok(&["start", id]);
    }

    pub fn state(&self, id: &str) -> Option<Value> {
        let out = self.output(&["state", id]);
        let state: Value = out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("state prints JSON"))?;
        if let Some(pid) = state["pid"].as_i64().filter(|p| *p > 0) {
            self.pids.borrow_mut().push(pid as i32);
        }
        Some(state)
    }

    pub fn status(&self, id: &str) -> Option<String> {
        self.state(id).map(|s| s["status"].as_str().unwrap().to_string())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.output(&["delete", "--force", id]);
        }
        for pid in self.pids.borrow().iter() {
            // SAFETY: reaps only a pid we saw as a container's init.
            unsafe { libc::waitpid(*pid, std::ptr::null_mut(), libc::WNOHANG) };
        }
    }
}

/// A busybox bundle: rootfs with /bin/busybox and its applets, and a
/// config.json like `runc spec` makes, without a terminal.
pub struct Bundle {
    dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    pub fn busybox(args: &[&str]) -> Self {
        let dir = tempfile::Builder::new().prefix("minirun-test-bundle").tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "var/www"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static is installed (make deps)");
        // Relative links: `busybox --install -s` would point them at the host path.
        let applets = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&applets.stdout).lines().filter(|a| *a != "busybox") {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n").unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").unwrap();
        let config = default_config(args);
        let bundle = Bundle { dir, config };
        bundle.save();
        bundle
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Writes `self.config` to config.json; call after changing it.
    pub fn save(&self) {
        std::fs::write(self.dir.path().join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
    }
}

fn default_config(args: &[&str]) -> Value {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"];
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": "minirun-test",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] }
        ],
        "linux": {
            "namespaces": [{ "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// Host cgroup dirs named after a test id (to check nothing is left).
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else { return found };
    for h in hierarchies.flatten() {
        let mut stack = vec![h.path()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    if e.file_name().to_string_lossy().contains(name) {
                        found.push(e.path());
                    }
                    if dir.components().count() < 7 {
                        stack.push(e.path());
                    }
                }
            }
        }
    }
    found
}
