//! Traffic through minirun's rules, per backend, in a throwaway network
//! namespace (see firewall_common.rs): MASQUERADE out, published ports from
//! outside, from the host's own addresses (127.0.0.1 included) and hairpin,
//! isolation between networks, no egress for an internal network; all with
//! another engine's FORWARD policy of DROP in place.

#[path = "firewall_common.rs"]
mod common;

use common::*;
use minirun_netsetup::firewall::{PortRule, Proto};

fn port(id: &str, ip: &str, host_ip: Option<&str>, host_port: u16) -> PortRule {
    PortRule {
        container_id: id.into(),
        container_ip: ip.parse().unwrap(),
        host_ip: host_ip.map(|h| h.parse().unwrap()),
        host_port,
        container_port: 80,
        protocol: Proto::Tcp,
    }
}

fn traffic(flavour: Flavour) {
    let t = Topology::build();
    foreign_state(flavour);
    let before = snapshot();
    let egress = |ns: &Netns| ns.get(&format!("{OUTSIDE_IP}:8000"), "/cgi-bin/ip");

    // Without minirun: the DROP policy (and the missing MASQUERADE) stop it.
    expect_fail(egress(&t.a1), "A1 -> outside before setup");

    let dir = tempfile::tempdir().unwrap();
    let fw = flavour.driver(dir.path());
    for n in [&t.net_a, &t.net_b, &t.net_i] {
        fw.setup_network(n).unwrap();
    }

    // Egress, MASQUERADEd: the outside host sees the host's address.
    expect_body(egress(&t.a1), HOST_IP, "A1 -> outside, source address seen there");
    expect_body(egress(&t.b1), HOST_IP, "B1 -> outside");
    // Internal: no egress, and nothing from it to other networks.
    expect_fail(egress(&t.i1), "internal I1 -> outside");
    expect_fail(t.i1.get("10.88.1.2:80", "/"), "internal I1 -> A1");
    // Isolation between networks, both ways.
    expect_fail(t.b1.get("10.88.1.2:80", "/"), "B1 -> A1");
    expect_fail(t.a1.get("10.88.2.2:80", "/"), "A1 -> B1");
    expect_fail(t.a1.get("10.88.3.2:80", "/"), "A1 -> internal I1");
    // Same network: fine.
    expect_body(t.a2.get("10.88.1.2:80", "/"), "A1", "A2 -> A1");

    // Published ports: A1 on every address, A2 on the host's 192.0.2.1 only.
    fw.add_ports(&t.net_a, &[port("ca1", "10.88.1.2", None, 8080)]).unwrap();
    fw.add_ports(&t.net_a, &[port("ca2", "10.88.1.3", Some(HOST_IP), 8081)]).unwrap();
    expect_body(t.outside.get(&format!("{HOST_IP}:8080"), "/"), "A1", "outside -> host:8080");
    expect_body(host_get("127.0.0.1:8080", "/"), "A1", "host -> 127.0.0.1:8080");
    expect_body(host_get(&format!("{HOST_IP}:8080"), "/"), "A1", "host -> its own 192.0.2.1:8080");
    expect_body(host_get("10.88.1.1:8080", "/"), "A1", "host -> its bridge address :8080");
    expect_body(t.outside.get(&format!("{HOST_IP}:8081"), "/"), "A2", "outside -> host:8081");
    expect_fail(host_get("127.0.0.1:8081", "/"), "host_ip restricts 8081 to 192.0.2.1");
    // Hairpin: containers reaching a published port through the host.
    expect_body(t.a2.get("10.88.1.1:8080", "/"), "A1", "A2 -> gateway:8080 (hairpin)");
    expect_body(t.a2.get(&format!("{HOST_IP}:8080"), "/"), "A1", "A2 -> host:8080 (hairpin)");
    expect_body(t.a1.get(&format!("{HOST_IP}:8080"), "/"), "A1", "A1 -> host:8080 -> itself");
    // Who the container sees: the gateway for hairpin and 127.0.0.1 (both
    // MASQUERADEd), the real client for outside traffic.
    expect_body(t.a2.get(&format!("{HOST_IP}:8080"), "/cgi-bin/ip"), "10.88.1.1", "hairpin source");
    expect_body(host_get("127.0.0.1:8080", "/cgi-bin/ip"), "10.88.1.1", "127.0.0.1 source");
    expect_body(t.outside.get(&format!("{HOST_IP}:8080"), "/cgi-bin/ip"), OUTSIDE_IP, "outside source");
    // A published port is no way around isolation (Docker without its proxy: the same).
    expect_fail(t.b1.get(&format!("{HOST_IP}:8080"), "/"), "B1 -> A1's published port");

    fw.remove_ports(&t.net_a, "ca1").unwrap();
    expect_fail(host_get("127.0.0.1:8080", "/"), "127.0.0.1:8080 after remove_ports");
    expect_fail(t.outside.get(&format!("{HOST_IP}:8080"), "/"), "outside -> 8080 after remove_ports");
    expect_body(t.outside.get(&format!("{HOST_IP}:8081"), "/"), "A2", "A2's port survives A1's removal");

    for n in [&t.net_a, &t.net_b, &t.net_i] {
        fw.teardown_network(n).unwrap();
    }
    assert_eq!(fw.list_rules().unwrap(), Vec::<String>::new());
    let after = snapshot();
    assert_eq!(before, after, "tables differ after the last teardown");
    expect_fail(egress(&t.a1), "A1 -> outside after teardown");
}

#[test]
fn firewall_traffic_iptables_legacy() {
    let f = Flavour::IptablesLegacy;
    in_netns("firewall_traffic_iptables_legacy", &[f.tools(), &[BUSYBOX]].concat(), || traffic(f));
}

#[test]
fn firewall_traffic_iptables_nft() {
    let f = Flavour::IptablesNft;
    in_netns("firewall_traffic_iptables_nft", &[f.tools(), &[BUSYBOX]].concat(), || traffic(f));
}

#[test]
fn firewall_traffic_nftables() {
    let f = Flavour::Nftables;
    in_netns("firewall_traffic_nftables", &[f.tools(), &[BUSYBOX]].concat(), || traffic(f));
}
