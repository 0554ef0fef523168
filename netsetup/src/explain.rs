//! `minirun run --explain`: what attaching a container to a network does,
//! as a script a person could run as root to do the same by hand. These
//! are the seed article's steps (a bridge, a veth pair, `ip addr`,
//! `ip route`, `sysctl`, then `iptables -t nat ...` or `nft ...`), in the
//! order `NetContext::attach` takes them and with the values it would use.
//! Each step is introduced by a `# ` comment saying why it is there.
//!
//! Nothing is changed and no lock is taken: the network record, the leases,
//! the links and the firewall tables are only read. Each step's commands
//! come from an explainer beside the code that does the step, and they plan
//! with that same code: `Ipam::peek`, `Netlink::explain_ensure_bridge` and
//! its neighbours, `netlink::explain_enable_forwarding`, and
//! `FirewallDriver::explain_*`. That keeps the two in step.
//!
//! What cannot be known in advance is picked now, and the real run may pick
//! something else: the address is the one the lease file gives now (a
//! container starting at the same time may take it first), and the same
//! goes for a host port left to the kernel (`-p 80`) and for a new
//! bridge's random MAC.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use crate::attach::{
    choose_host_ports, host_veth_name, mac_text, port_rules, rules_for, AttachError, NetContext, CONTAINER_INTERFACE,
};
use crate::firewall::{self, port_tag};
use crate::ipam::Ipam;
use crate::netlink::{self, BridgeExplanation, Netlink};
use crate::network::{Network, NetworkStore};
use crate::ports::{self, PortMapping};
use crate::shell::word as shell_word;

/// What attach would do for a container on `network`, as commands a person
/// could run as root.
///
/// `netns_path` is the container's network namespace, as attach takes it
/// (/proc/PID/ns/net, or /run/netns/NAME, which the commands then enter with
/// `ip netns exec NAME`, as the article does). Fails where attach would fail
/// before doing anything, with the same error: no such network, no free
/// address, a port already published, no such namespace, a bridge name
/// taken by a link that is not a bridge, no firewall backend.
pub fn attach_commands(
    ctx: &NetContext,
    network_name: &str,
    container_id: &str,
    netns_path: &str,
    ports: &[PortMapping],
) -> Result<Vec<String>, AttachError> {
    attach_commands_for_address(ctx, network_name, container_id, netns_path, ports, None)
}

/// `attach_commands` for an attach asking for an address (`--ip`):
/// `address` is `AttachRequest::address`.
pub fn attach_commands_for_address(
    ctx: &NetContext,
    network_name: &str,
    container_id: &str,
    netns_path: &str,
    ports: &[PortMapping],
    address: Option<Ipv4Addr>,
) -> Result<Vec<String>, AttachError> {
    // attach reclaims the leases of containers whose process is gone first,
    // quietly: so does this, and their ports are free again.
    let stale = ctx.stale_leases().unwrap_or_default();
    let mut reclaim = Vec::new();
    for (network, lease) in &stale {
        reclaim.push(format!(
            "# first, container {} is gone (its process {} is): minirun detaches it and frees {} on {}",
            lease.container_id, lease.owner.pid, lease.address, network.name
        ));
        match detach_commands(ctx, &lease.container_id) {
            Ok(lines) => reclaim.extend(lines),
            Err(e) => reclaim.push(format!("# (detaching it cannot be explained: {e})")),
        }
    }

    let (network, network_stored) = ctx.peek_network(network_name)?;
    let ipam = Ipam::open_read_only(&ctx.state_root, &network)?;
    let published: Vec<PortMapping> = ctx
        .attachments()?
        .into_iter()
        .filter(|a| a.container_id != container_id && !stale.iter().any(|(_, l)| l.container_id == a.container_id))
        .flat_map(|a| a.ports)
        .collect();
    ports::check_available(ports, &published)?;
    let chosen = choose_host_ports(ports)?;
    let requested = address;
    let address = ipam.peek(container_id, requested)?;
    let address_source = if requested.is_some() {
        "the one asked for".to_string()
    } else if ipam.peek_leases()?.iter().any(|l| l.container_id == container_id && l.owner.is_running()) {
        "the container's lease already".to_string()
    } else {
        format!("the lowest free one of {}", network.subnet)
    };
    let address = Ipv4Net::new(address, network.subnet.prefix_len()).expect("prefix comes from a valid subnet");

    // What plumb finds and does, in its order.
    // A named namespace under /run/netns may be one the script itself makes
    // first (`ip netns add`, as `run --explain` prints); any other must exist.
    if !netns_path.starts_with("/run/netns/") {
        fs::File::open(netns_path).map_err(|source| AttachError::Netns { path: netns_path.into(), source })?;
    }
    let mut host = Netlink::open()?;
    let mtu = host.default_route_mtu()?;
    let gateway = Ipv4Net::new(network.gateway, network.subnet.prefix_len()).expect("prefix comes from a valid subnet");
    let bridge = host.explain_ensure_bridge(&network.bridge, gateway, mtu)?;
    let forwarding = netlink::explain_enable_forwarding(&network.bridge)
        .map_err(|source| AttachError::Io { action: "enable forwarding for", path: network.bridge.clone().into(), source })?;
    let fw = ctx.firewall()?;
    let rules = rules_for(&network);
    let setup = if bridge.created { fw.explain_setup_network(&rules)? } else { Vec::new() };
    let host_veth = host_veth_name(container_id);
    let (netns_arg, enter) = netns_words(netns_path);
    let veth = Netlink::explain_create_veth(&host_veth, CONTAINER_INTERFACE, &network.bridge, &netns_arg, mtu)?;
    let mac = netlink::mac_for(address.addr());
    let mut inside = vec![netlink::explain_disable_ipv6(CONTAINER_INTERFACE)];
    inside.extend(Netlink::explain_configure_interface(CONTAINER_INTERFACE, mac, address)?);
    let route = Netlink::explain_add_default_route(network.gateway);
    let port_commands = if chosen.is_empty() {
        Vec::new()
    } else {
        fw.explain_add_ports(&rules, &port_rules(container_id, address.addr(), &chosen))?
    };
    let firewall_name = match ctx.firewall.backend {
        Some(_) => fw.name().to_string(),
        None => format!("{} ({})", fw.name(), firewall::detect().reason),
    };

    Ok(render(&AttachPlan {
        container_id: container_id.to_string(),
        network,
        network_stored,
        address,
        address_source,
        leases_file: ipam.leases_path().to_path_buf(),
        attachment_file: ctx.attachment_path(container_id),
        reclaim,
        mtu,
        bridge,
        forwarding,
        firewall: firewall_name,
        setup,
        host_veth,
        veth,
        enter,
        mac: mac_text(mac),
        inside,
        route,
        asked: ports.to_vec(),
        ports: chosen,
        port_commands,
    }))
}

/// What detach does for the container now, as commands; a comment alone
/// when it is not attached (detach then does nothing).
pub fn detach_commands(ctx: &NetContext, container_id: &str) -> Result<Vec<String>, AttachError> {
    let Some(a) = ctx.read_attachment(container_id)? else {
        return Ok(vec![format!("# container {container_id} is not attached to any network: detach has nothing to do")]);
    };
    let mut out =
        vec![format!("# detach container {container_id} from network {} ({} on bridge {})", a.network, a.address, a.bridge)];
    let network = NetworkStore::open_read_only(&ctx.state_root).get(&a.network);
    match &network {
        Ok(network) if !a.ports.is_empty() => {
            let tag = port_tag(&network.name, container_id);
            out.push(format!("# unpublish its ports: the rules tagged {tag} go"));
            out.extend(ctx.firewall()?.explain_remove_ports(&rules_for(network), container_id)?);
        }
        Ok(_) => {}
        Err(_) => out.push(format!("# network {} is gone, and its rules and leases went with it", a.network)),
    }
    if Netlink::open()?.link_index(&a.host_veth)?.is_some() {
        out.push(format!("# delete the veth pair by its host end {} (the other end goes with it)", a.host_veth));
        out.push(Netlink::explain_delete_link(&a.host_veth)?);
    } else {
        out.push(format!("# {} is gone already: the pair went with the container's namespace", a.host_veth));
    }
    let record = ctx.attachment_path(container_id);
    match &network {
        Ok(network) => {
            let leases = Ipam::open_read_only(&ctx.state_root, network)?.leases_path().to_path_buf();
            out.push(format!(
                "# minirun then frees {} in {} and removes {}",
                a.address.addr(),
                leases.display(),
                record.display()
            ));
        }
        Err(_) => out.push(format!("# minirun then removes {}", record.display())),
    }
    Ok(out)
}

/// How the commands name the container's namespace: (what `ip link ...
/// netns` takes, the prefix running a command inside it). A namespace
/// under /run/netns goes by its name, as `ip netns add` made it and as the
/// article uses it; any other by its path, through nsenter.
fn netns_words(path: &str) -> (String, String) {
    match Path::new(path).strip_prefix("/run/netns").ok().and_then(|p| p.to_str()) {
        Some(name) if !name.is_empty() && !name.contains('/') => (shell_word(name), format!("ip netns exec {} ", shell_word(name))),
        _ => (shell_word(path), format!("nsenter {} ", shell_word(&format!("--net={path}")))),
    }
}

/// Everything attach would do, found out; `render` makes the script of it.
struct AttachPlan {
    container_id: String,
    network: Network,
    network_stored: bool,
    address: Ipv4Net,
    /// Why that address: asked for, leased already, or the lowest free.
    address_source: String,
    leases_file: PathBuf,
    attachment_file: PathBuf,
    /// Detaching the containers whose process is gone, already explained.
    reclaim: Vec<String>,
    mtu: u32,
    bridge: BridgeExplanation,
    forwarding: Vec<String>,
    /// The backend, as the script's comments name it.
    firewall: String,
    setup: Vec<String>,
    host_veth: String,
    veth: Vec<String>,
    /// The prefix entering the container's namespace.
    enter: String,
    mac: String,
    inside: Vec<String>,
    route: String,
    /// The ports as asked for, and as published (host ports picked).
    asked: Vec<PortMapping>,
    ports: Vec<PortMapping>,
    port_commands: Vec<String>,
}

fn render(p: &AttachPlan) -> Vec<String> {
    let n = &p.network;
    let mut out = vec![format!(
        "# minirun: attach container {} to network {} (firewall: {}); nothing below has been run",
        p.container_id, n.name, p.firewall
    )];
    out.extend(p.reclaim.iter().cloned());
    if !p.network_stored {
        out.push(format!(
            "# the default network {} is made on first use: bridge {}, subnet {} (free on this host), gateway {}",
            n.name, n.bridge, n.subnet, n.gateway
        ));
    }
    out.push(format!(
        "# address {}: {}; leased in {}, and the attachment recorded in {}, before anything else so that detach finds what follows",
        p.address,
        p.address_source,
        p.leases_file.display(),
        p.attachment_file.display()
    ));
    out.push(format!("# MTU {}: that of the default route's interface, so that full-size packets fit on the way out", p.mtu));
    if p.bridge.created {
        out.push(format!(
            "# bridge {} is new: the network's virtual switch, up, with a fixed MAC (else it takes its lowest port's) and the gateway's address",
            n.bridge
        ));
        out.extend(p.bridge.commands.iter().cloned());
    } else if p.bridge.commands.is_empty() {
        out.push(format!(
            "# bridge {} exists: it, its address and its firewall rules were made on its first use, so those steps are skipped",
            n.bridge
        ));
    } else {
        out.push(format!(
            "# bridge {} exists (its firewall rules were set up with it), but is not quite as it should be: put it right",
            n.bridge
        ));
        out.extend(p.bridge.commands.iter().cloned());
    }
    out.push(format!(
        "# let the host route between {} and other interfaces; route_localnet lets the host's own 127.0.0.1 reach published ports",
        n.bridge
    ));
    out.extend(p.forwarding.iter().cloned());
    if p.bridge.created {
        let what = if n.internal {
            "no way out, isolation from everything else"
        } else {
            "MASQUERADE out, FORWARD accepts, isolation from other minirun networks"
        };
        out.push(format!("# the network's firewall rules, set up with a new bridge: {what}; chains and jumps only where missing"));
        if p.setup.is_empty() {
            out.push("# (they are in place already)".to_string());
        }
        out.extend(p.setup.iter().cloned());
    }
    out.push(format!(
        "# a veth pair: {} on the bridge (hairpin on, so the container reaches its own published ports), the other end made inside the container as {CONTAINER_INTERFACE}",
        p.host_veth
    ));
    out.extend(p.veth.iter().cloned());
    out.push(format!(
        "# inside the container: IPv6 off on {CONTAINER_INTERFACE} (the network is IPv4 only), then {CONTAINER_INTERFACE} up with MAC {} (02:42 and the address, as Docker does, so neighbours' ARP entries stay right), its address, and lo",
        p.mac
    ));
    out.extend(p.inside.iter().map(|c| format!("{}{c}", p.enter)));
    out.push(format!("# anything off the subnet goes through the gateway, the bridge's address {}", n.gateway));
    out.push(format!("{}{}", p.enter, p.route));
    for (asked, chosen) in p.asked.iter().zip(&p.ports).filter(|(a, _)| a.host_port == 0) {
        out.push(format!(
            "# {asked} gets host port {}, free now; the real run takes whatever port is free then",
            chosen.host_port
        ));
    }
    if !p.port_commands.is_empty() {
        let published: Vec<String> = p.ports.iter().map(|m| m.to_string()).collect();
        let how = if p.firewall.starts_with("nftables") {
            "elements of minirun's DNAT map and published set, which its rules look up"
        } else {
            "DNAT to the container, MASQUERADE of hairpin traffic, a FORWARD accept"
        };
        out.push(format!("# publish {}: {how}", published.join(" ")));
        out.extend(p.port_commands.iter().cloned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Protocol;

    fn plan(created: bool, firewall: &str, setup: &[&str], port_commands: &[&str]) -> AttachPlan {
        let network = Network {
            name: "bridge".into(),
            bridge: "minirun0".into(),
            subnet: "172.18.0.0/16".parse().unwrap(),
            gateway: "172.18.0.1".parse().unwrap(),
            internal: false,
            created: "2026-01-20T13:31:10Z".into(),
        };
        let address: Ipv4Net = "172.18.0.2/16".parse().unwrap();
        let (netns_arg, enter) = netns_words("/run/netns/red");
        let asked = PortMapping { host_ip: None, host_port: 0, container_port: 80, protocol: Protocol::Tcp };
        AttachPlan {
            container_id: "c1".into(),
            network,
            network_stored: !created,
            address,
            address_source: "the lowest free one of 172.18.0.0/16".into(),
            leases_file: "/var/lib/minirun/network/leases/bridge.json".into(),
            attachment_file: "/var/lib/minirun/network/attachments/mr0123.json".into(),
            reclaim: Vec::new(),
            mtu: 1500,
            bridge: BridgeExplanation {
                created,
                commands: if created {
                    vec![
                        "ip link add name minirun0 address 02:aa:bb:cc:dd:ee mtu 1500 up type bridge".into(),
                        "ip addr add 172.18.0.1/16 brd + dev minirun0".into(),
                    ]
                } else {
                    Vec::new()
                },
            },
            forwarding: vec!["sysctl -w net.ipv4.ip_forward=1".into(), "# net.ipv4.conf.minirun0.route_localnet is 1 already".into()],
            firewall: firewall.into(),
            setup: setup.iter().map(|s| s.to_string()).collect(),
            host_veth: "mr0123".into(),
            veth: Netlink::explain_create_veth("mr0123", "eth0", "minirun0", &netns_arg, 1500).unwrap(),
            enter,
            mac: mac_text(netlink::mac_for(address.addr())),
            inside: Netlink::explain_configure_interface("eth0", netlink::mac_for(address.addr()), address).unwrap(),
            route: Netlink::explain_add_default_route("172.18.0.1".parse().unwrap()),
            asked: vec![asked],
            ports: vec![PortMapping { host_port: 40000, ..asked }],
            port_commands: port_commands.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn commands(lines: &[String]) -> Vec<&str> {
        lines.iter().map(String::as_str).filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn a_new_bridge_gets_everything_in_attach_order_iptables() {
        let setup = ["iptables -t nat -N MINIRUN-DNAT", "iptables -t nat -A MINIRUN-POSTROUTING -s 172.18.0.0/16 ! -o minirun0 -m comment --comment minirun:bridge -j MASQUERADE"];
        let ports = ["iptables -t nat -A MINIRUN-DNAT -p tcp -m tcp --dport 40000 -m comment --comment minirun:bridge:c1 -j DNAT --to-destination 172.18.0.2:80"];
        let lines = render(&plan(true, "iptables", &setup, &ports));
        assert!(lines.iter().all(|l| !l.is_empty() && !l.contains('\n')));
        assert!(lines.iter().filter(|l| l.starts_with('#')).all(|l| l.starts_with("# ")), "{lines:#?}");
        assert_eq!(
            commands(&lines),
            [
                "ip link add name minirun0 address 02:aa:bb:cc:dd:ee mtu 1500 up type bridge",
                "ip addr add 172.18.0.1/16 brd + dev minirun0",
                "sysctl -w net.ipv4.ip_forward=1",
                setup[0],
                setup[1],
                "ip link add name mr0123 mtu 1500 numtxqueues 1 numrxqueues 1 master minirun0 up type veth peer name eth0 mtu 1500 numtxqueues 1 numrxqueues 1 netns red",
                "ip link set dev mr0123 type bridge_slave hairpin on",
                "ip netns exec red ip link set dev eth0 address 02:42:ac:12:00:02 up",
                "ip netns exec red ip addr add 172.18.0.2/16 brd + dev eth0",
                "ip netns exec red ip link set dev lo up",
                "ip netns exec red ip route add default via 172.18.0.1",
                ports[0],
            ]
        );
        let text = lines.join("\n");
        assert!(text.contains("# the default network bridge is made on first use"), "{text}");
        assert!(text.contains("# bridge minirun0 is new"), "{text}");
        assert!(text.contains("# :80/tcp gets host port 40000, free now"), "{text}");
        assert!(text.contains("# publish 40000:80/tcp: DNAT to the container"), "{text}");
        assert!(text.contains("# net.ipv4.conf.minirun0.route_localnet is 1 already"), "{text}");
    }

    #[test]
    fn an_existing_bridge_skips_its_first_use_steps_nftables() {
        let ports = ["nft add element ip minirun dnat_any '{ tcp . 40000 comment \"minirun:bridge:c1\" : 172.18.0.2 . 80 }'"];
        let lines = render(&plan(false, "nftables", &["nft add table ip minirun"], &ports));
        let cmds = commands(&lines);
        assert!(!cmds.iter().any(|c| c.ends_with("type bridge") || c.contains("dev minirun0") || c.starts_with("nft add table")), "{cmds:#?}");
        assert_eq!(cmds.last(), Some(&ports[0]));
        let text = lines.join("\n");
        assert!(text.contains("# bridge minirun0 exists: it, its address and its firewall rules were made on its first use"), "{text}");
        assert!(!text.contains("made on first use: bridge"), "a stored network is not announced as new: {text}");
        assert!(text.contains("elements of minirun's DNAT map"), "{text}");
    }

    #[test]
    fn namespaces_are_entered_by_name_or_path() {
        assert_eq!(netns_words("/run/netns/red"), ("red".to_string(), "ip netns exec red ".to_string()));
        assert_eq!(netns_words("/proc/42/ns/net"), ("/proc/42/ns/net".to_string(), "nsenter --net=/proc/42/ns/net ".to_string()));
        assert_eq!(netns_words("/run/netns/a b"), ("'a b'".to_string(), "ip netns exec 'a b' ".to_string()));
        assert_eq!(netns_words("/tmp/x y/ns"), ("'/tmp/x y/ns'".to_string(), "nsenter '--net=/tmp/x y/ns' ".to_string()));
    }
}
