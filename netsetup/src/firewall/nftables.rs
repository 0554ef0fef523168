//! The nftables backend: one table of minirun's own, `ip minirun`, edited
//! with `nft -f -` batches (each one a single atomic transaction) and read
//! with `nft -j list`.
//!
//! ```text
//! table ip minirun {
//!   set bridges    { type ifname }                                   # every minirun bridge
//!   map dnat_any   { type inet_proto . inet_service : ipv4_addr . inet_service }              # published, any address
//!   map dnat_ip    { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }  # published on one address
//!   set published  { type ipv4_addr . inet_proto . inet_service }    # container ip . proto . port
//!   chain FORWARD { type filter hook forward priority filter - 1; policy accept; }
//!       jump ISOLATION                                               # first
//!       oifname BR ct state established,related                          MARK accept
//!       iifname BR oifname BR                                            MARK accept
//!       iifname BR                                                       MARK accept   (not internal)
//!       iifname != BR oifname BR ip daddr . meta l4proto . th dport @published MARK accept
//!   chain ISOLATION
//!       iifname BR oifname != BR oifname @bridges drop              (internal: drop everything in and out)
//!   chain PREROUTING { type nat hook prerouting priority dstnat; }   fib daddr type local jump PORTS
//!   chain OUTPUT { type nat hook output priority -100; }             fib daddr type local jump PORTS
//!   chain PORTS
//!       dnat ip to ip daddr . meta l4proto . th dport map @dnat_ip
//!       dnat ip to meta l4proto . th dport map @dnat_any
//!   chain POSTROUTING { type nat hook postrouting priority srcnat; }
//!       ip saddr SUBNET oifname != BR masquerade
//!       ip saddr 127.0.0.0/8 oifname BR masquerade
//!       ip saddr SUBNET oifname BR ip daddr . meta l4proto . th dport @published masquerade   (hairpin)
//! }
//! ```
//!
//! A network is rules (tagged `minirun:<network>`) and its bridge in
//! `bridges`. A published port is not a rule but map and set elements,
//! tagged by their comment `minirun:<network>:<container>`: adding them
//! needs no knowledge of the table (no listing, no `--echo`), removing them
//! needs only their keys, which `add_ports` knows and keeps as the removal
//! recipe (see `state`), and the kernel finds a port by hash instead of
//! walking one rule per port. A host port published twice is refused by
//! the kernel (the map key exists), atomically.
//!
//! MARK is `meta mark set meta mark | ACCEPT_MARK`: why, and the iptables
//! rule that goes with it, are in the module documentation of `firewall`.

use std::path::PathBuf;

use serde_json::Value;

use super::exec::{self, run};
use super::iptables::{command_line, legacy_tables, rule_chain, rule_comment, IptablesTools};
use super::state::{port_key, FirewallState};
use super::{
    network_tag, parse_tag, port_tag, validate_container_id, validate_network, validate_ports, FirewallDriver,
    FirewallError, FirewallLock, IptablesVariant, NetworkRules, PortRule, ACCEPT_MARK, BASE_TAG,
};

pub const FAMILY: &str = "ip";
pub const TABLE: &str = "minirun";
/// The recipes' backend name in the state (see `state`).
const BACKEND_ID: &str = "nftables";
const SET_BRIDGES: &str = "bridges";
const MAP_DNAT_ANY: &str = "dnat_any";
const MAP_DNAT_IP: &str = "dnat_ip";
const SET_PUBLISHED: &str = "published";
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
        format!("add map {t} {MAP_DNAT_ANY} {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}"),
        format!("add map {t} {MAP_DNAT_IP} {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}"),
        format!("add set {t} {SET_PUBLISHED} {{ type ipv4_addr . inet_proto . inet_service; }}"),
    ]
}

/// The shared rules, per chain in order; the FORWARD one goes on top.
/// Rules are written as `nft list` prints them back, so that
/// `setup_network` can tell they are there as they should be.
fn base_rules() -> [(&'static str, Vec<String>); 4] {
    [
        (FORWARD, vec![format!("jump {ISOLATION}")]),
        (PREROUTING, vec![format!("fib daddr type local jump {PORTS}")]),
        (OUTPUT, vec![format!("fib daddr type local jump {PORTS}")]),
        (
            PORTS,
            vec![
                format!("dnat ip to ip daddr . meta l4proto . th dport map @{MAP_DNAT_IP}"),
                format!("dnat ip to meta l4proto . th dport map @{MAP_DNAT_ANY}"),
            ],
        ),
    ]
}

fn mark_accept() -> String {
    format!("meta mark set meta mark | {ACCEPT_MARK:#010x} accept")
}

fn quoted(s: &str) -> String {
    // Names and tags are validated: no quote or backslash can be inside.
    format!("\"{s}\"")
}

const PUBLISHED_KEY: &str = "ip daddr . meta l4proto . th dport";

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
        v.push((FORWARD, format!("iifname != {b} oifname {b} {PUBLISHED_KEY} @{SET_PUBLISHED} {m}")));
        v.push((POSTROUTING, format!("ip saddr {s} oifname != {b} masquerade")));
        v.push((POSTROUTING, format!("ip saddr 127.0.0.0/8 oifname {b} masquerade")));
        v.push((POSTROUTING, format!("ip saddr {s} oifname {b} {PUBLISHED_KEY} @{SET_PUBLISHED} masquerade")));
    }
    v
}

/// One element of a port: (set or map, key, `: data` or "", tag).
pub(crate) type PortElement = (&'static str, String, String, String);

/// The elements publishing `ports`, without duplicates.
pub(crate) fn port_elements(net: &NetworkRules, ports: &[PortRule]) -> Vec<PortElement> {
    let mut v: Vec<PortElement> = Vec::new();
    for p in ports {
        let tag = port_tag(&net.network, &p.container_id);
        let proto = p.protocol.as_str();
        let (cip, cport, hport) = (p.container_ip, p.container_port, p.host_port);
        let dnat = match p.host_addr() {
            Some(ip) => (MAP_DNAT_IP, format!("{ip} . {proto} . {hport}")),
            None => (MAP_DNAT_ANY, format!("{proto} . {hport}")),
        };
        for (set, key, data) in
            [(dnat.0, dnat.1, format!(" : {cip} . {cport}")), (SET_PUBLISHED, format!("{cip} . {proto} . {cport}"), String::new())]
        {
            if !v.iter().any(|(s, k, _, _)| *s == set && *k == key) {
                v.push((set, key, data, tag.clone()));
            }
        }
    }
    v
}

fn add_element((set, key, data, tag): &PortElement) -> String {
    format!("add element {FAMILY} {TABLE} {set} {{ {key} comment {}{data} }}", quoted(tag))
}

fn delete_element(set: &str, key: &str) -> String {
    format!("delete element {FAMILY} {TABLE} {set} {{ {key} }}")
}

fn add_rule(chain: &str, rule: &str, tag: &str) -> String {
    format!("add rule {FAMILY} {TABLE} {chain} {rule} comment {}", quoted(tag))
}

fn delete_rule(chain: &str, handle: u64) -> String {
    format!("delete rule {FAMILY} {TABLE} {chain} handle {handle}")
}

/// minirun's table as `nft -j list` shows it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Listing {
    pub chains: Vec<String>,
    pub rules: Vec<ListedRule>,
    /// Set and map elements: (set, key as nft writes it, comment).
    pub elements: Vec<(String, String, Option<String>)>,
}

#[derive(Debug, Clone)]
pub(crate) struct ListedRule {
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
}

/// A key as nft's input syntax writes it: `tcp . 8080`, `"br0"`.
fn key_text(v: &Value, quote_strings: bool) -> String {
    match v {
        Value::String(s) if quote_strings => quoted(s),
        Value::String(s) => s.clone(),
        Value::Object(o) if o.contains_key("concat") => {
            o["concat"].as_array().map(|a| a.iter().map(|x| key_text(x, false)).collect::<Vec<_>>().join(" . ")).unwrap_or_default()
        }
        other => other.to_string(),
    }
}

pub(crate) fn parse_listing(json: &str) -> Result<Listing, FirewallError> {
    let perr = |detail: String| FirewallError::Parse { what: "nft -j output".into(), detail };
    let v: Value = serde_json::from_str(json).map_err(|e| perr(e.to_string()))?;
    let items = v.get("nftables").and_then(Value::as_array).ok_or_else(|| perr("no \"nftables\" array".into()))?;
    let mut l = Listing::default();
    for item in items {
        if let Some(c) = item.get("chain") {
            if let Some(name) = c.get("name").and_then(Value::as_str) {
                l.chains.push(name.to_string());
            }
        } else if let Some(r) = item.get("rule") {
            let chain = r.get("chain").and_then(Value::as_str).ok_or_else(|| perr("rule without chain".into()))?;
            let handle = r.get("handle").and_then(Value::as_u64).ok_or_else(|| perr("rule without handle".into()))?;
            let comment = r.get("comment").and_then(Value::as_str).map(str::to_string);
            l.rules.push(ListedRule { chain: chain.to_string(), handle, comment });
        } else if let Some(s) = item.get("set").or_else(|| item.get("map")) {
            let Some(name) = s.get("name").and_then(Value::as_str) else { continue };
            for e in s.get("elem").and_then(Value::as_array).into_iter().flatten() {
                // A map element is [key, data]; a key with a comment is {"elem": {"val", "comment"}}.
                let key = if item.get("map").is_some() { e.get(0).unwrap_or(&Value::Null) } else { e };
                let (val, comment) = match key.get("elem") {
                    Some(inner) => (inner.get("val").unwrap_or(&Value::Null), inner.get("comment").and_then(Value::as_str)),
                    None => (key, None),
                };
                l.elements.push((name.to_string(), key_text(val, name == SET_BRIDGES), comment.map(str::to_string)));
            }
        }
    }
    Ok(l)
}

impl Listing {
    fn tags(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().filter_map(|r| r.comment.as_deref()).chain(self.elements.iter().filter_map(|(_, _, c)| c.as_deref()))
    }

    /// Whether rules or elements of networks other than `network` are left.
    fn others_than(&self, network: &str) -> bool {
        self.tags().any(|t| parse_tag(t).and_then(|t| t.network().map(|n| n != network)).unwrap_or(false))
    }
}

/// `nft -a -s list table` text: what `setup_network` compares with what
/// should be there.
#[derive(Debug, Default, Clone)]
pub(crate) struct TextListing {
    /// Chain, set and map names.
    pub objects: Vec<String>,
    /// (chain, rule text without comment and handle, tag, handle).
    pub rules: Vec<(String, String, Option<String>, u64)>,
    /// (set, element text as listed).
    pub elements: Vec<(String, String)>,
}

pub(crate) fn parse_text_listing(text: &str) -> TextListing {
    let mut l = TextListing::default();
    let mut block = String::new();
    let mut in_set = false;
    let mut elements: Option<String> = None;
    let flush = |acc: &str, block: &str, l: &mut TextListing| {
        let inner = acc.trim().trim_start_matches("elements = {").trim_end_matches('}');
        for e in inner.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            l.elements.push((block.to_string(), e.to_string()));
        }
    };
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(acc) = elements.as_mut() {
            acc.push(' ');
            acc.push_str(line);
            if line.ends_with('}') {
                flush(acc, &block, &mut l);
                elements = None;
            }
            continue;
        }
        let head = line.split(" # handle ").next().unwrap_or(line);
        if head.starts_with("table ") {
            continue;
        }
        if let Some(rest) = ["chain ", "set ", "map "].iter().find_map(|k| head.strip_prefix(k)) {
            if let Some(name) = rest.strip_suffix(" {").or_else(|| rest.strip_suffix('{').map(str::trim_end)) {
                block = name.to_string();
                in_set = !head.starts_with("chain ");
                l.objects.push(block.clone());
                continue;
            }
        }
        if in_set {
            if line.starts_with("elements = {") {
                if line.ends_with('}') {
                    flush(line, &block, &mut l);
                } else {
                    elements = Some(line.to_string());
                }
            }
            continue;
        }
        let Some((rule, handle)) = line.rsplit_once(" # handle ") else { continue };
        let Ok(handle) = handle.trim().parse::<u64>() else { continue };
        let (text, tag) = match rule.rsplit_once(" comment \"") {
            Some((text, rest)) => (text, rest.strip_suffix('"').map(str::to_string)),
            None => (rule, None),
        };
        l.rules.push((block.clone(), text.to_string(), tag, handle));
    }
    l
}

/// The iptables rule that lets through what minirun's FORWARD chain accepted
/// (marked), in a FORWARD chain whose policy may be DROP.
pub(crate) fn coexistence_rule() -> String {
    format!("-m mark --mark {ACCEPT_MARK:#x}/{ACCEPT_MARK:#x} -m comment --comment {BASE_TAG} -j ACCEPT")
}

pub struct NftablesDriver {
    nft: PathBuf,
    lock: FirewallLock,
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
        Ok(NftablesDriver { nft, lock, iptables })
    }

    /// The state file of the calling thread's network namespace.
    fn state_path(&self) -> PathBuf {
        FirewallState::path_for(self.lock.path())
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

    /// minirun's table as `nft -a -s list` shows it, parsed; None when there is none.
    fn text_listing(&self) -> Result<Option<TextListing>, FirewallError> {
        match run(&self.nft, &["-a", "-s", "list", "table", FAMILY, TABLE], None) {
            Ok(out) => Ok(Some(parse_text_listing(&out.stdout))),
            Err(FirewallError::Command { stderr, .. }) if stderr.contains("No such file or directory") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The iptables variants with a filter table whose FORWARD chain lacks
    /// the coexistence rule, and the line inserting it there.
    fn missing_coexistence_rules(&self) -> (Vec<&IptablesTools>, String) {
        let rule = coexistence_rule();
        let missing = self
            .iptables_with_filter()
            .into_iter()
            .filter(|tools| tools.command("filter", &format!("-C FORWARD {rule}")).is_err())
            .collect();
        (missing, format!("-I FORWARD 1 {rule}"))
    }

    fn ensure_coexistence_rules(&self) -> Result<(), FirewallError> {
        let (missing, insert) = self.missing_coexistence_rules();
        let mut errors = Vec::new();
        for tools in missing {
            if let Err(e) = tools.command("filter", &insert) {
                errors.push(e);
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

/// The batch `setup_network` applies, given minirun's table as listed
/// (None: there is none): the declarations, then the shared rules, the
/// network's rules and its bridge where they are not as they should be.
/// Empty when everything is in place.
fn setup_plan(listing: Option<&TextListing>, net: &NetworkRules) -> Vec<String> {
    let l = listing.cloned().unwrap_or_default();
    let mut cmds = Vec::new();
    for (chain, rules) in base_rules() {
        let present: Vec<&(String, String, Option<String>, u64)> =
            l.rules.iter().filter(|r| r.0 == chain && r.2.as_deref() == Some(BASE_TAG)).collect();
        if present.iter().map(|r| &r.1).eq(rules.iter()) {
            continue;
        }
        // Missing, extra or different: put them back as they should be.
        cmds.extend(present.iter().map(|r| delete_rule(&r.0, r.3)));
        let (verb, mut rules) = if chain == FORWARD { ("insert", rules) } else { ("add", rules) };
        if verb == "insert" {
            rules.reverse(); // each goes on top
        }
        for rule in rules {
            cmds.push(format!("{verb} rule {FAMILY} {TABLE} {chain} {rule} comment {}", quoted(BASE_TAG)));
        }
    }
    // The network's rules: left alone when they are exactly what they
    // should be, else replaced in the same transaction.
    let tag = network_tag(&net.network);
    let existing: Vec<&(String, String, Option<String>, u64)> =
        l.rules.iter().filter(|r| r.2.as_deref() == Some(tag.as_str())).collect();
    let mut have: Vec<(String, String)> = existing.iter().map(|r| (r.0.clone(), r.1.clone())).collect();
    let mut want: Vec<(String, String)> = network_rules(net).into_iter().map(|(c, r)| (c.to_string(), r)).collect();
    have.sort();
    want.sort();
    if have != want {
        cmds.extend(existing.iter().map(|r| delete_rule(&r.0, r.3)));
        cmds.extend(network_rules(net).iter().map(|(chain, rule)| add_rule(chain, rule, &tag)));
    }
    let element = format!("{} comment {}", quoted(&net.bridge), quoted(&tag));
    if !l.elements.iter().any(|(set, e)| set == SET_BRIDGES && *e == element) {
        cmds.push(format!("add element {FAMILY} {TABLE} {SET_BRIDGES} {{ {element} }}"));
    }
    let skeleton_there = [FORWARD, ISOLATION, PREROUTING, OUTPUT, POSTROUTING, PORTS, SET_BRIDGES, MAP_DNAT_ANY, MAP_DNAT_IP, SET_PUBLISHED]
        .iter()
        .all(|o| l.objects.iter().any(|x| x == o));
    if cmds.is_empty() && skeleton_there {
        return Vec::new();
    }
    let mut all = skeleton();
    all.extend(cmds);
    all
}

/// One batch command as an `nft` command line: the words naming the object
/// bare, the rest (rule, chain or set body, element) in single quotes when a
/// shell would otherwise take it apart; nft joins its arguments again.
pub(crate) fn nft_command(cmd: &str) -> String {
    // `add table ip minirun`, `add rule ip minirun FORWARD ...`
    let head_words = if cmd.split(' ').nth(1) == Some("table") { 4 } else { 5 };
    let mut parts = cmd.splitn(head_words + 1, ' ');
    let head: Vec<&str> = parts.by_ref().take(head_words).collect();
    match parts.next() {
        Some(rest) if !rest.split(' ').all(|w| crate::shell::word(w) == w) => {
            format!("nft {} {}", head.join(" "), crate::shell::word(rest))
        }
        _ => format!("nft {cmd}"),
    }
}

/// Everything tagged for `net` (its ports' elements too), or the whole
/// table when no other network is left.
fn teardown_plan(listing: Option<&Listing>, net: &NetworkRules) -> Vec<String> {
    let Some(l) = listing else { return Vec::new() };
    if !l.others_than(&net.network) {
        return vec![format!("delete table {FAMILY} {TABLE}")];
    }
    let ours = |c: Option<&str>| c.and_then(parse_tag).and_then(|t| t.network().map(|n| n == net.network)) == Some(true);
    let mut cmds: Vec<String> =
        l.rules.iter().filter(|r| ours(r.comment.as_deref())).map(|r| delete_rule(&r.chain, r.handle)).collect();
    for (set, key, comment) in &l.elements {
        if ours(comment.as_deref()) || (set == SET_BRIDGES && *key == quoted(&net.bridge)) {
            cmds.push(delete_element(set, key));
        }
    }
    cmds
}

/// Everything carrying exactly `tag`.
fn remove_tag_plan(listing: Option<&Listing>, tag: &str) -> Vec<String> {
    let Some(l) = listing else { return Vec::new() };
    let mut cmds: Vec<String> =
        l.rules.iter().filter(|r| r.comment.as_deref() == Some(tag)).map(|r| delete_rule(&r.chain, r.handle)).collect();
    cmds.extend(l.elements.iter().filter(|(_, _, c)| c.as_deref() == Some(tag)).map(|(s, k, _)| delete_element(s, k)));
    cmds
}

impl FirewallDriver for NftablesDriver {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn setup_network(&self, net: &NetworkRules) -> Result<(), FirewallError> {
        validate_network(net)?;
        let _guard = self.lock.acquire()?;
        let listing = self.text_listing()?;
        let batch = setup_plan(listing.as_ref(), net);
        if !batch.is_empty() {
            self.apply(&batch)?;
        }
        // Recipes made for an earlier incarnation of the table are worthless.
        if listing.is_none() {
            let mut st = FirewallState::load_or_default(&self.state_path());
            if st.ports.keys().any(|k| k.starts_with(BACKEND_ID)) {
                st.forget_ports(BACKEND_ID, None);
                st.store(&self.state_path())?;
            }
        }
        self.ensure_coexistence_rules()
    }

    fn teardown_network(&self, net: &NetworkRules) -> Result<(), FirewallError> {
        validate_network(net)?;
        let _guard = self.lock.acquire()?;
        let listing = self.list()?;
        let last = !matches!(&listing, Some(l) if l.others_than(&net.network));
        let mut errors = Vec::new();
        if let Err(e) = self.apply_or_one_by_one("teardown_network", listing, |l| teardown_plan(l, net)) {
            errors.push(e);
        }
        let mut st = FirewallState::load_or_default(&self.state_path());
        let before = st.clone();
        st.forget_ports(BACKEND_ID, if last { None } else { Some(&net.network) });
        if last {
            self.remove_coexistence_rules(&mut errors);
        }
        if st != before {
            if let Err(e) = st.store(&self.state_path()) {
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
        let elements = port_elements(net, ports);
        let cmds: Vec<String> = elements.iter().map(add_element).collect();
        let _guard = self.lock.acquire()?;
        // The removal recipe first (the keys are known), so that it is
        // never short of what is in the kernel.
        let mut st = FirewallState::load_or_default(&self.state_path());
        let before = st.clone();
        for (set, key, _, tag) in &elements {
            // A key is deleted by value, whoever's it is: it must be in one
            // recipe only (a stale one, of a container never removed, loses it).
            let entry = (set.to_string(), key.clone());
            let mine = port_key(BACKEND_ID, tag);
            for (_, rec) in st.ports.iter_mut().filter(|(k, _)| k.starts_with(BACKEND_ID) && **k != mine) {
                rec.rules.retain(|e| *e != entry);
            }
            let rec = st.ports.entry(port_key(BACKEND_ID, tag)).or_default();
            if !rec.rules.contains(&entry) {
                rec.rules.push(entry);
            }
            rec.complete = true;
        }
        st.store(&self.state_path())?;
        // One transaction: all of it or none of it.
        self.apply(&cmds).inspect_err(|_| {
            let _ = before.store(&self.state_path());
        })
    }

    fn remove_ports(&self, net: &NetworkRules, container_id: &str) -> Result<(), FirewallError> {
        validate_network(net)?;
        validate_container_id(container_id)?;
        let tag = port_tag(&net.network, container_id);
        let _guard = self.lock.acquire()?;
        let mut st = FirewallState::load_or_default(&self.state_path());
        let key = port_key(BACKEND_ID, &tag);
        // One batch from the recipe; if it does not fit the table any more
        // (it then fails as a whole), find the elements by their tag.
        let recipe: Option<Vec<String>> = st
            .ports
            .get(&key)
            .filter(|r| r.complete && !r.rules.is_empty())
            .map(|r| r.rules.iter().map(|(set, k)| delete_element(set, k)).collect());
        let by_recipe = recipe.is_some_and(|cmds| self.apply(&cmds).is_ok());
        let result = if by_recipe {
            Ok(())
        } else {
            self.list().and_then(|l| self.apply_or_one_by_one("remove_ports", l, |l| remove_tag_plan(l, &tag)))
        };
        if st.ports.remove(&key).is_some() {
            st.store(&self.state_path())?;
        }
        result
    }

    fn explain_setup_network(&self, net: &NetworkRules) -> Result<Vec<String>, FirewallError> {
        validate_network(net)?;
        let mut cmds: Vec<String> = setup_plan(self.text_listing()?.as_ref(), net).iter().map(|c| nft_command(c)).collect();
        let (missing, insert) = self.missing_coexistence_rules();
        if !missing.is_empty() {
            cmds.push("# iptables' FORWARD may drop what minirun's table accepts: let through what it marked".to_string());
        }
        cmds.extend(missing.iter().map(|tools| command_line(&tools.program_name(), "filter", &insert)));
        Ok(cmds)
    }

    fn explain_add_ports(&self, net: &NetworkRules, ports: &[PortRule]) -> Result<Vec<String>, FirewallError> {
        validate_ports(net, ports)?;
        Ok(port_elements(net, ports).iter().map(|e| nft_command(&add_element(e))).collect())
    }

    fn explain_remove_ports(&self, net: &NetworkRules, container_id: &str) -> Result<Vec<String>, FirewallError> {
        validate_network(net)?;
        validate_container_id(container_id)?;
        // What the removal recipe holds, when it fits the table: the tagged elements.
        let tag = port_tag(&net.network, container_id);
        Ok(remove_tag_plan(self.list()?.as_ref(), &tag).iter().map(|c| nft_command(c)).collect())
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

/// `nft list table` text as one line per rule, chain hook and element:
/// `ip minirun FORWARD: iifname "br0" ... comment "minirun:n1"`,
/// `ip minirun map dnat_any: tcp . 8080 comment "minirun:n1:c1" : 10.0.0.2 . 80`.
pub(crate) fn flatten_listing(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block = String::new();
    let mut elements: Option<String> = None;
    let push_elements = |block: &str, acc: &str, out: &mut Vec<String>| {
        let inner = acc.trim_start_matches("elements = {").trim_end_matches('}');
        for e in inner.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            out.push(format!("{FAMILY} {TABLE} {block}: {e}"));
        }
    };
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(acc) = elements.as_mut() {
            acc.push(' ');
            acc.push_str(line);
            if line.ends_with('}') {
                push_elements(&block, acc, &mut out);
                elements = None;
            }
            continue;
        }
        if line.is_empty() || line == "}" || line.starts_with("table ") {
            continue;
        }
        if let Some(name) = line.strip_suffix(" {") {
            block = name.strip_prefix("chain ").unwrap_or(name).to_string();
        } else if line.starts_with("elements = {") {
            if line.ends_with('}') {
                push_elements(&block, line, &mut out);
            } else {
                elements = Some(line.to_string());
            }
        } else if !(block.starts_with("set ") || block.starts_with("map ")) {
            out.push(format!("{FAMILY} {TABLE} {block}: {line}"));
        }
    }
    out
}

/// A listed rule's or element's tag.
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
          {"map": {"family": "ip", "name": "dnat_any", "table": "minirun", "type": ["inet_proto", "inet_service"], "handle": 4, "map": "ipv4_addr . inet_service",
                   "elem": [[{"elem": {"val": {"concat": ["tcp", 8080]}, "comment": "minirun:n2:c1"}}, {"concat": ["10.0.0.2", 80]}]]}},
          {"set": {"family": "ip", "name": "published", "table": "minirun", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 6,
                   "elem": [{"elem": {"val": {"concat": ["10.0.0.2", "udp", 53]}, "comment": "minirun:n1:c1"}}]}},
          {"chain": {"family": "ip", "table": "minirun", "name": "FORWARD", "handle": 1, "type": "filter", "hook": "forward", "prio": -1, "policy": "accept"}},
          {"rule": {"family": "ip", "table": "minirun", "chain": "FORWARD", "handle": 3, "comment": "minirun:n1", "expr": []}},
          {"rule": {"family": "ip", "table": "minirun", "chain": "FORWARD", "handle": 6, "expr": []}}]}"#;
        let l = parse_listing(json).unwrap();
        assert_eq!(l.chains, ["FORWARD"]);
        assert_eq!(l.rules.len(), 2);
        let e = |s: &str, k: &str, c: Option<&str>| (s.to_string(), k.to_string(), c.map(str::to_string));
        assert_eq!(
            l.elements,
            [
                e("bridges", "\"br0\"", Some("minirun:n1")),
                e("bridges", "\"br9\"", None),
                e("dnat_any", "tcp . 8080", Some("minirun:n2:c1")),
                e("published", "10.0.0.2 . udp . 53", Some("minirun:n1:c1")),
            ]
        );
        assert!(l.others_than("n1"));
        assert!(l.others_than("n2"));
        assert_eq!(remove_tag_plan(Some(&l), "minirun:n2:c1"), ["delete element ip minirun dnat_any { tcp . 8080 }"]);
        assert_eq!(
            teardown_plan(Some(&l), &net(false)),
            [
                "delete rule ip minirun FORWARD handle 3",
                "delete element ip minirun bridges { \"br0\" }",
                "delete element ip minirun published { 10.0.0.2 . udp . 53 }",
            ]
        );
    }

    #[test]
    fn rule_and_element_text() {
        let rules = network_rules(&net(false));
        assert!(rules.contains(&(FORWARD, "iifname \"br0\" meta mark set meta mark | 0x01000000 accept".into())));
        assert!(network_rules(&net(true)).iter().all(|(c, r)| *c != POSTROUTING && !r.contains("@published")));
        let p = |host: Option<&str>, hport| PortRule {
            container_id: "c1".into(),
            container_ip: "10.0.0.2".parse().unwrap(),
            host_ip: host.map(|h| h.parse().unwrap()),
            host_port: hport,
            container_port: 53,
            protocol: Proto::Udp,
        };
        let els = port_elements(&net(false), &[p(Some("192.0.2.1"), 8080), p(None, 8081), p(None, 8081)]);
        let cmds: Vec<String> = els.iter().map(add_element).collect();
        assert_eq!(
            cmds,
            [
                "add element ip minirun dnat_ip { 192.0.2.1 . udp . 8080 comment \"minirun:n1:c1\" : 10.0.0.2 . 53 }",
                "add element ip minirun published { 10.0.0.2 . udp . 53 comment \"minirun:n1:c1\" }",
                "add element ip minirun dnat_any { udp . 8081 comment \"minirun:n1:c1\" : 10.0.0.2 . 53 }",
            ]
        );
        assert_eq!(coexistence_rule(), "-m mark --mark 0x1000000/0x1000000 -m comment --comment minirun -j ACCEPT");
    }

    #[test]
    fn setup_is_explained_as_nft_commands() {
        let n1 = net(false);
        let batch = setup_plan(None, &n1);
        let cmds: Vec<String> = batch.iter().map(|c| nft_command(c)).collect();
        // No table: all of it, declarations first, as one transaction would.
        assert_eq!(cmds.len(), skeleton().len() + 5 + network_rules(&n1).len() + 1);
        assert_eq!(cmds[0], "nft add table ip minirun");
        assert_eq!(cmds[1], "nft add chain ip minirun FORWARD '{ type filter hook forward priority -1; policy accept; }'");
        assert_eq!(cmds[6], "nft add chain ip minirun PORTS");
        assert_eq!(cmds[11], "nft insert rule ip minirun FORWARD 'jump ISOLATION comment \"minirun\"'");
        assert_eq!(cmds[12], "nft add rule ip minirun PREROUTING 'fib daddr type local jump PORTS comment \"minirun\"'");
        assert!(cmds.contains(&"nft add rule ip minirun POSTROUTING 'ip saddr 10.0.0.0/24 oifname != \"br0\" masquerade comment \"minirun:n1\"'".to_string()), "{cmds:#?}");
        assert_eq!(cmds.last().unwrap(), "nft add element ip minirun bridges '{ \"br0\" comment \"minirun:n1\" }'");
        // A shell gives nft back the batch's words.
        for (b, c) in batch.iter().zip(&cmds) {
            let unquoted = c.strip_prefix("nft ").unwrap().replace('\'', "");
            assert_eq!(&unquoted, b);
        }

        // Everything in place, as `nft list` shows it: nothing to do.
        let mut l = TextListing::default();
        for o in [FORWARD, ISOLATION, PREROUTING, OUTPUT, POSTROUTING, PORTS, SET_BRIDGES, MAP_DNAT_ANY, MAP_DNAT_IP, SET_PUBLISHED] {
            l.objects.push(o.to_string());
        }
        let mut handle = 0;
        for (chain, rules) in base_rules() {
            for r in rules {
                handle += 1;
                l.rules.push((chain.to_string(), r, Some(BASE_TAG.to_string()), handle));
            }
        }
        for (chain, r) in network_rules(&n1) {
            handle += 1;
            l.rules.push((chain.to_string(), r, Some("minirun:n1".into()), handle));
        }
        l.elements.push((SET_BRIDGES.into(), "\"br0\" comment \"minirun:n1\"".into()));
        assert!(setup_plan(Some(&l), &n1).is_empty());
        // Another network on that table: its rules and bridge only, with the (idempotent) declarations.
        let n2 = NetworkRules { network: "n2".into(), bridge: "br2".into(), ..n1.clone() };
        let batch = setup_plan(Some(&l), &n2);
        assert_eq!(batch[..skeleton().len()], skeleton()[..]);
        let rest = &batch[skeleton().len()..];
        assert_eq!(rest.len(), network_rules(&n2).len() + 1, "{rest:#?}");
        assert!(rest.iter().all(|c| c.contains("minirun:n2")), "{rest:#?}");
        // A rule gone missing is put back by replacing the network's rules.
        l.rules.pop();
        let batch = setup_plan(Some(&l), &n1);
        assert!(batch.iter().any(|c| c.starts_with("delete rule ip minirun ")), "{batch:#?}");
        assert_eq!(nft_command("delete rule ip minirun FORWARD handle 12"), "nft delete rule ip minirun FORWARD handle 12");
    }

    #[test]
    fn ports_are_explained_as_elements() {
        let p = PortRule {
            container_id: "c1".into(),
            container_ip: "10.0.0.2".parse().unwrap(),
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            protocol: Proto::Tcp,
        };
        let cmds: Vec<String> = port_elements(&net(false), &[p]).iter().map(|e| nft_command(&add_element(e))).collect();
        assert_eq!(
            cmds,
            [
                "nft add element ip minirun dnat_any '{ tcp . 8080 comment \"minirun:n1:c1\" : 10.0.0.2 . 80 }'",
                "nft add element ip minirun published '{ 10.0.0.2 . tcp . 80 comment \"minirun:n1:c1\" }'",
            ]
        );
    }

    #[test]
    fn parses_text_listing() {
        let text = "table ip minirun { # handle 7\n\tset bridges { # handle 3\n\t\ttype ifname\n\t\telements = { \"br0\" comment \"minirun:n1\",\n\t\t\t     \"br1\" comment \"minirun:n2\" }\n\t}\n\n\tmap dnat_any { # handle 4\n\t\ttype inet_proto . inet_service : ipv4_addr . inet_service\n\t}\n\n\tchain FORWARD { # handle 1\n\t\ttype filter hook forward priority filter - 1; policy accept;\n\t\tjump ISOLATION comment \"minirun\" # handle 9\n\t\tiifname \"br0\" meta mark set meta mark | 0x01000000 accept comment \"minirun:n1\" # handle 12\n\t}\n}\n";
        let l = parse_text_listing(text);
        assert_eq!(l.objects, ["bridges", "dnat_any", "FORWARD"]);
        assert_eq!(
            l.elements,
            [
                ("bridges".to_string(), "\"br0\" comment \"minirun:n1\"".to_string()),
                ("bridges".to_string(), "\"br1\" comment \"minirun:n2\"".to_string())
            ]
        );
        assert_eq!(l.rules.len(), 2);
        assert_eq!(l.rules[0], ("FORWARD".to_string(), "jump ISOLATION".to_string(), Some("minirun".to_string()), 9));
        assert_eq!(network_rules(&net(false)).iter().filter(|(_, r)| *r == l.rules[1].1).count(), 1);
    }

    #[test]
    fn flattens_text_listing() {
        let text = "table ip minirun {\n\tset bridges {\n\t\ttype ifname\n\t\telements = { \"br0\" comment \"minirun:n1\",\n\t\t\t     \"br1\" comment \"minirun:n2\" }\n\t}\n\n\tmap dnat_any {\n\t\ttype inet_proto . inet_service : ipv4_addr . inet_service\n\t\telements = { tcp . 8080 comment \"minirun:n1:c1\" : 10.0.0.2 . 80 }\n\t}\n\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter - 1; policy accept;\n\t\tjump ISOLATION comment \"minirun\"\n\t}\n}\n";
        let lines = flatten_listing(text);
        assert_eq!(
            lines,
            [
                "ip minirun set bridges: \"br0\" comment \"minirun:n1\"",
                "ip minirun set bridges: \"br1\" comment \"minirun:n2\"",
                "ip minirun map dnat_any: tcp . 8080 comment \"minirun:n1:c1\" : 10.0.0.2 . 80",
                "ip minirun FORWARD: type filter hook forward priority filter - 1; policy accept;",
                "ip minirun FORWARD: jump ISOLATION comment \"minirun\"",
            ]
        );
        assert_eq!(tag_of_listed(&lines[4]), Some("minirun"));
        assert_eq!(tag_of_listed(&lines[2]), Some("minirun:n1:c1"));
    }
}
