//! Escape and isolation: what a container started with Docker's defaults
//! (`minirun run IMAGE`) must not see or do. The attempts are made by a tiny
//! static program (tests/probe/escape_probe.c) built for the test and put in
//! an image with busybox; each test runs in a throwaway network namespace
//! (see `Front`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use minirun_tests::front::{sh, Front};
use minirun_tests::{both, require_root, text, Bundle};

/// Imports `escape:latest`: busybox, the probe, and a setuid-root copy.
fn import_escape_image(front: &Front) {
    let bundle = Bundle::busybox(&["true"]);
    let bin = bundle.rootfs().join("bin");
    build_probe(&bin.join("escape_probe"));
    std::fs::copy(bin.join("escape_probe"), bin.join("suid_probe")).unwrap();
    std::fs::set_permissions(bin.join("suid_probe"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let tar = front.dir("escape.tar");
    sh(&format!("tar -C {} -cf {} .", bundle.rootfs().display(), tar.display()));
    front.ok(&["import", tar.to_str().unwrap(), "escape:latest"]);
}

fn build_probe(output: &Path) {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("probe/escape_probe.c");
    let out = Command::new("cc").args(["-static", "-O1", "-Wall", "-o"]).arg(output).arg(&source).output().expect("a C compiler (cc)");
    assert!(out.status.success(), "building the probe: {}", both(&out));
}

/// What every attempt of the probe must meet in a default container, and
/// why it is refused there.
const EXPECTED: &[(&str, &str)] = &[
    ("mount", "EPERM"),             // no CAP_SYS_ADMIN, and seccomp
    ("umount", "EPERM"),            // the same
    ("finit_module", "EPERM"),      // no CAP_SYS_MODULE
    ("init_module", "EPERM"),       // the same
    ("iopl", "EPERM"),              // no CAP_SYS_RAWIO
    ("ioperm", "EPERM"),            // the same
    ("reboot", "EPERM"),            // no CAP_SYS_BOOT
    ("kexec_load", "EPERM"),        // the same, and seccomp
    ("settimeofday", "EPERM"),      // no CAP_SYS_TIME
    ("swapoff", "EPERM"),           // no CAP_SYS_ADMIN
    ("sysctl_write", "EROFS"),      // /proc/sys is read-only
    ("proc_sys_vm_write", "EROFS"), // the same
    ("proc_irq_write", "EROFS"),    // /proc/irq is read-only
    ("sys_write", "EROFS"),         // sysfs is read-only
    ("sys_class_write", "EROFS"),
    ("mknod_disk", "EPERM"),        // mknod works (CAP_MKNOD); the device cgroup refuses the open
    ("mknod_mem", "EPERM"),
    ("mknod_kmsg", "EPERM"),
    ("keyctl", "EPERM"),            // seccomp: keys are not namespaced
    ("add_key", "EPERM"),
    ("unshare_user", "EPERM"),      // seccomp: new namespaces need CAP_SYS_ADMIN
    ("unshare_mount", "EPERM"),
    ("unshare_net", "EPERM"),
    ("setns", "EPERM"),
    ("bpf", "EPERM"),
    ("perf_event_open", "EPERM"),
    ("open_by_handle_at", "EPERM"), // the "shocker" escape: no CAP_DAC_READ_SEARCH
    ("userfaultfd", "EPERM"),
    ("kill_host", "ESRCH"),         // the host's processes are not in the pid namespace
    ("ptrace_host", "ESRCH"),
];

#[test]
fn a_default_container_cannot_reach_the_host() {
    require_root!();
    let f = Front::new();
    import_escape_image(&f);
    let host_pid = std::process::id().to_string();
    let out = f.out(&["run", "--rm", "--network", "none", "escape", "escape_probe", "--inside-container", &host_pid]);
    assert!(out.status.success(), "{}", both(&out));
    let report = text(&out.stdout);
    let mut wrong = Vec::new();
    for (name, errno) in EXPECTED {
        let line = report.lines().find(|l| l.split_whitespace().next() == Some(name));
        if line != Some(&format!("{name} denied {errno}")) {
            wrong.push(format!("{name}: expected denied {errno}, got {line:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}\nfull report:\n{report}", wrong.join("\n"));
    assert_eq!(report.lines().count(), EXPECTED.len(), "an attempt without an expectation: {report}");

    // The control: --privileged lifts the capability, seccomp, device and
    // read-only barriers, and the probe sees it (every attempt is harmless).
    let privileged = f.ok(&["run", "--rm", "--network", "none", "--privileged", "escape", "escape_probe", "--inside-container", &host_pid]);
    for name in ["mount", "unshare_user", "keyctl", "mknod_kmsg", "sys_write"] {
        assert!(privileged.lines().any(|l| l == format!("{name} ALLOWED")), "{name} under --privileged: {privileged}");
    }
    f.assert_nothing_left();
}

/// Docker's masked paths: files read as empty, directories are empty.
const MASKED: &[&str] = &[
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
];

#[test]
fn host_processes_and_kernel_files_are_out_of_sight() {
    require_root!();
    let f = Front::new();
    // Only what this kernel has: a masked path that does not exist on the host stays absent.
    let present: Vec<&str> = MASKED.iter().copied().filter(|p| Path::new(p).exists()).collect();
    assert!(!present.is_empty(), "none of the masked paths exists on this host");
    let script = format!(
        "ls /proc | grep -c '^[0-9]'; for p in {}; do if [ -d $p ]; then echo $p $(ls -A $p | wc -l); else echo $p $(cat $p | wc -c); fi; done",
        present.join(" ")
    );
    let out = f.ok(&["run", "--rm", "--network", "none", "busybox", "sh", "-c", &script]);
    let mut lines = out.lines();
    // sh, ls and grep: a handful of pids, none of the host's hundreds.
    let pids: usize = lines.next().unwrap().trim().parse().unwrap();
    assert!(pids <= 4, "{pids} processes visible: {out}");
    let masked: Vec<String> = present.iter().map(|p| format!("{p} 0")).collect();
    assert_eq!(lines.map(str::to_string).collect::<Vec<_>>(), masked, "masked paths must read as empty");
    f.assert_nothing_left();
}

#[test]
fn cap_drop_all_leaves_no_capability() {
    require_root!();
    let f = Front::new();
    let out = f.ok(&["run", "--rm", "--network", "none", "--cap-drop", "ALL", "busybox", "grep", "^Cap", "/proc/self/status"]);
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(out.contains(&format!("{set}:\t0000000000000000")), "{set} in {out}");
    }
    f.assert_nothing_left();
}

/// A setuid-root binary run by an unprivileged user: root without
/// no_new_privs (the control, so the check can fail), the user's own uid
/// with it.
#[test]
fn no_new_privileges_stops_a_setuid_binary() {
    require_root!();
    let f = Front::new();
    import_escape_image(&f);
    let euid = |extra: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none", "--user", "65534"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["escape", "suid_probe", "setuid"]);
        f.ok(&args).trim().to_string()
    };
    assert_eq!(euid(&[]), "euid 0", "the setuid bit must work without no-new-privileges");
    assert_eq!(euid(&["--security-opt", "no-new-privileges"]), "euid 65534");
    f.assert_nothing_left();
}

/// Containers on two user-defined networks cannot reach each other (Docker's
/// isolation chains), while two on the same network can; and a service the
/// host keeps on its loopback is not reachable through the gateway, while
/// one on the gateway's address is.
#[test]
fn networks_and_the_host_loopback_are_out_of_reach() {
    require_root!();
    let f = Front::new();
    let tag = std::process::id();
    let (net_a, net_b) = (format!("esca{tag}"), format!("escb{tag}"));
    f.ok(&["network", "create", &net_a, "--subnet", "10.211.0.0/24"]);
    f.ok(&["network", "create", &net_b, "--subnet", "10.212.0.0/24"]);
    f.ok(&["run", "-d", "--name", "server-b", "--network", &net_b, "busybox", "sh", "-c", "echo b > /tmp/i; httpd -f -p 80 -h /tmp"]);
    f.ok(&["run", "-d", "--name", "server-a", "--network", &net_a, "busybox", "sh", "-c", "echo a > /tmp/i; httpd -f -p 80 -h /tmp"]);
    let ip = |name: &str, net: &str| f.inspect(name)["NetworkSettings"]["Networks"][net]["IPAddress"].as_str().unwrap().to_string();
    let (ip_a, ip_b) = (ip("server-a", &net_a), ip("server-b", &net_b));
    // The host side of the "host" (this test's network namespace): a
    // service on 127.0.0.1 only, and the gateway of network a.
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("i"), "host\n").unwrap();
    // The same service on the gateway's address is the control: Docker lets
    // containers reach the host there.
    let mut host_httpds: Vec<_> = ["127.0.0.1:8099", "10.211.0.1:8098"]
        .iter()
        .map(|listen| Command::new("busybox").args(["httpd", "-f", "-p", listen, "-h"]).arg(www.path()).spawn().unwrap())
        .collect();
    let _stop = minirun_tests::guard(|| {
        for httpd in host_httpds.iter_mut() {
            let _ = httpd.kill();
            let _ = httpd.wait();
        }
    });
    // nc, not wget: busybox 1.35's wget crashes when a connection fails.
    let fetch = |host: &str, port: u16| format!("r=$(echo 'GET /i HTTP/1.0' | timeout 3 nc {host} {port} 2>/dev/null | tail -1); echo ${{r:-unreachable}}");
    let script = [fetch(&ip_a, 80), fetch(&ip_b, 80), fetch("10.211.0.1", 8098), fetch("10.211.0.1", 8099)].join("; ");
    let out = f.ok(&["run", "--rm", "--network", &net_a, "busybox", "sh", "-c", &script]);
    assert_eq!(out, "a\nunreachable\nhost\nunreachable\n", "same network / other network / host gateway / host loopback");
    for name in ["server-a", "server-b"] {
        f.ok(&["rm", "-f", name]);
    }
    f.ok(&["network", "rm", &net_a, &net_b]);
    f.assert_nothing_left();
}
