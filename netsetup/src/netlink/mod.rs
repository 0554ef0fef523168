//! Synchronous rtnetlink: links, addresses and routes (no async runtime on the container path).
//!
//! One `NETLINK_ROUTE` socket per [`Netlink`], blocking send/recv, one
//! request in flight at a time. Requests are built with
//! `netlink-packet-route`'s message types; replies are read with a small
//! tolerant parser that only looks at the attributes we need, so that a
//! kernel newer than the crate (new attributes, new layouts) cannot make a
//! lookup fail.
//!
//! Cost model: every method is a fixed, small number of round trips (listed
//! on each method). Only `links_with_prefix` and `ipv4_routes_and_addresses`
//! dump, and `default_route_mtu` when its targeted lookup does not settle it.

mod addr;
mod link;
mod route;
mod socket;

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sched::{setns, CloneFlags};
use thiserror::Error;

use socket::{Failure, NlSocket};

pub use link::{BridgeExplanation, EnsuredBridge};

/// An rtnetlink failure, always naming what was being done and to which link.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetlinkError {
    /// The kernel refused the request with `errno`.
    #[error("{op}: {}{}", errno_text(*.errno), detail_text(.detail))]
    Kernel {
        op: String,
        errno: i32,
        /// The kernel's extended-ack message, or our explanation of the errno.
        detail: Option<String>,
    },
    /// The socket itself failed (or a reply never came).
    #[error("{op}: netlink socket: {source}")]
    Io {
        op: String,
        #[source]
        source: io::Error,
    },
    /// The kernel's reply could not be understood.
    #[error("{op}: unexpected netlink reply: {detail}")]
    Malformed { op: String, detail: String },
    /// A name the kernel would refuse (checked first so the error is ours and clear).
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// `ensure_bridge` found a link with the bridge's name that is something else.
    #[error("{name} exists but is not a bridge (link kind: {kind})")]
    NotABridge { name: String, kind: String },
    /// Entering or leaving a network namespace failed.
    #[error("network namespace: {op}: {source}")]
    Netns {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl NetlinkError {
    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// Attaches what was being done to a socket-level failure. `op` is only
    /// called on the error path, so the happy path formats nothing.
    pub(crate) fn from_failure(failure: Failure, op: impl FnOnce() -> String) -> Self {
        match failure {
            Failure::Kernel { errno, message } => NetlinkError::Kernel {
                op: op(),
                errno,
                detail: message,
            },
            Failure::Io(source) => NetlinkError::Io { op: op(), source },
            Failure::Malformed(detail) => NetlinkError::Malformed { op: op(), detail },
        }
    }
}

fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

fn detail_text(detail: &Option<String>) -> String {
    match detail {
        Some(d) => format!(" ({d})"),
        None => String::new(),
    }
}

/// A rtnetlink client bound to one network namespace.
pub struct Netlink {
    sock: NlSocket,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("fd", &self.sock.fd())
            .finish()
    }
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace. No round
    /// trip: a socket, a few options and a bind.
    pub fn open() -> Result<Self, NetlinkError> {
        let sock = NlSocket::open().map_err(|source| NetlinkError::Io {
            op: "open NETLINK_ROUTE socket".into(),
            source,
        })?;
        Ok(Netlink { sock })
    }

    /// Opens a socket inside the network namespace `netns` (an fd of
    /// /proc/PID/ns/net or /run/netns/X): setns into it, open the socket,
    /// setns back. A netlink socket stays bound to the namespace it was
    /// created in, so every later request acts on `netns`. Only the calling
    /// thread changes namespace, for the duration of one socket() call.
    pub fn open_in(netns: BorrowedFd) -> Result<Self, NetlinkError> {
        // thread-self, not self: setns moves only the calling thread, and
        // /proc/self names the main thread's namespace, which is not the one
        // to come back to when we run on another thread (tests do).
        let original = File::open("/proc/thread-self/ns/net")
            .or_else(|_| File::open("/proc/self/ns/net"))
            .map_err(|source| NetlinkError::Netns {
                op: "open /proc/thread-self/ns/net",
                source,
            })?;
        setns(netns, CloneFlags::CLONE_NEWNET).map_err(|e| NetlinkError::Netns {
            op: "enter the target namespace",
            source: e.into(),
        })?;
        // Only the socket() call has to happen inside; options and bind are
        // done after coming back.
        let raw = NlSocket::raw_socket();
        let back = setns(original.as_fd(), CloneFlags::CLONE_NEWNET);
        if let Err(e) = back {
            return Err(NetlinkError::Netns {
                op: "return to the original namespace",
                source: e.into(),
            });
        }
        let raw = raw.map_err(|source| NetlinkError::Io {
            op: "open NETLINK_ROUTE socket in the target namespace".into(),
            source,
        })?;
        let sock = NlSocket::configure(raw).map_err(|source| NetlinkError::Io {
            op: "set up NETLINK_ROUTE socket in the target namespace".into(),
            source,
        })?;
        Ok(Netlink { sock })
    }
}

/// Docker's MAC for an address: 02:42 followed by the 4 address bytes.
/// Deterministic, so a container keeps its MAC across restarts with the
/// same address, and neighbours' ARP entries stay right.
pub fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = addr.octets();
    [0x02, 0x42, a, b, c, d]
}

/// Sets /proc/sys/net/ipv4/ip_forward=1 and
/// /proc/sys/net/ipv4/conf/<bridge>/route_localnet=1 (DNAT to a
/// 127.0.0.1-bound published port is only routed towards the bridge with
/// route_localnet); idempotent. Acts on the calling thread's namespace.
pub fn enable_forwarding(bridge: &str) -> io::Result<()> {
    for path in forwarding_sysctls(bridge)? {
        set_sysctl_one(&path)?;
    }
    Ok(())
}

/// What `enable_forwarding(bridge)` would write now, as `sysctl -w`
/// commands: each sysctl that is not 1 already (a bridge that does not
/// exist yet has no sysctls, so its is written), and a `# ` comment for each
/// that is. Only reads.
pub fn explain_enable_forwarding(bridge: &str) -> io::Result<Vec<String>> {
    Ok(forwarding_sysctls(bridge)?
        .iter()
        .map(|path| {
            let key = sysctl_key(path);
            match std::fs::read_to_string(path) {
                Ok(v) if v.trim() == "1" => format!("# {key} is 1 already"),
                _ => format!("sysctl -w {key}=1"),
            }
        })
        .collect())
}

/// The sysctls `enable_forwarding` sets, as /proc/sys paths.
fn forwarding_sysctls(bridge: &str) -> io::Result<[String; 2]> {
    check_name(bridge).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    Ok(["/proc/sys/net/ipv4/ip_forward".to_string(), format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet")])
}

/// A /proc/sys path as `sysctl` takes it: dotted, unless a component has a
/// dot of its own (an interface called `br.1`), which only the slash form
/// can say.
fn sysctl_key(path: &str) -> String {
    let key = path.trim_start_matches("/proc/sys/");
    if key.split('/').any(|c| c.contains('.')) {
        key.to_string()
    } else {
        key.replace('/', ".")
    }
}

/// Turns IPv6 off on `interface` in namespace `netns`: the networks are
/// IPv4 only, and an interface left with IPv6 autoconfiguration accepts
/// router advertisements from anyone on the bridge (CVE-2024-32473, which
/// is why Docker 26.0.2 and later do the same).
pub fn disable_ipv6_in(netns: BorrowedFd, interface: &str) -> io::Result<()> {
    check_name(interface).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let path = format!("/proc/sys/net/ipv6/conf/{interface}/disable_ipv6");
    let original = File::open("/proc/thread-self/ns/net")?;
    setns(netns, CloneFlags::CLONE_NEWNET)?;
    // /proc/sys/net shows the namespace of whoever opens it.
    let file = std::fs::OpenOptions::new().write(true).open(&path);
    setns(original.as_fd(), CloneFlags::CLONE_NEWNET)?;
    match file {
        Ok(mut file) => io::Write::write_all(&mut file, b"1\n").map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}"))),
        // A kernel without IPv6 has nothing to turn off.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), format!("{path}: {e}"))),
    }
}

/// What `disable_ipv6_in` does, run inside the namespace.
pub fn explain_disable_ipv6(interface: &str) -> String {
    format!("sysctl -qw net.ipv6.conf.{interface}.disable_ipv6=1")
}

/// Writes "1" unless the value already is 1: reading first keeps this
/// working where /proc/sys is mounted read-only but was set beforehand.
fn set_sysctl_one(path: &str) -> io::Result<()> {
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{path}: {e}"));
    let current = std::fs::read_to_string(path).map_err(with_path)?;
    if current.trim() == "1" {
        return Ok(());
    }
    std::fs::write(path, b"1\n").map_err(with_path)
}

/// The kernel's dev_valid_name(), so a bad name is refused here with a
/// message rather than as a bare EINVAL/ERANGE from the kernel.
pub(crate) fn check_name(name: &str) -> Result<(), NetlinkError> {
    let bad = |reason| {
        Err(NetlinkError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 15 {
        return bad("longer than 15 bytes (IFNAMSIZ - 1)");
    }
    if name == "." || name == ".." {
        return bad("reserved");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return bad("contains '/', ':', NUL or whitespace");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_docker_style() {
        assert_eq!(
            mac_for(Ipv4Addr::new(10, 99, 0, 2)),
            [0x02, 0x42, 0x0a, 0x63, 0x00, 0x02]
        );
        assert_eq!(
            mac_for(Ipv4Addr::new(172, 17, 0, 1)),
            [0x02, 0x42, 172, 17, 0, 1]
        );
        // Locally administered, unicast.
        let mac = mac_for(Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(mac[0] & 0x03, 0x02);
    }

    #[test]
    fn names_follow_dev_valid_name() {
        for ok in ["eth0", "mrtbr0", "veth0123456789a", "a", "br-x_y.z"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "veth0123456789ab",
            "a/b",
            "eth0:1",
            "a b",
            "a\tb",
            "a\0b",
        ] {
            let err = check_name(bad).unwrap_err();
            assert!(matches!(err, NetlinkError::InvalidName { .. }), "{bad:?}");
            assert!(err.to_string().contains("invalid interface name"));
        }
    }

    #[test]
    fn kernel_errors_name_the_operation() {
        let err = NetlinkError::from_failure(
            Failure::Kernel {
                errno: libc::EEXIST,
                message: Some("vethx already exists".into()),
            },
            || "create veth vethx".into(),
        );
        assert_eq!(err.errno(), Some(libc::EEXIST));
        let text = err.to_string();
        assert!(text.starts_with("create veth vethx: "), "{text}");
        assert!(text.contains("os error 17"), "{text}");
        assert!(text.ends_with("(vethx already exists)"), "{text}");
    }

    #[test]
    fn enable_forwarding_refuses_path_tricks() {
        let err = enable_forwarding("../../ip_forward").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = explain_enable_forwarding("../../ip_forward").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn forwarding_is_explained_as_sysctl_commands() {
        assert_eq!(sysctl_key("/proc/sys/net/ipv4/ip_forward"), "net.ipv4.ip_forward");
        assert_eq!(sysctl_key("/proc/sys/net/ipv4/conf/br.1/route_localnet"), "net/ipv4/conf/br.1/route_localnet");
        // No such bridge here: its sysctl does not exist, so it is to be set.
        let lines = explain_enable_forwarding("mrxnosuchbr0").unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines[0] == "sysctl -w net.ipv4.ip_forward=1" || lines[0] == "# net.ipv4.ip_forward is 1 already", "{lines:?}");
        assert_eq!(lines[1], "sysctl -w net.ipv4.conf.mrxnosuchbr0.route_localnet=1");
    }
}
