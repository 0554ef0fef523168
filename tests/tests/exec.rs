//! exec: a new process in a running container's namespaces and cgroup,
//! with the command line's overrides or a process.json, detached with a pid
//! file, and its error paths.

use std::process::Stdio;

use minirun_tests::{both, contract_dir, ns_of, proc_cgroups, require_root, text, unique_name, wait_until, Bundle, Runtime};
use serde_json::{json, Value};

fn running(rt: &Runtime, tag: &str) -> (Bundle, String) {
    let mut bundle = Bundle::busybox(&["sleep", "60"]);
    bundle.config["hostname"] = json!("mrt-exec-host");
    bundle.save();
    std::fs::write(bundle.rootfs().join("var/www/index.html"), "hello from index\n").unwrap();
    let id = unique_name(tag);
    rt.run_detached(&bundle, &id);
    (bundle, id)
}

fn exec(rt: &Runtime, args: &[&str]) -> std::process::Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    rt.output_global(&[], &all)
}

#[test]
fn exec_joins_the_containers_namespaces() {
    require_root!();
    let rt = Runtime::new();
    let (_bundle, id) = running(&rt, "execns");
    let out = exec(&rt, &[&id, "sh", "-c", "cat /proc/1/comm; hostname; for n in mnt net uts ipc pid; do readlink /proc/self/ns/$n; done; ps -o pid,comm"]);
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "sleep", "pid 1 is the container's init: {stdout}");
    assert_eq!(lines[1], "mrt-exec-host", "{stdout}");
    let init = rt.init_pid(&id).to_string();
    for (i, kind) in ["mnt", "net", "uts", "ipc", "pid"].iter().enumerate() {
        assert_eq!(lines[2 + i], ns_of(&init, kind), "{kind} namespace differs from the init's");
    }
    assert!(lines.iter().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "sleep"]), "ps shows pid 1: {stdout}");
}

#[test]
fn exit_code_propagates() {
    require_root!();
    let rt = Runtime::new();
    let (_bundle, id) = running(&rt, "execcode");
    assert_eq!(exec(&rt, &[&id, "sh", "-c", "exit 42"]).status.code(), Some(42));
    assert_eq!(exec(&rt, &[&id, "true"]).status.code(), Some(0));
    assert_eq!(exec(&rt, &[&id, "sh", "-c", "kill -9 $$"]).status.code(), Some(137));
}

#[test]
fn env_cwd_and_user_flags() {
    require_root!();
    let rt = Runtime::new();
    let (_bundle, id) = running(&rt, "execflags");
    let out = exec(&rt, &["--env", "FOO=bar", "--env", "TERM=dumb", "--cwd", "/var/www", "--user", "1000:1001", &id, "sh", "-c", "echo $FOO $TERM; pwd; id -u; id -g"]);
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), "bar dumb\n/var/www\n1000\n1001\n");
    // The container's own process env is the base (PATH from config.json).
    let out = exec(&rt, &[&id, "sh", "-c", "echo $PATH"]);
    assert_eq!(text(&out.stdout), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
}

fn contract_process(name: &str) -> Option<Value> {
    let Some(dir) = contract_dir() else {
        eprintln!("skipped: ../shared/contract is missing");
        return None;
    };
    Some(serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap())
}

#[test]
fn process_json_from_podman_and_containerd() {
    require_root!();
    let rt = Runtime::new();
    let (bundle, id) = running(&rt, "execproc");
    for (name, expected) in [("podman-exec-process.json", "hello from index\n"), ("containerd-exec-process.json", "root:x:0:0:root:/root:/bin/sh\n")] {
        let Some(process) = contract_process(name) else { return };
        // Kept as recorded: its args (cat /var/www/index.html, head -1
        // /etc/passwd) are busybox applets and the files are in the rootfs.
        let file = bundle.path().join(name);
        std::fs::write(&file, serde_json::to_vec(&process).unwrap()).unwrap();
        let out = exec(&rt, &["--process", file.to_str().unwrap(), &id]);
        assert!(out.status.success(), "{name}: {}", both(&out));
        assert_eq!(text(&out.stdout), expected, "{name}");
        // Its own settings apply: podman's rlimits, containerd's no_new_privs.
        let mut probe = process.clone();
        probe["args"] = json!(["sh", "-c", "ulimit -n; grep NoNewPrivs /proc/self/status"]);
        std::fs::write(&file, serde_json::to_vec(&probe).unwrap()).unwrap();
        let out = exec(&rt, &["--process", file.to_str().unwrap(), &id]);
        assert!(out.status.success(), "{name}: {}", both(&out));
        let nofile = process["rlimits"].as_array().unwrap().iter().find(|r| r["type"] == "RLIMIT_NOFILE").unwrap()["soft"].to_string();
        let nnp = if process["noNewPrivileges"] == true { "1" } else { "0" };
        assert_eq!(text(&out.stdout), format!("{nofile}\nNoNewPrivs:\t{nnp}\n"), "{name}");
    }
}

#[test]
fn bad_process_json_fails() {
    require_root!();
    let rt = Runtime::new();
    let (bundle, id) = running(&rt, "execbadproc");
    let file = bundle.path().join("p.json");
    std::fs::write(&file, r#"{"user": {"uid": 0, "gid": 0}, "args": [], "cwd": "/"}"#).unwrap();
    let out = exec(&rt, &["--process", file.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("args"), "{}", both(&out));
    assert_eq!(rt.status(&id).unwrap(), "running", "a failed exec must not hurt the container");
}

#[test]
fn detach_with_pid_file() {
    require_root!();
    let rt = Runtime::new();
    let (bundle, id) = running(&rt, "execdetach");
    let pid_file = bundle.path().join("exec.pid");
    // A detached process keeps exec's stdio: give it files, not pipes.
    let log = std::fs::File::create(bundle.path().join("exec.err")).unwrap();
    let status = rt
        .cmd()
        .args(["exec", "--detach", "--pid-file", pid_file.to_str().unwrap(), &id, "sleep", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .unwrap();
    assert!(status.success(), "{}", bundle.read("exec.err"));
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    rt.track_pid(pid);
    assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim(), "sleep");
    let init = rt.init_pid(&id);
    assert_eq!(proc_cgroups(pid), proc_cgroups(init), "the exec'd process is not in the container's cgroups");
    assert_eq!(ns_of(&pid.to_string(), "pid"), ns_of(&init.to_string(), "pid"));
    let listed: Vec<i64> = serde_json::from_slice(&rt.output(&["ps", "--format", "json", &id]).stdout).unwrap();
    assert!(listed.contains(&(pid as i64)), "ps does not list the exec'd process: {listed:?}");
    rt.ok(&["delete", "--force", &id]);
    assert!(wait_until(5, || std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z")).unwrap_or(true)), "the exec'd process outlived delete --force");
}

#[test]
fn exec_joins_the_containers_cgroup() {
    require_root!();
    let rt = Runtime::new();
    let (_bundle, id) = running(&rt, "execcg");
    let out = exec(&rt, &[&id, "cat", "/proc/self/cgroup"]);
    assert!(out.status.success(), "{}", both(&out));
    let host_view = std::fs::read_to_string(format!("/proc/{}/cgroup", rt.init_pid(&id))).unwrap();
    assert_eq!(text(&out.stdout), host_view);
    assert!(host_view.contains(&format!("/minirun/{id}")));
}

#[test]
fn exec_into_a_stopped_container_fails() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["true"]);
    let id = unique_name("execstopped");
    rt.run_detached(&bundle, &id);
    rt.wait_status(&id, "stopped");
    let out = exec(&rt, &[&id, "true"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("stopped") || text(&out.stderr).contains("not running"), "{}", both(&out));
    let out = exec(&rt, &[&unique_name("nosuch"), "true"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("does not exist"), "{}", both(&out));
}

#[test]
fn exec_of_a_missing_program_fails() {
    require_root!();
    let rt = Runtime::new();
    let (_bundle, id) = running(&rt, "execmissing");
    let out = exec(&rt, &[&id, "mrt-no-such-program"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("executable file not found"), "{}", both(&out));
    let out = exec(&rt, &[&id, "/etc/passwd"]);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(rt.status(&id).unwrap(), "running");
}

#[test]
fn exec_without_a_terminal_socket_is_refused() {
    require_root!();
    let rt = Runtime::new();
    let (_bundle, id) = running(&rt, "exectty");
    let out = exec(&rt, &["--tty", &id, "tty"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("console-socket"), "{}", both(&out));
}
