//! The nftables backend: one table of minirun's own, `ip minirun`, edited
//! with `nft -f -` batches (each one atomic) and read with `nft -j list`.
//!
//! ```text
//! table ip minirun {
//!   set bridges { type ifname; }                       # every minirun bridge, for isolation
//!   chain FORWARD { type filter hook forward priority filter - 1; policy accept; }
//!       jump ISOLATION                                 # first
//!       oifname BR ct state established,related  MARK accept
//!       iifname BR oifname BR                      MARK accept
//!       iifname BR                                 MARK accept      (not internal)
//!       ip daddr CIP iifname != BR oifname BR tcp dport CPORT MARK accept   (per port)
//!   chain ISOLATION
//!       iifname BR oifname != BR oifname @bridges drop              (internal: drop all in and out)
//!   chain PREROUTING { type nat hook prerouting priority dstnat; }   fib daddr type local jump PORTS
//!   chain OUTPUT { type nat hook output priority -100; }             fib daddr type local jump PORTS
//!   chain PORTS                                        # per port: [ip daddr HIP] tcp dport HPORT dnat to CIP:CPORT
//!   chain POSTROUTING { type nat hook postrouting priority srcnat; }
//!       ip saddr SUBNET oifname != BR masquerade; ip saddr 127.0.0.0/8 oifname BR masquerade
//!       ip saddr SUBNET ip daddr CIP tcp dport CPORT masquerade     (per port: hairpin)
//! }
//! ```
//!
//! MARK is `meta mark set meta mark | ACCEPT_MARK`: why, and the iptables
//! rule that goes with it, are in the module documentation of `firewall`.

use std::path::PathBuf;

use serde_json::Value;

use super::exec::{self, run};
use super::iptables::{legacy_tables, rule_chain, rule_comment, IptablesTools};
use super::state::{port_key, FirewallState, PortRecord};
use super::{
    network_tag, parse_tag, port_tag, validate_container_id, validate_network, validate_ports, FirewallDriver,
    FirewallError, FirewallLock, IptablesVariant, NetworkRules, PortRule, ACCEPT_MARK, BASE_TAG,
};

pub const FAMILY: &str = "ip";
/// The recipes' backend name in the state (see `state`).
const BACKEND_ID: &str = "nftables";
pub const TABLE: &str = "minirun";
const SET_BRIDGES: &str = "bridges";
const FORWARD: &str = "FORWARD";
const ISOLATION: &str = "ISOLATION";
const PREROUTING: &str = "PREROUTING";
const OUTPUT: &str = "OUTPUT";
const POSTROUTING: &str = "POSTROUTING";
const PORTS: &str = "PORTS";

/// Declarations, all idempotent with `add`.
fn skeleton() -> Vec<String> {
    let t = format!("{FAMILY} {TABLE}");
    vec![
        format!("add table {t}"),
        format!("add chain {t} {FORWARD} {{ type filter hook forward priority -1; policy accept; }}"),
        format!("add chain {t} {ISOLATION}"),
        format!("add chain {t} {PREROUTING} {{ type nat hook prerouting priority -100; policy accept; }}"),
        format!("add chain {t} {OUTPUT} {{ type nat hook output priority -100; policy accept; }}"),
        format!("add chain {t} {POSTROUTING} {{ type nat hook postrouting priority 100; policy accept; }}"),
        format!("add chain {t} {PORTS}"),
        format!("add set {t} {SET_BRIDGES} {{ type ifname; }}"),
    ]
}

/// The shared rules: (chain, rule, insert at the top rather than append).
fn base_rules() -> [(&'static str, String, bool); 3] {
    [
        (FORWARD, format!("jump {ISOLATION}"), true),
        (PREROUTING, format!("fib daddr type local jump {PORTS}"), false),
        (OUTPUT, format!("fib daddr type local jump {PORTS}"), false),
    ]
}

fn mark_accept() -> String {
    format!("meta mark set meta mark | {ACCEPT_MARK:#010x} accept")
}

fn quoted(s: &str) -> String {
    // Names and tags are validated: no quote or backslash can be inside.
    format!("\"{s}\"")
}

/// A network's rules as (chain, rule without its comment).
pub(crate) fn network_rules(net: &NetworkRules) -> Vec<(&'static str, String)> {
    let b = quoted(&net.bridge);
    let s = net.subnet.trunc();
    let m = mark_accept();
    let mut v = Vec::new();
    if net.internal {
        v.push((ISOLATION, format!("iifname {b} oifname != {b} drop")));
        v.push((ISOLATION, format!("oifname {b} iifname != {b} drop")));
    } else {
        v.push((ISOLATION, format!("iifname {b} oifname != {b} oifname @{SET_BRIDGES} drop")));
        v.push((FORWARD, format!("oifname {b} ct state established,related {m}")));
    }
    v.push((FORWARD, format!("iifname {b} oifname {b} {m}")));
    if !net.internal {
        v.push((FORWARD, format!("iifname {b} {m}")));
        v.push((POSTROUTING, format!("ip saddr {s} oifname != {b} masquerade")));
        v.push((POSTROUTING, format!("ip saddr 127.0.0.0/8 oifname {b} masquerade")));
    }
    v
}

/// The rules publishing `ports`: (chain, rule, tag), without duplicates.
pub(crate) fn port_rules(net: &NetworkRules, ports: &[PortRule]) -> Vec<(&'static str, String, String)> {
    let b = quoted(&net.bridge);
    let s = net.subnet.trunc();
    let m = mark_accept();
    let mut v: Vec<(&'static str, String, String)> = Vec::new();
    for p in ports {
        let tag = port_tag(&net.network, &p.container_id);
        let proto = p.protocol.as_str();
        let (cip, cport, hport) = (p.container_ip, p.container_port, p.host_port);
        let dst = p.host_addr().map(|ip| format!("ip daddr {ip} ")).unwrap_or_default();
        for (chain, rule) in [
            (PORTS, format!("{dst}{proto} dport {hport} dnat to {cip}:{cport}")),
            (POSTROUTING, format!("ip saddr {s} ip daddr {cip} {proto} dport {cport} masquerade")),
            (FORWARD, format!("ip daddr {cip} iifname != {b} oifname {b} {proto} dport {cport} {m}")),
        ] {
            if !v.iter().any(|(c, r, t)| *c == chain && *r == rule && *t == tag) {
                v.push((chain, rule, tag.clone()));
            }
        }
    }
    v
}

fn add_rule(chain: &str, rule: &str, tag: &str) -> String {
    format!("add rule {FAMILY} {TABLE} {chain} {rule} comment {}", quoted(tag))
}

fn delete_rule(chain: &str, handle: u64) -> String {
    format!("delete rule {FAMILY} {TABLE} {chain} handle {handle}")
}

/// minirun's table as `nft -j -a list` shows it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Listing {
    pub table_handle: Option<u64>,
    pub chains: Vec<String>,
    pub rules: Vec<ListedRule>,
    /// The bridges set's elements: (name, comment).
    pub elements: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
pub(crate) struct ListedRule {
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
}

pub(crate) fn parse_listing(json: &str) -> Result<Listing, FirewallError> {
    let perr = |detail: String| FirewallError::Parse { what: "nft -j output".into(), detail };
    let v: Value = serde_json::from_str(json).map_err(|e| perr(e.to_string()))?;
    let items = v.get("nftables").and_then(Value::as_array).ok_or_else(|| perr("no \"nftables\" array".into()))?;
    let mut l = Listing::default();
    for item in items {
        if let Some(t) = item.get("table") {
            l.table_handle = t.get("handle").and_then(Value::as_u64);
        } else if let Some(c) = item.get("chain") {
            if let Some(name) = c.get("name").and_then(Value::as_str) {
                l.chains.push(name.to_string());
            }
        } else if let Some(r) = item.get("rule") {
            let chain = r.get("chain").and_then(Value::as_str).ok_or_else(|| perr("rule without chain".into()))?;
            let handle = r.get("handle").and_then(Value::as_u64).ok_or_else(|| perr("rule without handle".into()))?;
            let comment = r.get("comment").and_then(Value::as_str).map(str::to_string);
            l.rules.push(ListedRule { chain: chain.to_string(), handle, comment });
        } else if let Some(s) = item.get("set") {
            if s.get("name").and_then(Value::as_str) != Some(SET_BRIDGES) {
                continue;
            }
            for e in s.get("elem").and_then(Value::as_array).into_iter().flatten() {
                if let Some(name) = e.as_str() {
                    l.elements.push((name.to_string(), None));
                } else if let Some(o) = e.get("elem") {
                    if let Some(name) = o.get("val").and_then(Value::as_str) {
                        let comment = o.get("comment").and_then(Value::as_str).map(str::to_string);
                        l.elements.push((name.to_string(), comment));
                    }
                }
            }
        }
    }
    Ok(l)
}

impl Listing {
    fn tags(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().filter_map(|r| r.comment.as_deref()).chain(self.elements.iter().filter_map(|(_, c)| c.as_deref()))
    }

    /// Whether rules or bridges of networks other than `network` are left.
    fn others_than(&self, network: &str) -> bool {
        self.tags().any(|t| parse_tag(t).and_then(|t| t.network().map(|n| n != network)).unwrap_or(false))
    }
}

/// What `nft --echo --handle` printed for our batch: the table's handle if
/// it was created, and (chain, handle, tag) per rule added.
pub(crate) fn parse_echo(text: &str) -> (Option<u64>, Vec<(String, u64, String)>) {
    let handle = |l: &str| l.rsplit_once("# handle ").and_then(|(_, h)| h.trim().parse::<u64>().ok());
    let mut table = None;
    let mut rules = Vec::new();
    let prefix = format!("add rule {FAMILY} {TABLE} ");
    for l in text.lines() {
        if l.starts_with(&format!("add table {FAMILY} {TABLE} ")) || l == format!("add table {FAMILY} {TABLE}") {
            table = handle(l);
        } else if let Some(rest) = l.strip_prefix(&prefix) {
            let chain = rest.split_whitespace().next().unwrap_or("");
            if let (Some(h), Some(tag)) = (handle(l), tag_of_listed(l.split(" # handle ").next().unwrap_or(""))) {
                rules.push((chain.to_string(), h, tag.to_string()));
            }
        }
    }
    (table, rules)
}

/// The iptables rule that lets through what minirun's FORWARD chain accepted
/// (marked), in a FORWARD chain whose policy may be DROP.
pub(crate) fn coexistence_rule() -> String {
    format!("-m mark --mark {ACCEPT_MARK:#x}/{ACCEPT_MARK:#x} -m comment --comment {BASE_TAG} -j ACCEPT")
}

pub struct NftablesDriver {
    nft: PathBuf,
    lock: FirewallLock,
    state_path: PathBuf,
    /// The iptables variants installed, for the coexistence rule.
    iptables: Vec<IptablesTools>,
}

impl NftablesDriver {
    pub fn new(lock: FirewallLock) -> Result<Self, FirewallError> {
        let nft = exec::need_tool("nft")?;
        let iptables = [IptablesVariant::Legacy, IptablesVariant::Nft]
            .into_iter()
            .filter_map(|v| IptablesTools::find(v).ok())
            .collect();
        let state_path = FirewallState::path_for(lock.path());
        Ok(NftablesDriver { nft, lock, state_path, iptables })
    }

    /// minirun's table, or None when there is none.
    fn list(&self) -> Result<Option<Listing>, FirewallError> {
        match run(&self.nft, &["-j", "-a", "list", "table", FAMILY, TABLE], None) {
            Ok(out) => parse_listing(&out.stdout).map(Some),
            Err(FirewallError::Command { stderr, .. }) if stderr.contains("No such file or directory") => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn apply(&self, commands: &[String]) -> Result<(), FirewallError> {
        if commands.is_empty() {
            return Ok(());
        }
        let mut script = commands.join("\n");
        script.push('\n');
        run(&self.nft, &["-f", "-"], Some(&script)).map(|_| ())
    }

    /// `apply`, printing what was added with its handle (`parse_echo`).
    fn apply_echo(&self, commands: &[String]) -> Result<String, FirewallError> {
        let mut script = commands.join("\n");
        script.push('\n');
        run(&self.nft, &["--echo", "--handle", "-f", "-"], Some(&script)).map(|r| r.stdout)
    }

    /// Applies `plan(listing)` as one batch; if that fails, lists again and
    /// runs the commands one by one, going on past errors.
    fn apply_or_one_by_one(
        &self,
        operation: &'static str,
        listing: Option<Listing>,
        plan: impl Fn(Option<&Listing>) -> Vec<String>,
    ) -> Result<(), FirewallError> {
        let Err(first) = self.apply(&plan(listing.as_ref())) else { return Ok(()) };
        let listing = match self.list() {
            Ok(l) => l,
            Err(e) => return FirewallError::collect(operation, vec![first, e]),
        };
        let mut errors = Vec::new();
        for cmd in plan(listing.as_ref()) {
            if let Err(e) = self.apply(&[cmd]) {
                errors.push(e);
            }
        }
        FirewallError::collect(operation, errors)
    }

    /// The iptables variants whose filter table exists in this network
    /// namespace (looking must not create one).
    fn iptables_with_filter(&self) -> Vec<&IptablesTools> {
        self.iptables
            .iter()
            .filter(|t| match t.variant {
                IptablesVariant::Legacy => legacy_tables().iter().any(|n| n == "filter"),
                IptablesVariant::Nft => run(&self.nft, &["list", "chain", "ip", "filter", "FORWARD"], None).is_ok(),
            })
            .collect()
    }

    fn ensure_coexistence_rules(&self) -> Result<(), FirewallError> {
        let rule = coexistence_rule();
        let mut errors = Vec::new();
        for tools in self.iptables_with_filter() {
            if tools.command("filter", &format!("-C FORWARD {rule}")).is_err() {
                if let Err(e) = tools.command("filter", &format!("-I FORWARD 1 {rule}")) {
                    errors.push(e);
                }
            }
        }
        FirewallError::collect("setup_network", errors)
    }

    fn remove_coexistence_rules(&self, errors: &mut Vec<FirewallError>) {
        let rule = coexistence_rule();
        for tools in self.iptables_with_filter() {
            // -C first: a -D failing for absence would look like any other failure.
            while tools.command("filter", &format!("-C FORWARD {rule}")).is_ok() {
                if let Err(e) = tools.command("filter", &format!("-D FORWARD {rule}")) {
                    errors.push(e);
                    break;
                }
            }
        }
    }
}

fn teardown_plan(listing: Option<&Listing>, net: &NetworkRules) -> Vec<String> {
    let Some(l) = listing else { return Vec::new() };
    if !l.others_than(&net.network) {
        return vec![format!("delete table {FAMILY} {TABLE}")];
    }
    let mut cmds: Vec<String> = l
        .rules
        .iter()
        .filter(|r| r.comment.as_deref().and_then(parse_tag).and_then(|t| t.network().map(|n| n == net.network)) == Some(true))
        .map(|r| delete_rule(&r.chain, r.handle))
        .collect();
    for (name, comment) in &l.elements {
        if *name == net.bridge || comment.as_deref() == Some(network_tag(&net.network).as_str()) {
            cmds.push(format!("delete element {FAMILY} {TABLE} {SET_BRIDGES} {{ {} }}", quoted(name)));
        }
    }
    cmds
}

fn remove_tag_plan(listing: Option<&Listing>, tag: &str) -> Vec<String> {
    let Some(l) = listing else { return Vec::new() };
    l.rules.iter().filter(|r| r.comment.as_deref() == Some(tag)).map(|r| delete_rule(&r.chain, r.handle)).collect()
}

impl FirewallDriver for NftablesDriver {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn setup_network(&self, net: &NetworkRules) -> Result<(), FirewallError> {
        validate_network(net)?;
        let _guard = self.lock.acquire()?;
        let listing = self.list()?.unwrap_or_default();
        let mut cmds = skeleton();
        for (chain, rule, insert) in base_rules() {
            let present = listing.rules.iter().any(|r| r.chain == chain && r.comment.as_deref() == Some(BASE_TAG));
            if !present {
                let verb = if insert { "insert" } else { "add" };
                cmds.push(format!("{verb} rule {FAMILY} {TABLE} {chain} {rule} comment {}", quoted(BASE_TAG)));
            }
        }
        // The network's rules are replaced in the same transaction, so a
        // second call leaves them as they were, once.
        let tag = network_tag(&net.network);
        for r in listing.rules.iter().filter(|r| r.comment.as_deref() == Some(tag.as_str())) {
            cmds.push(delete_rule(&r.chain, r.handle));
        }
        for (chain, rule) in network_rules(net) {
            cmds.push(add_rule(chain, &rule, &tag));
        }
        cmds.push(format!("add element {FAMILY} {TABLE} {SET_BRIDGES} {{ {} comment {} }}", quoted(&net.bridge), quoted(&tag)));
        let echoed = self.apply_echo(&cmds)?;
        // Recipes made in another incarnation of the table are worthless.
        let table_handle = listing.table_handle.or(parse_echo(&echoed).0);
        let mut st = FirewallState::load_or_default(&self.state_path);
        if st.nft_table_handle != table_handle {
            st.forget_ports(BACKEND_ID, None);
            st.nft_table_handle = table_handle;
            st.store(&self.state_path)?;
        }
        self.ensure_coexistence_rules()
    }

    fn teardown_network(&self, net: &NetworkRules) -> Result<(), FirewallError> {
        validate_network(net)?;
        let _guard = self.lock.acquire()?;
        let listing = self.list()?;
        let last = listing.as_ref().map_or(true, |l| !l.others_than(&net.network));
        let mut errors = Vec::new();
        if let Err(e) = self.apply_or_one_by_one("teardown_network", listing, |l| teardown_plan(l, net)) {
            errors.push(e);
        }
        let mut st = FirewallState::load_or_default(&self.state_path);
        let before = st.clone();
        if last {
            st.forget_ports(BACKEND_ID, None);
            st.nft_table_handle = None;
            self.remove_coexistence_rules(&mut errors);
        } else {
            st.forget_ports(BACKEND_ID, Some(&net.network));
        }
        if st != before {
            if let Err(e) = st.store(&self.state_path) {
                errors.push(e);
            }
        }
        FirewallError::collect("teardown_network", errors)
    }

    fn add_ports(&self, net: &NetworkRules, ports: &[PortRule]) -> Result<(), FirewallError> {
        validate_ports(net, ports)?;
        if ports.is_empty() {
            return Ok(());
        }
        let rules = port_rules(net, ports);
        let cmds: Vec<String> = rules.iter().map(|(c, r, t)| add_rule(c, r, t)).collect();
        let _guard = self.lock.acquire()?;
        // The recipes are incomplete until the handles are known.
        let mut st = FirewallState::load_or_default(&self.state_path);
        let before = st.clone();
        for (_, _, tag) in &rules {
            st.ports.entry(port_key(BACKEND_ID, tag)).or_default().complete = false;
        }
        st.store(&self.state_path)?;
        // One transaction: all of it or none of it.
        let echoed = match self.apply_echo(&cmds) {
            Ok(out) => out,
            Err(e) => {
                let _ = before.store(&self.state_path);
                return Err(e);
            }
        };
        let (_, added) = parse_echo(&echoed);
        let mut st = before;
        if added.len() == rules.len() && st.nft_table_handle.is_some() {
            for (chain, handle, tag) in added {
                let rec = st.ports.entry(port_key(BACKEND_ID, &tag)).or_default();
                rec.rules.push((chain, handle.to_string()));
                rec.complete = true;
            }
        } else {
            // Echo not understood: no recipe, removal will list.
            for (_, _, tag) in &rules {
                st.ports.insert(port_key(BACKEND_ID, tag), PortRecord::default());
            }
        }
        st.store(&self.state_path)
    }

    fn remove_ports(&self, net: &NetworkRules, container_id: &str) -> Result<(), FirewallError> {
        validate_network(net)?;
        validate_container_id(container_id)?;
        let tag = port_tag(&net.network, container_id);
        let _guard = self.lock.acquire()?;
        let mut st = FirewallState::load_or_default(&self.state_path);
        let key = port_key(BACKEND_ID, &tag);
        // One batch by handle from the recipe; if it does not fit the table
        // any more (it fails as a whole), find the rules by their tag.
        let recipe: Option<Vec<String>> = st
            .ports
            .get(&key)
            .filter(|r| r.complete && !r.rules.is_empty())
            .map(|r| r.rules.iter().map(|(chain, h)| format!("delete rule {FAMILY} {TABLE} {chain} handle {h}")).collect());
        let by_recipe = recipe.is_some_and(|cmds| self.apply(&cmds).is_ok());
        let result = if by_recipe {
            Ok(())
        } else {
            self.list().and_then(|l| self.apply_or_one_by_one("remove_ports", l, |l| remove_tag_plan(l, &tag)))
        };
        if st.ports.remove(&key).is_some() {
            st.store(&self.state_path)?;
        }
        result
    }

    fn list_rules(&self) -> Result<Vec<String>, FirewallError> {
        let mut out = Vec::new();
        match run(&self.nft, &["-s", "list", "table", FAMILY, TABLE], None) {
            Ok(text) => out.extend(flatten_listing(&text.stdout)),
            Err(FirewallError::Command { stderr, .. }) if stderr.contains("No such file or directory") => {}
            Err(e) => return Err(e),
        }
        for tools in self.iptables_with_filter() {
            let dump = tools.save_table("filter")?;
            for r in dump.table("filter").map(|t| t.rules.as_slice()).unwrap_or_default() {
                if rule_chain(r) == "FORWARD" && rule_comment(r).as_deref() == Some(BASE_TAG) && r.contains("--mark") {
                    out.push(format!("iptables-{} -t filter {r}", tools.variant));
                }
            }
        }
        Ok(out)
    }
}

/// `nft list table` text as one line per rule, chain hook and set:
/// `ip minirun FORWARD: iifname "br0" ... comment "minirun:n1"`.
pub(crate) fn flatten_listing(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    let mut elements: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(acc) = elements.as_mut() {
            acc.push(' ');
            acc.push_str(line);
            if line.ends_with('}') {
                out.push(format!("{FAMILY} {TABLE} {}: {}", block.as_deref().unwrap_or("?"), acc));
                elements = None;
            }
            continue;
        }
        if line.is_empty() || line == "}" || line.starts_with("table ") {
            continue;
        }
        if let Some(name) = line.strip_prefix("chain ").and_then(|r| r.strip_suffix(" {")) {
            block = Some(name.to_string());
        } else if let Some(name) = line.strip_prefix("set ").and_then(|r| r.strip_suffix(" {")) {
            block = Some(format!("set {name}"));
        } else if line.starts_with("elements = {") {
            if line.ends_with('}') {
                out.push(format!("{FAMILY} {TABLE} {}: {line}", block.as_deref().unwrap_or("?")));
            } else {
                elements = Some(line.to_string());
            }
        } else if !block.as_deref().unwrap_or("").starts_with("set ") {
            out.push(format!("{FAMILY} {TABLE} {}: {line}", block.as_deref().unwrap_or("?")));
        }
    }
    out
}

/// A rule's tag, for callers that only have the listed text.
pub fn tag_of_listed(line: &str) -> Option<&str> {
    let i = line.rfind("comment \"")?;
    let rest = &line[i + 9..];
    let tag = &rest[..rest.find('"')?];
    parse_tag(tag).map(|_| tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Proto;

    fn net(internal: bool) -> NetworkRules {
        NetworkRules { network: "n1".into(), bridge: "br0".into(), subnet: "10.0.0.0/24".parse().unwrap(), internal }
    }

    #[test]
    fn parses_json_listing() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "ip", "name": "minirun", "handle": 2}},
          {"set": {"family": "ip", "name": "bridges", "table": "minirun", "type": "ifname", "handle": 2,
                   "elem": [{"elem": {"val": "br0", "comment": "minirun:n1"}}, "br9"]}},
          {"chain": {"family": "ip", "table": "minirun", "name": "FORWARD", "handle": 1, "type": "filter", "hook": "forward", "prio": -1, "policy": "accept"}},
          {"rule": {"family": "ip", "table": "minirun", "chain": "FORWARD", "handle": 3, "comment": "minirun:n1", "expr": []}},
          {"rule": {"family": "ip", "table": "minirun", "chain": "FORWARD", "handle": 5, "comment": "minirun:n2:c1", "expr": []}},
          {"rule": {"family": "ip", "table": "minirun", "chain": "FORWARD", "handle": 6, "expr": []}}]}"#;
        let l = parse_listing(json).unwrap();
        assert_eq!(l.chains, ["FORWARD"]);
        assert_eq!(l.rules.len(), 3);
        assert_eq!(l.elements, [("br0".to_string(), Some("minirun:n1".to_string())), ("br9".to_string(), None)]);
        assert!(l.others_than("n1"));
        assert!(l.others_than("n2"));
        assert_eq!(remove_tag_plan(Some(&l), "minirun:n2:c1"), ["delete rule ip minirun FORWARD handle 5"]);
        let t = teardown_plan(Some(&l), &net(false));
        assert_eq!(t, ["delete rule ip minirun FORWARD handle 3", "delete element ip minirun bridges { \"br0\" }"]);
    }

    #[test]
    fn rule_text() {
        let rules = network_rules(&net(false));
        assert!(rules.contains(&(FORWARD, "iifname \"br0\" meta mark set meta mark | 0x01000000 accept".into())));
        assert!(network_rules(&net(true)).iter().all(|(c, _)| *c != POSTROUTING));
        let p = PortRule {
            container_id: "c1".into(),
            container_ip: "10.0.0.2".parse().unwrap(),
            host_ip: Some("192.0.2.1".parse().unwrap()),
            host_port: 8080,
            container_port: 53,
            protocol: Proto::Udp,
        };
        let rules = port_rules(&net(false), &[p.clone(), p]);
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].1, "ip daddr 192.0.2.1 udp dport 8080 dnat to 10.0.0.2:53");
        assert_eq!(add_rule(rules[0].0, &rules[0].1, &rules[0].2), "add rule ip minirun PORTS ip daddr 192.0.2.1 udp dport 8080 dnat to 10.0.0.2:53 comment \"minirun:n1:c1\"");
        assert_eq!(coexistence_rule(), "-m mark --mark 0x1000000/0x1000000 -m comment --comment minirun -j ACCEPT");
    }

    #[test]
    fn flattens_text_listing() {
        let text = "table ip minirun {\n\tset bridges {\n\t\ttype ifname\n\t\telements = { \"br0\" comment \"minirun:n1\",\n\t\t\t     \"br1\" comment \"minirun:n2\" }\n\t}\n\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter - 1; policy accept;\n\t\tjump ISOLATION comment \"minirun\"\n\t}\n}\n";
        let lines = flatten_listing(text);
        assert_eq!(
            lines,
            [
                "ip minirun set bridges: elements = { \"br0\" comment \"minirun:n1\", \"br1\" comment \"minirun:n2\" }",
                "ip minirun FORWARD: type filter hook forward priority filter - 1; policy accept;",
                "ip minirun FORWARD: jump ISOLATION comment \"minirun\"",
            ]
        );
        assert_eq!(tag_of_listed(&lines[2]), Some("minirun"));
    }

    #[test]
    fn parses_echo() {
        let text = "add table ip minirun # handle 4\nadd chain ip minirun PORTS # handle 2\n\
            add rule ip minirun PORTS tcp dport 80 dnat to 10.0.0.2:80 comment \"minirun:a:c1\" # handle 9\n\
            add rule ip minirun FORWARD ip daddr 10.0.0.2 accept comment \"minirun:a:c2\" # handle 10\n\
            # new generation 3 by process 1 (nft)\n";
        let (t, rules) = parse_echo(text);
        assert_eq!(t, Some(4));
        assert_eq!(
            rules,
            [("PORTS".to_string(), 9, "minirun:a:c1".to_string()), ("FORWARD".to_string(), 10, "minirun:a:c2".to_string())]
        );
        assert_eq!(parse_echo("add chain ip minirun X # handle 1\n").0, None);
    }
}
