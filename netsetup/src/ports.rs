//! Published ports: `-p [HOSTIP:]HOSTPORT[-END]:CONTAINERPORT[-END][/tcp|udp]`.
//!
//! The forms Docker accepts, IPv4 only:
//!
//! | spec | means |
//! | --- | --- |
//! | `80` | container port 80 on a host port the caller picks |
//! | `8080:80` | host port 8080, every host address, to container port 80 |
//! | `127.0.0.1:8080:80` | the same, on 127.0.0.1 only |
//! | `127.0.0.1::80` | 127.0.0.1, on a host port the caller picks |
//! | `8000-8002:80-82` | three mappings, 8000→80, 8001→81, 8002→82 |
//! | `8080:80/udp` | udp (tcp when no protocol is given; any case) |
//!
//! A host port to be picked by the caller is `host_port` 0; the caller finds
//! a free port and fills it in before `check_available`.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One host port forwarded to one container port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// None: every address of the host (what `0.0.0.0` also parses to).
    pub host_ip: Option<Ipv4Addr>,
    /// 0: not chosen yet, the caller picks a free port.
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// As `-p` would take it back: `[HOSTIP:]HOSTPORT:CONTAINERPORT/PROTO`.
impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        if self.host_port != 0 {
            write!(f, "{}", self.host_port)?;
        }
        write!(f, ":{}/{}", self.container_port, self.protocol)
    }
}

#[derive(Debug, Error)]
pub enum PortError {
    #[error("empty port spec")]
    Empty,
    #[error("invalid port spec {spec:?}: expected [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTOCOL]")]
    Malformed { spec: String },
    #[error("invalid port spec {spec:?}: {part:?} is not a port number")]
    NotANumber { spec: String, part: String },
    #[error("invalid port spec {spec:?}: port {part} is out of range 1-65535")]
    OutOfRange { spec: String, part: String },
    #[error("invalid port spec {spec:?}: range {range} ends before it starts")]
    ReversedRange { spec: String, range: String },
    #[error("invalid port spec {spec:?}: host ports {host} and container ports {container} are ranges of different lengths")]
    RangeMismatch { spec: String, host: String, container: String },
    #[error("invalid port spec {spec:?}: {ip:?} is not an IPv4 address")]
    BadHostIp { spec: String, ip: String },
    #[error("invalid port spec {spec:?}: IPv6 host address {ip} is not supported yet")]
    Ipv6HostIp { spec: String, ip: String },
    #[error("invalid port spec {spec:?}: unknown protocol {protocol:?} (tcp or udp)")]
    UnknownProtocol { spec: String, protocol: String },
    #[error("port {} is already published by another container", Described(.0))]
    AlreadyPublished(PortMapping),
    #[error("port {} is asked for twice", Described(.0))]
    Duplicate(PortMapping),
    #[error("port {} is already in use", Described(.0))]
    InUse(PortMapping),
    #[error("cannot publish on {0}: it is not an address of this host")]
    AddressNotAvailable(Ipv4Addr),
    #[error("check port {}: {source}", Described(.mapping))]
    Probe { mapping: PortMapping, source: io::Error },
}

/// A mapping's host side in messages: "8080/tcp", or "8080/tcp on 127.0.0.1".
struct Described<'a>(&'a PortMapping);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.host_port, self.0.protocol)?;
        match self.0.host_ip {
            Some(ip) if !ip.is_unspecified() => write!(f, " on {ip}"),
            _ => Ok(()),
        }
    }
}

/// Parses one `-p` value (see the module's table) into one mapping per port,
/// ranges expanded in order. An empty host port (`80`, `127.0.0.1::80`)
/// gives `host_port` 0, for the caller to choose. Unlike Docker, a host port
/// range with a single container port (Docker's "any port of the range") or
/// a single host port with a container range is refused: both ranges must be
/// the same length.
pub fn parse_port_spec(spec: &str) -> Result<Vec<PortMapping>, PortError> {
    if spec.is_empty() {
        return Err(PortError::Empty);
    }
    let (addresses, protocol) = match spec.rsplit_once('/') {
        Some((rest, p)) if p.eq_ignore_ascii_case("tcp") => (rest, Protocol::Tcp),
        Some((rest, p)) if p.eq_ignore_ascii_case("udp") => (rest, Protocol::Udp),
        Some((_, other)) => return Err(PortError::UnknownProtocol { spec: spec.into(), protocol: other.into() }),
        None => (spec, Protocol::Tcp),
    };
    if let Some(bracketed) = addresses.strip_prefix('[') {
        let ip = bracketed.split(']').next().unwrap_or_default();
        return Err(PortError::Ipv6HostIp { spec: spec.into(), ip: ip.into() });
    }
    // From the right: an IP holding colons is caught below as IPv6.
    let mut parts = addresses.rsplitn(3, ':');
    let container = parts.next().unwrap_or_default();
    let host = parts.next().unwrap_or_default();
    let host_ip = match parts.next() {
        None => None,
        Some(ip) => parse_host_ip(spec, ip)?,
    };
    if container.is_empty() {
        return Err(PortError::Malformed { spec: spec.into() });
    }
    let (container_start, container_end) = parse_range(spec, container)?;
    let host_start = if host.is_empty() {
        None
    } else {
        let (start, end) = parse_range(spec, host)?;
        if end - start != container_end - container_start {
            return Err(PortError::RangeMismatch { spec: spec.into(), host: host.into(), container: container.into() });
        }
        Some(start)
    };
    Ok((container_start..=container_end)
        .map(|container_port| PortMapping {
            host_ip,
            // Same lengths checked above: never past host_end.
            host_port: host_start.map_or(0, |start| start + (container_port - container_start)),
            container_port,
            protocol,
        })
        .collect())
}

fn parse_host_ip(spec: &str, ip: &str) -> Result<Option<Ipv4Addr>, PortError> {
    if let Ok(v4) = ip.parse::<Ipv4Addr>() {
        // 0.0.0.0 is "every address": one spelling for it, so that conflict
        // checks compare like with like.
        return Ok(Some(v4).filter(|a| !a.is_unspecified()));
    }
    if ip.parse::<Ipv6Addr>().is_ok() {
        return Err(PortError::Ipv6HostIp { spec: spec.into(), ip: ip.into() });
    }
    Err(PortError::BadHostIp { spec: spec.into(), ip: ip.into() })
}

/// `N` or `N-M`, each 1 to 65535, N ≤ M.
fn parse_range(spec: &str, range: &str) -> Result<(u16, u16), PortError> {
    let (start, end) = match range.split_once('-') {
        Some((start, end)) => (parse_port(spec, start)?, parse_port(spec, end)?),
        None => {
            let port = parse_port(spec, range)?;
            (port, port)
        }
    };
    if start > end {
        return Err(PortError::ReversedRange { spec: spec.into(), range: range.into() });
    }
    Ok((start, end))
}

fn parse_port(spec: &str, part: &str) -> Result<u16, PortError> {
    // Digits only: str::parse would also take "+80".
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError::NotANumber { spec: spec.into(), part: part.into() });
    }
    match part.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(PortError::OutOfRange { spec: spec.into(), part: part.into() }),
    }
}

/// Refuses a mapping whose host side is taken: already published by another
/// container (`published`), asked for twice in `wanted`, or bound by
/// something on the host. "Taken" means same protocol and port, and the same
/// host address or either side on every address. Mappings with `host_port`
/// 0 are not checked: their port is not chosen yet.
///
/// The host check binds a socket to the address and port, tcp or udp as
/// mapped, without SO_REUSEADDR, and closes it at once.
pub fn check_available(wanted: &[PortMapping], published: &[PortMapping]) -> Result<(), PortError> {
    for (i, mapping) in wanted.iter().enumerate() {
        if mapping.host_port == 0 {
            continue;
        }
        if published.iter().any(|p| clash(mapping, p)) {
            return Err(PortError::AlreadyPublished(*mapping));
        }
        if wanted[..i].iter().any(|w| clash(mapping, w)) {
            return Err(PortError::Duplicate(*mapping));
        }
    }
    for mapping in wanted.iter().filter(|m| m.host_port != 0) {
        probe(mapping)?;
    }
    Ok(())
}

fn clash(a: &PortMapping, b: &PortMapping) -> bool {
    let everywhere = |m: &PortMapping| m.host_ip.filter(|ip| !ip.is_unspecified()).is_none();
    a.protocol == b.protocol
        && a.host_port == b.host_port
        && b.host_port != 0
        && (everywhere(a) || everywhere(b) || a.host_ip == b.host_ip)
}

/// Without SO_REUSEADDR, any socket on the port fails the bind, a
/// connection lingering in TIME_WAIT included. A false "in use" for a minute
/// is the lesser harm: DNAT would silently steal the port from a host
/// service that binds with SO_REUSEADDR, as most do.
fn probe(mapping: &PortMapping) -> Result<(), PortError> {
    let kind = match mapping.protocol {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    let probe_err = |errno: Errno| PortError::Probe { mapping: *mapping, source: io::Error::from(errno) };
    let sock = socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, None).map_err(probe_err)?;
    let ip = mapping.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    match bind(sock.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(ip, mapping.host_port))) {
        Ok(()) => Ok(()),
        Err(Errno::EADDRINUSE) => Err(PortError::InUse(*mapping)),
        Err(Errno::EADDRNOTAVAIL) => Err(PortError::AddressNotAvailable(ip)),
        Err(errno) => Err(probe_err(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};

    fn m(host_ip: Option<[u8; 4]>, host_port: u16, container_port: u16, protocol: Protocol) -> PortMapping {
        PortMapping { host_ip: host_ip.map(Ipv4Addr::from), host_port, container_port, protocol }
    }

    fn tcp(host_port: u16, container_port: u16) -> PortMapping {
        m(None, host_port, container_port, Protocol::Tcp)
    }

    const LO: Option<[u8; 4]> = Some([127, 0, 0, 1]);

    #[test]
    fn valid_specs() {
        use Protocol::{Tcp, Udp};
        let table: Vec<(&str, Vec<PortMapping>)> = vec![
            ("80", vec![tcp(0, 80)]),
            ("8080:80", vec![tcp(8080, 80)]),
            ("127.0.0.1:8080:80", vec![m(LO, 8080, 80, Tcp)]),
            ("8080:80/udp", vec![m(None, 8080, 80, Udp)]),
            ("8080:80/tcp", vec![tcp(8080, 80)]),
            ("53/udp", vec![m(None, 0, 53, Udp)]),
            ("8000-8002:80-82", vec![tcp(8000, 80), tcp(8001, 81), tcp(8002, 82)]),
            ("127.0.0.1::80", vec![m(LO, 0, 80, Tcp)]),
            ("127.0.0.1::80/udp", vec![m(LO, 0, 80, Udp)]),
            (":80", vec![tcp(0, 80)]),
            ("0.0.0.0:8080:80", vec![tcp(8080, 80)]),
            ("80-81", vec![tcp(0, 80), tcp(0, 81)]),
            ("1:1", vec![tcp(1, 1)]),
            ("65535:65535", vec![tcp(65535, 65535)]),
            ("8080-8080:80-80", vec![tcp(8080, 80)]),
            ("10.1.2.3:9000-9001:9000-9001/udp", vec![m(Some([10, 1, 2, 3]), 9000, 9000, Udp), m(Some([10, 1, 2, 3]), 9001, 9001, Udp)]),
            ("008080:080", vec![tcp(8080, 80)]),
            ("53:53/UDP", vec![m(None, 53, 53, Udp)]),
        ];
        for (spec, expected) in table {
            assert_eq!(parse_port_spec(spec).unwrap_or_else(|e| panic!("{spec}: {e}")), expected, "{spec}");
        }
        assert_eq!(parse_port_spec("1-65535").unwrap().len(), 65535);
    }

    #[test]
    fn invalid_specs() {
        use PortError as E;
        type Check = fn(&PortError) -> bool;
        let table: Vec<(&str, Check)> = vec![
            ("", |e| matches!(e, E::Empty)),
            ("http", |e| matches!(e, E::NotANumber { .. })),
            ("80a", |e| matches!(e, E::NotANumber { .. })),
            ("+80", |e| matches!(e, E::NotANumber { .. })),
            (" 80", |e| matches!(e, E::NotANumber { .. })),
            ("-80", |e| matches!(e, E::NotANumber { .. })),
            ("80-", |e| matches!(e, E::NotANumber { .. })),
            ("80-81-82", |e| matches!(e, E::NotANumber { .. })),
            ("x:80", |e| matches!(e, E::NotANumber { .. })),
            ("0", |e| matches!(e, E::OutOfRange { .. })),
            ("8080:0", |e| matches!(e, E::OutOfRange { .. })),
            ("0:80", |e| matches!(e, E::OutOfRange { .. })),
            ("65536", |e| matches!(e, E::OutOfRange { .. })),
            ("99999999999999999999999:80", |e| matches!(e, E::OutOfRange { .. })),
            ("82-80", |e| matches!(e, E::ReversedRange { .. })),
            ("8002-8000:80-82", |e| matches!(e, E::ReversedRange { .. })),
            ("8000-8001:80-82", |e| matches!(e, E::RangeMismatch { .. })),
            ("8080:80-82", |e| matches!(e, E::RangeMismatch { .. })),
            ("8000-8002:80", |e| matches!(e, E::RangeMismatch { .. })),
            ("256.0.0.1:80:80", |e| matches!(e, E::BadHostIp { .. })),
            ("localhost:80:80", |e| matches!(e, E::BadHostIp { .. })),
            ("::80", |e| matches!(e, E::BadHostIp { .. })),
            ("1:2:3:4", |e| matches!(e, E::BadHostIp { .. })),
            ("[::1]:8080:80", |e| matches!(e, E::Ipv6HostIp { .. })),
            ("::1:8080:80", |e| matches!(e, E::Ipv6HostIp { .. })),
            ("fe80::1:80:80/udp", |e| matches!(e, E::Ipv6HostIp { .. })),
            ("80/sctp", |e| matches!(e, E::UnknownProtocol { .. })),
            ("80/", |e| matches!(e, E::UnknownProtocol { .. })),
            ("80/TCP/udp", |e| matches!(e, E::NotANumber { .. })),
            ("8080:", |e| matches!(e, E::Malformed { .. })),
            ("127.0.0.1:8080:", |e| matches!(e, E::Malformed { .. })),
            ("/tcp", |e| matches!(e, E::Malformed { .. })),
        ];
        for (spec, check) in table {
            match parse_port_spec(spec) {
                Ok(got) => panic!("{spec:?} parsed as {got:?}"),
                Err(e) => {
                    assert!(check(&e), "{spec:?}: wrong error {e:?}");
                    assert!(!e.to_string().contains('\n'), "{e}");
                }
            }
        }
    }

    #[test]
    fn error_messages_read_well() {
        let msg = |spec| parse_port_spec(spec).unwrap_err().to_string();
        assert_eq!(msg("8000-8001:80-82"), r#"invalid port spec "8000-8001:80-82": host ports 8000-8001 and container ports 80-82 are ranges of different lengths"#);
        assert_eq!(msg("[::1]:80:80"), r#"invalid port spec "[::1]:80:80": IPv6 host address ::1 is not supported yet"#);
        assert_eq!(msg("80/sctp"), r#"invalid port spec "80/sctp": unknown protocol "sctp" (tcp or udp)"#);
        assert_eq!(msg("70000"), r#"invalid port spec "70000": port 70000 is out of range 1-65535"#);
        assert_eq!(PortError::InUse(tcp(8080, 80)).to_string(), "port 8080/tcp is already in use");
        assert_eq!(PortError::InUse(m(LO, 53, 53, Protocol::Udp)).to_string(), "port 53/udp on 127.0.0.1 is already in use");
    }

    #[test]
    fn mappings_display_as_specs_and_serialise() {
        for spec in ["127.0.0.1:8080:80/udp", "8080:80/tcp", ":80/tcp"] {
            let parsed = parse_port_spec(spec).unwrap();
            assert_eq!(parsed[0].to_string(), spec);
            assert_eq!(parse_port_spec(&parsed[0].to_string()).unwrap(), parsed);
        }
        let json = serde_json::to_string(&m(LO, 1, 2, Protocol::Udp)).unwrap();
        assert_eq!(json, r#"{"host_ip":"127.0.0.1","host_port":1,"container_port":2,"protocol":"udp"}"#);
        assert_eq!(serde_json::from_str::<PortMapping>(&json).unwrap(), m(LO, 1, 2, Protocol::Udp));
    }

    #[test]
    fn published_ports_clash_by_protocol_port_and_address() {
        let published = [m(LO, 8080, 80, Protocol::Tcp), tcp(9090, 90)];
        // Another address, or another protocol: free.
        check_available(&[m(Some([127, 0, 0, 2]), 8080, 80, Protocol::Tcp)], &published).unwrap();
        check_available(&[m(LO, 8080, 80, Protocol::Udp)], &published).unwrap();
        let clashes = [
            m(LO, 8080, 81, Protocol::Tcp),
            tcp(8080, 80),
            m(Some([0, 0, 0, 0]), 8080, 80, Protocol::Tcp),
            m(LO, 9090, 90, Protocol::Tcp),
            m(Some([10, 0, 0, 1]), 9090, 90, Protocol::Tcp),
        ];
        for wanted in clashes {
            let err = check_available(&[wanted], &published).unwrap_err();
            assert!(matches!(err, PortError::AlreadyPublished(_)), "{wanted}: {err}");
        }
        let err = check_available(&[tcp(7070, 1), m(LO, 7070, 2, Protocol::Tcp)], &[]).unwrap_err();
        assert!(matches!(err, PortError::Duplicate(_)), "{err}");
        // Unchosen host ports are not checked.
        check_available(&[tcp(0, 80), tcp(0, 80)], &[tcp(0, 80)]).unwrap();
    }

    #[test]
    fn ports_bound_on_the_host_are_in_use() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = check_available(&[m(LO, port, 80, Protocol::Tcp)], &[]).unwrap_err();
        assert!(matches!(err, PortError::InUse(_)), "{err}");
        assert_eq!(err.to_string(), format!("port {port}/tcp on 127.0.0.1 is already in use"));
        // On every address clashes with one address too.
        assert!(matches!(check_available(&[tcp(port, 80)], &[]), Err(PortError::InUse(_))));
        drop(listener);
        check_available(&[m(LO, port, 80, Protocol::Tcp)], &[]).unwrap();

        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        assert!(matches!(check_available(&[m(LO, port, 53, Protocol::Udp)], &[]), Err(PortError::InUse(_))));
        drop(udp);
        check_available(&[m(LO, port, 53, Protocol::Udp)], &[]).unwrap();
    }

    #[test]
    fn an_address_the_host_does_not_have_is_refused() {
        // TEST-NET-3 (RFC 5737) is never configured on a host.
        let err = check_available(&[m(Some([203, 0, 113, 77]), 8080, 80, Protocol::Tcp)], &[]).unwrap_err();
        assert!(matches!(err, PortError::AddressNotAvailable(_)), "{err}");
    }
}
