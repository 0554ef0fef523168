//! IPv4 addresses: adding one to a link, listing all of them.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::socket::{attrs, read_u32, Failure, Msg};
use super::Netlink;

const RTM_NEWADDR: u16 = 20;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

/// RTM_NEWADDR for `net` on `index`, with IFA_LOCAL and IFA_ADDRESS both
/// set as `ip addr add` does, and the subnet's broadcast (none for /31 and
/// /32, which have no broadcast address).
pub(crate) fn new_address_message(index: u32, net: Ipv4Net) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = net.prefix_len();
    msg.header.scope = AddressScope::Universe;
    msg.header.index = index;
    msg.attributes
        .push(AddressAttribute::Local(IpAddr::V4(net.addr())));
    msg.attributes
        .push(AddressAttribute::Address(IpAddr::V4(net.addr())));
    if net.prefix_len() < 31 {
        msg.attributes
            .push(AddressAttribute::Broadcast(net.broadcast()));
    }
    msg
}

/// ifaddrmsg (family, prefixlen, flags, scope, index: 8 bytes), then
/// attributes. IFA_LOCAL is our address; IFA_ADDRESS differs from it only
/// on point-to-point links, where it is the peer's and belongs to the
/// inventory too.
fn parse_ipv4_addresses(payload: &[u8], out: &mut Vec<Ipv4Net>) {
    let (Some(&family), Some(&prefix)) = (payload.first(), payload.get(1)) else {
        return;
    };
    if family != libc::AF_INET as u8 {
        return;
    }
    let mut local = None;
    let mut address = None;
    for (kind, value) in attrs(payload.get(8..).unwrap_or(&[])) {
        let Ok(octets) = <[u8; 4]>::try_from(value) else {
            continue;
        };
        match kind {
            IFA_LOCAL => local = Some(Ipv4Addr::from(octets)),
            IFA_ADDRESS => address = Some(Ipv4Addr::from(octets)),
            _ => {}
        }
    }
    for addr in [local, address.filter(|a| Some(*a) != local)]
        .into_iter()
        .flatten()
    {
        if let Ok(net) = Ipv4Net::new(addr, prefix) {
            out.push(net);
        }
    }
}

impl Netlink {
    /// Adds `net` to link `index`; Ok(false) if it was already there.
    /// One round trip. NLM_F_EXCL so an existing address is reported
    /// (EEXIST) rather than rewritten, which would send needless
    /// notifications and reset its lifetimes.
    pub(crate) fn add_ipv4(&mut self, index: u32, net: Ipv4Net) -> Result<bool, Failure> {
        let msg = new_address_message(index, net);
        match self.sock.request(
            &RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            |_| Ok(()),
        ) {
            Ok(()) => Ok(true),
            Err(f) if f.errno() == Some(libc::EEXIST) => Ok(false),
            Err(f) => Err(f),
        }
    }

    /// Every IPv4 address in this namespace, with its prefix. One dump.
    pub(crate) fn ipv4_addresses(&mut self) -> Result<Vec<Ipv4Net>, Failure> {
        self.ipv4_addresses_of(None)
    }

    /// The IPv4 addresses of link `index`. One dump (filtered here: the
    /// kernel only filters address dumps by index under strict checking).
    pub(crate) fn ipv4_addresses_on(&mut self, index: u32) -> Result<Vec<Ipv4Net>, Failure> {
        self.ipv4_addresses_of(Some(index))
    }

    fn ipv4_addresses_of(&mut self, index: Option<u32>) -> Result<Vec<Ipv4Net>, Failure> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        let mut found = Vec::new();
        self.sock
            .dump(&RouteNetlinkMessage::GetAddress(msg), |m: Option<&Msg>| {
                match m {
                    None => found.clear(),
                    Some(m) if m.ty == RTM_NEWADDR && (index.is_none() || read_u32(m.payload, 4) == index) => {
                        parse_ipv4_addresses(m.payload, &mut found)
                    }
                    Some(_) => {}
                }
                Ok(())
            })?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    fn emitted(msg: &AddressMessage) -> Vec<u8> {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    #[test]
    fn address_message_has_local_address_and_broadcast() {
        let net: Ipv4Net = "10.99.0.2/24".parse().unwrap();
        let buf = emitted(&new_address_message(5, net));
        assert_eq!(buf[0], libc::AF_INET as u8);
        assert_eq!(buf[1], 24);
        assert_eq!(u32::from_ne_bytes(buf[4..8].try_into().unwrap()), 5);
        let got: Vec<_> = attrs(&buf[8..]).map(|(k, v)| (k, v.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (IFA_LOCAL, vec![10, 99, 0, 2]),
                (IFA_ADDRESS, vec![10, 99, 0, 2]),
                (4, vec![10, 99, 0, 255]), // IFA_BROADCAST
            ]
        );

        let host: Ipv4Net = "10.99.0.2/32".parse().unwrap();
        let buf = emitted(&new_address_message(5, host));
        assert_eq!(attrs(&buf[8..]).count(), 2, "no broadcast for a /32");
    }

    #[test]
    fn parses_addresses_including_point_to_point_peers() {
        let net: Ipv4Net = "192.168.7.9/24".parse().unwrap();
        let mut out = Vec::new();
        parse_ipv4_addresses(&emitted(&new_address_message(2, net)), &mut out);
        assert_eq!(out, vec![net]);

        let mut ptp = new_address_message(2, "10.0.0.1/32".parse().unwrap());
        ptp.attributes[1] = AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let mut out = Vec::new();
        parse_ipv4_addresses(&emitted(&ptp), &mut out);
        assert_eq!(
            out,
            vec![
                "10.0.0.1/32".parse().unwrap(),
                "10.0.0.2/32".parse().unwrap()
            ]
        );

        let mut out = Vec::new();
        parse_ipv4_addresses(&[libc::AF_INET as u8], &mut out);
        parse_ipv4_addresses(
            &[
                libc::AF_INET as u8,
                99,
                0,
                0,
                0,
                0,
                0,
                0,
                8,
                0,
                2,
                0,
                1,
                2,
                3,
                4,
            ],
            &mut out,
        );
        assert!(out.is_empty(), "prefix 99 is not an IPv4 prefix: {out:?}");
    }
}
