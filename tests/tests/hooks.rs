//! The six hooks, in order, each with the state JSON on stdin, its args and
//! env; a failing or timed-out create-time hook undoes the create; failing
//! poststart and poststop hooks are warnings.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use minirun_tests::{cgroup_dirs_named, require_root, text, unique_name, wait_until, Bundle, Runtime};
use serde_json::{json, Value};

/// A script that appends "$1|$2|$HOOK_ENV|<stdin>" to $LOG. The same file
/// serves the host (as /bin/sh is dash there) and the container (busybox).
const HOOK: &str = "#!/bin/sh\nIFS= read -r state\necho \"$1|$2|$HOOK_ENV|$state\" >> \"$LOG\"\n";

struct HookDir {
    dir: tempfile::TempDir,
}

impl HookDir {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("mrt-hooks").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let hd = HookDir { dir };
        hd.script("hook.sh", HOOK);
        hd
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn log(&self) -> Vec<(String, String, String, Value)> {
        std::fs::read_to_string(self.dir.path().join("log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let parts: Vec<&str> = l.splitn(4, '|').collect();
                let state = serde_json::from_str(parts[3]).unwrap_or_else(|e| panic!("state JSON of {l:?}: {e}"));
                (parts[0].to_string(), parts[1].to_string(), parts[2].to_string(), state)
            })
            .collect()
    }
}

fn hook(path: &Path, phase: &str, log: &Path) -> Value {
    json!({"path": path, "args": ["hook", phase, "second-arg"], "env": [format!("HOOK_ENV={phase}-env"), format!("LOG={}", log.display())]})
}

#[test]
fn all_six_hooks_run_in_order_with_the_state() {
    require_root!();
    let rt = Runtime::new();
    let hooks = HookDir::new();
    let host_script = hooks.path().join("hook.sh");
    let host_log = hooks.path().join("log");
    let mut bundle = Bundle::busybox(&["sleep", "60"]);
    // startContainer runs in the container after pivot_root: the hook dir
    // is bind-mounted at /hooks, so the same script and log serve.
    bundle.add_mount(json!({"destination": "/hooks", "type": "bind", "source": hooks.path(), "options": ["bind"]}));
    let in_container = Path::new("/hooks/hook.sh");
    bundle.config["hooks"] = json!({
        "prestart": [hook(&host_script, "prestart", &host_log)],
        "createRuntime": [hook(&host_script, "createRuntime", &host_log)],
        "createContainer": [hook(&host_script, "createContainer", &host_log)],
        "startContainer": [hook(in_container, "startContainer", Path::new("/hooks/log"))],
        "poststart": [hook(&host_script, "poststart", &host_log)],
        "poststop": [hook(&host_script, "poststop", &host_log)]
    });
    bundle.save();
    let id = unique_name("hooks");
    let created = rt.create(&bundle, &id);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let pid = rt.init_pid(&id);
    let phases = |log: &[(String, String, String, Value)]| log.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    assert_eq!(phases(&hooks.log()), ["prestart", "createRuntime", "createContainer"], "after create");
    rt.ok(&["start", &id]);
    assert!(wait_until(10, || hooks.log().len() >= 5), "after start: {:?}", phases(&hooks.log()));
    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    let log = hooks.log();
    assert_eq!(phases(&log), ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]);
    let bundle_path = bundle.path().canonicalize().unwrap();
    for (phase, arg2, env, state) in &log {
        assert_eq!(arg2, "second-arg", "{phase}: args");
        assert_eq!(env, &format!("{phase}-env"), "{phase}: env");
        assert_eq!(state["id"], id.as_str(), "{phase}: {state}");
        assert_eq!(state["bundle"], bundle_path.to_str().unwrap(), "{phase}: {state}");
        assert!(state["ociVersion"].is_string(), "{phase}: {state}");
        if phase != "poststop" && phase != "startContainer" {
            assert_eq!(state["pid"], pid, "{phase}: the init's host pid: {state}");
        }
    }
    // The status each hook sees (as runc: creating until the init waits).
    let wrong: Vec<String> = log
        .iter()
        .filter_map(|(phase, _, _, state)| {
            let expected = match phase.as_str() {
                "prestart" | "createRuntime" | "createContainer" => "creating",
                "startContainer" => "created",
                "poststart" => "running",
                _ => "stopped",
            };
            (state["status"] != expected).then(|| format!("{phase}: status {} (expected {expected})", state["status"]))
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
}

fn assert_nothing_left(rt: &Runtime, id: &str, pid_file: &Path) {
    assert!(!rt.root().join(id).exists(), "state dir left");
    assert!(rt.state(id).is_none());
    assert!(cgroup_dirs_named(id).is_empty(), "cgroup left: {:?}", cgroup_dirs_named(id));
    // The hook wrote the init's pid from its state: that process is gone.
    let pid: i64 = std::fs::read_to_string(pid_file).unwrap().trim().parse().unwrap();
    assert!(wait_until(5, || !Path::new(&format!("/proc/{pid}")).exists()), "the init {pid} survived a failed create");
}

/// Reads the state's pid into $PIDFILE, then fails.
const FAILING_HOOK: &str = "#!/bin/sh\nIFS= read -r state\necho \"$state\" | sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/' > \"$PIDFILE\"\necho 'mrt hook says no' >&2\nexit 3\n";

#[test]
fn failing_prestart_hook_fails_create_and_leaves_nothing() {
    require_root!();
    let rt = Runtime::new();
    let hooks = HookDir::new();
    let script = hooks.script("fail.sh", FAILING_HOOK);
    let pid_file = hooks.path().join("pid");
    let mut bundle = Bundle::busybox(&["sleep", "60"]);
    bundle.config["hooks"] = json!({"prestart": [{"path": script, "env": [format!("PIDFILE={}", pid_file.display()), "PATH=/usr/bin:/bin"]}]});
    bundle.save();
    let id = unique_name("hookfail");
    let out = rt.create(&bundle, &id);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "create succeeded despite a failing prestart hook");
    assert!(stderr.contains("prestart") && stderr.contains("fail.sh"), "the error names the hook: {stderr}");
    assert_nothing_left(&rt, &id, &pid_file);
}

#[test]
fn failing_create_container_hook_fails_create_and_leaves_nothing() {
    require_root!();
    let rt = Runtime::new();
    let hooks = HookDir::new();
    let script = hooks.script("fail.sh", FAILING_HOOK);
    let pid_file = hooks.path().join("pid");
    let mut bundle = Bundle::busybox(&["sleep", "60"]);
    bundle.config["hooks"] = json!({"createContainer": [{"path": script, "env": [format!("PIDFILE={}", pid_file.display()), "PATH=/usr/bin:/bin"]}]});
    bundle.save();
    let id = unique_name("cchookfail");
    let out = rt.create(&bundle, &id);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "create succeeded despite a failing createContainer hook");
    assert!(stderr.contains("createContainer"), "the error names the hook: {stderr}");
    assert_nothing_left(&rt, &id, &pid_file);
}

#[test]
fn hook_timeout_fails_create() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sleep", "60"]);
    bundle.config["hooks"] = json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}]});
    bundle.save();
    let id = unique_name("hooktimeout");
    let started = std::time::Instant::now();
    let out = rt.create(&bundle, &id);
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "create waited for the hook ({took:?})");
    assert!(stderr.contains("timed out") || stderr.contains("timeout"), "the error names the timeout: {stderr}");
    assert!(took < std::time::Duration::from_secs(5), "the hook was not killed at its timeout: {took:?}");
    assert!(!rt.root().join(&id).exists());
    assert!(cgroup_dirs_named(&id).is_empty());
}

#[test]
fn failing_poststart_and_poststop_hooks_are_warnings() {
    require_root!();
    let rt = Runtime::new();
    let hooks = HookDir::new();
    let fail = hooks.script("fail.sh", "#!/bin/sh\nexit 4\n");
    let host_script = hooks.path().join("hook.sh");
    let host_log = hooks.path().join("log");
    let mut bundle = Bundle::busybox(&["sleep", "60"]);
    bundle.config["hooks"] = json!({
        "poststart": [{"path": fail}, hook(&host_script, "poststart", &host_log)],
        "poststop": [{"path": fail}, hook(&host_script, "poststop", &host_log)]
    });
    bundle.save();
    let id = unique_name("postfail");
    let created = rt.create(&bundle, &id);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let start = rt.output(&["start", &id]);
    assert!(start.status.success(), "a failing poststart hook failed start: {}", text(&start.stderr));
    assert!(text(&start.stderr).contains("poststart"), "a warning names the hook: {}", text(&start.stderr));
    assert_eq!(rt.status(&id).unwrap(), "running");
    let delete = rt.output(&["delete", "--force", &id]);
    assert!(delete.status.success(), "{}", text(&delete.stderr));
    assert!(rt.state(&id).is_none());
    // The hooks after the failing ones still ran.
    let phases: Vec<String> = hooks.log().into_iter().map(|e| e.0).collect();
    assert_eq!(phases, ["poststart", "poststop"]);
}
