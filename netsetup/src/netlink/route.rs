//! IPv4 routes: the container's default route, and what the host routes
//! (for the default MTU and for picking a free subnet).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::socket::{attrs, read_u16, read_u32, Failure, Msg};
use super::{Netlink, NetlinkError};

const RTM_NEWROUTE: u16 = 24;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;

const RT_TABLE_UNSPEC: u8 = 0;
const RT_TABLE_MAIN: u8 = 254;
const RT_TABLE_LOCAL: u32 = 255;

const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;
const RTN_BROADCAST: u8 = 3;
const RTN_MULTICAST: u8 = 5;

/// Used when there is no default route to take the MTU from.
const DEFAULT_MTU: u32 = 1500;

/// The address whose route `default_route_mtu` asks the kernel for: a
/// public one, routed by the default route on almost every host.
const FIB_PROBE: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 1);

/// The few things we read back about a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteState {
    pub dst: Ipv4Addr,
    pub dst_len: u8,
    pub table: u32,
    pub kind: u8,
    pub oif: Option<u32>,
    pub gateway: Option<Ipv4Addr>,
    pub priority: u32,
}

/// rtmsg (family, dst_len, src_len, tos, table, protocol, scope, type,
/// flags: 12 bytes), then attributes. None for other families.
pub(crate) fn parse_route(payload: &[u8]) -> Option<RouteState> {
    if *payload.first()? != libc::AF_INET as u8 || payload.len() < 12 {
        return None;
    }
    let mut route = RouteState {
        dst: Ipv4Addr::UNSPECIFIED,
        dst_len: payload[1],
        table: u32::from(payload[4]),
        kind: payload[7],
        oif: None,
        gateway: None,
        priority: 0,
    };
    let ipv4 = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
    for (kind, value) in attrs(&payload[12..]) {
        match kind {
            RTA_DST => route.dst = ipv4(value).unwrap_or(Ipv4Addr::UNSPECIFIED),
            RTA_OIF => route.oif = read_u32(value, 0),
            RTA_GATEWAY => route.gateway = ipv4(value),
            RTA_PRIORITY => route.priority = read_u32(value, 0).unwrap_or(0),
            // The header's table is a u8; ids above 255 only come here.
            RTA_TABLE => route.table = read_u32(value, 0).unwrap_or(route.table),
            RTA_MULTIPATH if route.oif.is_none() => {
                if let Some((oif, gateway)) = first_hop(value) {
                    route.oif = Some(oif);
                    route.gateway = route.gateway.or(gateway);
                }
            }
            _ => {}
        }
    }
    Some(route)
}

/// ECMP routes carry their hops in RTA_MULTIPATH: rtnexthop { len u16,
/// flags u8, hops u8, ifindex i32 } then the hop's own attributes. The
/// first hop stands for the route.
fn first_hop(multipath: &[u8]) -> Option<(u32, Option<Ipv4Addr>)> {
    let len = usize::from(read_u16(multipath, 0)?);
    let oif = read_u32(multipath, 4)?;
    let gateway = attrs(multipath.get(8..len).unwrap_or(&[]))
        .find(|(k, _)| *k == RTA_GATEWAY)
        .and_then(|(_, v)| <[u8; 4]>::try_from(v).ok())
        .map(Ipv4Addr::from);
    Some((oif, gateway))
}

fn is_default(r: &RouteState) -> bool {
    r.dst_len == 0 && r.kind == RTN_UNICAST && r.table == u32::from(RT_TABLE_MAIN)
}

impl Netlink {
    /// The `ip` command for what `add_default_route` does (`ip route add`
    /// also refuses to replace an existing route, and its protocol is boot).
    pub fn explain_add_default_route(gateway: Ipv4Addr) -> String {
        format!("ip route add default via {gateway}")
    }

    /// Adds `default via gateway` to the main table. One round trip.
    /// NLM_F_EXCL so that, called on the wrong socket, it can never replace
    /// a host's default route; an identical route already there is fine.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<(), NetlinkError> {
        let op = || format!("add default route via {gateway}");
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = 0;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        match self.sock.request(
            &RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            |_| Ok(()),
        ) {
            Ok(()) => Ok(()),
            Err(f) if f.errno() == Some(libc::EEXIST) => {
                let existing = self
                    .ipv4_routes(RT_TABLE_MAIN)
                    .map_err(|f| NetlinkError::from_failure(f, op))?;
                if existing
                    .iter()
                    .any(|r| is_default(r) && r.gateway == Some(gateway))
                {
                    return Ok(());
                }
                let other = existing
                    .iter()
                    .find(|r| is_default(r))
                    .and_then(|r| r.gateway)
                    .map_or_else(
                        || "another default route".to_string(),
                        |g| format!("a default route via {g}"),
                    );
                Err(NetlinkError::Kernel {
                    op: op(),
                    errno: libc::EEXIST,
                    detail: Some(format!("{other} already exists")),
                })
            }
            Err(f) => Err(NetlinkError::from_failure(f, op)),
        }
    }

    /// MTU of the interface that carries the default IPv4 route (1500 when
    /// there is none). Called per container, so it is a targeted FIB lookup
    /// (RTM_GETROUTE with RTM_F_FIB_MATCH for a public address: the kernel
    /// answers with the route entry that matched, following policy rules;
    /// nothing is sent anywhere) plus one link lookup: 2 round trips. Only
    /// when that address is routed by something more specific than a
    /// default route, or the lookup fails, is the main table dumped and its
    /// lowest-metric default route used.
    pub fn default_route_mtu(&mut self) -> Result<u32, NetlinkError> {
        let op = || "find the default route's MTU".to_string();
        let Some(oif) = self
            .default_route_oif()
            .map_err(|f| NetlinkError::from_failure(f, op))?
        else {
            return Ok(DEFAULT_MTU);
        };
        let link = self.get_link_by_index(oif).map_err(|f| {
            NetlinkError::from_failure(f, || {
                format!("look up link index {oif} of the default route")
            })
        })?;
        Ok(link.and_then(|l| l.mtu).unwrap_or(DEFAULT_MTU))
    }

    fn default_route_oif(&mut self) -> Result<Option<u32>, Failure> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = 32;
        msg.header.flags = RouteFlags::FibMatch;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(FIB_PROBE)));
        let mut matched = None;
        let looked = self
            .sock
            .request(&RouteNetlinkMessage::GetRoute(msg), 0, |m| {
                if m.ty == RTM_NEWROUTE && matched.is_none() {
                    matched = parse_route(m.payload);
                }
                Ok(())
            });
        if looked.is_ok() {
            if let Some(RouteState {
                dst_len: 0,
                kind: RTN_UNICAST,
                oif: Some(oif),
                ..
            }) = matched
            {
                return Ok(Some(oif));
            }
        }
        // ENETUNREACH (no default route), an old kernel without
        // RTM_F_FIB_MATCH, or a more specific route for the probe.
        Ok(self
            .ipv4_routes(RT_TABLE_MAIN)?
            .iter()
            .filter(|r| is_default(r) && r.oif.is_some())
            .min_by_key(|r| r.priority)
            .and_then(|r| r.oif))
    }

    /// All IPv4 routes' destinations and all IPv4 addresses (with prefix) in
    /// this namespace, for picking a subnet that overlaps none. Default
    /// routes are left out (they overlap everything), and so is the local
    /// table (its entries are the addresses again, as /32s and broadcasts).
    /// Policy-routing tables count: a subnet routed there is taken too.
    /// Sorted, without duplicates. Two dumps.
    pub fn ipv4_routes_and_addresses(&mut self) -> Result<Vec<Ipv4Net>, NetlinkError> {
        let routes = self
            .ipv4_routes(RT_TABLE_UNSPEC)
            .map_err(|f| NetlinkError::from_failure(f, || "list IPv4 routes".to_string()))?;
        let mut nets: Vec<Ipv4Net> = routes
            .iter()
            .filter(|r| {
                r.dst_len > 0
                    && r.table != RT_TABLE_LOCAL
                    && ![RTN_LOCAL, RTN_BROADCAST, RTN_MULTICAST].contains(&r.kind)
            })
            .filter_map(|r| Ipv4Net::new(r.dst, r.dst_len).ok())
            .collect();
        nets.extend(
            self.ipv4_addresses()
                .map_err(|f| NetlinkError::from_failure(f, || "list IPv4 addresses".to_string()))?,
        );
        nets.sort();
        nets.dedup();
        Ok(nets)
    }

    /// A dump of the IPv4 routes of `table` (0: all tables). The kernel
    /// filters by table under NETLINK_GET_STRICT_CHK; older kernels send
    /// everything, so the table is checked here as well.
    fn ipv4_routes(&mut self, table: u8) -> Result<Vec<RouteState>, Failure> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = table;
        let mut found = Vec::new();
        let dumped = self
            .sock
            .dump(&RouteNetlinkMessage::GetRoute(msg), |m: Option<&Msg>| {
                match m {
                    None => found.clear(),
                    Some(m) if m.ty == RTM_NEWROUTE => {
                        if let Some(r) = parse_route(m.payload) {
                            if table == RT_TABLE_UNSPEC || r.table == u32::from(table) {
                                found.push(r);
                            }
                        }
                    }
                    Some(_) => {}
                }
                Ok(())
            });
        match dumped {
            Ok(()) => Ok(found),
            // A table that was never filled (the main table of a fresh
            // namespace) does not exist yet: nothing routed there.
            Err(f) if table != RT_TABLE_UNSPEC && f.errno() == Some(libc::ENOENT) => Ok(Vec::new()),
            Err(f) => Err(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    fn emitted(msg: &RouteMessage) -> Vec<u8> {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    #[test]
    fn parses_a_default_route() {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RT_TABLE_MAIN;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(
                10, 99, 0, 1,
            ))));
        msg.attributes.push(RouteAttribute::Oif(4));
        msg.attributes.push(RouteAttribute::Priority(100));
        msg.attributes.push(RouteAttribute::Table(254));
        let r = parse_route(&emitted(&msg)).unwrap();
        assert!(is_default(&r));
        assert_eq!(r.gateway, Some(Ipv4Addr::new(10, 99, 0, 1)));
        assert_eq!((r.oif, r.priority), (Some(4), 100));
    }

    #[test]
    fn parses_a_subnet_route_and_ignores_other_families() {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = 16;
        msg.header.table = RT_TABLE_MAIN;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                Ipv4Addr::new(172, 17, 0, 0),
            )));
        let r = parse_route(&emitted(&msg)).unwrap();
        assert_eq!((r.dst, r.dst_len), (Ipv4Addr::new(172, 17, 0, 0), 16));
        assert!(!is_default(&r));

        msg.header.address_family = AddressFamily::Inet6;
        msg.attributes.clear();
        assert!(parse_route(&emitted(&msg)).is_none());
        assert!(parse_route(&[libc::AF_INET as u8, 0, 0]).is_none());
        assert!(parse_route(&[]).is_none());
    }

    #[test]
    fn multipath_takes_the_first_hop() {
        let mut payload = vec![
            libc::AF_INET as u8,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            0,
            0,
            RTN_UNICAST,
            0,
            0,
            0,
            0,
        ];
        // RTA_MULTIPATH { rtnexthop{len 16, ifindex 7, RTA_GATEWAY 10.0.0.1}, garbage }
        let mut hop = Vec::new();
        hop.extend_from_slice(&16u16.to_ne_bytes());
        hop.extend_from_slice(&[0, 0]);
        hop.extend_from_slice(&7u32.to_ne_bytes());
        hop.extend_from_slice(&8u16.to_ne_bytes());
        hop.extend_from_slice(&RTA_GATEWAY.to_ne_bytes());
        hop.extend_from_slice(&[10, 0, 0, 1]);
        hop.extend_from_slice(&[0xff, 0xff, 0, 0]);
        payload.extend_from_slice(&((4 + hop.len()) as u16).to_ne_bytes());
        payload.extend_from_slice(&RTA_MULTIPATH.to_ne_bytes());
        payload.extend(hop);
        let r = parse_route(&payload).unwrap();
        assert_eq!(r.oif, Some(7));
        assert_eq!(r.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(is_default(&r));
    }
}
