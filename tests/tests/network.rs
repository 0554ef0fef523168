//! Bridge networking through `minirun network attach/detach` on real
//! containers. Each test moves its own thread into a fresh network namespace
//! first, so the "host" it changes (bridge, veths, nftables or iptables
//! rules) is a throwaway one: nothing on the real host is touched, and it all
//! vanishes with the thread even if the test fails. Traffic goes only to
//! addresses inside those namespaces.

use std::path::Path;
use std::process::{Command, Output};

use minirun_tests::{both, require_root, text, unique_name, Bundle, Runtime};

/// This thread (and every process it spawns) gets a network namespace of
/// its own, with `lo` up.
fn enter_throwaway_netns() {
    // SAFETY: unshare affects only the calling thread's namespaces.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET)");
    sh("ip link set lo up");
}

fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{script}: {}", both(&out));
    text(&out.stdout)
}

struct Net {
    root: tempfile::TempDir,
}

impl Net {
    fn new() -> Self {
        Net { root: tempfile::Builder::new().prefix("minirun-test-net").tempdir().unwrap() }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new(minirun_tests::minirun_bin()).arg("--network-root").arg(self.root.path()).args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(out.status.success(), "minirun {args:?}: {}", both(&out));
        text(&out.stdout)
    }

    /// Attaches a running container; returns its address.
    fn attach(&self, network: &str, rt: &Runtime, id: &str, extra: &[&str]) -> String {
        let pid = rt.init_pid(id);
        let netns = format!("/proc/{pid}/ns/net");
        let mut args = vec!["network", "attach", network, "--netns", &netns, "--id", id];
        args.extend_from_slice(extra);
        let json: serde_json::Value = serde_json::from_str(&self.ok(&args)).unwrap();
        json["address"].as_str().unwrap().split('/').next().unwrap().to_string()
    }
}

/// A detached busybox container in its own network namespace.
fn container(rt: &Runtime, tag: &str, args: &[&str]) -> (Bundle, String) {
    let bundle = Bundle::busybox(args);
    std::fs::create_dir_all(bundle.rootfs().join("www")).unwrap();
    std::fs::write(bundle.rootfs().join("www/index.html"), format!("hello from {tag}\n")).unwrap();
    let id = unique_name(tag);
    rt.run_detached(&bundle, &id);
    (bundle, id)
}

fn exec(rt: &Runtime, id: &str, script: &str) -> Output {
    rt.output(&["exec", id, "sh", "-c", script])
}

fn assert_nothing_left(net_root: &Path) {
    let links = sh("ip -o link show");
    assert!(!links.contains(" mr"), "veths left: {links}");
    assert!(!links.contains("minirun0") && !links.contains("mr-"), "bridge left: {links}");
    let rules = format!("{}{}", Command::new("nft").args(["list", "ruleset"]).output().map(|o| text(&o.stdout)).unwrap_or_default(), Command::new("iptables-save").output().map(|o| text(&o.stdout)).unwrap_or_default());
    assert!(!rules.to_lowercase().contains("minirun"), "rules left: {rules}");
    let attachments = net_root.join("attachments");
    let left: Vec<_> = std::fs::read_dir(&attachments).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "attachment records left: {left:?}");
}

#[test]
fn bridge_connects_containers_and_publishes_ports() {
    require_root!();
    enter_throwaway_netns();
    let net = Net::new();
    let rt = Runtime::new();
    let (_b1, web) = container(&rt, "web", &["httpd", "-f", "-p", "80", "-h", "/www"]);
    let (_b2, client) = container(&rt, "client", &["sleep", "60"]);
    let web_ip = net.attach("bridge", &rt, &web, &["-p", "18080:80"]);
    let client_ip = net.attach("bridge", &rt, &client, &[]);
    assert_ne!(web_ip, client_ip);

    // The view from inside, as under Docker: eth0 with the address and a MAC derived from it, a default route.
    let view = text(&exec(&rt, &client, "ip -4 addr show eth0; ip route; cat /sys/class/net/eth0/address").stdout);
    assert!(view.contains(&format!("inet {client_ip}/")), "{view}");
    assert!(view.contains("default via "), "{view}");
    let octets: Vec<u8> = client_ip.split('.').map(|o| o.parse().unwrap()).collect();
    assert!(view.contains(&format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", octets[0], octets[1], octets[2], octets[3])), "{view}");

    // Container to container over the bridge.
    let got = exec(&rt, &client, &format!("timeout 3 wget -qO- http://{web_ip}:80/"));
    assert_eq!(text(&got.stdout), "hello from web\n", "{}", both(&got));
    // The published port from the host's own 127.0.0.1, and through the gateway address.
    let host = sh("busybox timeout 3 wget -qO- http://127.0.0.1:18080/");
    assert_eq!(host, "hello from web\n");
    let gateway = text(&exec(&rt, &client, "ip route | awk '/default/{print $3}'").stdout).trim().to_string();
    // Hairpin: a container reaching the published port through the host's address.
    let hairpin = exec(&rt, &client, &format!("timeout 3 wget -qO- http://{gateway}:18080/"));
    assert_eq!(text(&hairpin.stdout), "hello from web\n", "{}", both(&hairpin));

    // The same host port again is refused, with nothing half made.
    let (_b3, other) = container(&rt, "other", &["sleep", "60"]);
    let pid = rt.init_pid(&other);
    let refused = net.cmd(&["network", "attach", "bridge", "--netns", &format!("/proc/{pid}/ns/net"), "--id", &other, "-p", "18080:80"]);
    assert_eq!(refused.status.code(), Some(125));
    assert!(text(&refused.stderr).contains("18080"), "{}", both(&refused));

    for id in [&web, &client, &other] {
        net.ok(&["network", "detach", id]);
    }
    net.ok(&["network", "rm", "bridge"]);
    assert_nothing_left(net.root.path());
}

#[test]
fn egress_is_masqueraded_to_an_outside_host_despite_a_forward_drop_policy() {
    require_root!();
    enter_throwaway_netns();
    let net = Net::new();
    let rt = Runtime::new();
    // A fake outside host in its own namespace behind a veth, with no route
    // back to the containers' subnet: replies only come back through NAT.
    let (_outside_bundle, outside) = container(&rt, "outside", &["httpd", "-f", "-p", "9000", "-h", "/www"]);
    let pid = rt.init_pid(&outside);
    sh(&format!("ip link add xout0 type veth peer name xout1 && ip link set xout1 netns /proc/{pid}/ns/net && ip addr add 192.0.2.1/24 dev xout0 && ip link set xout0 up"));
    sh(&format!("nsenter --net=/proc/{pid}/ns/net sh -c 'ip addr add 192.0.2.2/24 dev xout1 && ip link set xout1 up'"));
    // Another engine (Docker does this) has set the FORWARD policy to DROP.
    sh("iptables -P FORWARD DROP");
    let (_b, client) = container(&rt, "egress", &["sleep", "60"]);
    net.attach("bridge", &rt, &client, &[]);
    let got = exec(&rt, &client, "timeout 3 wget -qO- http://192.0.2.2:9000/");
    assert_eq!(text(&got.stdout), "hello from outside\n", "{}", both(&got));
    net.ok(&["network", "detach", &client]);
    net.ok(&["network", "rm", "bridge"]);
    assert_nothing_left(net.root.path());
}

#[test]
fn user_defined_networks_are_isolated_and_internal_has_no_egress() {
    require_root!();
    enter_throwaway_netns();
    let net = Net::new();
    let rt = Runtime::new();
    net.ok(&["network", "create", "mrta", "--subnet", "10.201.0.0/24"]);
    net.ok(&["network", "create", "mrtb", "--subnet", "10.202.0.0/24", "--internal"]);
    let listed = net.ok(&["network", "ls"]);
    assert!(listed.contains("mrta") && listed.contains("10.201.0.0/24") && listed.contains("mrtb"), "{listed}");
    let (_b1, a) = container(&rt, "neta", &["httpd", "-f", "-p", "80", "-h", "/www"]);
    let (_b2, b) = container(&rt, "netb", &["httpd", "-f", "-p", "80", "-h", "/www"]);
    let a_ip = net.attach("mrta", &rt, &a, &[]);
    let b_ip = net.attach("mrtb", &rt, &b, &[]);
    assert!(a_ip.starts_with("10.201.0.") && b_ip.starts_with("10.202.0."), "{a_ip} {b_ip}");
    let cross = exec(&rt, &a, &format!("timeout 2 wget -qO- http://{b_ip}:80/"));
    assert!(!cross.status.success(), "networks must not reach each other: {}", both(&cross));
    // The internal network cannot leave its bridge (the host side is "outside").
    let out = exec(&rt, &b, "timeout 2 wget -qO- http://10.201.0.1:80/ || echo blocked");
    assert!(text(&out.stdout).contains("blocked"), "{}", both(&out));
    // A network in use is not removed.
    let busy = net.cmd(&["network", "rm", "mrta"]);
    assert_eq!(busy.status.code(), Some(125), "{}", both(&busy));
    net.ok(&["network", "detach", &a]);
    net.ok(&["network", "detach", &b]);
    net.ok(&["network", "rm", "mrta", "mrtb"]);
    assert_nothing_left(net.root.path());
}

#[test]
fn exhausted_subnet_and_bad_input_are_clear_errors() {
    require_root!();
    enter_throwaway_netns();
    let net = Net::new();
    let rt = Runtime::new();
    net.ok(&["network", "create", "mrtsmall", "--subnet", "10.203.0.0/30"]);
    let (_b1, first) = container(&rt, "full1", &["sleep", "60"]);
    let (_b2, second) = container(&rt, "full2", &["sleep", "60"]);
    net.attach("mrtsmall", &rt, &first, &[]);
    let pid = rt.init_pid(&second);
    let full = net.cmd(&["network", "attach", "mrtsmall", "--netns", &format!("/proc/{pid}/ns/net"), "--id", &second]);
    assert_eq!(full.status.code(), Some(125));
    assert!(text(&full.stderr).contains("no free address"), "{}", both(&full));
    assert_eq!(text(&full.stderr).trim().lines().count(), 1, "one line: {}", both(&full));
    for bad in [&["network", "create", "bad name!"][..], &["network", "create", "mrtx", "--subnet", "10.0.0.0/33"], &["network", "attach", "nope", "--netns", "/proc/self/ns/net", "--id", "x"], &["network", "attach", "mrtsmall", "--netns", "/proc/self/ns/net", "--id", "x", "-p", "99999:80"]] {
        let out = net.cmd(bad);
        assert_eq!(out.status.code(), Some(125), "{bad:?}: {}", both(&out));
        assert!(!text(&out.stderr).contains("panicked"), "{bad:?}");
    }
    net.ok(&["network", "detach", &first]);
    net.ok(&["network", "rm", "mrtsmall"]);
    assert_nothing_left(net.root.path());
}

#[test]
fn a_killed_container_lease_is_reclaimed_by_the_next_command() {
    require_root!();
    enter_throwaway_netns();
    let net = Net::new();
    let rt = Runtime::new();
    net.ok(&["network", "create", "mrtre", "--subnet", "10.204.0.0/30"]);
    let (_b1, gone) = container(&rt, "gone", &["sleep", "60"]);
    net.attach("mrtre", &rt, &gone, &[]);
    // The container dies without a detach (as after kill -9 of its supervisor).
    rt.ok(&["kill", &gone, "KILL"]);
    rt.wait_status(&gone, "stopped");
    rt.ok(&["delete", &gone]);
    // The only address of the /30 is free again for the next container.
    let (_b2, next) = container(&rt, "next", &["sleep", "60"]);
    let ip = net.attach("mrtre", &rt, &next, &[]);
    assert_eq!(ip, "10.204.0.2");
    net.ok(&["network", "detach", &next]);
    net.ok(&["network", "rm", "mrtre"]);
    assert_nothing_left(net.root.path());
}

#[test]
fn concurrent_attaches_get_distinct_addresses_and_detach_cleanly() {
    require_root!();
    enter_throwaway_netns();
    let net = Net::new();
    // Namespace holders stand in for containers: the point here is many
    // minirun processes racing on one network's leases, bridge and rules.
    let holders: Vec<std::process::Child> = (0..20).map(|_| Command::new("unshare").args(["--net", "sleep", "120"]).spawn().unwrap()).collect();
    let pids: Vec<i32> = holders.iter().map(|h| h.id() as i32).collect();
    // Killed and reaped by pid even when an assertion fails.
    let _holders = minirun_tests::guard(move || {
        for pid in &pids {
            // SAFETY: signals and reaps only the holders this test started.
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
                libc::waitpid(*pid, std::ptr::null_mut(), 0);
            }
        }
    });
    let attaches: Vec<std::process::Child> = holders
        .iter()
        .enumerate()
        .map(|(i, h)| {
            Command::new(minirun_tests::minirun_bin())
                .arg("--network-root")
                .arg(net.root.path())
                .args(["network", "attach", "bridge", "--netns", &format!("/proc/{}/ns/net", h.id()), "--id", &format!("mrtc{i}"), "--pid", &h.id().to_string(), "-p", &format!("{}:80", 28000 + i)])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut addresses = std::collections::BTreeSet::new();
    for child in attaches {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", both(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        addresses.insert(json["address"].as_str().unwrap().to_string());
    }
    assert_eq!(addresses.len(), 20, "distinct addresses: {addresses:?}");
    let detaches: Vec<std::process::Child> = (0..20)
        .map(|i| Command::new(minirun_tests::minirun_bin()).arg("--network-root").arg(net.root.path()).args(["network", "detach", &format!("mrtc{i}")]).stderr(std::process::Stdio::piped()).spawn().unwrap())
        .collect();
    for child in detaches {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", both(&out));
    }
    drop(holders);
    net.ok(&["network", "rm", "bridge"]);
    assert_nothing_left(net.root.path());
}
