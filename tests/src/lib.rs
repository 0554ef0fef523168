//! Helpers shared by the integration tests: they drive the built `minirun`
//! binary (path in $MINIRUN, else the workspace's debug or release build)
//! as root, on busybox bundles, each test with its own `--root` and names
//! made unique by the test process's pid, and clean up even when they fail.

pub mod front;

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
    binary: PathBuf,
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
        Self::with_binary(minirun_bin())
    }

    /// The same, driving another minirun binary (a copy a test may damage).
    pub fn with_binary(binary: PathBuf) -> Self {
        // A created container's init outlives `create` and is reparented to
        // us, not to pid 1 (which reaps nothing here): we reap it on drop.
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        Runtime { binary, root: tempfile::Builder::new().prefix("minirun-test-root").tempdir().unwrap(), ids: Default::default(), pids: Default::default() }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `minirun oci --root R ARGS...`
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.binary);
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
        self.create_global(&[], bundle, id, extra)
    }

    /// `run --detach`, stdio in files of the bundle as for `create`.
    pub fn run_detached(&self, bundle: &Bundle, id: &str) {
        let out = self.create_with(bundle, id, &[]);
        assert!(out.status.success(), "create {id}: {}", String::from_utf8_lossy(&out.stderr));
        let started = self.output(&["start", id]);
        assert!(
            started.status.success(),
            "start {id} failed ({}): {}; the container's stderr: {}",
            started.status,
            String::from_utf8_lossy(&started.stderr),
            std::fs::read_to_string(bundle.path().join("stderr")).unwrap_or_default()
        );
    }

    /// `run --detach`: create and start in one (no exec fifo), stdio in
    /// files of the bundle as for `create`.
    pub fn run_detach(&self, bundle: &Bundle, id: &str) {
        self.track(id);
        let stdout = std::fs::File::create(bundle.path().join("stdout")).unwrap();
        let stderr = std::fs::File::create(bundle.path().join("stderr")).unwrap();
        let status = self.cmd().args(["run", "--detach", "--bundle"]).arg(bundle.path()).arg(id).stdin(Stdio::null()).stdout(stdout).stderr(stderr).status().unwrap();
        assert!(status.success(), "run --detach {id} ({status}): {}", std::fs::read_to_string(bundle.path().join("stderr")).unwrap_or_default());
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
            // Not `output`: a panic here, during a failed test's unwinding, aborts.
            let _ = self.cmd().args(["delete", "--force", id]).stdin(Stdio::null()).output();
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

// ---------------------------------------------------------------------------
// Helpers for the feature tests (namespaces, mounts, process, cgroups, hooks,
// seccomp, exec, console, contract).

/// How long a foreground `run` or a wait may take before the test gives up.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Polls `cond` every 10 ms for up to `secs` seconds; true once it holds.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Runs `f` when dropped: for what a test makes besides containers
/// (network namespaces, host mounts, cgroups), so it goes even on panic.
pub struct Guard<F: FnMut()>(F);

impl<F: FnMut()> Drop for Guard<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

pub fn guard<F: FnMut()>(f: F) -> Guard<F> {
    Guard(f)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stdout and stderr of an Output, for assertion messages.
pub fn both(out: &Output) -> String {
    format!("status {}; stdout: {}; stderr: {}", out.status, text(&out.stdout), text(&out.stderr))
}

/// Waits for `child` with a deadline (then kills it), collecting its output.
pub fn wait_output(mut child: std::process::Child) -> Output {
    use std::io::Read;
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let deadline = std::time::Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait().unwrap();
            panic!("command did not finish within {TIMEOUT:?} ({status})");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    Output { status, stdout: out_t.join().unwrap(), stderr: err_t.join().unwrap() }
}

impl Runtime {
    /// `minirun oci --root R GLOBALS... ARGS...`, stdin null, with a deadline.
    pub fn output_global(&self, globals: &[&str], args: &[&str]) -> Output {
        let child = self.cmd().args(globals).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        wait_output(child)
    }

    /// `run` in the foreground (it returns when the container exits), with
    /// the container's stdout and stderr captured.
    pub fn run(&self, bundle: &Bundle, id: &str) -> Output {
        self.run_with(bundle, id, &[])
    }

    pub fn run_with(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
        self.track(id);
        let mut args = vec!["run", "--bundle", bundle.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(id);
        self.output_global(&[], &args)
    }

    /// `create` with global options (e.g. `--systemd-cgroup`) before the
    /// command; stdio in files of the bundle as for `create_with`.
    pub fn create_global(&self, globals: &[&str], bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
        self.track(id);
        let stdout = std::fs::File::create(bundle.path().join("stdout")).unwrap();
        let stderr = std::fs::File::create(bundle.path().join("stderr")).unwrap();
        let status = self
            .cmd()
            .args(globals)
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

    /// The host pid of the container's init (from `state`).
    pub fn init_pid(&self, id: &str) -> i32 {
        let state = self.state(id).unwrap_or_else(|| panic!("no state for {id}"));
        state["pid"].as_i64().filter(|p| *p > 0).unwrap_or_else(|| panic!("no pid in {state}")) as i32
    }

    /// A process reparented to us that is not a container's init (a
    /// detached exec): it is reaped as soon as it exits, by a thread. Until
    /// it is, a dying container init would wait for it (the kernel does not
    /// let a pid namespace's init go before every process in it is reaped),
    /// and `delete --force` would fail, as it would under a shim that
    /// does not reap.
    pub fn track_pid(&self, pid: i32) {
        std::thread::spawn(move || {
            // SAFETY: waits for one pid that is our child.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        });
    }

    /// Waits until the container has the given status.
    pub fn wait_status(&self, id: &str, status: &str) {
        let mut last = None;
        let ok = wait_until(20, || {
            last = self.status(id);
            last.as_deref() == Some(status)
        });
        assert!(ok, "{id} did not become {status} (last: {last:?})");
    }
}

impl Bundle {
    /// A file of the bundle as text (`stdout`, `stderr` of a created container).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }

    /// Waits until the bundle's file `name` satisfies `pred`; returns it.
    pub fn wait_file(&self, name: &str, mut pred: impl FnMut(&str) -> bool) -> String {
        let mut content = String::new();
        let ok = wait_until(20, || {
            content = self.read(name);
            pred(&content)
        });
        assert!(ok, "bundle file {name} never matched; it holds {content:?} (stderr: {:?})", self.read("stderr"));
        content
    }

    pub fn set_args(&mut self, args: &[&str]) {
        self.config["process"]["args"] = json!(args);
        self.save();
    }

    /// Adds a namespace entry to linux.namespaces (replacing one of its type).
    pub fn set_namespace(&mut self, ns: Value) {
        let list = self.config["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != ns["type"]);
        list.push(ns);
        self.save();
    }

    pub fn remove_namespace(&mut self, kind: &str) {
        self.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != kind);
        self.save();
    }

    pub fn add_mount(&mut self, mount: Value) {
        self.config["mounts"].as_array_mut().unwrap().push(mount);
        self.save();
    }
}

/// controller (or `name=systemd`, or `""` for cgroup2) -> path, from
/// /proc/PID/cgroup.
pub fn proc_cgroups(pid: i32) -> std::collections::BTreeMap<String, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut map = std::collections::BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if ctrls.is_empty() {
            map.insert(String::new(), path.to_string());
        }
        for c in ctrls.split(',').filter(|c| !c.is_empty()) {
            map.insert(c.to_string(), path.to_string());
        }
    }
    map
}

/// The host directory of `pid`'s cgroup in the v1 hierarchy of `controller`.
pub fn cgroup_dir(pid: i32, controller: &str) -> PathBuf {
    let path = proc_cgroups(pid).get(controller).cloned().unwrap_or_else(|| panic!("pid {pid} has no {controller} cgroup"));
    let mount = Path::new("/sys/fs/cgroup").join(controller);
    mount.join(path.trim_start_matches('/'))
}

/// `readlink /proc/PID/ns/KIND` (e.g. `net:[4026531840]`).
pub fn ns_of(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).map(|p| p.display().to_string()).unwrap_or_default()
}

/// Waits (blocking, with a deadline) for a child of ours (a container init
/// reparented to the test process) and returns its exit code as a shell
/// reports it (128+signal when killed).
pub fn wait_child(pid: i32) -> i32 {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a pid that is our child, with a valid pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(rc >= 0, "waitpid {pid}: {}", std::io::Error::last_os_error());
        if rc == pid {
            if libc::WIFEXITED(status) {
                return libc::WEXITSTATUS(status);
            }
            if libc::WIFSIGNALED(status) {
                return 128 + libc::WTERMSIG(status);
            }
        }
        assert!(std::time::Instant::now() < deadline, "pid {pid} did not exit");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The host path of the shared contract files (Podman's and containerd's
/// recorded configs), if this machine has them.
pub fn contract_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/contract");
    dir.is_dir().then_some(dir)
}
