//! linux.seccomp: errno, kill, trap, log and allow actions, argument
//! filters, Docker's default profile, and the filter on exec'd processes.

use minirun_tests::{both, require_root, text, unique_name, Bundle, Runtime};
use serde_json::{json, Value};

fn with_seccomp(args: &[&str], seccomp: Value) -> Bundle {
    let mut bundle = Bundle::busybox(args);
    bundle.config["linux"]["seccomp"] = seccomp;
    bundle.save();
    bundle
}

fn allow_but(syscalls: Value) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": syscalls})
}

#[test]
fn errno_action() {
    require_root!();
    let rt = Runtime::new();
    let bundle = with_seccomp(
        &["sh", "-c", "mkdir /tmp/x; echo rc=$?; rmdir /tmp 2>&1; echo still-running; grep Seccomp: /proc/self/status"],
        allow_but(json!([
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
        ])),
    );
    let out = rt.run(&bundle, &unique_name("errno"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    assert!(text(&out.stderr).contains("Operation not permitted"), "{}", both(&out));
    assert!(stdout.contains("rc=1\n"), "{stdout}");
    assert!(stdout.contains("Permission denied"), "errnoRet 13 is EACCES: {stdout}");
    assert!(stdout.contains("still-running"), "{stdout}");
    assert!(stdout.contains("Seccomp:\t2"), "{stdout}");
    assert!(!bundle.rootfs().join("tmp/x").exists());
}

/// umask(2) with the argument 077 is refused, any other mask allowed. ash
/// reads the mask with umask(0) + umask(old), so a refused set leaves 0022.
#[test]
fn argument_filter() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = with_seccomp(
        &["sh", "-c", "umask 077; umask; umask 027; umask"],
        allow_but(json!([
            {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 0, "value": 0o077, "op": "SCMP_CMP_EQ"}]}
        ])),
    );
    bundle.config["process"]["user"]["umask"] = json!(0o022);
    bundle.save();
    let out = rt.run(&bundle, &unique_name("argfilter"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), "0022\n0027\n");
}

#[test]
fn masked_argument_filter() {
    require_root!();
    let rt = Runtime::new();
    // Refuse any umask with the owner-read bit (0400) set.
    let mut bundle = with_seccomp(
        &["sh", "-c", "umask 0402; umask; umask 070; umask"],
        allow_but(json!([
            {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0o400, "valueTwo": 0o400, "op": "SCMP_CMP_MASKED_EQ"}]}
        ])),
    );
    bundle.config["process"]["user"]["umask"] = json!(0o077);
    bundle.save();
    let out = rt.run(&bundle, &unique_name("maskfilter"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), "0077\n0070\n");
}

#[test]
fn kill_process_action() {
    require_root!();
    let rt = Runtime::new();
    // busybox sh itself calls uname(2) at start-up, so the shell survives
    // only with a syscall it does not make: sysinfo(2), which uptime uses,
    // in a forked subshell (busybox runs some applets inside the shell).
    let bundle = with_seccomp(&["sh", "-c", "(uptime); echo rc=$?"], allow_but(json!([{"names": ["sysinfo"], "action": "SCMP_ACT_KILL_PROCESS"}])));
    let out = rt.run(&bundle, &unique_name("kill"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), "rc=159\n", "uptime must die of SIGSYS");
}

#[test]
fn kill_action_on_the_init_itself() {
    require_root!();
    let rt = Runtime::new();
    let bundle = with_seccomp(&["uname"], allow_but(json!([{"names": ["uname"], "action": "SCMP_ACT_KILL"}])));
    let out = rt.run(&bundle, &unique_name("killinit"));
    assert_eq!(out.status.code(), Some(159), "{}", both(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn trap_and_log_actions() {
    require_root!();
    let rt = Runtime::new();
    let bundle = with_seccomp(
        &["sh", "-c", "(uptime >/dev/null); echo trap=$?; mkdir /tmp/logged && echo log-allowed"],
        allow_but(json!([
            {"names": ["sysinfo"], "action": "SCMP_ACT_TRAP"},
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}
        ])),
    );
    let out = rt.run(&bundle, &unique_name("trap"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), "trap=159\nlog-allowed\n");
}

/// Without `architectures` the filter applies to the native one; errnoRet
/// picks the errno.
#[test]
fn no_architectures_and_another_errno() {
    require_root!();
    let rt = Runtime::new();
    let bundle = with_seccomp(
        &["sh", "-c", "mkdir /tmp/d; echo rc=$?"],
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}),
    );
    let out = rt.run(&bundle, &unique_name("noarch"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), "rc=1\n");
    assert!(text(&out.stderr).contains("No space left on device"), "errnoRet 28 is ENOSPC: {}", both(&out));
}

#[test]
fn invalid_profile_fails_create() {
    require_root!();
    let rt = Runtime::new();
    for (what, seccomp) in [
        ("unknown action", json!({"defaultAction": "SCMP_ACT_MRT_BOGUS"})),
        ("unknown architecture", json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_MRT"]})),
    ] {
        let bundle = with_seccomp(&["true"], seccomp);
        let id = unique_name("badseccomp");
        let out = rt.create(&bundle, &id);
        assert!(!out.status.success(), "{what}: create succeeded");
        assert!(!text(&out.stderr).contains("panicked"), "{what}: {}", text(&out.stderr));
        assert!(!rt.root().join(&id).exists(), "{what}");
    }
}

fn docker_default() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/src/seccomp/testdata/docker-default-amd64.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

#[test]
fn docker_default_profile() {
    require_root!();
    let rt = Runtime::new();
    let bundle = with_seccomp(&["sh", "-c", "echo ok; ls / > /dev/null && echo ls-ok; unshare -U true; echo unshare=$?"], docker_default());
    let out = rt.run(&bundle, &unique_name("docker"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("ok\nls-ok\n"), "{}", both(&out));
    assert!(!stdout.contains("unshare=0"), "unshare -U went through the Docker profile: {}", both(&out));
}

#[test]
fn exec_gets_the_same_filter() {
    require_root!();
    let rt = Runtime::new();
    let bundle = with_seccomp(&["sleep", "60"], allow_but(json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}])));
    let id = unique_name("secexec");
    rt.run_detached(&bundle, &id);
    let out = rt.output_global(&[], &["exec", &id, "sh", "-c", "grep Seccomp: /proc/self/status; mkdir /tmp/e; echo rc=$?"]);
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), "Seccomp:\t2\nrc=1\n");
    assert!(text(&out.stderr).contains("Operation not permitted"), "{}", both(&out));
    assert!(!bundle.rootfs().join("tmp/e").exists());
}
