//! Malformed input across every surface, table-driven: config.json fields
//! of the wrong type or out of range, impossible mounts, hostile container
//! ids, bad image references and Docker flags, broken image files, and
//! state corrupted on disk. Each must give a clear error and a non-zero
//! exit, never a panic, and leave nothing behind.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use minirun_tests::{both, require_root, text, Bundle, Runtime};
use serde_json::{json, Value};

/// A refusal as the house rules want it: non-zero, an error message, no
/// panic, no backtrace.
fn assert_clean_refusal(what: &str, out: &Output) {
    assert!(!out.status.success(), "{what}: accepted: {}", both(out));
    assert!(out.status.code().is_some(), "{what}: killed by a signal: {}", both(out));
    let err = text(&out.stderr);
    assert!(!err.trim().is_empty(), "{what}: no error message");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{what}: panic: {err}");
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

/// (what, JSON pointer, value) applied to a good config.json.
fn config_cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("process not an object", "/process", json!("sh")),
        ("args not a list", "/process/args", json!("sh")),
        ("args empty", "/process/args", json!([])),
        ("args of numbers", "/process/args", json!([1, 2])),
        ("cwd relative", "/process/cwd", json!("tmp")),
        ("cwd a number", "/process/cwd", json!(7)),
        ("uid negative", "/process/user/uid", json!(-1)),
        ("uid too big", "/process/user/uid", json!(1u64 << 40)),
        ("gid a string", "/process/user/gid", json!("root")),
        ("env not strings", "/process/env", json!([1])),
        ("terminal a string", "/process/terminal", json!("yes")),
        ("unknown capability", "/process/capabilities/bounding", json!(["CAP_NOT_A_THING"])),
        ("capabilities a string", "/process/capabilities", json!("all")),
        ("rlimit unknown", "/process/rlimits", json!([{ "type": "RLIMIT_NOPE", "hard": 1, "soft": 1 }])),
        ("rlimit soft above hard", "/process/rlimits", json!([{ "type": "RLIMIT_NOFILE", "hard": 10, "soft": 20 }])),
        ("rlimit negative", "/process/rlimits", json!([{ "type": "RLIMIT_NOFILE", "hard": -1, "soft": 1 }])),
        ("root missing path", "/root", json!({})),
        ("root elsewhere", "/root/path", json!("/nonexistent/rootfs")),
        ("root a number", "/root", json!(3)),
        ("hostname a list", "/hostname", json!(["a"])),
        ("mounts not a list", "/mounts", json!({})),
        ("mount without destination", "/mounts/0", json!({ "type": "tmpfs", "source": "tmpfs" })),
        ("mount relative destination", "/mounts/0", json!({ "destination": "proc", "type": "proc", "source": "proc" })),
        ("mount unknown type", "/mounts/0", json!({ "destination": "/proc", "type": "nosuchfs", "source": "x" })),
        ("bind of a missing source", "/mounts/0", json!({ "destination": "/mnt", "type": "bind", "source": "/nonexistent/src", "options": ["bind"] })),
        ("mount options not strings", "/mounts/0", json!({ "destination": "/proc", "type": "proc", "source": "proc", "options": [1] })),
        ("unknown namespace", "/linux/namespaces", json!([{ "type": "nosuchns" }])),
        ("namespace path missing", "/linux/namespaces", json!([{ "type": "mount" }, { "type": "uts" }, { "type": "network", "path": "/nonexistent/ns" }])),
        ("namespace path not a namespace", "/linux/namespaces", json!([{ "type": "mount" }, { "type": "uts" }, { "type": "network", "path": "/etc/passwd" }])),
        ("namespaces a string", "/linux/namespaces", json!("all")),
        ("no mount namespace", "/linux/namespaces", json!([{ "type": "pid" }, { "type": "uts" }])),
        ("uid map without user ns", "/linux/uidMappings", json!([{ "containerID": 0, "hostID": 1000, "size": 1 }])),
        ("memory limit a string", "/linux/resources", json!({ "memory": { "limit": "lots" } })),
        ("cpu quota a string", "/linux/resources", json!({ "cpu": { "quota": "max" } })),
        ("pids limit a string", "/linux/resources", json!({ "pids": { "limit": "x" } })),
        ("device rule access bogus", "/linux/resources", json!({ "devices": [{ "allow": true, "access": "xyz" }] })),
        ("device without path", "/linux/devices", json!([{ "type": "c", "major": 1, "minor": 3 }])),
        ("device bad type", "/linux/devices", json!([{ "path": "/dev/x", "type": "q", "major": 1, "minor": 3 }])),
        // The host's own value: should the check ever fail, nothing changes.
        ("sysctl of no namespace", "/linux/sysctl", json!({ "kernel.panic": std::fs::read_to_string("/proc/sys/kernel/panic").unwrap().trim() })),
        ("net sysctl in the host's netns", "/linux", json!({ "namespaces": [{ "type": "mount" }, { "type": "pid" }, { "type": "uts" }], "sysctl": { "net.ipv4.ip_forward": std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap().trim() } })),
        ("net sysctl in the host's netns, joined by path", "/linux", json!({ "namespaces": [{ "type": "mount" }, { "type": "pid" }, { "type": "uts" }, { "type": "network", "path": "/proc/self/ns/net" }], "sysctl": { "net.ipv4.ip_forward": std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap().trim() } })),
        ("sysctl value a number", "/linux/sysctl", json!({ "net.ipv4.ip_forward": 1 })),
        ("seccomp unknown action", "/linux/seccomp", json!({ "defaultAction": "SCMP_ACT_NOPE" })),
        ("seccomp unknown syscall action", "/linux/seccomp", json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{ "names": ["read"], "action": "SCMP_ACT_BOOM" }] })),
        ("seccomp unknown arch", "/linux/seccomp", json!({ "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NOPE"] })),
        ("seccomp bad operator", "/linux/seccomp", json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{ "names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{ "index": 0, "value": 1, "op": "SCMP_CMP_NOPE" }] }] })),
        ("seccomp arg index 9", "/linux/seccomp", json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{ "names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{ "index": 9, "value": 1, "op": "SCMP_CMP_EQ" }] }] })),
        ("hook path relative", "/hooks", json!({ "prestart": [{ "path": "relative/hook" }] })),
        ("hook missing", "/hooks", json!({ "createRuntime": [{ "path": "/nonexistent/hook" }] })),
        ("hook timeout zero", "/hooks", json!({ "createRuntime": [{ "path": "/bin/true", "timeout": 0 }] })),
        ("masked paths not strings", "/linux/maskedPaths", json!([1])),
        ("cgroupsPath with ..", "/linux/cgroupsPath", json!("/../../escape")),
        ("ociVersion a number", "/ociVersion", json!(1)),
    ]
}

fn set_pointer(config: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = if parent.is_empty() { config } else { config.pointer_mut(parent).unwrap_or_else(|| panic!("{pointer}")) };
    match parent {
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        _ => panic!("{pointer}"),
    }
}

#[test]
fn malformed_config_json() {
    require_root!();
    let rt = Runtime::new();
    let mut tried = 0;
    for (what, pointer, value) in config_cases() {
        let mut bundle = Bundle::busybox(&["true"]);
        set_pointer(&mut bundle.config, pointer, value);
        bundle.save();
        let out = rt.create(&bundle, "bad");
        if out.status.success() {
            // Accepted at create: then it must fail no later than start,
            // and go away cleanly.
            let started = rt.output(&["start", "bad"]);
            let _ = rt.output(&["delete", "--force", "bad"]);
            assert_clean_refusal(what, &started);
        } else {
            assert_clean_refusal(what, &out);
        }
        assert!(entries(rt.root()).is_empty(), "{what}: state left: {:?}", entries(rt.root()));
        tried += 1;
    }
    // Not JSON at all, and no config.json.
    let bundle = Bundle::busybox(&["true"]);
    for (what, content) in [("not JSON", "{ nope"), ("empty", ""), ("a list", "[]"), ("truncated", "{\"ociVersion\": \"1.2.0\", \"process\": {")] {
        std::fs::write(bundle.path().join("config.json"), content).unwrap();
        assert_clean_refusal(what, &rt.create(&bundle, "bad"));
        tried += 1;
    }
    std::fs::remove_file(bundle.path().join("config.json")).unwrap();
    assert_clean_refusal("no config.json", &rt.create(&bundle, "bad"));
    assert!(entries(rt.root()).is_empty());
    assert!(tried + 1 >= 56);
}

#[test]
fn hostile_container_ids() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["true"]);
    let beside = rt.root().parent().unwrap().join("x");
    let existed = beside.exists();
    let long = "a".repeat(1000);
    let ids = ["", ".", "..", "../x", "../../etc", "a/b", "/abs", "x\ny", "with space", "tab\tid", &long, "-rf", "*", "emoji😀"];
    for id in ids {
        assert_clean_refusal(&format!("create {id:?}"), &rt.create(&bundle, id));
        for verb in ["state", "start", "kill", "delete", "pause", "ps"] {
            assert_clean_refusal(&format!("{verb} {id:?}"), &rt.output(&[verb, id]));
        }
    }
    assert!(entries(rt.root()).is_empty(), "{:?}", entries(rt.root()));
    assert_eq!(beside.exists(), existed, "`../x` made something beside the root");
}

/// `minirun --root .. --image-root .. --network-root ..` of our own, with a
/// busybox image, in a network namespace of the test thread's own.
fn front() -> (tempfile::TempDir, impl Fn(&[&str]) -> Output) {
    // Should a bad flag ever get as far as the network, its bridge and
    // rules are made in a throwaway namespace, not the host's.
    minirun_tests::front::enter_throwaway_netns();
    let dir = tempfile::Builder::new().prefix("minirun-test-bad").tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let run = move |args: &[&str]| {
        Command::new(minirun_tests::minirun_bin())
            .arg("--root")
            .arg(root.join("containers"))
            .arg("--image-root")
            .arg(root.join("images"))
            .arg("--network-root")
            .arg(root.join("network"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let bundle = Bundle::busybox(&["true"]);
    let tar = dir.path().join("busybox.tar");
    assert!(Command::new("tar").arg("-C").arg(bundle.rootfs()).arg("-cf").arg(&tar).arg(".").status().unwrap().success());
    assert!(run(&["import", tar.to_str().unwrap(), "busybox:latest"]).status.success());
    (dir, run)
}

#[test]
fn bad_docker_flags_and_references() {
    require_root!();
    let (dir, mr) = front();
    let cases: Vec<Vec<&str>> = vec![
        vec!["-p", "0:80"], vec!["-p", "70000:80"], vec!["-p", "80:0"], vec!["-p", "abc"], vec!["-p", "1.2.3:80:80"],
        vec!["-p", "8080:80/sctp"], vec!["-p", "9000-8000:80-90"], vec!["-p", "8080-8081:80"], vec!["-p", ":"], vec!["-p", "300.1.1.1:80:80"],
        vec!["--memory", "12q"], vec!["--memory", "-5m"], vec!["--memory", "1k"], vec!["--memory", ""], vec!["--memory", "m"],
        vec!["--memory", "64m", "--memory-swap", "32m"], vec!["--memory-swap", "64m"], vec!["--cpus", "-1"], vec!["--cpus", "lots"],
        vec!["--cpus", "100000"], vec!["--cpus", "0.0000000001"], vec!["--cpu-shares", "-3"], vec!["--pids-limit", "many"],
        vec!["--ulimit", "nofile"], vec!["--ulimit", "nope=1"], vec!["--ulimit", "nofile=10:5"], vec!["--ulimit", "nofile=x"],
        vec!["--cap-add", "NOT_A_CAP"], vec!["--cap-drop", "CAP_"], vec!["-v", "relative:/x"], vec!["-v", "/tmp:relative"],
        vec!["-v", "namedvolume:/data"], vec!["-v", "/tmp:/x:bogus"], vec!["-v", "/tmp"], vec!["--tmpfs", "relative"],
        vec!["--tmpfs", "/x:size=lots"], vec!["--security-opt", "seccomp=/nonexistent.json"], vec!["--security-opt", "apparmor=x"],
        vec!["--security-opt", "bogus"], vec!["--stop-signal", "SIGNOPE"], vec!["--stop-signal", "99"],
        vec!["--network", "no-such-network"], vec!["--network", "container:"], vec!["--network", "container:nobody"],
        vec!["--name", "../evil"], vec!["--name", "-x"], vec!["--name", "a b"], vec!["-h", "bad host name"], vec!["-u", "nosuchuser"],
        vec!["-w", "relative/dir"], vec!["-e", "=novar"], vec!["--env-file", "/nonexistent.env"],
        vec!["--network", "container:x", "-p", "80:80"],
    ];
    let count = cases.len();
    for flags in cases {
        let args: Vec<&str> = ["run", "--rm"].into_iter().chain(flags.iter().copied()).chain(["busybox", "true"]).collect();
        let out = mr(&args);
        assert_clean_refusal(&format!("{flags:?}"), &out);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {}", both(&out));
        assert_eq!(text(&out.stderr).trim().lines().count(), 1, "{flags:?}: one line: {}", both(&out));
    }
    let references = ["UPPER/case", "bad//ref", "a:b:c", "-dash", "name@sha256:nothex", "name@md5:abc", ":tag", "x:", "@", "127.0.0.1:9/nothing:latest"];
    for reference in references {
        let out = mr(&["run", "--rm", reference, "true"]);
        assert_clean_refusal(reference, &out);
        assert_eq!(out.status.code(), Some(125), "{reference}: {}", both(&out));
    }
    for verb in [vec!["rm", "nope"], vec!["stop", "nope"], vec!["kill", "nope"], vec!["logs", "nope"], vec!["inspect", "nope"], vec!["exec", "nope", "true"], vec!["rm", "../../etc"], vec!["kill", "-s", "NOPE", "x"]] {
        assert_clean_refusal(&format!("{verb:?}"), &mr(&verb));
    }
    assert!(count + references.len() >= 60);
    let left: Vec<String> = entries(&dir.path().join("containers")).into_iter().filter(|n| n != ".runtime" && n != ".lock").collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn broken_image_files_and_corrupted_state() {
    require_root!();
    let (dir, mr) = front();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("empty.tar"), b"").unwrap();
    std::fs::write(path("garbage.tar"), b"this is not a tar file at all, not even close").unwrap();
    let full = std::fs::read(path("busybox.tar")).unwrap();
    std::fs::write(path("truncated.tar"), &full[..full.len() / 3]).unwrap();
    // A docker-save-shaped tar whose manifest is not JSON, and one whose layer is missing.
    let save = path("save");
    std::fs::create_dir_all(&save).unwrap();
    std::fs::write(save.join("manifest.json"), "{ not json").unwrap();
    assert!(Command::new("tar").arg("-C").arg(&save).arg("-cf").arg(path("bad-manifest.tar")).arg(".").status().unwrap().success());
    std::fs::write(save.join("manifest.json"), r#"[{"Config":"config.json","RepoTags":["x:y"],"Layers":["missing/layer.tar"]}]"#).unwrap();
    std::fs::write(save.join("config.json"), r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap();
    assert!(Command::new("tar").arg("-C").arg(&save).arg("-cf").arg(path("missing-layer.tar")).arg(".").status().unwrap().success());
    for file in ["empty.tar", "garbage.tar", "truncated.tar", "bad-manifest.tar", "missing-layer.tar", "no-such-file.tar"] {
        let p = path(file);
        assert_clean_refusal(&format!("load {file}"), &mr(&["load", "-i", p.to_str().unwrap()]));
    }
    for file in ["garbage.tar", "no-such-file.tar"] {
        let p = path(file);
        assert_clean_refusal(&format!("import {file}"), &mr(&["import", p.to_str().unwrap(), "x:y"]));
    }
    // The store still holds exactly the one good image.
    assert_eq!(text(&mr(&["images", "-q"]).stdout).lines().count(), 1);

    // A container record corrupted on disk: listing goes on, the bad one is
    // refused by name with a clear error, and `ps` does not panic.
    let id = text(&mr(&["run", "-d", "--network", "none", "busybox", "sleep", "30"]).stdout).trim().to_string();
    let good = text(&mr(&["run", "-d", "--network", "none", "busybox", "sleep", "30"]).stdout).trim().to_string();
    let record = dir.path().join("containers").join(&id).join("container.json");
    let saved = std::fs::read(&record).unwrap();
    std::fs::write(&record, b"{ corrupted").unwrap();
    let ps = mr(&["ps", "-a", "-q", "--no-trunc"]);
    assert!(ps.status.success() && text(&ps.stdout).contains(&good), "{}", both(&ps));
    assert_clean_refusal("inspect corrupted", &mr(&["inspect", &id]));
    std::fs::write(&record, saved).unwrap();
    for c in [&id, &good] {
        assert!(mr(&["rm", "-f", c]).status.success());
    }
    // OCI state corrupted on disk.
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sleep", "30"]);
    rt.run_detached(&bundle, "corrupt");
    let state = rt.root().join("corrupt/state.json");
    let saved = std::fs::read(&state).unwrap();
    std::fs::write(&state, b"garbage").unwrap();
    assert_clean_refusal("state of corrupted", &rt.output(&["state", "corrupt"]));
    assert_clean_refusal("kill of corrupted", &rt.output(&["kill", "corrupt", "KILL"]));
    // Put back so that the container (still running) is deleted properly.
    std::fs::write(&state, saved).unwrap();
    rt.ok(&["delete", "--force", "corrupt"]);
}
