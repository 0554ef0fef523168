//! process: args, env, cwd, user (uid, gid, additionalGids, umask),
//! rlimits, the capability sets, noNewPrivileges, oomScoreAdj, fds, exit
//! codes, --pid-file.

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use minirun_tests::{both, require_root, text, unique_name, wait_child, wait_output, Bundle, Runtime};
use serde_json::json;

fn status_field(status: &str, key: &str) -> String {
    status.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))).unwrap_or_else(|| panic!("no {key} in {status}")).trim().to_string()
}

/// Runs `cat /proc/self/status` in a container made from `bundle`.
fn self_status(rt: &Runtime, bundle: &Bundle) -> String {
    let out = rt.run(bundle, &unique_name("status"));
    assert!(out.status.success(), "{}", both(&out));
    text(&out.stdout)
}

#[test]
fn args_env_and_cwd() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "echo \"$FOO\"; echo \"$EMPTY|\"; pwd; echo \"$0\" \"$1\" \"$#\"", "zero", "one two"]);
    bundle.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz=qux", "EMPTY="]);
    bundle.config["process"]["cwd"] = json!("/var/www");
    bundle.save();
    let out = rt.run(&bundle, &unique_name("args"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), "bar baz=qux\n|\n/var/www\nzero one two 1\n");
}

#[test]
fn env_is_exactly_the_configured_one() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["/bin/env"]);
    bundle.config["process"]["env"] = json!(["PATH=/bin", "A=1"]);
    bundle.save();
    let out = rt.run(&bundle, &unique_name("env"));
    assert!(out.status.success(), "{}", both(&out));
    let mut lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    // The runtime's own environment (e.g. MINIRUN, CARGO_*) must not leak
    // in; HOME is added from the container's passwd when missing, as runc does.
    assert_eq!(lines, ["A=1", "HOME=/root", "PATH=/bin"]);
    // A HOME that is set stays as it is; a user the passwd lacks gets "/".
    bundle.config["process"]["env"] = json!(["PATH=/bin", "HOME=/x"]);
    bundle.save();
    assert!(text(&rt.run(&bundle, &unique_name("env")).stdout).contains("HOME=/x\n"));
    bundle.config["process"]["env"] = json!(["PATH=/bin"]);
    bundle.config["process"]["user"] = json!({"uid": 4242, "gid": 4242});
    bundle.save();
    assert!(text(&rt.run(&bundle, &unique_name("env")).stdout).contains("HOME=/\n"));
}

#[test]
fn relative_cwd_is_refused() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["pwd"]);
    bundle.config["process"]["cwd"] = json!("relative/dir");
    bundle.save();
    let id = unique_name("relcwd");
    let out = rt.create(&bundle, &id);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cwd"), "{}", text(&out.stderr));
    assert!(!rt.root().join(&id).exists());
}

#[test]
fn user_uid_gid_and_additional_gids() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "cat /proc/self/status; echo; id -u; id -g; id -G"]);
    bundle.config["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [2000, 3000]});
    bundle.save();
    let out = rt.run(&bundle, &unique_name("user"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    let (status, ids) = stdout.split_once("\n\n").unwrap();
    assert_eq!(status_field(status, "Uid").split_whitespace().collect::<Vec<_>>(), ["1000"; 4]);
    assert_eq!(status_field(status, "Gid").split_whitespace().collect::<Vec<_>>(), ["1001"; 4]);
    assert_eq!(status_field(status, "Groups").split_whitespace().collect::<Vec<_>>(), ["2000", "3000"]);
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(&ids[..2], ["1000", "1001"]);
    let mut groups: Vec<&str> = ids[2].split_whitespace().collect();
    groups.sort();
    groups.dedup();
    assert_eq!(groups, ["1001", "2000", "3000"]);
}

#[test]
fn umask() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "umask; grep Umask /proc/self/status; touch /tmp/f; stat -c %a /tmp/f"]);
    bundle.config["process"]["user"]["umask"] = json!(0o027);
    bundle.save();
    let out = rt.run(&bundle, &unique_name("umask"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "0027", "{stdout}");
    assert_eq!(lines[1].split_whitespace().nth(1), Some("0027"), "{stdout}");
    assert_eq!(lines[2], "640", "{stdout}");
}

#[test]
fn rlimits() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "ulimit -n; ulimit -Hn; grep -E 'Max (open files|processes|core)' /proc/self/limits"]);
    bundle.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    ]);
    bundle.save();
    let out = rt.run(&bundle, &unique_name("rlimits"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["512"], "{stdout}");
    assert_eq!(lines[1], ["768"], "{stdout}");
    let limit = |name: &str| lines.iter().find(|l| l.join(" ").starts_with(name)).unwrap_or_else(|| panic!("{name}: {stdout}")).clone();
    assert_eq!(limit("Max open files")[3..5], ["512", "768"]);
    assert_eq!(limit("Max processes")[2..4], ["300", "400"]);
    assert_eq!(limit("Max core file size")[4..6], ["0", "0"]);
}

#[test]
fn invalid_rlimit_fails_create() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["true"]);
    // soft above hard is refused by the kernel.
    bundle.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 900, "hard": 800}]);
    bundle.save();
    let id = unique_name("badrlimit");
    let out = rt.create(&bundle, &id);
    assert!(!out.status.success(), "an rlimit with soft > hard was accepted");
    assert!(text(&out.stderr).contains("NOFILE") || text(&out.stderr).contains("Nofile"), "{}", text(&out.stderr));
    assert!(!rt.root().join(&id).exists());
}

const CAP_NUMBERS: &[(&str, u32)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_FOWNER", 3),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_RAW", 13),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_MKNOD", 27),
    ("CAP_AUDIT_WRITE", 29),
];

fn mask(caps: &[&str]) -> String {
    let bits = caps.iter().fold(0u64, |m, c| m | 1 << CAP_NUMBERS.iter().find(|(n, _)| n == c).unwrap().1);
    format!("{bits:016x}")
}

#[test]
fn capability_sets_for_root() {
    require_root!();
    let rt = Runtime::new();
    let set = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT"];
    let mut bundle = Bundle::busybox(&["cat", "/proc/self/status"]);
    bundle.config["process"]["capabilities"] = json!({"bounding": set, "effective": set, "permitted": set, "inheritable": [], "ambient": []});
    bundle.save();
    let status = self_status(&rt, &bundle);
    assert_eq!(status_field(&status, "CapBnd"), mask(&set));
    assert_eq!(status_field(&status, "CapPrm"), mask(&set));
    assert_eq!(status_field(&status, "CapEff"), mask(&set));
    assert_eq!(status_field(&status, "CapInh"), mask(&[]));
    assert_eq!(status_field(&status, "CapAmb"), mask(&[]));
}

/// For a non-root user the kernel keeps across execve only what is ambient
/// (and so inheritable and permitted): every set is visible.
#[test]
fn capability_sets_for_a_user_with_ambient_caps() {
    require_root!();
    let rt = Runtime::new();
    let bounding = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETUID"];
    let kept = ["CAP_NET_BIND_SERVICE", "CAP_KILL"];
    let mut bundle = Bundle::busybox(&["cat", "/proc/self/status"]);
    bundle.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    bundle.config["process"]["capabilities"] = json!({"bounding": bounding, "effective": kept, "permitted": kept, "inheritable": kept, "ambient": kept});
    bundle.save();
    let status = self_status(&rt, &bundle);
    assert_eq!(status_field(&status, "CapBnd"), mask(&bounding));
    assert_eq!(status_field(&status, "CapPrm"), mask(&kept));
    assert_eq!(status_field(&status, "CapEff"), mask(&kept));
    assert_eq!(status_field(&status, "CapInh"), mask(&kept));
    assert_eq!(status_field(&status, "CapAmb"), mask(&kept));
}

#[test]
fn capability_sets_empty() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "cat /proc/self/status; chown 1:1 /tmp 2>&1; echo rc=$?"]);
    bundle.config["process"]["capabilities"] = json!({"bounding": [], "effective": [], "permitted": [], "inheritable": [], "ambient": []});
    bundle.save();
    let status = self_status(&rt, &bundle);
    for key in ["CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"] {
        assert_eq!(status_field(&status, key), mask(&[]), "{key}");
    }
    assert!(status.contains("Operation not permitted") && status.contains("rc=1"), "root without CAP_CHOWN could chown: {status}");
}

#[test]
fn unknown_capability_fails_create() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["true"]);
    bundle.config["process"]["capabilities"]["bounding"] = json!(["CAP_CHOWN", "CAP_MRT_NO_SUCH"]);
    bundle.save();
    let id = unique_name("badcap");
    let out = rt.create(&bundle, &id);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("CAP_MRT_NO_SUCH"), "{}", text(&out.stderr));
    assert!(!rt.root().join(&id).exists());
}

#[test]
fn no_new_privileges() {
    require_root!();
    let rt = Runtime::new();
    for (value, expected) in [(true, "1"), (false, "0")] {
        let mut bundle = Bundle::busybox(&["cat", "/proc/self/status"]);
        bundle.config["process"]["noNewPrivileges"] = json!(value);
        bundle.save();
        assert_eq!(status_field(&self_status(&rt, &bundle), "NoNewPrivs"), expected, "noNewPrivileges {value}");
    }
}

#[test]
fn oom_score_adj() {
    require_root!();
    let rt = Runtime::new();
    for value in [500, 123] {
        let mut bundle = Bundle::busybox(&["cat", "/proc/self/oom_score_adj"]);
        bundle.config["process"]["oomScoreAdj"] = json!(value);
        bundle.save();
        let out = rt.run(&bundle, &unique_name("oom"));
        assert!(out.status.success(), "{}", both(&out));
        assert_eq!(text(&out.stdout).trim(), value.to_string());
    }
}

/// `minirun run` with fd 3 open on a file, as a caller that forgot
/// O_CLOEXEC would leave it.
fn run_with_fd3(rt: &Runtime, bundle: &Bundle, id: &str, extra: &[&str]) -> std::process::Output {
    rt.track(id);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "secret-of-fd3\n").unwrap();
    let f = std::fs::File::open(file.path()).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
    let mut cmd = rt.cmd();
    cmd.arg("run").arg("--bundle").arg(bundle.path()).args(extra).arg(id);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: dup2 is async-signal-safe; the new fd 3 has no CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    wait_output(cmd.spawn().unwrap())
}

#[test]
fn no_fd_leaks_into_the_container() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["ls", "/proc/self/fd"]);
    let out = run_with_fd3(&rt, &bundle, &unique_name("fds"), &[]);
    assert!(out.status.success(), "{}", both(&out));
    // 0 1 2 and the directory ls itself opened.
    let fds: Vec<String> = text(&out.stdout).split_whitespace().map(String::from).collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "fds leaked into the container");
}

#[test]
fn preserve_fds_passes_fd3_on() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sh", "-c", "cat <&3; ls /proc/self/fd"]);
    let out = run_with_fd3(&rt, &bundle, &unique_name("pfds"), &["--preserve-fds", "1"]);
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    let (first, rest) = stdout.split_once('\n').unwrap();
    assert_eq!(first, "secret-of-fd3");
    let fds: Vec<&str> = rest.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2", "3", "4"], "{stdout}");
}

#[test]
fn missing_program_fails_create() {
    require_root!();
    let rt = Runtime::new();
    for prog in ["mrt-no-such-program", "/bin/mrt-no-such-program"] {
        let bundle = Bundle::busybox(&[prog]);
        let id = unique_name("noprog");
        let out = rt.create(&bundle, &id);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("executable file not found"), "{prog}: {}", text(&out.stderr));
        assert!(!rt.root().join(&id).exists());
        let run = rt.run(&bundle, &unique_name("noprog"));
        assert!(!run.status.success(), "run of {prog}: {}", both(&run));
        assert!(text(&run.stderr).contains("executable file not found"), "{}", both(&run));
    }
}

#[test]
fn non_executable_program_fails_create() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["/etc/passwd"]);
    let id = unique_name("noexec");
    let out = rt.create(&bundle, &id);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("permission denied"), "{}", text(&out.stderr));
    assert!(!rt.root().join(&id).exists());
}

/// The program disappears (or loses its x bit) between create and start:
/// the init's execve fails and it exits 127 (or 126), as a shell would.
#[test]
fn exec_failure_at_start_gives_127_and_126() {
    require_root!();
    let rt = Runtime::new();
    for (code, break_it) in [(127, "remove"), (126, "chmod")] {
        let bundle = Bundle::busybox(&["/bin/prog"]);
        std::fs::write(bundle.rootfs().join("bin/prog"), "#!/bin/sh\necho ran\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bundle.rootfs().join("bin/prog"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let id = unique_name("gone");
        let out = rt.create(&bundle, &id);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let pid = rt.init_pid(&id);
        if break_it == "remove" {
            std::fs::remove_file(bundle.rootfs().join("bin/prog")).unwrap();
        } else {
            std::fs::set_permissions(bundle.rootfs().join("bin/prog"), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        // The spec asks start to report a program it could not run (runc
        // returns 0 here); the init still exits as a shell would.
        let start = rt.output(&["start", &id]);
        assert!(!start.status.success(), "{break_it}: start should fail");
        assert!(text(&start.stderr).contains("/bin/prog"), "{break_it}: {}", text(&start.stderr));
        assert_eq!(wait_child(pid), code, "{break_it}: {}", bundle.read("stderr"));
        assert!(!bundle.read("stdout").contains("ran"));
    }
}

#[test]
fn exit_codes_propagate_through_run() {
    require_root!();
    let rt = Runtime::new();
    for (script, code) in [("exit 0", 0), ("exit 7", 7), ("exit 255", 255), ("mrt-none", 127), ("/etc/passwd", 126)] {
        let bundle = Bundle::busybox(&["sh", "-c", script]);
        let out = rt.run(&bundle, &unique_name("code"));
        assert_eq!(out.status.code(), Some(code), "{script}: {}", both(&out));
    }
}

#[test]
fn killed_by_a_signal_gives_128_plus_signal() {
    require_root!();
    let rt = Runtime::new();
    // Without a pid namespace sh is not an init and can kill itself.
    let mut bundle = Bundle::busybox(&["sh", "-c", "kill -9 $$"]);
    bundle.remove_namespace("pid");
    let out = rt.run(&bundle, &unique_name("sig"));
    assert_eq!(out.status.code(), Some(137), "{}", both(&out));

    // With one, killed from outside by `kill`.
    let bundle = Bundle::busybox(&["sleep", "60"]);
    let id = unique_name("sigkill");
    rt.track(&id);
    let child = rt
        .cmd()
        .args(["run", "--bundle", bundle.path().to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    rt.wait_status(&id, "running");
    rt.ok(&["kill", &id, "KILL"]);
    let out = wait_output(child);
    assert_eq!(out.status.code(), Some(137), "{}", both(&out));
}

#[test]
fn pid_file() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sleep", "60"]);
    let id = unique_name("pidfile");
    let pid_file = bundle.path().join("sub-pid");
    rt.track(&id);
    // The container inherits run's stdio: files, not pipes that would stay open.
    let log = std::fs::File::create(bundle.path().join("stderr")).unwrap();
    let status = rt
        .cmd()
        .args(["run", "--detach", "--pid-file", pid_file.to_str().unwrap(), "--bundle", bundle.path().to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .unwrap();
    assert!(status.success(), "{}", bundle.read("stderr"));
    let pid = rt.init_pid(&id);
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim(), "sleep");
    // A relative --pid-file is relative to the caller's cwd.
    let id2 = unique_name("pidfile-rel");
    rt.track(&id2);
    let out = rt.cmd().current_dir(bundle.path()).args(["create", "--pid-file", "rel.pid", "--bundle", bundle.path().to_str().unwrap(), &id2]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(out.success(), "create --pid-file rel.pid: {out}");
    assert_eq!(std::fs::read_to_string(bundle.path().join("rel.pid")).unwrap(), rt.init_pid(&id2).to_string());
}

/// `run --detach` returns at once; the container must outlive it however
/// fast it exits (the init must not die with its parent, PR_SET_PDEATHSIG).
/// Several at once, as a busy client would.
#[test]
fn run_detach_outlives_the_runtime() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sleep", "60"]);
    let ids: Vec<String> = (0..12).map(|_| unique_name("detach")).collect();
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            rt.track(id);
            rt.cmd()
                .args(["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), id])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let stopped: Vec<&String> = ids.iter().filter(|id| rt.status(id).as_deref() != Some("running")).collect();
    assert!(stopped.is_empty(), "{} of {} detached containers died with `run --detach`: {stopped:?}", stopped.len(), ids.len());
}
