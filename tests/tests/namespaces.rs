//! linux.namespaces: new ones (pid, uts, ipc, network, cgroup, user with id
//! maps, time with offsets), joined ones (a path, another container's
//! /proc/PID/ns/*), hostname and domainname, and a bad path.

use std::process::Command;

use minirun_tests::{both, cgroup_dirs_named, guard, ns_of, require_root, text, unique_name, wait_until, Bundle, Runtime};
use serde_json::json;

#[test]
fn own_pid_namespace_hides_host_processes() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sh", "-c", "echo pid=$$; ls /proc | grep -c '^[0-9]'; test -e /proc/1/exe && echo has-1"]);
    let id = unique_name("pidns");
    let out = rt.run(&bundle, &id);
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "pid=1", "the container's process is pid 1 in its namespace: {stdout}");
    let visible: usize = lines[1].parse().unwrap();
    // sh, ls and grep at most; the host has far more (this test among them).
    assert!(visible <= 3, "host processes are visible: {visible} pids in /proc");
    let host: usize = std::fs::read_dir("/proc").unwrap().flatten().filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok()).count();
    assert!(host > visible, "sanity: the host sees more pids ({host})");
}

#[test]
fn hostname_and_domainname() {
    require_root!();
    let rt = Runtime::new();
    let host_name_before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host_domain_before = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let mut bundle = Bundle::busybox(&["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"]);
    bundle.config["hostname"] = json!("mrt-box");
    bundle.config["domainname"] = json!("mrt.example");
    bundle.save();
    let out = rt.run(&bundle, &unique_name("uts"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), "mrt-box\nmrt.example\n");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), host_name_before, "host hostname changed");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(), host_domain_before, "host domainname changed");
}

#[test]
fn hostname_without_uts_namespace_is_refused() {
    require_root!();
    let rt = Runtime::new();
    let host_name_before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut bundle = Bundle::busybox(&["true"]);
    bundle.remove_namespace("uts");
    bundle.config["hostname"] = json!("mrt-must-not-land-on-host");
    bundle.save();
    let id = unique_name("nouts");
    let out = rt.create(&bundle, &id);
    assert!(!out.status.success(), "setting a hostname in the host's UTS namespace must be refused");
    assert!(text(&out.stderr).to_lowercase().contains("uts"), "error names the UTS namespace: {}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), host_name_before);
    assert!(!rt.root().join(&id).exists());
    assert!(cgroup_dirs_named(&id).is_empty());
}

#[test]
fn uts_ipc_cgroup_namespaces_are_new() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "for n in uts ipc net pid mnt cgroup; do echo $n $(readlink /proc/self/ns/$n); done; echo; cat /proc/self/cgroup"]);
    bundle.set_namespace(json!({"type": "cgroup"}));
    let out = rt.run(&bundle, &unique_name("nsids"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    let (links, cgroups) = stdout.split_once("\n\n").expect("two parts");
    for line in links.lines() {
        let (kind, link) = line.split_once(' ').unwrap();
        assert!(!link.is_empty(), "{kind}: no ns link");
        assert_ne!(link, ns_of("self", kind), "{kind} namespace is the host's");
    }
    // In its own cgroup namespace the container's cgroups are its roots.
    for line in cgroups.lines() {
        assert!(line.ends_with(":/"), "cgroup namespace not rooted at the container's cgroup: {line}");
    }
}

#[test]
fn ipc_namespace_isolates_sysv_objects() {
    require_root!();
    // A message queue made on the host is not visible inside.
    // SAFETY: msgget with constant arguments.
    let qid = unsafe { libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600) };
    assert!(qid >= 0, "msgget: {}", std::io::Error::last_os_error());
    let _queue_guard = guard(move || {
        // SAFETY: removes the queue we made.
        unsafe { libc::msgctl(qid, libc::IPC_RMID, std::ptr::null_mut()) };
    });
    let host_lines = std::fs::read_to_string("/proc/sysvipc/msg").unwrap().lines().count();
    assert!(host_lines >= 2, "sanity: the host sees its queue");
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sh", "-c", "cat /proc/sysvipc/msg | wc -l"]);
    let out = rt.run(&bundle, &unique_name("ipc"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout).trim(), "1", "only the header line: the container must not see the host's queues");
}

#[test]
fn new_network_namespace_has_only_lo_and_it_is_up() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sh", "-c", "ls /sys/class/net; echo --; ip -o link show; echo --; ip -o addr show lo"]);
    let out = rt.run(&bundle, &unique_name("netns"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    let parts: Vec<&str> = stdout.split("--\n").collect();
    assert_eq!(parts[0].trim(), "lo", "only lo in a new netns: {stdout}");
    let links: Vec<&str> = parts[1].lines().collect();
    assert_eq!(links.len(), 1, "{stdout}");
    let flags = links[0].split('<').nth(1).and_then(|s| s.split('>').next()).unwrap_or_default();
    assert!(flags.split(',').any(|f| f == "UP"), "lo is not UP: {}", links[0]);
    assert!(parts[2].contains("127.0.0.1"), "lo has 127.0.0.1 once up: {}", parts[2]);
}

#[test]
fn joins_a_network_namespace_by_path() {
    require_root!();
    let rt = Runtime::new();
    let netns = unique_name("ns");
    let ok = Command::new("ip").args(["netns", "add", &netns]).status().unwrap();
    assert!(ok.success(), "ip netns add {netns}");
    let name = netns.clone();
    let _netns_guard = guard(move || {
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
    });
    let ok = Command::new("ip").args(["-n", &netns, "link", "add", "mrtveth0", "type", "veth", "peer", "name", "mrtveth1"]).status().unwrap();
    assert!(ok.success(), "veth pair in {netns}");
    let mut bundle = Bundle::busybox(&["ip", "-o", "link", "show"]);
    bundle.set_namespace(json!({"type": "network", "path": format!("/var/run/netns/{netns}")}));
    let out = rt.run(&bundle, &unique_name("joinnet"));
    assert!(out.status.success(), "{}", both(&out));
    assert!(text(&out.stdout).contains("mrtveth0"), "the joined netns's link is not there: {}", text(&out.stdout));
}

#[test]
fn joins_another_containers_namespaces() {
    require_root!();
    let rt = Runtime::new();
    let mut first = Bundle::busybox(&["sleep", "60"]);
    first.config["hostname"] = json!("mrt-first");
    first.save();
    let first_id = unique_name("first");
    rt.run_detached(&first, &first_id);
    let pid = rt.init_pid(&first_id);

    let mut second = Bundle::busybox(&["sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/uts; readlink /proc/self/ns/ipc; hostname"]);
    second.config["hostname"] = json!(null);
    second.set_namespace(json!({"type": "network", "path": format!("/proc/{pid}/ns/net")}));
    second.set_namespace(json!({"type": "uts", "path": format!("/proc/{pid}/ns/uts")}));
    second.set_namespace(json!({"type": "ipc", "path": format!("/proc/{pid}/ns/ipc")}));
    let out = rt.run(&second, &unique_name("second"));
    assert!(out.status.success(), "{}", both(&out));
    let pid_s = pid.to_string();
    let expected = format!("{}\n{}\n{}\nmrt-first\n", ns_of(&pid_s, "net"), ns_of(&pid_s, "uts"), ns_of(&pid_s, "ipc"));
    assert_eq!(text(&out.stdout), expected);
}

fn userns_bundle() -> Bundle {
    let mut bundle = Bundle::busybox(&["sh", "-c", "id -u; id -g; cat /proc/self/uid_map; exec sleep 60"]);
    // The container's root is host uid 100000: it must be able to reach and
    // read its rootfs.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bundle.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ok = Command::new("chown").args(["-R", "100000:100000"]).arg(bundle.rootfs()).status().unwrap();
    assert!(ok.success());
    bundle.set_namespace(json!({"type": "user"}));
    bundle.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    bundle.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    bundle.save();
    bundle
}

/// `run --detach` (the init is released over its channel).
#[test]
fn user_namespace_with_id_mappings() {
    require_root!();
    let rt = Runtime::new();
    let bundle = userns_bundle();
    let id = unique_name("userns");
    rt.run_detach(&bundle, &id);
    check_userns(&rt, &bundle, &id);
}

/// create, then start (the init waits on the exec fifo, which it must be
/// able to open as the container's root, host uid 100000).
#[test]
fn user_namespace_with_create_and_start() {
    require_root!();
    let rt = Runtime::new();
    let bundle = userns_bundle();
    let id = unique_name("usernsc");
    rt.run_detached(&bundle, &id);
    check_userns(&rt, &bundle, &id);
}

fn check_userns(rt: &Runtime, bundle: &Bundle, id: &str) {
    let stdout = bundle.wait_file("stdout", |s| s.lines().count() >= 3);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "0", "uid inside");
    assert_eq!(lines[1], "0", "gid inside");
    assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    let pid = rt.init_pid(id);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let gid_line = status.lines().find(|l| l.starts_with("Gid:")).unwrap();
    assert_eq!(uid_line.split_whitespace().nth(1), Some("100000"), "host view: {uid_line}");
    assert_eq!(gid_line.split_whitespace().nth(1), Some("100000"), "host view: {gid_line}");
    assert_ne!(ns_of(&pid.to_string(), "user"), ns_of("self", "user"));
}

#[test]
fn time_namespace_with_offsets() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "cat /proc/uptime; cat /proc/self/timens_offsets"]);
    bundle.set_namespace(json!({"type": "time"}));
    bundle.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 86400, "nanosecs": 0},
        "boottime": {"secs": 172800, "nanosecs": 0}
    });
    bundle.save();
    let before: f64 = std::fs::read_to_string("/proc/uptime").unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let out = rt.run(&bundle, &unique_name("timens"));
    let after: f64 = std::fs::read_to_string("/proc/uptime").unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    let inside: f64 = stdout.split_whitespace().next().unwrap().parse().unwrap();
    // /proc/uptime follows CLOCK_BOOTTIME; the monotonic offset is checked
    // in the namespace's own offsets.
    assert!(inside >= before + 172800.0 - 1.0 && inside <= after + 172800.0 + 1.0, "uptime inside {inside}, host {before}..{after}");
    let offsets: Vec<Vec<&str>> = stdout.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert!(offsets.contains(&vec!["monotonic", "86400", "0"]), "{stdout}");
    assert!(offsets.contains(&vec!["boottime", "172800", "0"]), "{stdout}");
}

#[test]
fn bad_namespace_path_fails_cleanly() {
    require_root!();
    let rt = Runtime::new();
    let not_ns = tempfile::NamedTempFile::new().unwrap();
    for path in ["/nonexistent/mrt-netns".to_string(), not_ns.path().display().to_string()] {
        let mut bundle = Bundle::busybox(&["sleep", "60"]);
        bundle.set_namespace(json!({"type": "network", "path": path}));
        let id = unique_name("badns");
        let out = rt.create(&bundle, &id);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "create with network path {path} succeeded");
        assert!(stderr.contains(&path), "the error names the path {path}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!rt.root().join(&id).exists(), "state dir left");
        assert!(cgroup_dirs_named(&id).is_empty(), "cgroup left: {:?}", cgroup_dirs_named(&id));
        assert!(rt.state(&id).is_none());
        // No process of ours with the container's cgroup either.
        assert!(wait_until(5, || !process_with_cgroup_containing(&id)), "a process of {id} survived");
    }
}

fn process_with_cgroup_containing(id: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| std::fs::read_to_string(e.path().join("cgroup")).is_ok_and(|c| c.contains(id)))
}
