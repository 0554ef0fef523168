//! The Docker-style front end (`minirun run`, `ps`, `stop`, `rm`, `exec`,
//! `logs`, `inspect`, ...) on a busybox image imported from busybox-static.
//! Each test runs in a network namespace of its own (its thread unshares
//! one), so bridges, veths and firewall rules are made in a throwaway
//! "host", and has its own state roots; at the end it checks that nothing
//! is left: no container dirs, mounts, cgroups, veths or leases.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use minirun_tests::front::{sh, Front};
use minirun_tests::{both, cgroup_dirs_named, require_root, text, wait_until};

#[test]
fn exit_codes_are_dockers() {
    require_root!();
    let f = Front::new();
    let code = |args: &[&str]| f.out(args).status.code();
    assert_eq!(code(&["run", "--rm", "--network", "none", "busybox", "true"]), Some(0));
    assert_eq!(code(&["run", "--rm", "--network", "none", "busybox", "sh", "-c", "exit 3"]), Some(3));
    assert_eq!(code(&["run", "--rm", "--network", "none", "busybox", "no-such-command"]), Some(127));
    assert_eq!(code(&["run", "--rm", "--network", "none", "busybox", "/etc/passwd"]), Some(126));
    // A registry on loopback where nothing listens: the pull fails at once.
    let unknown = f.out(&["run", "--rm", "127.0.0.1:9/nothing-here:latest", "true"]);
    assert_eq!(unknown.status.code(), Some(125), "{}", both(&unknown));
    let missing = f.out(&["run", "--network", "none", "--name", "kept", "busybox", "no-such-command"]);
    assert_eq!(missing.status.code(), Some(127));
    assert!(text(&missing.stderr).contains("no-such-command"), "{}", both(&missing));
    // As in Docker, the container that could not start stays, as Created.
    assert_eq!(f.inspect("kept")["State"]["Status"], "created");
    assert_eq!(f.inspect("kept")["State"]["ExitCode"], 127);
    f.ok(&["rm", "kept"]);
    f.assert_nothing_left();
}

#[test]
fn the_view_from_inside_on_the_default_bridge() {
    require_root!();
    let f = Front::new();
    let script = "ip -o -4 addr show eth0; ip route; hostname; cat /etc/hosts; grep -E '^(Cap|Seccomp:|NoNewPrivs)' /proc/self/status; cat /proc/self/mounts";
    let out = f.ok(&["run", "--rm", "--name", "view", "busybox", "sh", "-c", script]);
    let address = out.lines().find(|l| l.contains("inet ")).unwrap().split_whitespace().nth(3).unwrap().to_string();
    let (ip, prefix) = address.split_once('/').unwrap();
    assert_eq!(prefix, "16", "{out}");
    let gateway = format!("{}.1", ip.rsplit_once('.').unwrap().0);
    assert!(out.contains(&format!("default via {gateway} dev eth0")), "{out}");
    let hostname = out.lines().find(|l| l.len() == 12 && l.bytes().all(|b| b.is_ascii_hexdigit())).expect("hostname is the short id");
    assert!(out.contains("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"), "{out}");
    assert!(out.contains(&format!("{ip}\t{hostname}")), "{out}");
    for line in ["CapEff:\t00000000a80425fb", "CapBnd:\t00000000a80425fb", "CapInh:\t0000000000000000", "Seccomp:\t2", "NoNewPrivs:\t0"] {
        assert!(out.contains(line), "{line} in {out}");
    }
    assert!(out.contains("sysfs /sys sysfs ro,"), "{out}");
    assert!(out.contains("/dev/shm tmpfs rw,nosuid,nodev,noexec,relatime,size=65536k"), "{out}");
    f.assert_nothing_left();
}

#[test]
fn detached_container_lifecycle() {
    require_root!();
    let f = Front::new();
    let id = f.ok(&["run", "-d", "--name", "svc", "busybox", "sh", "-c", "echo started; echo oops >&2; trap 'echo got TERM; exit 7' TERM; while true; do sleep 0.1; done"]).trim().to_string();
    assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    let ps = f.ok(&["ps"]);
    assert!(ps.contains(&id[..12]) && ps.contains("svc") && ps.contains("Up "), "{ps}");
    assert_eq!(f.ok(&["ps", "-q"]).trim(), &id[..12]);
    assert!(wait_until(5, || f.ok(&["logs", "svc"]).contains("started")));
    let logs = f.out(&["logs", "svc"]);
    assert!(text(&logs.stderr).contains("oops"), "stderr stays stderr: {}", both(&logs));
    assert_eq!(f.ok(&["exec", "svc", "hostname"]).trim(), &id[..12]);
    assert_eq!(f.out(&["exec", "svc", "sh", "-c", "exit 4"]).status.code(), Some(4));
    // As Docker: stdin only with -i, no stdio at all with -d.
    let exec_with_input = |extra: &[&str]| {
        let mut child = f.cmd().arg("exec").args(extra).args(["svc", "cat"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"typed\n").unwrap();
        child.wait_with_output().unwrap()
    };
    assert_eq!(text(&exec_with_input(&["-i"]).stdout), "typed\n");
    let without_i = exec_with_input(&[]);
    assert!(without_i.status.success() && text(&without_i.stdout).is_empty(), "{}", both(&without_i));
    let detached = f.out(&["exec", "-d", "svc", "sh", "-c", "echo leaked; echo leaked >&2"]);
    assert!(detached.status.success() && detached.stdout.is_empty() && detached.stderr.is_empty(), "{}", both(&detached));
    let state = f.inspect(&id[..5]);
    assert_eq!(state["State"]["Running"], true);
    let pid = state["State"]["Pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(!cgroup_dirs_named(&id).is_empty(), "the container has a cgroup while it runs");
    f.ok(&["stop", "-t", "5", "svc"]);
    // SIGKILL from outside ends even a pid 1 that ignores everything: 128 + 9.
    f.ok(&["run", "-d", "--network", "none", "--name", "stubborn", "busybox", "sleep", "60"]);
    f.ok(&["kill", "stubborn"]);
    assert!(wait_until(5, || f.inspect("stubborn")["State"]["Status"] == "exited"));
    assert_eq!(f.inspect("stubborn")["State"]["ExitCode"], 137);
    f.ok(&["rm", "stubborn"]);
    let state = f.inspect("svc");
    assert_eq!(state["State"]["Status"], "exited");
    assert_eq!(state["State"]["ExitCode"], 7, "the trap ran: SIGTERM was sent first");
    assert!(f.ok(&["logs", "--tail", "1", "svc"]).contains("got TERM"));
    assert_eq!(f.ok(&["ps", "-q"]).trim(), "");
    assert!(f.ok(&["ps", "-a"]).contains("Exited (7)"));
    assert!(cgroup_dirs_named(&id).is_empty(), "cgroup released on exit");
    f.ok(&["rm", "svc"]);
    assert_eq!(f.out(&["inspect", "svc"]).status.code(), Some(1));
    f.assert_nothing_left();
}

#[test]
fn published_port_and_container_to_container_traffic() {
    require_root!();
    let f = Front::new();
    f.ok(&["run", "-d", "--name", "web", "-p", "18080:80", "busybox", "sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && httpd -f -p 80 -h /www"]);
    let web_ip = f.inspect("web")["NetworkSettings"]["IPAddress"].as_str().unwrap().to_string();
    // From the (throwaway) host through 127.0.0.1, as `curl 127.0.0.1:8080` with Docker.
    assert!(wait_until(5, || sh("timeout 2 /bin/busybox wget -qO- http://127.0.0.1:18080/ || true").contains("hello-from-web")));
    // From another container, by address, and a ping.
    let other = f.ok(&["run", "--rm", "busybox", "sh", "-c", &format!("ping -c1 -W2 {web_ip} >/dev/null && echo ping-ok; timeout 2 wget -qO- http://{web_ip}/")]);
    assert!(other.contains("ping-ok") && other.contains("hello-from-web"), "{other}");
    // Sharing web's network namespace: the same eth0 and address.
    let joined = f.ok(&["run", "--rm", "--network", "container:web", "busybox", "sh", "-c", "ip -o -4 addr show eth0; timeout 2 wget -qO- http://127.0.0.1/"]);
    assert!(joined.contains(&format!("inet {web_ip}/")) && joined.contains("hello-from-web"), "{joined}");
    // The port is taken while web runs.
    let taken = f.out(&["run", "--rm", "-p", "18080:80", "busybox", "true"]);
    assert_eq!(taken.status.code(), Some(125), "{}", both(&taken));
    f.ok(&["rm", "-f", "web"]);
    assert!(!sh("timeout 1 /bin/busybox wget -qO- http://127.0.0.1:18080/ 2>&1 || true").contains("hello"));
    f.assert_nothing_left();
}

#[test]
fn network_modes_none_and_host() {
    require_root!();
    let f = Front::new();
    let none = f.ok(&["run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"]);
    assert_eq!(none.lines().count(), 1, "only lo: {none}");
    assert!(none.contains("lo:"));
    sh("ip link add hostside0 type veth peer name hostside1");
    let host = f.ok(&["run", "--rm", "--network", "host", "busybox", "sh", "-c", "ip -o link; hostname"]);
    assert!(host.contains("hostside0"), "the host's interfaces: {host}");
    let hostname = sh("hostname");
    assert!(host.contains(hostname.trim()), "the host's name: {host}");
    sh("ip link del hostside0");
    f.assert_nothing_left();
}

#[test]
fn resource_limits_reach_the_cgroup() {
    require_root!();
    let f = Front::new();
    let out = f.ok(&["run", "--rm", "--network", "none", "--memory", "64m", "--pids-limit", "50", "--cpus", "1.5", "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null; true"]);
    assert!(out.contains("67108864"), "{out}");
    assert!(out.contains("50"), "{out}");
    assert!(out.contains("150000"), "{out}");
    f.assert_nothing_left();
}

#[test]
fn names_prefixes_and_bad_input() {
    require_root!();
    let f = Front::new();
    let id = f.ok(&["run", "-d", "--network", "none", "--name", "one", "busybox", "sleep", "30"]).trim().to_string();
    let dup = f.out(&["run", "-d", "--network", "none", "--name", "one", "busybox", "true"]);
    assert_eq!(dup.status.code(), Some(125));
    assert!(text(&dup.stderr).contains("already in use"), "{}", both(&dup));
    f.ok(&["rename", "one", "two"]);
    assert_eq!(f.inspect(&id[..6])["Name"], "/two");
    let generated = f.ok(&["run", "--network", "none", "busybox", "true"]);
    assert!(generated.is_empty());
    let names = f.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(names.lines().any(|n| n != "two" && n.contains('_')), "a Docker-style generated name: {names}");
    for bad in [
        vec!["run", "-p", "70000:80", "busybox", "true"],
        vec!["run", "-p", "nope", "busybox", "true"],
        vec!["run", "--memory", "12q", "busybox", "true"],
        vec!["run", "--cpus", "-1", "busybox", "true"],
        vec!["run", "--network", "no-such-network", "busybox", "true"],
        vec!["run", "--network", "container:no-such-container", "busybox", "true"],
        vec!["run", "--name", "../evil", "busybox", "true"],
        vec!["run", "--cap-add", "NOT_A_CAP", "busybox", "true"],
        vec!["run", "-v", "relative:/x", "busybox", "true"],
        vec!["run", "Bad//Reference", "true"],
    ] {
        let out = f.out(&bad);
        assert_eq!(out.status.code(), Some(125), "{bad:?}: {}", both(&out));
        let err = text(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{bad:?}: one line: {err}");
        assert!(!err.contains("panicked"), "{bad:?}: {err}");
    }
    assert_eq!(f.out(&["rm", "no-such-container"]).status.code(), Some(1));
    assert_eq!(f.out(&["rm", "two"]).status.code(), Some(1), "running: needs -f");
    f.ok(&["rm", "-f", "two"]);
    let rest = f.ok(&["ps", "-aq"]);
    for id in rest.lines() {
        f.ok(&["rm", id]);
    }
    f.assert_nothing_left();
}

#[test]
fn a_killed_monitor_is_cleaned_up_by_the_next_command() {
    require_root!();
    let f = Front::new();
    let id = f.ok(&["run", "-d", "--name", "victim", "-p", "18081:80", "busybox", "sleep", "60"]).trim().to_string();
    let monitor = monitor_of(&id).expect("the container has a monitor");
    // SAFETY: kill with a pid we just looked up for our own container.
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    // The container dies with its monitor (it is its parent death signal).
    assert!(wait_until(5, || f.ok(&["ps", "-q"]).trim().is_empty()));
    let state = f.inspect("victim");
    assert_eq!(state["State"]["Status"], "exited");
    assert!(state["State"]["Error"].as_str().unwrap().contains("monitor"), "{state}");
    assert!(cgroup_dirs_named(&id).is_empty());
    f.ok(&["rm", "victim"]);
    // Its address and port are free again.
    f.ok(&["run", "--rm", "-p", "18081:80", "busybox", "true"]);
    f.assert_nothing_left();
}

/// The pid of `minirun __monitor ID`, found through /proc.
fn monitor_of(id: &str) -> Option<i32> {
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        args.windows(2).any(|w| w[0] == b"__monitor" && w[1] == id.as_bytes()).then_some(pid)
    })
}

#[test]
fn auto_remove_and_a_terminal() {
    require_root!();
    let f = Front::new();
    f.ok(&["run", "--rm", "busybox", "true"]);
    assert_eq!(f.ok(&["ps", "-aq"]), "");
    // -t: the container's stdio is a pty of its own (`script` gives us one).
    let mut cmd = f.cmd();
    cmd.args(["run", "--rm", "-t", "--network", "none", "busybox", "tty"]);
    let line = format!("{:?}", cmd).replace('"', "");
    let out = Command::new("script").args(["-qec", &line, "/dev/null"]).stdin(Stdio::null()).output().unwrap();
    assert!(text(&out.stdout).contains("/dev/pts/0"), "{}", both(&out));
    f.assert_nothing_left();
}

#[test]
fn explain_matches_what_run_does() {
    require_root!();
    let f = Front::new();
    let flags = ["-p", "18082:80", "--memory", "64m", "--pids-limit", "50", "busybox", "sleep", "30"];
    let script = f.ok(&[&["run", "--explain"][..], &flags].concat());
    assert_eq!(f.ok(&["ps", "-aq"]), "", "--explain made no container");
    assert!(!sh("ip -o link").contains("minirun0"), "--explain made no bridge");
    let id = f.ok(&[&["run", "-d"][..], &flags].concat()).trim().to_string();
    let state = f.inspect(&id);
    let ip = state["NetworkSettings"]["IPAddress"].as_str().unwrap();
    let gateway = state["NetworkSettings"]["Gateway"].as_str().unwrap();
    // The network, as netsetup planned it: the address, the gateway route, the published port.
    assert!(script.contains(&format!("ip addr add {ip}/16 brd + dev eth0")), "{script}");
    assert!(script.contains(&format!("ip route add default via {gateway}")), "{script}");
    assert!(script.contains("18082") && script.contains(&format!("{ip} . 80")) || script.contains(&format!("{ip}:80")), "{script}");
    // The rootfs: the same layers, in the same order, as the real overlay mount.
    let explained_lower = script.lines().find_map(|l| l.strip_prefix("mount -t overlay overlay -o lowerdir=")).unwrap().split(',').next().unwrap().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let real = mountinfo.lines().find(|l| l.contains(&format!("{id}/rootfs")) && l.contains("overlay")).expect("the container's overlay");
    assert!(real.contains(&format!("lowerdir={explained_lower}")), "{real} vs {explained_lower}");
    // The cgroup limits land in the files the script names.
    for line in script.lines().filter(|l| l.starts_with("echo ") && l.contains("/sys/fs/cgroup/")) {
        let (value, file) = line.trim_start_matches("echo ").split_once(" > ").unwrap();
        let file = file.replace("$ID", &id);
        let real = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(real.trim(), value.trim_matches('\''), "{file}");
    }
    // The capabilities setpriv would keep are the container's bounding set (Docker's 14).
    let caps = script.lines().find(|l| l.contains("setpriv --reuid")).unwrap();
    assert_eq!(caps.matches(",+").count(), 14, "{caps}");
    f.ok(&["rm", "-f", &id]);
    f.assert_nothing_left();
}

#[test]
fn a_joined_network_outlives_its_owner_until_the_last_joiner_leaves() {
    require_root!();
    let f = Front::new();
    f.ok(&["run", "-d", "--name", "owner", "busybox", "sleep", "60"]);
    let address = f.inspect("owner")["NetworkSettings"]["IPAddress"].as_str().unwrap().to_string();
    f.ok(&["run", "-d", "--name", "sidecar", "--network", "container:owner", "busybox", "sleep", "60"]);
    f.ok(&["rm", "-f", "owner"]);
    // The sidecar keeps eth0, its address and its way to the gateway.
    let view = f.ok(&["exec", "sidecar", "sh", "-c", "ip -o -4 addr show eth0; ping -c1 -W2 $(ip route | awk '/default/ {print $3}') >/dev/null && echo gateway-ok"]);
    assert!(view.contains(&format!("inet {address}/")) && view.contains("gateway-ok"), "{view}");
    // The address stays taken while the sidecar uses it.
    let next = f.ok(&["run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(!next.contains(&format!("inet {address}/")), "{next}");
    f.ok(&["rm", "-f", "sidecar"]);
    f.assert_nothing_left();
}

#[test]
fn top_stats_and_cp() {
    require_root!();
    let f = Front::new();
    f.ok(&["run", "-d", "--name", "box", "--network", "none", "--memory", "32m", "busybox", "sleep", "60"]);
    assert!(f.ok(&["top", "box"]).contains("sleep 60"));
    let stats = f.ok(&["stats", "--no-stream", "box"]);
    assert!(stats.contains("box") && stats.contains("/ 32.00MiB"), "{stats}");
    let host_file = f.dir("note.txt");
    std::fs::write(&host_file, "from the host\n").unwrap();
    f.ok(&["cp", host_file.to_str().unwrap(), "box:/tmp/"]);
    assert_eq!(f.ok(&["exec", "box", "cat", "/tmp/note.txt"]), "from the host\n");
    let out = f.dir("hostname-copy");
    f.ok(&["cp", "box:/etc/hostname", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), &f.inspect("box")["Id"].as_str().unwrap()[..12]);
    // The container's symlinks are resolved inside its rootfs.
    f.ok(&["exec", "box", "ln", "-s", "/../../../../etc", "/tmp/escape"]);
    let escaped = f.dir("escaped");
    let _ = f.out(&["cp", "box:/tmp/escape/hostname", escaped.to_str().unwrap()]);
    if escaped.exists() {
        assert_ne!(std::fs::read_to_string(&escaped).unwrap(), std::fs::read_to_string("/etc/hostname").unwrap(), "copied the host's file");
    }
    f.ok(&["rm", "-f", "box"]);
    f.assert_nothing_left();
}

#[test]
fn names_resolve_on_a_user_defined_network_only() {
    require_root!();
    let f = Front::new();
    let net = format!("mrtnames{}", std::process::id());
    f.ok(&["network", "create", &net]);
    f.ok(&["run", "-d", "--name", "alpha", "--network", &net, "busybox", "sleep", "60"]);
    let alpha = f.inspect("alpha")["NetworkSettings"]["IPAddress"].as_str().unwrap().to_string();
    let seen = f.ok(&["run", "--rm", "--name", "beta", "--network", &net, "busybox", "sh", "-c", "ping -c1 -W2 alpha >/dev/null && echo reached; grep -w alpha /etc/hosts"]);
    assert!(seen.contains("reached") && seen.contains(&alpha), "{seen}");
    // alpha learnt beta's name while beta ran, and forgot it when beta left.
    assert!(!f.ok(&["exec", "alpha", "cat", "/etc/hosts"]).contains("beta"));
    // The default network resolves no names, as Docker's.
    f.ok(&["run", "-d", "--name", "gamma", "busybox", "sleep", "60"]);
    let default = f.out(&["run", "--rm", "busybox", "ping", "-c1", "-W1", "gamma"]);
    assert!(!default.status.success());
    for c in ["alpha", "gamma"] {
        f.ok(&["rm", "-f", c]);
    }
    f.ok(&["network", "rm", &net]);
    f.assert_nothing_left();
}

#[test]
fn fifty_containers_started_and_removed_in_parallel() {
    require_root!();
    let f = Front::new();
    let started: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50).map(|_| s.spawn(|| f.out(&["run", "-d", "busybox", "sleep", "60"]))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &started {
        assert!(out.status.success(), "{}", both(out));
    }
    let ids: Vec<String> = started.iter().map(|o| text(&o.stdout).trim().to_string()).collect();
    let mut addresses: Vec<String> = ids.iter().map(|id| f.inspect(id)["NetworkSettings"]["IPAddress"].as_str().unwrap().to_string()).collect();
    let mut names: Vec<String> = ids.iter().map(|id| f.inspect(id)["Name"].as_str().unwrap().to_string()).collect();
    addresses.sort();
    addresses.dedup();
    names.sort();
    names.dedup();
    assert_eq!((addresses.len(), names.len()), (50, 50), "distinct addresses and names");
    let removed: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = ids.iter().map(|id| s.spawn(|| f.out(&["rm", "-f", id]))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &removed {
        assert!(out.status.success(), "{}", both(out));
    }
    f.assert_nothing_left();
}
