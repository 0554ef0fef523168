//! create, start, state, kill, delete and run, with the idempotence Podman
//! and containerd rely on and the error paths.

use minirun_tests::{cgroup_dirs_named, require_root, unique_name, Bundle, Runtime};

#[test]
fn create_start_state_kill_delete() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sleep", "60"]);
    let id = unique_name("life");
    let pid_file = bundle.path().join("init.pid");
    let created = rt.create_with(&bundle, &id, &["--pid-file", pid_file.to_str().unwrap()]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let state = rt.state(&id).unwrap();
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], id.as_str());
    let pid = state["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    // Blocked before execve: still minirun's image, not sleep.
    assert_ne!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim(), "sleep");

    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id).unwrap(), "running");
    let start_again = rt.output(&["start", &id]);
    assert!(!start_again.status.success(), "a running container cannot be started again");

    let refused = rt.output(&["delete", &id]);
    assert!(!refused.status.success(), "delete without --force refuses a running container");

    rt.ok(&["kill", &id, "KILL"]);
    wait_for(|| rt.status(&id).as_deref() == Some("stopped"));
    rt.ok(&["kill", "--all", &id, "9"]);
    rt.ok(&["delete", &id]);
    assert!(rt.state(&id).is_none());
    assert!(cgroup_dirs_named(&id).is_empty(), "cgroup left: {:?}", cgroup_dirs_named(&id));
}

#[test]
fn run_returns_the_exit_code_and_cleans_up() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let id = unique_name("run");
    rt.track(&id);
    let out = rt.output(&["run", "--bundle", bundle.path().to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert!(rt.state(&id).is_none(), "run removes the container when it exits");
    assert!(cgroup_dirs_named(&id).is_empty());
}

#[test]
fn unknown_ids_and_idempotence() {
    require_root!();
    let rt = Runtime::new();
    let id = unique_name("ghost");
    assert_eq!(rt.output(&["state", &id]).status.code(), Some(1));
    assert!(rt.output(&["delete", "--force", &id]).status.success());
    assert!(!rt.output(&["delete", &id]).status.success());
    assert!(!rt.output(&["kill", &id, "9"]).status.success());
    for bad in ["../etc", "a/b", ".."] {
        let out = rt.output(&["state", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("invalid container id"), "{bad}");
    }
}

#[test]
fn duplicate_id_is_refused_and_the_first_survives() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sleep", "60"]);
    let id = unique_name("dup");
    assert!(rt.create(&bundle, &id).status.success());
    let second = rt.create(&bundle, &id);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already exists"));
    assert_eq!(rt.status(&id).unwrap(), "created");
}

#[test]
fn malformed_config_fails_cleanly_and_leaves_nothing() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["true"]);
    let id = unique_name("bad");
    for broken in [r#"{"ociVersion": "1.2.0", "process": {"args": 5}}"#, "{not json", r#"{"ociVersion":"1.2.0"}"#] {
        std::fs::write(bundle.path().join("config.json"), broken).unwrap();
        let out = rt.create(&bundle, &id);
        assert_eq!(out.status.code(), Some(1), "{broken}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("config.json") && !stderr.contains("panicked"), "{broken}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one-line error: {stderr}");
        assert!(!rt.root().join(&id).exists());
        assert!(cgroup_dirs_named(&id).is_empty());
    }
}

#[test]
fn missing_program_fails_create_with_nothing_left() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["/no/such/program"]);
    let id = unique_name("noexe");
    let out = rt.create(&bundle, &id);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!rt.root().join(&id).exists());
    assert!(cgroup_dirs_named(&id).is_empty());
}

#[test]
fn log_file_gets_json_errors() {
    require_root!();
    let rt = Runtime::new();
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = rt.cmd().args(["--log", log.path().to_str().unwrap(), "--log-format", "json", "state", "nope"]).output().unwrap();
    assert!(!out.status.success());
    let line = std::fs::read_to_string(log.path()).unwrap();
    let entry: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(entry["level"], "error");
    assert!(entry["msg"].as_str().unwrap().contains("does not exist"));
}

#[test]
fn minirun_runc_link_selects_the_oci_commands() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("minirun-runc");
    std::os::unix::fs::symlink(minirun_tests::minirun_bin(), &link).unwrap();
    let out = std::process::Command::new(&link).arg("features").output().unwrap();
    assert!(out.status.success());
    let features: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(features["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n == "time"));
}

pub fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("condition not met within 5s");
}
