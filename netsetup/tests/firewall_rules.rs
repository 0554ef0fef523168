//! The rules themselves, per backend, in a throwaway network namespace (see
//! firewall_common.rs), next to another engine's rules and DROP policy:
//! idempotent set-up, jumps at the top, ports added and removed exactly,
//! the last teardown restoring the tables byte for byte, rollback of a batch
//! that fails half-way, the process count per call, and the lock.

#[path = "firewall_common.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use minirun_netsetup::firewall::{self, FirewallError, FirewallLock, PortRule, Proto};

fn port(id: &str, ip: &str, host_ip: Option<&str>, host_port: u16, container_port: u16, protocol: Proto) -> PortRule {
    PortRule {
        container_id: id.into(),
        container_ip: ip.parse().unwrap(),
        host_ip: host_ip.map(|h| h.parse().unwrap()),
        host_port,
        container_port,
        protocol,
    }
}

/// The driver's state files (one per network namespace) in `dir`.
fn state_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("firewall-state"))
        .collect()
}

fn set(lines: &[String]) -> BTreeSet<String> {
    lines.iter().cloned().collect()
}

/// The `-A FORWARD` lines of one iptables variant's filter table.
fn forward_rules(ipt: &str) -> Vec<String> {
    sh(&format!("{ipt}-save -t filter")).lines().filter(|l| l.starts_with("-A FORWARD ")).map(str::to_string).collect()
}

fn lifecycle(flavour: Flavour) {
    foreign_state(flavour);
    let pristine = snapshot();
    let dir = tempfile::tempdir().unwrap();
    let fw = flavour.driver(dir.path());
    let a = net("fwa", "mrA", "10.88.1.0/24", false);
    let b = net("fwb", "mrB", "10.88.2.0/24", false);
    let i = net("fwi", "mrI", "10.88.3.0/24", true);

    // Set-up twice: the same rules, once.
    fw.setup_network(&a).unwrap();
    let once = fw.list_rules().unwrap();
    let snap_once = snapshot();
    fw.setup_network(&a).unwrap();
    assert_eq!(fw.list_rules().unwrap(), once, "second setup_network changed the rules");
    assert_eq!(snapshot(), snap_once);
    let net_lines = lines_with(&once, "\"minirun:fwa\"");
    let expected = match flavour {
        // isolation 1, isolation-2 1, forward 3, nat 2.
        Flavour::IptablesLegacy | Flavour::IptablesNft => 7,
        // isolation 1, forward 4, postrouting 3, the bridges set's element.
        Flavour::Nftables => 9,
    };
    assert_eq!(net_lines.len(), expected, "{net_lines:#?}");
    assert_eq!(set(&net_lines).len(), net_lines.len(), "a rule twice: {net_lines:#?}");

    // The jump (iptables) or the mark accept (nftables) is first in FORWARD,
    // above the other engine's rules, and the policy is still DROP.
    for ipt in flavour.foreign_iptables() {
        if tool(ipt).is_none() {
            continue;
        }
        let fwd = forward_rules(ipt);
        let ours: Vec<&String> = fwd.iter().filter(|l| l.contains("--comment minirun ")).collect();
        assert_eq!(ours.len(), 1, "{ipt}: {fwd:#?}");
        assert_eq!(&fwd[0], ours[0], "{ipt}: ours is not first: {fwd:#?}");
        match flavour {
            Flavour::Nftables => assert!(fwd[0].contains("--mark 0x1000000/0x1000000") && fwd[0].ends_with("-j ACCEPT")),
            _ => assert!(fwd[0].ends_with("-j MINIRUN-FORWARD")),
        }
        assert!(sh(&format!("{ipt}-save -t filter")).contains(":FORWARD DROP"));
    }

    fw.setup_network(&b).unwrap();
    fw.setup_network(&i).unwrap();
    let i_lines = lines_with(&fw.list_rules().unwrap(), "\"minirun:fwi\"");
    assert!(i_lines.iter().all(|l| !l.contains("MASQUERADE") && !l.contains("masquerade")), "{i_lines:#?}");

    // Ports: exactly the container's rules come and go.
    let before_ports = fw.list_rules().unwrap();
    let snap_before_ports = snapshot();
    fw.add_ports(
        &a,
        &[
            port("c1", "10.88.1.2", None, 8080, 80, Proto::Tcp),
            port("c1", "10.88.1.2", Some("127.0.0.1"), 5353, 53, Proto::Udp),
        ],
    )
    .unwrap();
    fw.add_ports(&a, &[port("c2", "10.88.1.3", None, 8081, 80, Proto::Tcp)]).unwrap();
    let with_ports = fw.list_rules().unwrap();
    let added: BTreeSet<String> = set(&with_ports).difference(&set(&before_ports)).cloned().collect();
    let c1: Vec<&String> = added.iter().filter(|l| l.contains("\"minirun:fwa:c1\"")).collect();
    let c2: Vec<&String> = added.iter().filter(|l| l.contains("\"minirun:fwa:c2\"")).collect();
    // iptables: DNAT, hairpin MASQUERADE and FORWARD accept per port;
    // nftables: a DNAT map element and a `published` set element per port.
    let per_port = if flavour == Flavour::Nftables { 2 } else { 3 };
    assert_eq!((c1.len(), c2.len(), added.len()), (2 * per_port, per_port, 3 * per_port), "{added:#?}");
    assert!(set(&before_ports).is_subset(&set(&with_ports)));
    assert!(c1.iter().any(|l| l.contains("127.0.0.1") && l.contains("5353")), "{c1:#?}");

    fw.remove_ports(&a, "c1").unwrap();
    let after_c1 = set(&fw.list_rules().unwrap());
    let want: BTreeSet<String> = set(&before_ports).union(&c2.iter().map(|s| s.to_string()).collect()).cloned().collect();
    assert_eq!(after_c1, want);
    fw.remove_ports(&a, "c1").unwrap(); // idempotent
    fw.remove_ports(&b, "c2").unwrap(); // wrong network: nothing
    assert_eq!(set(&fw.list_rules().unwrap()), want);
    fw.remove_ports(&a, "c2").unwrap();
    assert_eq!(fw.list_rules().unwrap(), before_ports);
    assert_eq!(snapshot(), snap_before_ports);

    // A network's teardown takes its rules (and its ports') only.
    fw.add_ports(&b, &[port("c3", "10.88.2.2", None, 8082, 80, Proto::Tcp)]).unwrap();
    fw.add_ports(&a, &[port("c4", "10.88.1.4", None, 8083, 80, Proto::Tcp)]).unwrap();
    fw.teardown_network(&a).unwrap();
    let left = fw.list_rules().unwrap();
    assert!(lines_with(&left, "minirun:fwa").is_empty(), "{left:#?}");
    assert_eq!(lines_with(&left, "\"minirun:fwb:c3\"").len(), per_port);
    assert!(!lines_with(&left, "\"minirun:fwb\"").is_empty());

    // The last one takes everything, and the tables are as they were.
    fw.teardown_network(&b).unwrap();
    assert!(!fw.list_rules().unwrap().is_empty(), "fwi is still there");
    fw.teardown_network(&i).unwrap();
    assert_eq!(fw.list_rules().unwrap(), Vec::<String>::new());
    assert_eq!(snapshot(), pristine, "tables differ after the last teardown");
    fw.teardown_network(&i).unwrap(); // idempotent
    assert!(state_files(dir.path()).is_empty(), "{:?}", state_files(dir.path()));
}

#[test]
fn firewall_rules_lifecycle_iptables_legacy() {
    let f = Flavour::IptablesLegacy;
    in_netns("firewall_rules_lifecycle_iptables_legacy", f.tools(), || lifecycle(f));
}

#[test]
fn firewall_rules_lifecycle_iptables_nft() {
    let f = Flavour::IptablesNft;
    in_netns("firewall_rules_lifecycle_iptables_nft", f.tools(), || lifecycle(f));
}

#[test]
fn firewall_rules_lifecycle_nftables() {
    let f = Flavour::Nftables;
    in_netns("firewall_rules_lifecycle_nftables", f.tools(), || lifecycle(f));
}

/// In a namespace where nothing else has rules: the last teardown leaves
/// nothing, not even the iptables-nft tables and base chains iptables-nft
/// made for minirun (legacy tables, once made, stay: the kernel keeps them).
fn pristine(flavour: Flavour) {
    let before = snapshot();
    let dir = tempfile::tempdir().unwrap();
    let fw = flavour.driver(dir.path());
    let a = net("fwa", "mrA", "10.88.1.0/24", false);
    fw.setup_network(&a).unwrap();
    fw.add_ports(&a, &[port("c1", "10.88.1.2", None, 8080, 80, Proto::Tcp)]).unwrap();
    if flavour == Flavour::IptablesNft {
        assert_eq!(state_files(dir.path()).len(), 1);
    }
    fw.teardown_network(&a).unwrap();
    assert_eq!(fw.list_rules().unwrap(), Vec::<String>::new());
    if flavour == Flavour::IptablesLegacy {
        // Only the (empty) x_tables tables minirun used remain.
        let after = sh("iptables-legacy-save");
        assert!(!after.contains("MINIRUN") && !after.contains("minirun"), "{after}");
        assert!(!after.lines().any(|l| l.starts_with("-A")), "{after}");
    } else {
        assert_eq!(snapshot(), before);
    }
}

#[test]
fn firewall_rules_pristine_iptables_legacy() {
    let f = Flavour::IptablesLegacy;
    in_netns("firewall_rules_pristine_iptables_legacy", f.tools(), || pristine(f));
}

#[test]
fn firewall_rules_pristine_iptables_nft() {
    let f = Flavour::IptablesNft;
    in_netns("firewall_rules_pristine_iptables_nft", f.tools(), || pristine(f));
}

#[test]
fn firewall_rules_pristine_nftables() {
    let f = Flavour::Nftables;
    in_netns("firewall_rules_pristine_nftables", f.tools(), || pristine(f));
}

/// Bad input changes nothing; a batch that fails half-way (minirun's FORWARD
/// chain deleted behind its back, so the filter part fails after the nat part
/// went in) leaves nothing behind; setup_network repairs the damage.
fn rollback(flavour: Flavour) {
    foreign_state(flavour);
    let dir = tempfile::tempdir().unwrap();
    let fw = flavour.driver(dir.path());
    let a = net("fwa", "mrA", "10.88.1.0/24", false);
    let i = net("fwi", "mrI", "10.88.3.0/24", true);
    fw.setup_network(&a).unwrap();
    fw.setup_network(&i).unwrap();
    let good = fw.list_rules().unwrap();
    let snap = snapshot();

    let bad_host = [
        port("c1", "10.88.1.2", None, 8080, 80, Proto::Tcp),
        port("c1", "10.88.1.2", Some("255.255.255.255"), 8081, 80, Proto::Tcp),
    ];
    let e = fw.add_ports(&a, &bad_host).unwrap_err();
    assert!(matches!(e, FirewallError::InvalidInput(_)), "{e}");
    let e = fw.add_ports(&a, &[port("c1", "10.88.9.2", None, 8080, 80, Proto::Tcp)]).unwrap_err();
    assert!(matches!(e, FirewallError::InvalidInput(_)), "{e}");
    let e = fw.add_ports(&i, &[port("c1", "10.88.3.2", None, 8080, 80, Proto::Tcp)]).unwrap_err();
    assert!(matches!(e, FirewallError::InvalidInput(_)), "{e}");
    assert_eq!(snapshot(), snap);

    match flavour {
        // The set a port's second element goes to: the first would go in.
        Flavour::Nftables => sh("nft flush chain ip minirun FORWARD && nft flush chain ip minirun POSTROUTING && \
                                 nft delete set ip minirun published"),
        _ => {
            let ipt = flavour.foreign_iptables()[0];
            sh(&format!(
                "{ipt} -w -D FORWARD -m comment --comment minirun -j MINIRUN-FORWARD && \
                 {ipt} -w -F MINIRUN-FORWARD && {ipt} -w -X MINIRUN-FORWARD"
            ))
        }
    };
    let sabotaged = snapshot();
    let ports = [port("c1", "10.88.1.2", None, 8080, 80, Proto::Tcp), port("c1", "10.88.1.2", None, 8443, 443, Proto::Tcp)];
    let e = fw.add_ports(&a, &ports).unwrap_err();
    assert!(matches!(e, FirewallError::Command { .. }), "{e}");
    assert_eq!(snapshot(), sabotaged, "the failed batch left rules behind");
    assert!(lines_with(&fw.list_rules().unwrap(), "minirun:fwa:c1").is_empty());

    // setup_network puts back what is missing (each network its own).
    fw.setup_network(&a).unwrap();
    fw.setup_network(&i).unwrap();
    assert_eq!(set(&fw.list_rules().unwrap()), set(&good));
    fw.add_ports(&a, &ports).unwrap();
    let per_port = if flavour == Flavour::Nftables { 2 } else { 3 };
    assert_eq!(lines_with(&fw.list_rules().unwrap(), "\"minirun:fwa:c1\"").len(), 2 * per_port);
    if flavour == Flavour::Nftables {
        // nftables refuses a host port published twice, atomically.
        let before = snapshot();
        let clash = [port("c9", "10.88.1.9", None, 9999, 80, Proto::Tcp), port("c9", "10.88.1.9", None, 8443, 80, Proto::Tcp)];
        assert!(fw.add_ports(&a, &clash).is_err());
        assert_eq!(snapshot(), before);
        fw.remove_ports(&a, "c9").unwrap();
        assert_eq!(snapshot(), before, "removing the refused container touched c1's port");
    }
    fw.teardown_network(&a).unwrap();
    fw.teardown_network(&i).unwrap();
    assert_eq!(fw.list_rules().unwrap(), Vec::<String>::new());
}

#[test]
fn firewall_rules_rollback_iptables_legacy() {
    let f = Flavour::IptablesLegacy;
    in_netns("firewall_rules_rollback_iptables_legacy", f.tools(), || rollback(f));
}

#[test]
fn firewall_rules_rollback_iptables_nft() {
    let f = Flavour::IptablesNft;
    in_netns("firewall_rules_rollback_iptables_nft", f.tools(), || rollback(f));
}

#[test]
fn firewall_rules_rollback_nftables() {
    let f = Flavour::Nftables;
    in_netns("firewall_rules_rollback_nftables", f.tools(), || rollback(f));
}

/// One process for add_ports, one for remove_ports (by the recipe kept in
/// the state; a listing and a batch without it); a repeated
/// setup_network of the iptables backend only reads.
fn spawns(flavour: Flavour) {
    foreign_state(flavour);
    let dir = tempfile::tempdir().unwrap();
    let fw = flavour.driver(dir.path());
    let a = net("fwa", "mrA", "10.88.1.0/24", false);
    fw.setup_network(&a).unwrap();
    let count = |f: &dyn Fn()| {
        let n = firewall::process_spawns();
        f();
        firewall::process_spawns() - n
    };
    let p = [port("c1", "10.88.1.2", None, 8080, 80, Proto::Tcp)];
    assert_eq!(count(&|| fw.add_ports(&a, &p).unwrap()), 1);
    assert_eq!(count(&|| fw.remove_ports(&a, "c1").unwrap()), 1, "by the recipe");
    assert_eq!(count(&|| fw.remove_ports(&a, "c1").unwrap()), 1, "nothing to remove: only the read");
    let again = count(&|| fw.setup_network(&a).unwrap());
    match flavour {
        // The listing, then the coexistence checks (one per iptables variant with a filter table, and a look for iptables-nft's).
        Flavour::Nftables => assert!(again <= 4, "{again}"),
        _ => assert_eq!(again, 1),
    }
    println!("{flavour:?}: add_ports 1 spawn, remove_ports 1, setup_network again {again}");
    fw.teardown_network(&a).unwrap();
}

#[test]
fn firewall_rules_spawns_iptables_legacy() {
    let f = Flavour::IptablesLegacy;
    in_netns("firewall_rules_spawns_iptables_legacy", f.tools(), || spawns(f));
}

#[test]
fn firewall_rules_spawns_iptables_nft() {
    let f = Flavour::IptablesNft;
    in_netns("firewall_rules_spawns_iptables_nft", f.tools(), || spawns(f));
}

#[test]
fn firewall_rules_spawns_nftables() {
    let f = Flavour::Nftables;
    in_netns("firewall_rules_spawns_nftables", f.tools(), || spawns(f));
}

/// Two minirun processes' worth of drivers (one lock file) adding and
/// removing ports at once: every call succeeds and nothing is left over.
fn concurrent(flavour: Flavour) {
    let dir = tempfile::tempdir().unwrap();
    let a = net("fwa", "mrA", "10.88.1.0/24", false);
    flavour.driver(dir.path()).setup_network(&a).unwrap();
    let base = flavour.driver(dir.path()).list_rules().unwrap();
    std::thread::scope(|s| {
        for t in 0..3u16 {
            let (a, path) = (&a, dir.path());
            s.spawn(move || {
                let fw = flavour.driver(path);
                for k in 0..10u16 {
                    let id = format!("t{t}k{k}");
                    let ip = format!("10.88.1.{}", 10 + t * 10 + k);
                    fw.add_ports(a, &[port(&id, &ip, None, 9000 + t * 100 + k, 80, Proto::Tcp)]).unwrap();
                    fw.remove_ports(a, &id).unwrap();
                }
            });
        }
    });
    let fw = flavour.driver(dir.path());
    assert_eq!(fw.list_rules().unwrap(), base);
    fw.teardown_network(&a).unwrap();
    assert_eq!(fw.list_rules().unwrap(), Vec::<String>::new());
}

#[test]
fn firewall_rules_concurrent_iptables_legacy() {
    let f = Flavour::IptablesLegacy;
    in_netns("firewall_rules_concurrent_iptables_legacy", f.tools(), || concurrent(f));
}

#[test]
fn firewall_rules_concurrent_nftables() {
    let f = Flavour::Nftables;
    in_netns("firewall_rules_concurrent_nftables", f.tools(), || concurrent(f));
}

#[test]
fn firewall_lock_excludes() {
    in_netns("firewall_lock_excludes", &[], || {
        let dir = tempfile::tempdir().unwrap();
        let lock = FirewallLock::new(dir.path().join("sub/fw.lock"));
        let held = lock.acquire().unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let t = {
            let (lock, got) = (lock.clone(), got.clone());
            std::thread::spawn(move || {
                let _g = lock.acquire().unwrap();
                got.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!got.load(Ordering::SeqCst), "the lock did not exclude");
        drop(held);
        t.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
    });
}

#[test]
fn firewall_detection() {
    in_netns("firewall_detection", &[], || {
        let d = firewall::detect();
        println!("detected: {d:?}");
        let fw = firewall::driver_with(firewall::DriverOptions {
            lock_path: tempfile::tempdir().unwrap().path().join("fw.lock"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(fw.name(), d.backend.as_str());
        // The rule: nftables exactly when nft and nf_tables are there and iptables is not legacy.
        let legacy = tool("iptables")
            .map(|p| std::fs::canonicalize(p).unwrap().display().to_string().contains("legacy"))
            .unwrap_or(false);
        if tool("nft").is_some() && !legacy {
            assert_eq!(d.backend, firewall::Backend::Nftables, "{d:?}");
        }
        if legacy {
            assert_eq!(d.backend, firewall::Backend::Iptables, "{d:?}");
        }
    });
}
