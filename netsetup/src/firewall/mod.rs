//! NAT and filter rules behind one `FirewallDriver` trait: iptables and nftables backends.
//!
//! # What minirun puts in the kernel's tables
//!
//! Every rule minirun adds is tagged as minirun's, so that it can be found,
//! listed and removed by what it says, whatever else is in the tables:
//!
//! | tag | what |
//! | --- | --- |
//! | `minirun` | shared plumbing: the jumps into minirun's chains |
//! | `minirun:<network>` | a network's rules (`setup_network`) |
//! | `minirun:<network>:<container>` | a container's published ports (`add_ports`) |
//!
//! iptables carries the tag in `-m comment --comment`, nftables in the rule's
//! (and set element's) `comment`. Container ids too long for nftables' 128
//! byte comments are shortened to a prefix and a hash (`port_tag`).
//!
//! Per network (not for `--internal`): MASQUERADE of the subnet leaving by any
//! other interface, and of 127.0.0.0/8 sources entering the bridge (the host's
//! own connections to a port published on 127.0.0.1, which also needs
//! `net.ipv4.conf.<bridge>.route_localnet=1`, set by the caller). FORWARD
//! accepts: into the bridge for established/related connections, from the
//! bridge out, and bridge to bridge. Isolation: traffic from one minirun
//! bridge to another is dropped (Docker's isolation), and an internal network
//! drops everything between its bridge and any other interface.
//!
//! Per published port: DNAT of `[host_ip:]host_port` for traffic from outside
//! (PREROUTING) and from the host itself (OUTPUT), both only for local
//! destination addresses; a hairpin MASQUERADE of the subnet's traffic to the
//! container's port; a FORWARD accept to `container_ip:container_port`.
//! (iptables: three rules per port; nftables: an element in a DNAT map and
//! one in a `published` set, which a few per-network rules look up; see
//! `nftables`.)
//!
//! For a container to reach itself through its own published port, its
//! bridge port needs hairpin mode (`ip link set VETH type bridge_slave
//! hairpin on`, as Docker does without its proxy): with br_netfilter loaded
//! the DNAT happens while the frame is being bridged, and the frame must go
//! back out of the port it came in by. That is the caller's part, with
//! `route_localnet`.
//!
//! # Backends and how one is chosen
//!
//! [`driver`] takes an explicit choice (the CLI's `--firewall-backend`,
//! parsed by [`BackendChoice`]) or detects one ([`detect`]):
//!
//! 1. **nftables** when the `nft` binary is found, the kernel answers an
//!    nf_tables request on netlink, and the `iptables` command is the
//!    nf_tables variant (`iptables-nft`) or is not installed: the host's
//!    firewall is already nf_tables underneath, so minirun's own table sits
//!    beside the others.
//! 2. otherwise **iptables**, in the variant that `iptables` resolves to
//!    (update-alternatives on Debian: `/usr/sbin/iptables` ->
//!    `xtables-legacy-multi` or `xtables-nft-multi`), because that is where
//!    Docker, Podman's iptables driver and the CNI plugins, which all run
//!    plain `iptables`, put their rules and their FORWARD policy. Without
//!    `iptables` on the PATH: legacy if `iptables-legacy` exists, else nft.
//!
//! An explicit `iptables` choice takes the same variant unless one is named
//! (`iptables-legacy`, `iptables-nft`).
//!
//! # Coexistence with another engine's FORWARD policy of DROP
//!
//! An accept verdict ends a packet's walk through one base chain only: the
//! packet still goes through every other base chain on the same hook,
//! whichever table or framework (iptables-legacy, iptables-nft, native
//! nftables) holds it, and any drop there is final. So:
//!
//! - **iptables**: minirun's rules live in the same `filter` table as the
//!   policy, in MINIRUN-FORWARD, jumped to from position 1 of FORWARD: the
//!   accepts there are final for that table, and the policy never changes.
//!   The other iptables variant, if someone uses it with a DROP policy too,
//!   is not handled (choose the variant with `--firewall-backend`).
//! - **nftables**: minirun's `ip minirun` table hooks forward at priority
//!   `filter - 1`, so it sees packets before the iptables FORWARD chains
//!   (priority `filter`, both variants), and every accept there also sets
//!   the packet mark bit [`ACCEPT_MARK`]. In each iptables variant whose
//!   `filter` table exists when a network is set up, one rule
//!   `-I FORWARD 1 -m mark --mark 0x1000000/0x1000000 -m comment --comment minirun -j ACCEPT`
//!   accepts those packets, whatever the policy. Packets minirun did not
//!   accept carry no mark and meet the host's policy as before. The rule is
//!   added by every `setup_network` that finds it missing (so a Docker
//!   started after minirun is handled at the next network set-up) and removed
//!   with the last network. Other native nftables tables with a drop policy
//!   on the forward hook (firewalld) are not handled: their owner has to let
//!   the bridges through (firewalld: a zone or policy for the bridge).
//!   Docker 29's nftables backend leaves the iptables DROP policy to the
//!   administrator ("remove it or add iptables accepts", its documentation
//!   says) and uses a firewall mark the other way round
//!   (`--bridge-accept-fwmark`: packets others marked pass Docker's drops);
//!   netavark's nftables driver leaves it to firewalld.
//!
//! # Concurrency and cost
//!
//! Each method holds an exclusive flock on the driver's lock file
//! ([`DEFAULT_LOCK_PATH`] unless given) while it reads and edits the rules,
//! and the iptables tools are run with `--wait` for the xtables lock other
//! programs take. `add_ports` is one process (one `iptables-restore
//! --noflush` or one `nft -f -` batch); `remove_ports` is one too, from the
//! removal recipe `add_ports` kept (`state`), or a listing and a batch
//! without one. [`process_spawns`] counts the processes; with
//! MINIRUN_FIREWALL_TRACE set, each command and its duration go to stderr.
//!
//! The tags are the state; `state` only keeps shortcuts (the removal
//! recipes) and which iptables-nft tables and base chains minirun made, so
//! that the last teardown can remove them again.

mod exec;
pub mod iptables;
pub mod nftables;
pub mod state;

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::Ipv4Net;
use thiserror::Error;

pub use exec::process_spawns;

/// Where the lock serialising minirun's rule edits lives unless told otherwise.
pub const DEFAULT_LOCK_PATH: &str = "/run/minirun/firewall.lock";

/// The packet mark bit the nftables backend sets on what it accepts, so that
/// one rule in an iptables FORWARD chain with a DROP policy lets it through.
/// Bit 24: clear of netavark's 0x2000/0x1000, kube-proxy's 0x4000/0x8000,
/// Tailscale's 0xff0000 mask and Cilium's 0xf00; Calico's default mask
/// (0xffff0000) does cover it.
pub const ACCEPT_MARK: u32 = 0x0100_0000;

/// The tag on minirun's shared rules (jumps into its chains).
pub const BASE_TAG: &str = "minirun";

/// nftables refuses comments longer than this.
const MAX_TAG_LEN: usize = 128;

/// A bridge network's firewall-relevant facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    pub network: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub internal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published port of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub container_id: String,
    pub container_ip: Ipv4Addr,
    /// Restricts the DNAT to this destination address; None (or 0.0.0.0)
    /// means every local address, 127.0.0.1 included.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Proto,
}

impl PortRule {
    /// The DNAT's destination restriction, 0.0.0.0 meaning none.
    pub(crate) fn host_addr(&self) -> Option<Ipv4Addr> {
        self.host_ip.filter(|ip| !ip.is_unspecified())
    }
}

pub trait FirewallDriver {
    /// "iptables" | "nftables"
    fn name(&self) -> &'static str;
    /// Network-wide rules, idempotent: a second call leaves the same rules,
    /// once (the network's rules are replaced atomically when they differ
    /// from what they should be, so a call also repairs hand-made damage).
    fn setup_network(&self, net: &NetworkRules) -> Result<(), FirewallError>;
    /// Removes the network's rules (its containers' ports included); with the
    /// last minirun network, also minirun's chains/table and the jumps and
    /// accept rules it put in other chains. Goes on past errors and reports
    /// them all.
    fn teardown_network(&self, net: &NetworkRules) -> Result<(), FirewallError>;
    /// Publishes ports in one atomic batch where the backend allows it
    /// (nftables: the whole batch; iptables: per table, and what was
    /// committed is deleted again if a later table fails).
    fn add_ports(&self, net: &NetworkRules, ports: &[PortRule]) -> Result<(), FirewallError>;
    /// Removes exactly that container's port rules on that network; goes on
    /// past errors; idempotent.
    fn remove_ports(&self, net: &NetworkRules, container_id: &str) -> Result<(), FirewallError>;
    /// Every rule minirun owns, as text lines: for iptables, commands that
    /// would re-create them (`-t nat -A MINIRUN-DNAT ...`, `-t filter -N ...`);
    /// for nftables, `<table> <chain>: <rule>`.
    fn list_rules(&self) -> Result<Vec<String>, FirewallError>;

    // What the methods above would do, as commands a person could run as
    // root (`iptables ...`, `nft ...`, one per line, quoted for a shell),
    // for `minirun run --explain`. Each reads the tables as its counterpart
    // does and plans from them with the same code, but changes nothing and
    // takes no lock. Where the backend applies one batch, the commands are
    // the batch's, one at a time. Same validation errors as the counterpart.

    /// What `setup_network(net)` would do now; empty when the rules are in place.
    fn explain_setup_network(&self, net: &NetworkRules) -> Result<Vec<String>, FirewallError>;
    /// What `add_ports(net, ports)` would do.
    fn explain_add_ports(&self, net: &NetworkRules, ports: &[PortRule]) -> Result<Vec<String>, FirewallError>;
    /// What `remove_ports(net, container_id)` would do now.
    fn explain_remove_ports(&self, net: &NetworkRules, container_id: &str) -> Result<Vec<String>, FirewallError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Iptables,
    Nftables,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Iptables => "iptables",
            Backend::Nftables => "nftables",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Backend {
    type Err = FirewallError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "iptables" => Ok(Backend::Iptables),
            "nftables" | "nft" => Ok(Backend::Nftables),
            _ => Err(FirewallError::InvalidInput(format!("unknown firewall backend {s:?} (iptables, nftables)"))),
        }
    }
}

/// Which of the two iptables implementations the iptables backend drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IptablesVariant {
    /// x_tables in the kernel (`iptables-legacy`).
    Legacy,
    /// The iptables syntax over nf_tables (`iptables-nft`).
    Nft,
}

impl IptablesVariant {
    pub fn as_str(self) -> &'static str {
        match self {
            IptablesVariant::Legacy => "legacy",
            IptablesVariant::Nft => "nft",
        }
    }
}

impl fmt::Display for IptablesVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of `--firewall-backend`: `auto`, `iptables`, `iptables-legacy`,
/// `iptables-nft` or `nftables`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackendChoice {
    pub backend: Option<Backend>,
    pub iptables_variant: Option<IptablesVariant>,
}

impl FromStr for BackendChoice {
    type Err = FirewallError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (backend, iptables_variant) = match s {
            "auto" | "" => (None, None),
            "iptables-legacy" => (Some(Backend::Iptables), Some(IptablesVariant::Legacy)),
            "iptables-nft" => (Some(Backend::Iptables), Some(IptablesVariant::Nft)),
            other => match other.parse::<Backend>() {
                Ok(b) => (Some(b), None),
                Err(_) => {
                    return Err(FirewallError::InvalidInput(format!(
                        "unknown firewall backend {s:?} (auto, iptables, iptables-legacy, iptables-nft, nftables)"
                    )))
                }
            },
        };
        Ok(BackendChoice { backend, iptables_variant })
    }
}

/// Everything `driver_with` needs; `Default` is auto-detection and the default lock.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    pub backend: Option<Backend>,
    pub iptables_variant: Option<IptablesVariant>,
    pub lock_path: PathBuf,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions { backend: None, iptables_variant: None, lock_path: PathBuf::from(DEFAULT_LOCK_PATH) }
    }
}

impl DriverOptions {
    pub fn from_choice(choice: BackendChoice) -> Self {
        DriverOptions { backend: choice.backend, iptables_variant: choice.iptables_variant, ..Default::default() }
    }
}

#[derive(Debug, Error)]
pub enum FirewallError {
    #[error("invalid firewall input: {0}")]
    InvalidInput(String),
    #[error("firewall backend not available: {0}")]
    NotAvailable(String),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("firewall lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },
    /// An operation that goes on past errors hit these.
    #[error("{operation}: {} error(s): {}", errors.len(), join_errors(errors))]
    Partial { operation: &'static str, errors: Vec<FirewallError> },
    /// A batch failed, and so did deleting what it had already committed.
    #[error("{cause}; and the rollback failed: {rollback}")]
    RollbackFailed { cause: Box<FirewallError>, rollback: Box<FirewallError> },
}

fn join_errors(errors: &[FirewallError]) -> String {
    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

impl FirewallError {
    /// Ok if `errors` is empty, else one `Partial` error (or the only error).
    pub(crate) fn collect(operation: &'static str, mut errors: Vec<FirewallError>) -> Result<(), FirewallError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(FirewallError::Partial { operation, errors }),
        }
    }
}

/// The backend to use by default, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub backend: Backend,
    /// The variant the iptables backend would drive.
    pub iptables_variant: IptablesVariant,
    pub reason: String,
}

/// Applies the rule in this module's documentation. No process is spawned
/// unless the `iptables` binary is neither a known symlink nor named after
/// its variant (then `iptables -V` tells).
pub fn detect() -> Detection {
    let iptables_variant = exec::default_iptables_variant();
    let variant = iptables_variant.unwrap_or_else(|| {
        if exec::find_tool("iptables-legacy").is_some() {
            IptablesVariant::Legacy
        } else {
            IptablesVariant::Nft
        }
    });
    let nft = exec::find_tool("nft");
    let kernel = nft.is_some() && exec::kernel_has_nftables();
    let (backend, reason) = match (nft.is_some(), kernel, iptables_variant) {
        (false, _, _) => (Backend::Iptables, "no nft binary".to_string()),
        (true, false, _) => (Backend::Iptables, "the kernel does not answer nf_tables requests".to_string()),
        (true, true, Some(IptablesVariant::Legacy)) => {
            (Backend::Iptables, "`iptables` is iptables-legacy: the host's firewall rules are there".to_string())
        }
        (true, true, Some(IptablesVariant::Nft)) => {
            (Backend::Nftables, "nft and nf_tables present, and `iptables` is iptables-nft".to_string())
        }
        (true, true, None) => (Backend::Nftables, "nft and nf_tables present, no iptables".to_string()),
    };
    Detection { backend, iptables_variant: variant, reason }
}

/// The firewall driver for `backend`, or the detected one (see [`detect`]),
/// locking [`DEFAULT_LOCK_PATH`].
pub fn driver(backend: Option<Backend>) -> Result<Box<dyn FirewallDriver>, FirewallError> {
    driver_with(DriverOptions { backend, ..Default::default() })
}

pub fn driver_with(opts: DriverOptions) -> Result<Box<dyn FirewallDriver>, FirewallError> {
    let detected = if opts.backend.is_none() || (opts.backend == Some(Backend::Iptables) && opts.iptables_variant.is_none())
    {
        Some(detect())
    } else {
        None
    };
    let backend = opts.backend.unwrap_or_else(|| detected.as_ref().map(|d| d.backend).unwrap_or(Backend::Iptables));
    let lock = FirewallLock::new(&opts.lock_path);
    match backend {
        Backend::Iptables => {
            let variant = opts
                .iptables_variant
                .or_else(|| detected.as_ref().map(|d| d.iptables_variant))
                .unwrap_or(IptablesVariant::Legacy);
            Ok(Box::new(iptables::IptablesDriver::new(variant, lock)?))
        }
        Backend::Nftables => Ok(Box::new(nftables::NftablesDriver::new(lock)?)),
    }
}

/// Serialises minirun's rule edits across processes: an exclusive flock on a
/// file, taken inside each driver method and released when it returns.
#[derive(Debug, Clone)]
pub struct FirewallLock {
    path: PathBuf,
}

pub struct FirewallLockGuard {
    _lock: crate::ipam::lockfile::LockFile,
}

impl FirewallLock {
    pub fn new(path: impl AsRef<Path>) -> Self {
        FirewallLock { path: path.as_ref().to_path_buf() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocks until held; creates the file (and its directory) if needed.
    pub fn acquire(&self) -> Result<FirewallLockGuard, FirewallError> {
        let err = |source| FirewallError::Lock { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
        }
        let lock = crate::ipam::lockfile::LockFile::acquire(&self.path).map_err(err)?;
        Ok(FirewallLockGuard { _lock: lock })
    }
}

/// The tag on a network's own rules.
pub fn network_tag(network: &str) -> String {
    format!("{BASE_TAG}:{network}")
}

/// The tag on a container's port rules. A container id that would make the
/// tag longer than nftables allows is shortened to a prefix, `~` and a
/// 64-bit FNV-1a hash of the whole id: `~` is not allowed in ids, so a
/// shortened id never equals a real one.
pub fn port_tag(network: &str, container_id: &str) -> String {
    let full = format!("{BASE_TAG}:{network}:{container_id}");
    if full.len() <= MAX_TAG_LEN {
        return full;
    }
    let hash = format!("~{:016x}", fnv1a(container_id.as_bytes()));
    let room = MAX_TAG_LEN.saturating_sub(BASE_TAG.len() + 2 + network.len() + hash.len());
    let prefix = &container_id[..room.min(container_id.len())];
    format!("{BASE_TAG}:{network}:{prefix}{hash}")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What a tag found on a rule says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag<'a> {
    Base,
    Network(&'a str),
    Port(&'a str, &'a str),
}

pub(crate) fn parse_tag(tag: &str) -> Option<Tag<'_>> {
    if tag == BASE_TAG {
        return Some(Tag::Base);
    }
    let rest = tag.strip_prefix(BASE_TAG)?.strip_prefix(':')?;
    match rest.split_once(':') {
        None if !rest.is_empty() => Some(Tag::Network(rest)),
        Some((net, cid)) if !net.is_empty() && !cid.is_empty() => Some(Tag::Port(net, cid)),
        _ => None,
    }
}

impl Tag<'_> {
    /// The network the tagged rule belongs to, if any.
    pub(crate) fn network(&self) -> Option<&str> {
        match self {
            Tag::Base => None,
            Tag::Network(n) | Tag::Port(n, _) => Some(n),
        }
    }
}

fn valid_name_chars(s: &str, extra: &[u8]) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b) || extra.contains(&b))
}

/// Names end up inside iptables-restore and nft scripts: only characters
/// that need no quoting there are accepted (which also rules out ':', the
/// tag separator, and '+', an iptables interface wildcard in bridge names).
pub(crate) fn validate_network(net: &NetworkRules) -> Result<(), FirewallError> {
    let bad = |m: String| Err(FirewallError::InvalidInput(m));
    if net.network.len() > 64 || !valid_name_chars(&net.network, b"") {
        return bad(format!("network name {:?}: 1 to 64 letters, digits, '_', '.', '-'", net.network));
    }
    if net.bridge.len() > 15 || !valid_name_chars(&net.bridge, b"") {
        return bad(format!("bridge name {:?}: 1 to 15 letters, digits, '_', '.', '-'", net.bridge));
    }
    if net.subnet.prefix_len() == 0 {
        return bad(format!("subnet {} covers every address", net.subnet));
    }
    Ok(())
}

pub(crate) fn validate_container_id(id: &str) -> Result<(), FirewallError> {
    if id.len() > 1024 || !valid_name_chars(id, b"+") {
        return Err(FirewallError::InvalidInput(format!(
            "container id {id:?}: letters, digits, '_', '.', '+', '-', starting with a letter or digit"
        )));
    }
    Ok(())
}

pub(crate) fn validate_ports(net: &NetworkRules, ports: &[PortRule]) -> Result<(), FirewallError> {
    validate_network(net)?;
    if net.internal && !ports.is_empty() {
        return Err(FirewallError::InvalidInput(format!(
            "network {} is internal: it has no way in from outside to publish ports on",
            net.network
        )));
    }
    for p in ports {
        let bad = |m: String| Err(FirewallError::InvalidInput(m));
        validate_container_id(&p.container_id)?;
        if p.host_port == 0 || p.container_port == 0 {
            return bad(format!("port 0 in {}:{}/{}", p.host_port, p.container_port, p.protocol));
        }
        if !net.subnet.contains(&p.container_ip)
            || p.container_ip == net.subnet.network()
            || p.container_ip == net.subnet.broadcast()
        {
            return bad(format!("container address {} is not a host of {}", p.container_ip, net.subnet));
        }
        if let Some(ip) = p.host_addr() {
            if ip.is_multicast() || ip.is_broadcast() {
                return bad(format!("host address {ip} cannot be a destination to publish on"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        assert_eq!(parse_tag("minirun"), Some(Tag::Base));
        assert_eq!(parse_tag(&network_tag("n1")), Some(Tag::Network("n1")));
        assert_eq!(parse_tag(&port_tag("n1", "abc")), Some(Tag::Port("n1", "abc")));
        assert_eq!(parse_tag("minirunx"), None);
        assert_eq!(parse_tag("minirun:"), None);
        assert_eq!(parse_tag("netavark"), None);
        assert_eq!(parse_tag("minirun:n1:"), None);
    }

    #[test]
    fn long_port_tags_fit_nftables() {
        let net = "n".repeat(64);
        let id = "f".repeat(64);
        let tag = port_tag(&net, &id);
        assert!(tag.len() <= MAX_TAG_LEN, "{}", tag.len());
        assert_eq!(tag, port_tag(&net, &id));
        assert_ne!(tag, port_tag(&net, &"e".repeat(64)));
        let Some(Tag::Port(n, c)) = parse_tag(&tag) else { panic!("{tag}") };
        assert_eq!(n, net);
        assert!(c.contains('~'));
        // Short ones are left alone.
        assert_eq!(port_tag("bridge", &id), format!("minirun:bridge:{id}"));
    }

    #[test]
    fn backend_choices_parse() {
        assert_eq!("auto".parse::<BackendChoice>().unwrap(), BackendChoice::default());
        let c: BackendChoice = "iptables-legacy".parse().unwrap();
        assert_eq!((c.backend, c.iptables_variant), (Some(Backend::Iptables), Some(IptablesVariant::Legacy)));
        let c: BackendChoice = "nftables".parse().unwrap();
        assert_eq!((c.backend, c.iptables_variant), (Some(Backend::Nftables), None));
        assert!("ebtables".parse::<BackendChoice>().is_err());
        assert_eq!("nft".parse::<Backend>().unwrap(), Backend::Nftables);
    }

    fn net(internal: bool) -> NetworkRules {
        NetworkRules { network: "n1".into(), bridge: "br-n1".into(), subnet: "10.1.0.0/24".parse().unwrap(), internal }
    }

    fn port() -> PortRule {
        PortRule {
            container_id: "c1".into(),
            container_ip: "10.1.0.2".parse().unwrap(),
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: Proto::Tcp,
        }
    }

    #[test]
    fn validation() {
        assert!(validate_network(&net(false)).is_ok());
        for (name, bridge) in [("", "b"), ("a b", "b"), ("a:b", "b"), ("n", "br+"), ("n", "0123456789abcdef"), ("n", "b\"")] {
            let n = NetworkRules { network: name.into(), bridge: bridge.into(), ..net(false) };
            assert!(validate_network(&n).is_err(), "{name:?} {bridge:?}");
        }
        assert!(validate_ports(&net(false), &[port()]).is_ok());
        assert!(validate_ports(&net(true), &[port()]).is_err());
        let cases: [fn(&mut PortRule); 6] = [
            |p| p.host_port = 0,
            |p| p.container_port = 0,
            |p| p.container_ip = "10.2.0.2".parse().unwrap(),
            |p| p.host_ip = Some(Ipv4Addr::BROADCAST),
            |p| p.host_ip = Some("224.0.0.1".parse().unwrap()),
            |p| p.container_id = "c1\n-A FORWARD -j ACCEPT".into(),
        ];
        for f in cases {
            let mut p = port();
            f(&mut p);
            assert!(validate_ports(&net(false), &[p.clone()]).is_err(), "{p:?}");
        }
        let mut p = port();
        p.host_ip = Some(Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.host_addr(), None);
    }
}
