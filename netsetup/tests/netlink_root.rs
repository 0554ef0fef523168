//! Root tests of the rtnetlink client against the real kernel.
//!
//! Nothing here touches the host's links: each test re-executes this test
//! binary for itself with unshare(CLONE_NEWNET) done between fork and exec,
//! so the whole child process (every thread, every `ip` it runs) lives in a
//! fresh network namespace that plays "the host"; "containers" are further
//! namespaces held by `sleep` processes. The parent only asserts the
//! child's exit status. Everything vanishes with the namespaces.
//! Skipped (with a message) when not root.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minirun_netsetup::netlink::{enable_forwarding, mac_for, Netlink, NetlinkError};
use serde_json::Value;

const INNER: &str = "MINIRUN_NETLINK_TEST_INNER";
const PARENT_NS: &str = "MINIRUN_NETLINK_TEST_PARENT_NETNS";

const BRIDGE: &str = "mrtbr0";
const MTU: u32 = 1400;

fn unshare_net() -> io::Result<()> {
    // SAFETY: a plain syscall, async-signal-safe, fine between fork and exec.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn netns_id() -> String {
    std::fs::read_link("/proc/thread-self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Runs `body` in a re-executed copy of this binary inside a new network
/// namespace (see the module comment).
fn isolated(name: &str, body: fn()) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {name}: needs root");
        return;
    }
    if std::env::var(INNER).as_deref() == Ok(name) {
        let parent = std::env::var(PARENT_NS).unwrap_or_default();
        assert!(!parent.is_empty(), "no parent namespace id");
        assert_ne!(
            netns_id(),
            parent,
            "refusing to run in the parent's network namespace"
        );
        body();
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, name)
        .env(PARENT_NS, netns_id());
    // SAFETY: the hook only calls unshare(2).
    unsafe { cmd.pre_exec(unshare_net) };
    let out = cmd.output().expect("re-execute the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(
        out.status.success() && stdout.contains(&format!("test {name} ... ok")),
        "{name} in its own network namespace: {}\n{stdout}\n{stderr}",
        out.status
    );
}

/// A "container" network namespace, held by a sleeping process.
struct Netns {
    child: Child,
    file: File,
}

impl Netns {
    fn new() -> Netns {
        let mut cmd = Command::new("sleep");
        cmd.arg("1000").stdin(Stdio::null());
        // SAFETY: the hook only calls unshare(2).
        unsafe { cmd.pre_exec(unshare_net) };
        // spawn() returns after the exec, so the unshare has happened.
        let child = cmd.spawn().expect("spawn sleep in a new netns");
        let file = File::open(format!("/proc/{}/ns/net", child.id())).expect("open its ns");
        Netns { child, file }
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.child.id())
    }

    fn netlink(&self) -> Netlink {
        Netlink::open_in(self.file.as_fd()).expect("open_in")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command here, or inside `ns`; returns (success, stdout).
fn run(ns: Option<&Netns>, args: &[&str]) -> (bool, String) {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.path())).arg("--");
            c.args(args);
            c
        }
        None => {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    };
    let out = cmd.output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `ip -j -d <args>` parsed; panics with the output when `ip` fails.
fn ip_json(ns: Option<&Netns>, args: &[&str]) -> Value {
    let mut full = vec!["ip", "-j", "-d"];
    full.extend_from_slice(args);
    let (ok, out) = run(ns, &full);
    assert!(ok, "{full:?}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{full:?}: {e}: {out}"))
}

fn link_exists(ns: Option<&Netns>, name: &str) -> bool {
    run(ns, &["ip", "link", "show", "dev", name]).0
}

fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == flag))
}

fn has_addr(link: &Value, local: &str, prefix: u64) -> bool {
    link["addr_info"].as_array().is_some_and(|a| {
        a.iter()
            .any(|i| i["family"] == "inet" && i["local"] == local && i["prefixlen"] == prefix)
    })
}

fn ping(ns: Option<&Netns>, addr: &str) -> bool {
    // A first packet can go while ARP resolves; give it three chances.
    (0..3).any(|_| run(ns, &["busybox", "ping", "-c1", "-W1", addr]).0)
}

/// One container wired the way the runtime does it.
fn wire(host: &mut Netlink, ns: &Netns, veth: &str, bridge: u32, addr: &str) -> u32 {
    let index = host
        .create_veth(veth, "eth0", bridge, ns.file.as_fd(), MTU)
        .expect("create_veth");
    let mut inside = ns.netlink();
    let net: ipnet::Ipv4Net = addr.parse().unwrap();
    inside
        .configure_interface("eth0", mac_for(net.addr()), net)
        .expect("configure_interface");
    inside
        .add_default_route(Ipv4Addr::new(10, 99, 0, 1))
        .expect("add_default_route");
    index
}

#[test]
fn bridge_veth_container_end_to_end() {
    isolated("bridge_veth_container_end_to_end", || {
        let mut host = Netlink::open().unwrap();
        let gw: ipnet::Ipv4Net = "10.99.0.1/24".parse().unwrap();
        assert!(
            host.ensure_bridge(BRIDGE, gw, MTU).unwrap(),
            "first call creates"
        );
        let bridge = host.link_index(BRIDGE).unwrap().expect("bridge index");

        let ns = Netns::new();
        let before = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let veth = wire(&mut host, &ns, "vethmrt0", bridge, "10.99.0.2/24");
        let after = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        assert_eq!(before, after, "open_in must come back to our namespace");
        assert_eq!(host.link_index("vethmrt0").unwrap(), Some(veth));
        assert!(
            !link_exists(None, "eth0"),
            "the peer must not appear on the host"
        );

        // Bridge: up, MTU, gateway address.
        let br = &ip_json(None, &["addr", "show", "dev", BRIDGE])[0];
        assert!(has_flag(br, "UP"), "{br}");
        assert_eq!(br["mtu"], MTU);
        assert!(has_addr(br, "10.99.0.1", 24), "{br}");

        // Host end: on the bridge, up, MTU, hairpin.
        let h = &ip_json(None, &["link", "show", "dev", "vethmrt0"])[0];
        assert_eq!(h["master"], BRIDGE, "{h}");
        assert!(has_flag(h, "UP"), "{h}");
        assert_eq!(h["mtu"], MTU);
        assert_eq!(h["linkinfo"]["info_kind"], "veth", "{h}");
        assert_eq!(h["linkinfo"]["info_slave_kind"], "bridge", "{h}");
        assert_eq!(h["linkinfo"]["info_slave_data"]["hairpin"], true, "{h}");
        let (ok, out) = run(None, &["bridge", "-d", "link", "show", "dev", "vethmrt0"]);
        assert!(ok && out.contains("hairpin on"), "{out}");

        // Container end: eth0 with the address, broadcast, MAC, MTU, up; lo up.
        let e = &ip_json(Some(&ns), &["addr", "show", "dev", "eth0"])[0];
        assert!(has_flag(e, "UP"), "{e}");
        assert_eq!(e["address"], "02:42:0a:63:00:02");
        assert_eq!(e["mtu"], MTU);
        assert!(has_addr(e, "10.99.0.2", 24), "{e}");
        let brd = e["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["local"] == "10.99.0.2")
            .map(|i| i["broadcast"].clone());
        assert_eq!(brd, Some(Value::from("10.99.0.255")), "{e}");
        let lo = &ip_json(Some(&ns), &["link", "show", "dev", "lo"])[0];
        assert!(has_flag(lo, "UP"), "{lo}");
        let routes = ip_json(Some(&ns), &["route", "show", "default"]);
        assert_eq!(routes[0]["gateway"], "10.99.0.1", "{routes}");
        assert_eq!(routes[0]["dev"], "eth0", "{routes}");

        // Traffic both ways through the bridge.
        assert!(ping(None, "10.99.0.2"), "host -> container");
        assert!(ping(Some(&ns), "10.99.0.1"), "container -> gateway");

        // A second container on the same bridge reaches the first.
        let ns2 = Netns::new();
        assert!(
            !host.ensure_bridge(BRIDGE, gw, MTU).unwrap(),
            "second call finds it"
        );
        wire(&mut host, &ns2, "vethmrt1", bridge, "10.99.0.3/24");
        assert!(ping(Some(&ns2), "10.99.0.2"), "container -> container");

        // Deleting the host end takes the peer with it.
        assert!(host.delete_link("vethmrt0").unwrap());
        assert!(!link_exists(None, "vethmrt0"));
        assert!(
            !link_exists(Some(&ns), "eth0"),
            "peer must go with the host end"
        );
        assert!(
            !host.delete_link("vethmrt0").unwrap(),
            "second delete finds nothing"
        );
        assert_eq!(host.link_index("vethmrt0").unwrap(), None);
    });
}

#[test]
fn ensure_bridge_is_idempotent_and_race_safe() {
    isolated("ensure_bridge_is_idempotent_and_race_safe", || {
        let mut nl = Netlink::open().unwrap();
        let gw: ipnet::Ipv4Net = "10.98.0.1/24".parse().unwrap();
        let first = nl.ensure_bridge_index(BRIDGE, gw, MTU).unwrap();
        assert!(first.created);
        let mac = ip_json(None, &["link", "show", "dev", BRIDGE])[0]["address"].clone();
        let second = nl.ensure_bridge_index(BRIDGE, gw, MTU).unwrap();
        assert_eq!((second.index, second.created), (first.index, false));
        let br = &ip_json(None, &["addr", "show", "dev", BRIDGE])[0];
        let v4 = br["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["family"] == "inet")
            .count();
        assert_eq!(v4, 1, "address added once: {br}");

        // Repairs: a bridge someone set down, with another MTU, no address.
        assert!(run(None, &["ip", "link", "set", BRIDGE, "down", "mtu", "1300"]).0);
        assert!(run(None, &["ip", "addr", "flush", "dev", BRIDGE]).0);
        assert!(!nl.ensure_bridge(BRIDGE, gw, MTU).unwrap());
        let br = &ip_json(None, &["addr", "show", "dev", BRIDGE])[0];
        assert!(has_flag(br, "UP"), "{br}");
        assert_eq!(br["mtu"], MTU);
        assert!(has_addr(br, "10.98.0.1", 24), "{br}");
        // The MAC chosen at creation is kept (not the lowest port's).
        assert_eq!(br["address"], mac);

        // Eight processes' worth of sockets race to create the same bridge.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let mut nl = Netlink::open().unwrap();
                    barrier.wait();
                    nl.ensure_bridge_index("mrtbr1", "10.97.0.1/24".parse().unwrap(), MTU)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let created = results
            .iter()
            .filter(|r| matches!(r, Ok(b) if b.created))
            .count();
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
        assert_eq!(created, 1, "{results:?}");
        let index = results[0].as_ref().unwrap().index;
        assert!(results.iter().all(|r| r.as_ref().unwrap().index == index));
        let br = &ip_json(None, &["addr", "show", "dev", "mrtbr1"])[0];
        assert!(has_flag(br, "UP") && has_addr(br, "10.97.0.1", 24), "{br}");

        // A link of the bridge's name that is not a bridge is refused.
        assert!(
            run(
                None,
                &[
                    "ip",
                    "link",
                    "add",
                    "mrtother0",
                    "type",
                    "veth",
                    "peer",
                    "mrtother1"
                ]
            )
            .0
        );
        let err = nl.ensure_bridge("mrtother0", gw, MTU).unwrap_err();
        assert!(matches!(err, NetlinkError::NotABridge { .. }), "{err}");
        assert!(
            err.to_string().contains("mrtother0") && err.to_string().contains("veth"),
            "{err}"
        );
    });
}

#[test]
fn errors_name_the_operation_and_link() {
    isolated("errors_name_the_operation_and_link", || {
        let mut host = Netlink::open().unwrap();
        let gw: ipnet::Ipv4Net = "10.99.0.1/24".parse().unwrap();
        let bridge = host.ensure_bridge_index(BRIDGE, gw, MTU).unwrap().index;
        let ns = Netns::new();
        host.create_veth("vethmrt0", "eth0", bridge, ns.file.as_fd(), MTU)
            .unwrap();

        // Same host name again (in another container namespace).
        let ns2 = Netns::new();
        let err = host
            .create_veth("vethmrt0", "eth0", bridge, ns2.file.as_fd(), MTU)
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("vethmrt0 already exists on the host"),
            "{text}"
        );
        assert!(!link_exists(Some(&ns2), "eth0"), "nothing half made in ns2");

        // Same peer name in the same container namespace.
        let err = host
            .create_veth("vethmrt1", "eth0", bridge, ns.file.as_fd(), MTU)
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
        assert!(
            err.to_string()
                .contains("eth0 already exists in the target namespace"),
            "{err}"
        );
        assert!(
            !link_exists(None, "vethmrt1"),
            "nothing half made on the host"
        );

        // A bridge index that does not exist.
        let err = host
            .create_veth("vethmrt2", "eth0", 999_999, ns2.file.as_fd(), MTU)
            .unwrap_err();
        assert!(err.to_string().starts_with("create veth vethmrt2"), "{err}");
        assert!(!link_exists(None, "vethmrt2"));

        // Names the kernel would refuse are refused first, with the name.
        let err = host.link_index("much-too-long-name0").unwrap_err();
        assert!(matches!(err, NetlinkError::InvalidName { .. }), "{err}");
        assert!(err.to_string().contains("much-too-long-name0"), "{err}");
        assert!(host.delete_link("a/b").is_err());

        // Inside the container.
        let mut inside = ns.netlink();
        let err = inside
            .configure_interface(
                "eth9",
                [2, 0x42, 0, 0, 0, 9],
                "10.99.0.9/24".parse().unwrap(),
            )
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENODEV));
        assert!(err.to_string().contains("eth9"), "{err}");
        let net: ipnet::Ipv4Net = "10.99.0.2/24".parse().unwrap();
        inside
            .configure_interface("eth0", mac_for(net.addr()), net)
            .unwrap();
        // Idempotent: the address is already there.
        inside
            .configure_interface("eth0", mac_for(net.addr()), net)
            .unwrap();
        let err = inside
            .add_default_route(Ipv4Addr::new(192, 0, 2, 1))
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENETUNREACH), "{err}");
        assert!(err.to_string().contains("via 192.0.2.1"), "{err}");
        inside
            .add_default_route(Ipv4Addr::new(10, 99, 0, 1))
            .unwrap();
        inside
            .add_default_route(Ipv4Addr::new(10, 99, 0, 1))
            .expect("the same default route again is fine");
        let err = inside
            .add_default_route(Ipv4Addr::new(10, 99, 0, 254))
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
        assert!(
            err.to_string().contains("via 10.99.0.1 already exists"),
            "{err}"
        );
    });
}

#[test]
fn inventory_queries() {
    isolated("inventory_queries", || {
        let mut host = Netlink::open().unwrap();
        // A fresh namespace: no default route.
        assert_eq!(host.default_route_mtu().unwrap(), 1500);
        let gw: ipnet::Ipv4Net = "10.99.0.1/24".parse().unwrap();
        let bridge = host.ensure_bridge_index(BRIDGE, gw, MTU).unwrap().index;
        let ns = Netns::new();
        let v0 = wire(&mut host, &ns, "vethmrt0", bridge, "10.99.0.2/24");
        // (veth pairs: this kernel may lack the dummy driver)
        assert!(
            run(
                None,
                &[
                    "ip",
                    "link",
                    "add",
                    "vethmrtx",
                    "type",
                    "veth",
                    "peer",
                    "othermrtx"
                ]
            )
            .0
        );
        assert!(
            run(
                None,
                &["ip", "link", "add", "other0", "type", "veth", "peer", "other1"]
            )
            .0
        );

        let mut links = host.links_with_prefix("vethmrt").unwrap();
        links.sort();
        let x = host.link_index("vethmrtx").unwrap().unwrap();
        assert_eq!(
            links,
            vec![
                ("vethmrt0".to_string(), v0, Some(bridge)),
                ("vethmrtx".to_string(), x, None)
            ]
        );
        assert!(host.links_with_prefix("nomatch").unwrap().is_empty());

        // Routes and addresses; a default route is left out.
        assert!(run(None, &["ip", "link", "set", "other1", "up"]).0);
        assert!(run(None, &["ip", "link", "set", "other0", "up"]).0);
        assert!(
            run(
                None,
                &["ip", "addr", "add", "192.168.77.5/28", "dev", "other0"]
            )
            .0
        );
        assert!(
            run(
                None,
                &["ip", "route", "add", "172.31.0.0/16", "via", "192.168.77.1"]
            )
            .0
        );
        assert!(
            run(
                None,
                &["ip", "route", "add", "default", "via", "192.168.77.1"]
            )
            .0
        );
        assert!(
            run(
                None,
                &[
                    "ip",
                    "route",
                    "add",
                    "blackhole",
                    "10.250.0.0/16",
                    "table",
                    "100"
                ]
            )
            .0
        );
        let nets = host.ipv4_routes_and_addresses().unwrap();
        for want in [
            "10.99.0.0/24",
            "10.99.0.1/24",
            "192.168.77.0/28",
            "192.168.77.5/28",
            "172.31.0.0/16",
            "10.250.0.0/16",
        ] {
            assert!(
                nets.contains(&want.parse().unwrap()),
                "{want} missing from {nets:?}"
            );
        }
        assert!(!nets.iter().any(|n| n.prefix_len() == 0), "{nets:?}");

        // The default route's device MTU, here and in the container.
        assert!(run(None, &["ip", "link", "set", "other1", "mtu", "9000"]).0);
        assert!(run(None, &["ip", "link", "set", "other0", "mtu", "9000"]).0);
        assert_eq!(host.default_route_mtu().unwrap(), 9000);
        assert_eq!(ns.netlink().default_route_mtu().unwrap(), MTU);
        // The kernel's own lookup is used (it follows policy rules) ...
        assert!(
            run(
                None,
                &["ip", "route", "add", "default", "dev", BRIDGE, "table", "101"]
            )
            .0
        );
        assert!(
            run(
                None,
                &["ip", "rule", "add", "to", "1.1.1.1", "lookup", "101"]
            )
            .0
        );
        assert_eq!(host.default_route_mtu().unwrap(), MTU);
        assert!(
            run(
                None,
                &["ip", "rule", "del", "to", "1.1.1.1", "lookup", "101"]
            )
            .0
        );
        // ... unless it finds a more specific route: then the main table's
        // default route counts.
        assert!(run(None, &["ip", "route", "add", "1.1.1.0/24", "dev", BRIDGE]).0);
        assert_eq!(host.default_route_mtu().unwrap(), 9000);

        // Sysctls of this namespace.
        enable_forwarding(BRIDGE).unwrap();
        enable_forwarding(BRIDGE).unwrap();
        let read = |p: &str| std::fs::read_to_string(p).unwrap().trim().to_string();
        assert_eq!(read("/proc/sys/net/ipv4/ip_forward"), "1");
        assert_eq!(
            read(&format!("/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet")),
            "1"
        );
        assert!(enable_forwarding("nosuchbr0").is_err());
    });
}

/// Prints the netlink cost of one container start (bridge present, as for
/// every container but the first). Run with --nocapture to see it.
#[test]
fn timing_of_one_container() {
    isolated("timing_of_one_container", || {
        let mut host = Netlink::open().unwrap();
        let gw: ipnet::Ipv4Net = "10.99.0.1/24".parse().unwrap();
        let t = Instant::now();
        host.ensure_bridge_index(BRIDGE, gw, MTU).unwrap();
        let create_bridge = t.elapsed();
        const N: usize = 20;
        let mut steps: Vec<[Duration; 5]> = Vec::new();
        let mut extras: Vec<[Duration; 2]> = Vec::new();
        let mut namespaces = Vec::new();
        for i in 0..N {
            let ns = Netns::new();
            let net: ipnet::Ipv4Net = format!("10.99.0.{}/24", i + 2).parse().unwrap();
            let veth = format!("vethmrt{i}");
            let t0 = Instant::now();
            let bridge = host.ensure_bridge_index(BRIDGE, gw, MTU).unwrap().index;
            let t1 = Instant::now();
            host.create_veth(&veth, "eth0", bridge, ns.file.as_fd(), MTU)
                .unwrap();
            let t2 = Instant::now();
            let mut inside = ns.netlink();
            let t3 = Instant::now();
            inside
                .configure_interface("eth0", mac_for(net.addr()), net)
                .unwrap();
            let t4 = Instant::now();
            inside
                .add_default_route(Ipv4Addr::new(10, 99, 0, 1))
                .unwrap();
            let t5 = Instant::now();
            steps.push([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4]);
            // Not in the total: what a caller may add (attach.rs does).
            let t6 = Instant::now();
            host.default_route_mtu().unwrap();
            let t7 = Instant::now();
            host.link_index(BRIDGE).unwrap();
            extras.push([t7 - t6, t7.elapsed()]);
            namespaces.push(ns);
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let step = |k: usize| median(&mut steps.iter().map(|s| s[k]).collect());
        let extra = |k: usize| median(&mut extras.iter().map(|s| s[k]).collect());
        let mut totals: Vec<Duration> = steps.iter().map(|s| s.iter().sum()).collect();
        totals.sort();
        eprintln!(
            "netlink timing over {N} containers (median): ensure_bridge {:?}, create_veth {:?}, \
             open_in {:?}, configure_interface {:?}, add_default_route {:?}; total median {:?}, \
             min {:?}, max {:?}; first ensure_bridge (creating) {:?}; \
             also default_route_mtu {:?}, link_index {:?}",
            step(0),
            step(1),
            step(2),
            step(3),
            step(4),
            totals[N / 2],
            totals[0],
            totals[N - 1],
            create_bridge,
            extra(0),
            extra(1),
        );
        // The bridge works with all of them.
        assert!(ping(None, &format!("10.99.0.{}", N + 1)));
    });
}
