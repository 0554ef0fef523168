use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use minirun_netsetup::attach::{AttachRequest, NetContext};
use minirun_netsetup::firewall::BackendChoice;
use minirun_netsetup::ipam::LeaseOwner;
use minirun_netsetup::netlink::Netlink;
use minirun_netsetup::ports::parse_port_spec;

use super::FrontCli;

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a user-defined bridge network.
    Create {
        name: String,
        /// e.g. 10.90.0.0/24 (default: a free one).
        #[arg(long)]
        subnet: Option<ipnet::Ipv4Net>,
        /// No traffic leaves the network.
        #[arg(long)]
        internal: bool,
    },
    /// List networks.
    Ls,
    /// A network as JSON, with the containers attached to it (`--format
    /// text`: a diagram of the bridge, each container's veth, address and ports).
    Inspect {
        name: String,
        #[arg(long, default_value = "json", value_parser = ["json", "text"])]
        format: String,
    },
    /// Remove networks that no container uses.
    Rm { names: Vec<String> },
    /// Attach a network namespace to a network (for OCI bundles: usable as a
    /// createRuntime hook with --oci-state).
    Attach {
        network: String,
        /// The namespace: /proc/PID/ns/net or /run/netns/NAME.
        #[arg(long, required_unless_present = "oci_state")]
        netns: Option<PathBuf>,
        /// The container id the address is leased to.
        #[arg(long, required_unless_present = "oci_state")]
        id: Option<String>,
        /// The pid whose life holds the lease (default: the netns's pid, or ours).
        #[arg(long)]
        pid: Option<i32>,
        /// Take id and pid from the OCI state JSON on stdin (as a hook gets it).
        #[arg(long)]
        oci_state: bool,
        /// Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]
        #[arg(long = "publish", short = 'p')]
        publish: Vec<String>,
        /// Ask for this address.
        #[arg(long)]
        ip: Option<std::net::Ipv4Addr>,
    },
    /// Release what attach made for a container.
    Detach {
        #[arg(required_unless_present = "oci_state")]
        id: Option<String>,
        #[arg(long)]
        oci_state: bool,
    },
}

pub(super) fn context(cli: &FrontCli) -> Result<NetContext, String> {
    let firewall = match cli.firewall_backend.as_deref() {
        None => BackendChoice::default(),
        Some(choice) => choice.parse::<BackendChoice>().map_err(|e| e.to_string())?,
    };
    Ok(NetContext { state_root: cli.network_root.clone(), firewall })
}

/// (id, pid) from the OCI state a hook receives on stdin; the pid is 0
/// once the container has stopped (poststop).
fn oci_state_from_stdin() -> Result<(String, i32), String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(|e| format!("read OCI state from stdin: {e}"))?;
    let state: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("OCI state on stdin: {e}"))?;
    let id = state["id"].as_str().ok_or("OCI state on stdin has no id")?.to_string();
    let pid = state["pid"].as_i64().unwrap_or(0) as i32;
    Ok((id, pid))
}

pub fn run(cli: &FrontCli, cmd: &NetworkCommand) -> Result<(), String> {
    let ctx = context(cli)?;
    let show = |e: &dyn std::fmt::Display| e.to_string();
    match cmd {
        NetworkCommand::Create { name, subnet, internal } => {
            let taken = Netlink::open().and_then(|mut n| n.ipv4_routes_and_addresses()).map_err(|e| show(&e))?;
            let network = ctx.store().map_err(|e| show(&e))?.create(name, *subnet, *internal, &taken).map_err(|e| show(&e))?;
            println!("{}", network.name);
        }
        NetworkCommand::Ls => {
            let store = ctx.store().map_err(|e| show(&e))?;
            println!("{:<20} {:<16} {:<18} {:<15} INTERNAL", "NAME", "BRIDGE", "SUBNET", "GATEWAY");
            for n in store.list().map_err(|e| show(&e))? {
                println!("{:<20} {:<16} {:<18} {:<15} {}", n.name, n.bridge, n.subnet.to_string(), n.gateway.to_string(), n.internal);
            }
        }
        NetworkCommand::Inspect { name, format } => {
            let network = ctx.network(name).map_err(|e| show(&e))?;
            let containers: Vec<_> = ctx.attachments().map_err(|e| show(&e))?.into_iter().filter(|a| a.network == network.name).collect();
            if format == "text" {
                let names = match cli.root.exists() {
                    true => super::engine(cli).and_then(|e| e.store.list().map_err(|e| e.to_string())).unwrap_or_default(),
                    false => Vec::new(),
                };
                let name_of = |id: &str| names.iter().find(|r| r.id == id).map(|r| r.name.clone());
                print!("{}", diagram(&network, &containers, name_of));
                return Ok(());
            }
            let rules = ctx.firewall().and_then(|f| Ok(f.list_rules()?)).unwrap_or_default();
            let json = serde_json::json!({ "network": network, "containers": containers, "firewall": rules });
            println!("{}", serde_json::to_string_pretty(&json).expect("JSON values serialise"));
        }
        NetworkCommand::Rm { names } => {
            for name in names {
                ctx.remove_network(name).map_err(|e| show(&e))?;
                println!("{name}");
            }
        }
        NetworkCommand::Attach { network, netns, id, pid, oci_state, publish, ip } => {
            let (id, pid, netns) = if *oci_state {
                let (id, pid) = oci_state_from_stdin()?;
                if pid <= 0 {
                    return Err("OCI state on stdin has no pid: attach runs as a createRuntime hook".into());
                }
                (id, pid, PathBuf::from(format!("/proc/{pid}/ns/net")))
            } else {
                let netns = netns.clone().expect("clap requires --netns");
                let pid = pid.or_else(|| netns.strip_prefix("/proc").ok()?.components().next()?.as_os_str().to_str()?.parse().ok());
                (id.clone().expect("clap requires --id"), pid.unwrap_or(std::process::id() as i32), netns)
            };
            let owner = LeaseOwner::of_process(pid).ok_or_else(|| format!("process {pid} does not exist"))?;
            let mut ports = Vec::new();
            for spec in publish {
                ports.extend(parse_port_spec(spec).map_err(|e| show(&e))?);
            }
            let request = AttachRequest { network, container_id: &id, netns: &netns, owner, ports: &ports, address: *ip };
            let attachment = ctx.attach(&request).map_err(|e| show(&e))?;
            if !*oci_state {
                println!("{}", serde_json::to_string_pretty(&attachment).expect("an Attachment serialises"));
            }
        }
        NetworkCommand::Detach { id, oci_state } => {
            let id = if *oci_state { oci_state_from_stdin()?.0 } else { id.clone().expect("clap requires ID") };
            ctx.detach(&id).map_err(|e| show(&e))?;
        }
    }
    Ok(())
}

/// The network drawn as the seed article draws it: the bridge with the
/// gateway address, NAT to the outside, and a veth pair down to each
/// container's eth0.
fn diagram(
    network: &minirun_netsetup::network::Network,
    containers: &[minirun_netsetup::attach::Attachment],
    name_of: impl Fn(&str) -> Option<String>,
) -> String {
    let mut out = format!("network {}: subnet {}, gateway {}\n\n", network.name, network.subnet, network.gateway);
    let exit = if network.internal { "(internal: no way out)" } else { "── NAT (masquerade) ──▶ the host's other interfaces" };
    out += &format!("  [ bridge {}  {}/{} ]  {exit}\n", network.bridge, network.gateway, network.subnet.prefix_len());
    if containers.is_empty() {
        out += "      (no containers)\n";
    }
    for (i, c) in containers.iter().enumerate() {
        let last = i + 1 == containers.len();
        let (branch, rail) = if last { ("└", " ") } else { ("├", "│") };
        let who = match name_of(&c.container_id) {
            Some(name) => format!("{name} ({})", &c.container_id[..12.min(c.container_id.len())]),
            None => c.container_id.clone(),
        };
        out += &format!("      │\n      {branch}── {} ══ veth ══ {} {}  {who}\n", c.host_veth, c.interface, c.address);
        out += &format!("      {rail}   {:>width$}         mac {}\n", "", c.mac, width = c.host_veth.len());
        for p in &c.ports {
            let host_ip = p.host_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "0.0.0.0".into());
            out += &format!("      {rail}   {:>width$}         published {host_ip}:{} ─DNAT─▶ {}:{}/{}\n", "", p.host_port, c.address.addr(), p.container_port, p.protocol, width = c.host_veth.len());
        }
    }
    out
}
