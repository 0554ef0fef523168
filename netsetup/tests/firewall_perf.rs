//! What publishing one port costs per container start and stop, per
//! backend: add_ports + remove_ports of one port, with no other container
//! and with 200 others publishing a port each; in a throwaway network
//! namespace (see firewall_common.rs). Prints medians (run with
//! `--nocapture`); asserts only generous bounds, machines being noisy.

#[path = "firewall_common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use minirun_netsetup::firewall::{self, FirewallDriver, NetworkRules, PortRule, Proto};

fn port(id: &str, n: u16) -> PortRule {
    PortRule {
        container_id: id.into(),
        container_ip: format!("10.88.{}.{}", n / 250, n % 250 + 2).parse().unwrap(),
        host_ip: None,
        host_port: 20000 + n,
        container_port: 80,
        protocol: Proto::Tcp,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// (add, remove) medians over `reps` cycles of one container with one port.
fn cycle(fw: &dyn FirewallDriver, net: &NetworkRules, reps: u16) -> (Duration, Duration, u64) {
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    let spawns = firewall::process_spawns();
    for k in 0..reps {
        let p = port("probe", 999 + k % 2);
        let t = Instant::now();
        fw.add_ports(net, &[p]).unwrap();
        add.push(t.elapsed());
        let t = Instant::now();
        fw.remove_ports(net, "probe").unwrap();
        remove.push(t.elapsed());
    }
    (median(add), median(remove), (firewall::process_spawns() - spawns) / u64::from(reps))
}

fn perf(flavour: Flavour) {
    foreign_state(flavour);
    let dir = tempfile::tempdir().unwrap();
    let fw = flavour.driver(dir.path());
    let net = net("perf", "mrP", "10.88.0.0/16", false);
    let t = Instant::now();
    fw.setup_network(&net).unwrap();
    let setup_first = t.elapsed();
    let t = Instant::now();
    fw.setup_network(&net).unwrap();
    let setup_again = t.elapsed();
    let (a0, r0, s0) = cycle(fw.as_ref(), &net, 30);
    let t = Instant::now();
    for n in 0..200u16 {
        fw.add_ports(&net, &[port(&format!("c{n}"), n)]).unwrap();
    }
    let fill = t.elapsed() / 200;
    let (a200, r200, _) = cycle(fw.as_ref(), &net, 30);
    println!(
        "PERF {flavour:?}: one port, add_ports {} + remove_ports {} ({s0} spawns per cycle); \
         with 200 containers published: add {} + remove {} (mean add while filling {})",
        ms(a0),
        ms(r0),
        ms(a200),
        ms(r200),
        ms(fill)
    );
    // Generous: a process spawn is milliseconds, not hundreds of them.
    assert!(a0 + r0 < Duration::from_millis(250), "{a0:?} + {r0:?}");
    assert!(a200 + r200 < Duration::from_millis(500), "{a200:?} + {r200:?}");
    assert_eq!(s0, 2);
    let t = Instant::now();
    fw.teardown_network(&net).unwrap();
    println!(
        "PERF {flavour:?}: setup_network {} (again {}), teardown_network of the last network with 200 ports {}",
        ms(setup_first),
        ms(setup_again),
        ms(t.elapsed())
    );
    assert_eq!(fw.list_rules().unwrap(), Vec::<String>::new());
}

#[test]
fn firewall_perf_iptables_legacy() {
    let f = Flavour::IptablesLegacy;
    in_netns("firewall_perf_iptables_legacy", f.tools(), || perf(f));
}

#[test]
fn firewall_perf_iptables_nft() {
    let f = Flavour::IptablesNft;
    in_netns("firewall_perf_iptables_nft", f.tools(), || perf(f));
}

#[test]
fn firewall_perf_nftables() {
    let f = Flavour::Nftables;
    in_netns("firewall_perf_nftables", f.tools(), || perf(f));
}
