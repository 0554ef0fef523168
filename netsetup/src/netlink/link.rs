//! Links: lookups by name, the bridge, veth pairs, interface setup,
//! deletion and the inventory of stale veths.

use std::os::fd::{AsRawFd, BorrowedFd};

use ipnet::Ipv4Net;
use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
    LinkProtoInfoBridge,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::socket::{attrs, c_string, read_u32, Failure, Msg};
use super::{check_name, Netlink, NetlinkError};

const RTM_NEWLINK: u16 = 16;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;

/// In IFLA_PROTINFO of an AF_BRIDGE RTM_SETLINK: the port's hairpin mode
/// (what `bridge link set dev X hairpin on` and Docker's LinkSetHairpin send).
const IFLA_BRPORT_MODE: u16 = 4;

const IFF_UP: u32 = libc::IFF_UP as u32;

/// What `ensure_bridge_index` found or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnsuredBridge {
    pub index: u32,
    /// False when the bridge already existed (or another process won the
    /// race to create it).
    pub created: bool,
}

/// What `explain_ensure_bridge` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeExplanation {
    /// True when there is no such link: `ensure_bridge_index` would create
    /// it (and report `created`).
    pub created: bool,
    /// The `ip` commands doing what it would do; empty when the bridge is
    /// there as it should be.
    pub commands: Vec<String>,
}

/// The few things we read back about a link.
#[derive(Debug, Default)]
pub(crate) struct LinkState {
    pub index: u32,
    pub flags: u32,
    pub name: Option<String>,
    pub mtu: Option<u32>,
    pub master: Option<u32>,
    pub kind: Option<String>,
    pub address: Option<Vec<u8>>,
}

/// ifinfomsg (family, pad, type, index, flags, change: 16 bytes), then attributes.
pub(crate) fn parse_link(payload: &[u8]) -> Result<LinkState, Failure> {
    let (Some(index), Some(flags)) = (read_u32(payload, 4), read_u32(payload, 8)) else {
        return Err(Failure::Malformed(format!(
            "link message of {} bytes",
            payload.len()
        )));
    };
    let mut link = LinkState {
        index,
        flags,
        ..LinkState::default()
    };
    for (kind, value) in attrs(payload.get(16..).unwrap_or(&[])) {
        match kind {
            IFLA_IFNAME => link.name = Some(c_string(value)),
            IFLA_MTU => link.mtu = read_u32(value, 0),
            IFLA_MASTER => link.master = read_u32(value, 0).filter(|&m| m != 0),
            IFLA_ADDRESS => link.address = Some(value.to_vec()),
            IFLA_LINKINFO => {
                link.kind = attrs(value)
                    .find(|(k, _)| *k == IFLA_INFO_KIND)
                    .map(|(_, v)| c_string(v));
            }
            _ => {}
        }
    }
    Ok(link)
}

/// Echoes (NLM_F_ECHO) and GET replies: the first link called `name`
/// ("" for any).
fn capture_link<'a>(
    name: &'a str,
    out: &'a mut Option<LinkState>,
) -> impl FnMut(&Msg) -> Result<(), Failure> + 'a {
    move |m: &Msg| {
        if m.ty == RTM_NEWLINK && out.is_none() {
            let link = parse_link(m.payload)?;
            if name.is_empty() || link.name.as_deref() == Some(name) {
                *out = Some(link);
            }
        }
        Ok(())
    }
}

fn up(msg: &mut LinkMessage) {
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
}

/// veth otherwise gets an rx and a tx queue per possible CPU, each with its
/// own sysfs kobjects: a fifth of the pair's creation time on 2 CPUs here,
/// most of it on a many-core host. Container traffic gains nothing from
/// them: veth transmit takes no queue lock, and extra rx queues only serve
/// XDP/GRO setups.
fn single_queue(msg: &mut LinkMessage) {
    msg.attributes.push(LinkAttribute::NumTxQueues(1));
    msg.attributes.push(LinkAttribute::NumRxQueues(1));
}

/// A random locally administered unicast MAC, or None without entropy.
fn random_mac() -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    // SAFETY: getrandom writes at most mac.len() bytes into mac.
    let n = unsafe { libc::getrandom(mac.as_mut_ptr().cast(), mac.len(), libc::GRND_NONBLOCK) };
    if n != mac.len() as isize {
        return None;
    }
    mac[0] = (mac[0] & 0xfe) | 0x02;
    Some(mac)
}

impl Netlink {
    /// The link called `name` in this socket's namespace. One round trip
    /// (RTM_GETLINK by IFLA_IFNAME, statistics skipped).
    pub(crate) fn get_link(&mut self, name: &str) -> Result<Option<LinkState>, Failure> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.get_link_by(msg)
    }

    pub(crate) fn get_link_by_index(&mut self, index: u32) -> Result<Option<LinkState>, Failure> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        self.get_link_by(msg)
    }

    fn get_link_by(&mut self, msg: LinkMessage) -> Result<Option<LinkState>, Failure> {
        let mut found = None;
        // Any name: a lookup by IFLA_IFNAME also matches alternative names,
        // and the reply then carries the primary one.
        match self.sock.request(
            &RouteNetlinkMessage::GetLink(msg),
            0,
            capture_link("", &mut found),
        ) {
            Ok(()) => match found {
                Some(link) => Ok(Some(link)),
                None => Err(Failure::Malformed(
                    "RTM_GETLINK answered without a link".into(),
                )),
            },
            Err(f) if f.errno() == Some(libc::ENODEV) => Ok(None),
            Err(f) => Err(f),
        }
    }

    /// The ifindex of `name`, None if there is no such link. One round trip.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetlinkError> {
        check_name(name)?;
        let link = self
            .get_link(name)
            .map_err(|f| NetlinkError::from_failure(f, || format!("look up link {name}")))?;
        Ok(link.map(|l| l.index))
    }

    /// Creates bridge `name` if absent (returns whether it was created),
    /// sets its MTU, and ensures it has the address `gateway/prefix` and is
    /// up. Idempotent and safe when two processes race to create it.
    pub fn ensure_bridge(
        &mut self,
        name: &str,
        gateway: Ipv4Net,
        mtu: u32,
    ) -> Result<bool, NetlinkError> {
        self.ensure_bridge_index(name, gateway, mtu)
            .map(|b| b.created)
    }

    /// `ensure_bridge`, also returning the bridge's ifindex (what
    /// `create_veth` needs), which saves the caller a lookup.
    ///
    /// Round trips: 2 when the bridge exists as wanted (look up, add the
    /// address: EEXIST), 3 when it is created; +1 to fix a wrong MTU or a
    /// down bridge. An `mtu` of 0 leaves the MTU to the kernel.
    ///
    /// The bridge gets a fixed random MAC at creation: otherwise the kernel
    /// gives it the lowest MAC among its ports, which changes as containers
    /// come and go and leaves stale gateway entries in their ARP caches.
    pub fn ensure_bridge_index(
        &mut self,
        name: &str,
        gateway: Ipv4Net,
        mtu: u32,
    ) -> Result<EnsuredBridge, NetlinkError> {
        check_name(name)?;
        let lookup = |f| NetlinkError::from_failure(f, || format!("look up bridge {name}"));
        let ensured = match self.get_link(name).map_err(lookup)? {
            Some(link) => EnsuredBridge {
                index: self.fix_bridge(name, link, mtu)?,
                created: false,
            },
            None => match self.create_bridge(name, mtu) {
                Ok(index) => EnsuredBridge {
                    index,
                    created: true,
                },
                // Another process created it between our lookup and our
                // create; it created it up and with the MTU in one request,
                // so only the checks remain.
                Err(f) if f.errno() == Some(libc::EEXIST) => {
                    let Some(link) = self.get_link(name).map_err(lookup)? else {
                        return Err(NetlinkError::Malformed {
                            op: format!("create bridge {name}"),
                            detail: "EEXIST, yet no link by that name".into(),
                        });
                    };
                    EnsuredBridge {
                        index: self.fix_bridge(name, link, mtu)?,
                        created: false,
                    }
                }
                Err(f) => {
                    return Err(NetlinkError::from_failure(f, || {
                        format!("create bridge {name} (mtu {mtu})")
                    }))
                }
            },
        };
        self.add_ipv4(ensured.index, gateway).map_err(|f| {
            NetlinkError::from_failure(f, || format!("add address {gateway} to bridge {name}"))
        })?;
        Ok(ensured)
    }

    /// What `ensure_bridge_index(name, gateway, mtu)` would do now, as `ip`
    /// commands, changing nothing (one lookup, and an address dump when the
    /// bridge exists): the creation when there is no such link, else the
    /// repairs it would make. Fails as `ensure_bridge_index` does for a link
    /// of that name that is not a bridge. The fixed random MAC of a new
    /// bridge is picked here: the real one gets another.
    pub fn explain_ensure_bridge(&mut self, name: &str, gateway: Ipv4Net, mtu: u32) -> Result<BridgeExplanation, NetlinkError> {
        check_name(name)?;
        let lookup = |f| NetlinkError::from_failure(f, || format!("look up bridge {name}"));
        let add_address = format!("ip addr add {}{} dev {name}", gateway, broadcast_word(gateway));
        let Some(link) = self.get_link(name).map_err(lookup)? else {
            // create_bridge: one request, up, with its MTU and MAC.
            let mut create = format!("ip link add name {name}");
            if let Some(mac) = random_mac() {
                create.push_str(&format!(" address {}", format_mac(&mac)));
            }
            if mtu != 0 {
                create.push_str(&format!(" mtu {mtu}"));
            }
            create.push_str(" up type bridge");
            return Ok(BridgeExplanation { created: true, commands: vec![create, add_address] });
        };
        check_is_bridge(name, &link)?;
        let mut commands = Vec::new();
        let (wrong_mtu, down) = bridge_repairs(&link, mtu);
        if wrong_mtu || down {
            commands.push(if wrong_mtu { format!("ip link set dev {name} mtu {mtu} up") } else { format!("ip link set dev {name} up") });
        }
        let has = self
            .ipv4_addresses_on(link.index)
            .map_err(|f| NetlinkError::from_failure(f, || format!("list the addresses of bridge {name}")))?;
        // The kernel's EEXIST test for an address: same local address and prefix.
        if !has.iter().any(|a| a.addr() == gateway.addr() && a.prefix_len() == gateway.prefix_len()) {
            commands.push(add_address);
        }
        Ok(BridgeExplanation { created: false, commands })
    }

    /// Returns the new bridge's index, from the kernel's echo of the request
    /// (Linux 6.1+) or, failing that, from a lookup.
    fn create_bridge(&mut self, name: &str, mtu: u32) -> Result<u32, Failure> {
        let mut msg = LinkMessage::default();
        up(&mut msg);
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if mtu != 0 {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = random_mac() {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        let mut echoed = None;
        self.sock.request(
            &RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
            capture_link(name, &mut echoed),
        )?;
        match echoed {
            Some(link) => Ok(link.index),
            None => self.get_link(name)?.map(|l| l.index).ok_or_else(|| {
                Failure::Malformed(format!("bridge {name} vanished after creation"))
            }),
        }
    }

    /// An existing link called like the bridge: refuse anything but a
    /// bridge; set the MTU and IFF_UP only if they differ.
    fn fix_bridge(&mut self, name: &str, link: LinkState, mtu: u32) -> Result<u32, NetlinkError> {
        check_is_bridge(name, &link)?;
        let (wrong_mtu, down) = bridge_repairs(&link, mtu);
        if wrong_mtu || down {
            let mut msg = LinkMessage::default();
            msg.header.index = link.index;
            up(&mut msg);
            if wrong_mtu {
                msg.attributes.push(LinkAttribute::Mtu(mtu));
            }
            self.sock
                .request(&RouteNetlinkMessage::SetLink(msg), 0, |_| Ok(()))
                .map_err(|f| {
                    NetlinkError::from_failure(f, || format!("set bridge {name} up with mtu {mtu}"))
                })?;
        }
        Ok(link.index)
    }

    /// The `ip` commands for what `create_veth` does, with the bridge by
    /// name and the namespace as `ip` takes it after `netns` (a path, or a
    /// name under /run/netns), already quoted for a shell if need be.
    pub fn explain_create_veth(host_name: &str, peer_name: &str, bridge: &str, netns: &str, mtu: u32) -> Result<Vec<String>, NetlinkError> {
        check_name(host_name)?;
        check_name(peer_name)?;
        check_name(bridge)?;
        // What single_queue sets, and the MTU unless 0, on both ends.
        let ends = if mtu != 0 { format!(" mtu {mtu} numtxqueues 1 numrxqueues 1") } else { " numtxqueues 1 numrxqueues 1".to_string() };
        Ok(vec![
            format!("ip link add name {host_name}{ends} master {bridge} up type veth peer name {peer_name}{ends} netns {netns}"),
            format!("ip link set dev {host_name} type bridge_slave hairpin on"),
        ])
    }

    /// Creates a veth pair: `host_name` stays here, attached to bridge index
    /// `bridge`, up, with hairpin mode on (so a container can reach itself
    /// through a published port, as Docker does without its userland
    /// proxy); the peer is created directly inside `netns` as `peer_name`
    /// (it cannot clash with a host link of that name, being created in the
    /// other namespace), down, for `configure_interface` to finish. Both
    /// get `mtu` (0: the kernel's default). Returns the host-side ifindex.
    ///
    /// Round trips: 2 (create with master, MTU, IFF_UP and the peer's
    /// namespace in one request; hairpin). If setting hairpin fails the pair
    /// is deleted again.
    pub fn create_veth(
        &mut self,
        host_name: &str,
        peer_name: &str,
        bridge: u32,
        netns: BorrowedFd,
        mtu: u32,
    ) -> Result<u32, NetlinkError> {
        check_name(host_name)?;
        check_name(peer_name)?;
        let op = || {
            format!("create veth {host_name} (peer {peer_name} in the target namespace) on bridge index {bridge}")
        };

        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(peer_name.to_string()));
        if mtu != 0 {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        peer.attributes
            .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
        single_queue(&mut peer);

        let mut msg = LinkMessage::default();
        up(&mut msg);
        msg.attributes
            .push(LinkAttribute::IfName(host_name.to_string()));
        if mtu != 0 {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::Controller(bridge));
        single_queue(&mut msg);
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));

        let mut echoed = None;
        let created = self.sock.request(
            &RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
            capture_link(host_name, &mut echoed),
        );
        if let Err(f) = created {
            if f.errno() == Some(libc::EEXIST) {
                // The kernel does not say which of the two names clashed.
                let which = match self.get_link(host_name) {
                    Ok(Some(_)) => format!("{host_name} already exists on the host"),
                    Ok(None) => format!("{peer_name} already exists in the target namespace"),
                    Err(_) => format!(
                        "{host_name} exists on the host or {peer_name} in the target namespace"
                    ),
                };
                return Err(NetlinkError::Kernel {
                    op: op(),
                    errno: libc::EEXIST,
                    detail: Some(which),
                });
            }
            return Err(NetlinkError::from_failure(f, op));
        }
        let index = match echoed {
            Some(link) => link.index,
            None => match self.get_link(host_name) {
                Ok(Some(link)) => link.index,
                Ok(None) => {
                    return Err(NetlinkError::Malformed {
                        op: op(),
                        detail: format!("{host_name} vanished after creation"),
                    })
                }
                Err(f) => return Err(NetlinkError::from_failure(f, op)),
            },
        };

        if let Err(f) = self.set_hairpin(index) {
            // Deleting one end deletes both; nothing is left half made.
            let _ = self.delete_index(index);
            return Err(NetlinkError::from_failure(f, || {
                format!("set hairpin mode on {host_name} (bridge port of index {bridge})")
            }));
        }
        Ok(index)
    }

    fn set_hairpin(&mut self, index: u32) -> Result<(), Failure> {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(DefaultNla::new(IFLA_BRPORT_MODE, vec![1])),
        ]));
        self.sock
            .request(&RouteNetlinkMessage::SetLink(msg), 0, |_| Ok(()))
    }

    fn delete_index(&mut self, index: u32) -> Result<(), Failure> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.sock
            .request(&RouteNetlinkMessage::DelLink(msg), 0, |_| Ok(()))
    }

    /// The `ip` commands for what `configure_interface` does, to be run in
    /// the namespace.
    pub fn explain_configure_interface(name: &str, mac: [u8; 6], addr: Ipv4Net) -> Result<Vec<String>, NetlinkError> {
        check_name(name)?;
        Ok(vec![
            format!("ip link set dev {name} address {} up", format_mac(&mac)),
            format!("ip addr add {addr}{} dev {name}", broadcast_word(addr)),
            "ip link set dev lo up".to_string(),
        ])
    }

    /// In the namespace this socket is bound to: sets `name`'s MAC address,
    /// adds `addr` (with broadcast; already present is fine), brings it up,
    /// and brings `lo` up.
    ///
    /// Round trips: 4 (look up, MAC + up in one request, address, lo). The
    /// lookup cannot ride on an echo as in `create_veth`: the kernel does
    /// not echo RTM_SETLINK (Linux 6.18).
    pub fn configure_interface(
        &mut self,
        name: &str,
        mac: [u8; 6],
        addr: Ipv4Net,
    ) -> Result<(), NetlinkError> {
        check_name(name)?;
        let index = match self.get_link(name) {
            Ok(Some(link)) => link.index,
            Ok(None) => {
                return Err(NetlinkError::Kernel {
                    op: format!("configure {name}"),
                    errno: libc::ENODEV,
                    detail: Some(format!("no link {name} in this namespace")),
                })
            }
            Err(f) => {
                return Err(NetlinkError::from_failure(f, || {
                    format!("look up link {name}")
                }))
            }
        };

        let mut msg = LinkMessage::default();
        msg.header.index = index;
        // The kernel applies IFLA_ADDRESS before the flags in one do_setlink.
        up(&mut msg);
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        self.sock
            .request(&RouteNetlinkMessage::SetLink(msg), 0, |_| Ok(()))
            .map_err(|f| {
                NetlinkError::from_failure(f, || {
                    format!("set {name} up with MAC {}", format_mac(&mac))
                })
            })?;

        self.add_ipv4(index, addr).map_err(|f| {
            NetlinkError::from_failure(f, || format!("add address {addr} to {name}"))
        })?;

        let mut lo = LinkMessage::default();
        up(&mut lo);
        lo.attributes.push(LinkAttribute::IfName("lo".into()));
        self.sock
            .request(&RouteNetlinkMessage::SetLink(lo), 0, |_| Ok(()))
            .map_err(|f| NetlinkError::from_failure(f, || "set lo up".to_string()))
    }

    /// The `ip` command for what `delete_link` does.
    pub fn explain_delete_link(name: &str) -> Result<String, NetlinkError> {
        check_name(name)?;
        Ok(format!("ip link delete dev {name}"))
    }

    /// Deletes a link by name (for a veth, both ends go); Ok(false) if it
    /// did not exist. One round trip.
    pub fn delete_link(&mut self, name: &str) -> Result<bool, NetlinkError> {
        check_name(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self
            .sock
            .request(&RouteNetlinkMessage::DelLink(msg), 0, |_| Ok(()))
        {
            Ok(()) => Ok(true),
            Err(f) if f.errno() == Some(libc::ENODEV) => Ok(false),
            Err(f) => Err(NetlinkError::from_failure(f, || {
                format!("delete link {name}")
            })),
        }
    }

    /// Names of links whose name starts with `prefix`, with their ifindex
    /// and master ifindex (for leak checks and cleanup of stale veths).
    /// A dump of all links: not for the per-container path.
    pub fn links_with_prefix(
        &mut self,
        prefix: &str,
    ) -> Result<Vec<(String, u32, Option<u32>)>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let mut found = Vec::new();
        self.sock
            .dump(&RouteNetlinkMessage::GetLink(msg), |m| {
                let Some(m) = m else {
                    found.clear();
                    return Ok(());
                };
                if m.ty == RTM_NEWLINK {
                    let link = parse_link(m.payload)?;
                    if let Some(name) = link.name {
                        if name.starts_with(prefix) {
                            found.push((name, link.index, link.master));
                        }
                    }
                }
                Ok(())
            })
            .map_err(|f| NetlinkError::from_failure(f, || format!("list links named {prefix}*")))?;
        Ok(found)
    }
}

/// `new_address_message` sets the subnet's broadcast address below /31:
/// `ip addr add` does with `brd +`.
fn broadcast_word(addr: Ipv4Net) -> &'static str {
    if addr.prefix_len() < 31 {
        " brd +"
    } else {
        ""
    }
}

/// `ensure_bridge` refuses a link of the bridge's name that is something else.
fn check_is_bridge(name: &str, link: &LinkState) -> Result<(), NetlinkError> {
    match link.kind.as_deref() {
        Some("bridge") => Ok(()),
        other => Err(NetlinkError::NotABridge { name: name.to_string(), kind: other.unwrap_or("none").to_string() }),
    }
}

/// What an existing bridge needs: (a new MTU, bringing up).
fn bridge_repairs(link: &LinkState, mtu: u32) -> (bool, bool) {
    (mtu != 0 && link.mtu != Some(mtu), link.flags & IFF_UP == 0)
}

pub(crate) fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    fn emitted(msg: &LinkMessage) -> Vec<u8> {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    #[test]
    fn parses_what_the_kernel_sends() {
        // Round trip through the crate's emitter: header, name, MTU,
        // master, MAC and IFLA_LINKINFO/IFLA_INFO_KIND.
        let mut msg = LinkMessage::default();
        msg.header.index = 7;
        up(&mut msg);
        msg.attributes.push(LinkAttribute::IfName("mrtbr0".into()));
        msg.attributes.push(LinkAttribute::Mtu(1400));
        msg.attributes.push(LinkAttribute::Controller(3));
        msg.attributes
            .push(LinkAttribute::Address(vec![2, 0x42, 10, 99, 0, 1]));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        let link = parse_link(&emitted(&msg)).unwrap();
        assert_eq!(link.index, 7);
        assert_eq!(link.flags & IFF_UP, IFF_UP);
        assert_eq!(link.name.as_deref(), Some("mrtbr0"));
        assert_eq!(link.mtu, Some(1400));
        assert_eq!(link.master, Some(3));
        assert_eq!(link.kind.as_deref(), Some("bridge"));
        assert_eq!(
            format_mac(link.address.as_deref().unwrap()),
            "02:42:0a:63:00:01"
        );
    }

    #[test]
    fn short_or_garbled_link_messages_do_not_panic() {
        assert!(matches!(parse_link(&[0; 8]), Err(Failure::Malformed(_))));
        let mut buf = vec![0u8; 16];
        buf.extend_from_slice(&[0xff; 13]);
        let link = parse_link(&buf).unwrap();
        assert!(link.name.is_none());
    }

    #[test]
    fn veth_request_carries_the_peer_and_its_namespace() {
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName("eth0".into()));
        peer.attributes.push(LinkAttribute::NetNsFd(9));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName("vethx".into()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let buf = emitted(&msg);
        // IFLA_LINKINFO { IFLA_INFO_KIND "veth", IFLA_INFO_DATA {
        // VETH_INFO_PEER { ifinfomsg, IFLA_IFNAME "eth0", IFLA_NET_NS_FD 9 } } }
        let linkinfo = attrs(&buf[16..])
            .find(|(k, _)| *k == IFLA_LINKINFO)
            .map(|(_, v)| v)
            .unwrap();
        let kinds: Vec<_> = attrs(linkinfo).map(|(k, _)| k).collect();
        assert_eq!(kinds, vec![1, 2]);
        let data = attrs(linkinfo).nth(1).unwrap().1;
        let (peer_kind, peer) = attrs(data).next().unwrap();
        assert_eq!(peer_kind, 1);
        let peer = parse_link(peer).unwrap();
        assert_eq!(peer.name.as_deref(), Some("eth0"));
        let fd = attrs(&attrs(data).next().unwrap().1[16..])
            .find(|(k, _)| *k == 28)
            .and_then(|(_, v)| read_u32(v, 0));
        assert_eq!(fd, Some(9));
    }

    #[test]
    fn hairpin_is_a_nested_brport_mode() {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(DefaultNla::new(IFLA_BRPORT_MODE, vec![1])),
        ]));
        let buf = emitted(&msg);
        assert_eq!(buf[0], libc::AF_BRIDGE as u8);
        // IFLA_PROTINFO (12) with NLA_F_NESTED, holding IFLA_BRPORT_MODE = 1.
        let raw_kind = u16::from_ne_bytes([buf[18], buf[19]]);
        assert_eq!(raw_kind, 12 | 0x8000);
        let (kind, inner) = attrs(&buf[16..]).next().unwrap();
        assert_eq!(kind, 12);
        assert_eq!(
            attrs(inner).collect::<Vec<_>>(),
            vec![(IFLA_BRPORT_MODE, &[1u8][..])]
        );
    }

    #[test]
    fn veth_and_interface_commands() {
        assert_eq!(
            Netlink::explain_create_veth("mr0123", "eth0", "minirun0", "/proc/7/ns/net", 1400).unwrap(),
            [
                "ip link add name mr0123 mtu 1400 numtxqueues 1 numrxqueues 1 master minirun0 up type veth peer name eth0 mtu 1400 numtxqueues 1 numrxqueues 1 netns /proc/7/ns/net",
                "ip link set dev mr0123 type bridge_slave hairpin on",
            ]
        );
        let no_mtu = Netlink::explain_create_veth("mr0123", "eth0", "minirun0", "red", 0).unwrap();
        assert!(no_mtu[0].starts_with("ip link add name mr0123 numtxqueues 1 numrxqueues 1 master"), "{no_mtu:?}");
        assert!(Netlink::explain_create_veth("a/b", "eth0", "minirun0", "red", 0).is_err());
        assert_eq!(
            Netlink::explain_configure_interface("eth0", [2, 0x42, 10, 9, 0, 2], "10.9.0.2/24".parse().unwrap()).unwrap(),
            ["ip link set dev eth0 address 02:42:0a:09:00:02 up", "ip addr add 10.9.0.2/24 brd + dev eth0", "ip link set dev lo up"]
        );
        let p2p = Netlink::explain_configure_interface("eth0", [2, 0x42, 10, 9, 0, 2], "10.9.0.2/31".parse().unwrap()).unwrap();
        assert_eq!(p2p[1], "ip addr add 10.9.0.2/31 dev eth0");
        assert_eq!(Netlink::explain_delete_link("mr0123").unwrap(), "ip link delete dev mr0123");
    }

    #[test]
    fn random_macs_are_local_unicast() {
        if let Some(mac) = random_mac() {
            assert_eq!(mac[0] & 0x03, 0x02);
        }
    }
}
