//! The iptables backend: minirun's own chains, edited in batches through
//! `iptables-restore --noflush` and read back with `iptables-save`.
//!
//! | table | chain | jumped to from | holds |
//! | --- | --- | --- | --- |
//! | filter | MINIRUN-FORWARD | FORWARD (position 1) | a jump to MINIRUN-ISOLATION first, then the accepts |
//! | filter | MINIRUN-ISOLATION | MINIRUN-FORWARD | per network: `-i BR ! -o BR -j MINIRUN-ISOLATION-2` (internal: drops both ways) |
//! | filter | MINIRUN-ISOLATION-2 | MINIRUN-ISOLATION | per network: `-o BR -j DROP` |
//! | nat | MINIRUN-DNAT | PREROUTING, OUTPUT (position 1, `-m addrtype --dst-type LOCAL`) | per port: DNAT |
//! | nat | MINIRUN-POSTROUTING | POSTROUTING (position 1) | MASQUERADE: egress, 127.0.0.0/8 into the bridge, hairpin |
//!
//! The isolation is Docker's two stages: traffic leaving a minirun bridge for
//! another interface goes to stage 2, which drops it if that interface is a
//! minirun bridge. One rule per network in each chain.
//!
//! Rules are written in `iptables-save`'s own form, so a second
//! `setup_network` finds them equal and spawns nothing but the save.
//!
//! `iptables-restore` commits each table's section atomically, in order, and
//! stops at the first failure, reporting "line N failed". A failed
//! `add_ports` batch deletes again the sections committed before line N.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;

use super::exec::{self, run, split_words};
use super::state::{port_key, FirewallState};
use super::{
    network_tag, parse_tag, port_tag, validate_container_id, validate_network, validate_ports, FirewallDriver,
    FirewallError, FirewallLock, IptablesVariant, NetworkRules, PortRule, Tag, BASE_TAG,
};

pub const NAT: &str = "nat";
pub const FILTER: &str = "filter";
pub const CHAIN_FORWARD: &str = "MINIRUN-FORWARD";
pub const CHAIN_ISOLATION: &str = "MINIRUN-ISOLATION";
pub const CHAIN_ISOLATION_2: &str = "MINIRUN-ISOLATION-2";
pub const CHAIN_DNAT: &str = "MINIRUN-DNAT";
pub const CHAIN_POSTROUTING: &str = "MINIRUN-POSTROUTING";

/// minirun's chains, in the order they are created (and flushed, deleted).
const OUR_CHAINS: [(&str, &str); 5] = [
    (NAT, CHAIN_DNAT),
    (NAT, CHAIN_POSTROUTING),
    (FILTER, CHAIN_FORWARD),
    (FILTER, CHAIN_ISOLATION),
    (FILTER, CHAIN_ISOLATION_2),
];

/// The tables minirun writes, in batch order.
const TABLES: [&str; 2] = [NAT, FILTER];

/// How long the iptables tools wait for the xtables lock other programs hold.
const XTABLES_WAIT: &str = "--wait=30";

/// The three programs of one iptables variant.
#[derive(Debug, Clone)]
pub(crate) struct IptablesTools {
    pub variant: IptablesVariant,
    pub iptables: PathBuf,
    pub save: PathBuf,
    pub restore: PathBuf,
}

impl IptablesTools {
    /// `iptables-<variant>[-save|-restore]`, or the plain names when those
    /// are missing and plain `iptables` is that variant (older installs).
    pub(crate) fn find(variant: IptablesVariant) -> Result<Self, FirewallError> {
        let v = variant.as_str();
        let named = |suffix: &str| exec::find_tool(&format!("iptables-{v}{suffix}"));
        if let (Some(iptables), Some(save), Some(restore)) = (named(""), named("-save"), named("-restore")) {
            return Ok(IptablesTools { variant, iptables, save, restore });
        }
        if exec::default_iptables_variant() == Some(variant) {
            return Ok(IptablesTools {
                variant,
                iptables: exec::need_tool("iptables")?,
                save: exec::need_tool("iptables-save")?,
                restore: exec::need_tool("iptables-restore")?,
            });
        }
        Err(FirewallError::NotAvailable(format!("iptables-{v}, iptables-{v}-save and iptables-{v}-restore not found")))
    }

    /// Every table of this variant that exists, as `iptables-save` prints it.
    /// Neither variant creates a table for this.
    pub(crate) fn save(&self) -> Result<Dump, FirewallError> {
        Ok(parse_save(&run(&self.save, &[], None)?.stdout))
    }

    /// One table only (the nft variant prints an empty one if it is absent;
    /// the legacy one would create it: check `legacy_tables` first).
    pub(crate) fn save_table(&self, table: &str) -> Result<Dump, FirewallError> {
        Ok(parse_save(&run(&self.save, &["-t", table], None)?.stdout))
    }

    pub(crate) fn restore(&self, script: &str) -> Result<(), FirewallError> {
        run(&self.restore, &[XTABLES_WAIT, "--noflush"], Some(script)).map(|_| ())
    }

    /// The name a person types for these tools: plain `iptables` when that
    /// is this variant, else `iptables-legacy` or `iptables-nft`.
    pub(crate) fn program_name(&self) -> String {
        if exec::default_iptables_variant() == Some(self.variant) {
            "iptables".to_string()
        } else {
            format!("iptables-{}", self.variant)
        }
    }

    /// One iptables command: `-t table` and the words of `line`.
    pub(crate) fn command(&self, table: &str, line: &str) -> Result<(), FirewallError> {
        let words = split_words(line);
        let mut args: Vec<&str> = vec![XTABLES_WAIT, "-t", table];
        args.extend(words.iter().map(String::as_str));
        run(&self.iptables, &args, None).map(|_| ())
    }
}

/// The x_tables tables instantiated in this network namespace. The legacy
/// tools create a table by merely looking at it, so minirun looks here first.
pub(crate) fn legacy_tables() -> Vec<String> {
    std::fs::read_to_string("/proc/net/ip_tables_names")
        .map(|s| s.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect())
        .unwrap_or_default()
}

/// `iptables-save` output, parsed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Dump {
    pub tables: Vec<SavedTable>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct SavedTable {
    pub name: String,
    /// (chain, policy): "-" for user chains.
    pub chains: Vec<(String, String)>,
    /// `-A CHAIN ...` lines, in order.
    pub rules: Vec<String>,
}

impl Dump {
    pub(crate) fn table(&self, name: &str) -> Option<&SavedTable> {
        self.tables.iter().find(|t| t.name == name)
    }
}

impl SavedTable {
    pub(crate) fn has_chain(&self, chain: &str) -> bool {
        self.chains.iter().any(|(c, _)| c == chain)
    }
}

pub(crate) fn parse_save(text: &str) -> Dump {
    let mut dump = Dump::default();
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix('*') {
            dump.tables.push(SavedTable { name: name.to_string(), ..Default::default() });
        } else if let Some(decl) = line.strip_prefix(':') {
            if let Some(t) = dump.tables.last_mut() {
                let mut it = decl.split_whitespace();
                if let Some(chain) = it.next() {
                    t.chains.push((chain.to_string(), it.next().unwrap_or("-").to_string()));
                }
            }
        } else if line.starts_with("-A ") {
            if let Some(t) = dump.tables.last_mut() {
                t.rules.push(line.to_string());
            }
        }
    }
    dump
}

/// The chain of a `-A CHAIN ...` line.
pub(crate) fn rule_chain(line: &str) -> &str {
    line.split_whitespace().nth(1).unwrap_or("")
}

/// The `--comment` of a rule line.
pub(crate) fn rule_comment(line: &str) -> Option<String> {
    if !line.contains("--comment") {
        return None;
    }
    let words = split_words(line);
    words.iter().position(|w| w == "--comment").and_then(|i| words.get(i + 1).cloned())
}

/// A rule line as words, so that quoting differences do not matter.
fn normalized(line: &str) -> Vec<String> {
    split_words(line)
}

/// The `-D` line deleting the rule an `-A` line made.
pub(crate) fn delete_line(append_line: &str) -> String {
    match append_line.strip_prefix("-A ") {
        Some(rest) => format!("-D {rest}"),
        None => append_line.to_string(),
    }
}

/// `s` as iptables-save prints a string argument: bare when made only of
/// letters, digits, '_' and '-'; else double-quoted.
pub(crate) fn save_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        s.to_string()
    } else {
        let mut q = String::from("\"");
        for c in s.chars() {
            if matches!(c, '"' | '\\' | '\'') {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        q
    }
}

fn comment(tag: &str) -> String {
    format!("-m comment --comment {}", save_quote(tag))
}

/// A jump minirun adds to a chain it does not own, and the chain it targets.
struct BaseRule {
    table: &'static str,
    chain: &'static str,
    spec: String,
    target: &'static str,
}

fn base_rules() -> Vec<BaseRule> {
    let c = comment(BASE_TAG);
    let local = format!("-m addrtype --dst-type LOCAL {c} -j {CHAIN_DNAT}");
    vec![
        BaseRule { table: NAT, chain: "PREROUTING", spec: local.clone(), target: CHAIN_DNAT },
        BaseRule { table: NAT, chain: "OUTPUT", spec: local, target: CHAIN_DNAT },
        BaseRule { table: NAT, chain: "POSTROUTING", spec: format!("{c} -j {CHAIN_POSTROUTING}"), target: CHAIN_POSTROUTING },
        BaseRule { table: FILTER, chain: "FORWARD", spec: format!("{c} -j {CHAIN_FORWARD}"), target: CHAIN_FORWARD },
        // First in MINIRUN-FORWARD: isolation drops before any accept.
        BaseRule { table: FILTER, chain: CHAIN_FORWARD, spec: format!("{c} -j {CHAIN_ISOLATION}"), target: CHAIN_ISOLATION },
    ]
}

fn has_base_rule(table: Option<&SavedTable>, base: &BaseRule) -> bool {
    let Some(t) = table else { return false };
    t.rules.iter().any(|r| {
        rule_chain(r) == base.chain && rule_comment(r).as_deref() == Some(BASE_TAG) && {
            let w = split_words(r);
            w.windows(2).any(|p| p[0] == "-j" && p[1] == base.target)
        }
    })
}

/// A network's rules, as (table, `-A` line) in iptables-save's form.
pub(crate) fn network_rules(net: &NetworkRules) -> Vec<(&'static str, String)> {
    let b = &net.bridge;
    let s = net.subnet.trunc();
    let c = comment(&network_tag(&net.network));
    let mut v = Vec::new();
    if net.internal {
        v.push((FILTER, format!("-A {CHAIN_ISOLATION} -i {b} ! -o {b} {c} -j DROP")));
        v.push((FILTER, format!("-A {CHAIN_ISOLATION} ! -i {b} -o {b} {c} -j DROP")));
    } else {
        v.push((FILTER, format!("-A {CHAIN_ISOLATION} -i {b} ! -o {b} {c} -j {CHAIN_ISOLATION_2}")));
    }
    v.push((FILTER, format!("-A {CHAIN_ISOLATION_2} -o {b} {c} -j DROP")));
    if !net.internal {
        v.push((FILTER, format!("-A {CHAIN_FORWARD} -o {b} -m conntrack --ctstate RELATED,ESTABLISHED {c} -j ACCEPT")));
    }
    v.push((FILTER, format!("-A {CHAIN_FORWARD} -i {b} -o {b} {c} -j ACCEPT")));
    if !net.internal {
        v.push((FILTER, format!("-A {CHAIN_FORWARD} -i {b} ! -o {b} {c} -j ACCEPT")));
        v.push((NAT, format!("-A {CHAIN_POSTROUTING} -s {s} ! -o {b} {c} -j MASQUERADE")));
        v.push((NAT, format!("-A {CHAIN_POSTROUTING} -s 127.0.0.0/8 -o {b} {c} -j MASQUERADE")));
    }
    v
}

/// The rules publishing `ports`, as (table, `-A` line, tag), without duplicates.
pub(crate) fn port_rules(net: &NetworkRules, ports: &[PortRule]) -> Vec<(&'static str, String, String)> {
    let b = &net.bridge;
    let s = net.subnet.trunc();
    let mut v: Vec<(&'static str, String, String)> = Vec::new();
    for p in ports {
        let tag = port_tag(&net.network, &p.container_id);
        let mut push = |table, line: String| {
            if !v.iter().any(|(t, l, _)| *t == table && *l == line) {
                v.push((table, line, tag.clone()));
            }
        };
        let c = comment(&tag);
        let proto = p.protocol.as_str();
        let (cip, cport, hport) = (p.container_ip, p.container_port, p.host_port);
        let dst = p.host_addr().map(|ip| format!("-d {ip}/32 ")).unwrap_or_default();
        push(NAT, format!("-A {CHAIN_DNAT} {dst}-p {proto} -m {proto} --dport {hport} {c} -j DNAT --to-destination {cip}:{cport}"));
        push(NAT, format!("-A {CHAIN_POSTROUTING} -s {s} -d {cip}/32 -p {proto} -m {proto} --dport {cport} {c} -j MASQUERADE"));
        push(FILTER, format!("-A {CHAIN_FORWARD} -d {cip}/32 ! -i {b} -o {b} -p {proto} -m {proto} --dport {cport} {c} -j ACCEPT"));
    }
    v
}

/// An iptables-restore script in sections, one per table.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    sections: Vec<(&'static str, Vec<String>)>,
}

impl Batch {
    pub(crate) fn push(&mut self, table: &'static str, line: String) {
        match self.sections.iter_mut().find(|(t, _)| *t == table) {
            Some((_, lines)) => lines.push(line),
            None => self.sections.push((table, vec![line])),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sections.iter().all(|(_, l)| l.is_empty())
    }

    /// The script, and the line number of each section's COMMIT.
    pub(crate) fn render(&self) -> (String, Vec<(&'static str, usize)>) {
        let mut out = String::new();
        let mut commits = Vec::new();
        let mut n = 0;
        for (table, lines) in self.sections.iter().filter(|(_, l)| !l.is_empty()) {
            out.push_str(&format!("*{table}\n"));
            n += 1;
            for l in lines {
                out.push_str(l);
                out.push('\n');
                n += 1;
            }
            out.push_str("COMMIT\n");
            n += 1;
            commits.push((*table, n));
        }
        (out, commits)
    }

    fn lines(&self) -> impl Iterator<Item = (&'static str, &String)> {
        self.sections.iter().flat_map(|(t, ls)| ls.iter().map(move |l| (*t, l)))
    }
}

/// One iptables-restore line as the `program` command doing the same: `-t
/// table` and its words, quoted for a shell where needed (the words are
/// what iptables gets either way); a chain declaration `:CHAIN - [0:0]`
/// becomes `-N CHAIN`.
pub(crate) fn command_line(program: &str, table: &str, line: &str) -> String {
    let words = match line.strip_prefix(':') {
        Some(decl) => vec!["-N".to_string(), decl.split_whitespace().next().unwrap_or_default().to_string()],
        None => split_words(line),
    };
    let mut out = format!("{program} -t {table}");
    for w in &words {
        out.push(' ');
        out.push_str(&crate::shell::word(w));
    }
    out
}

/// A batch as `program` commands, in the order iptables-restore applies it.
pub(crate) fn batch_commands(program: &str, batch: &Batch) -> Vec<String> {
    batch.lines().map(|(table, line)| command_line(program, table, line)).collect()
}

/// What `setup_network` changes, given the tables as they are: the batch,
/// and the built-in chains it adds jumps to (which iptables-nft may have
/// to create). Nothing when everything is in place.
fn setup_plan(dump: &Dump, net: &NetworkRules) -> (Batch, Vec<(&'static str, &'static str)>) {
    let desired = network_rules(net);
    let tag = network_tag(&net.network);
    let mut batch = Batch::default();
    let mut builtin: Vec<(&'static str, &'static str)> = Vec::new();
    for table in TABLES {
        let saved = dump.table(table);
        for (_, ch) in OUR_CHAINS.iter().filter(|(t, ch)| *t == table && !saved.is_some_and(|s| s.has_chain(ch))) {
            batch.push(table, format!(":{ch} - [0:0]"));
        }
        for base in base_rules().iter().filter(|b| b.table == table) {
            if !has_base_rule(saved, base) {
                batch.push(table, format!("-I {} 1 {}", base.chain, base.spec));
                if !OUR_CHAINS.iter().any(|(_, c)| *c == base.chain) {
                    builtin.push((table, base.chain));
                }
            }
        }
        let existing: Vec<&String> = saved
            .map(|s| s.rules.iter().filter(|r| rule_comment(r).as_deref() == Some(tag.as_str())).collect())
            .unwrap_or_default();
        let wanted: Vec<&String> = desired.iter().filter(|(t, _)| *t == table).map(|(_, l)| l).collect();
        if multiset(existing.iter().copied()) != multiset(wanted.iter().copied()) {
            // Replace, in the same atomic section: what is there is not what should be.
            for r in existing {
                batch.push(table, delete_line(r));
            }
            for l in wanted {
                batch.push(table, l.clone());
            }
        }
    }
    (batch, builtin)
}

/// The batch `add_ports` applies, and each line's tag.
fn ports_batch(net: &NetworkRules, ports: &[PortRule]) -> (Batch, Vec<(&'static str, String, String)>) {
    let rules = port_rules(net, ports);
    let mut batch = Batch::default();
    for (table, line, _) in &rules {
        batch.push(table, line.clone());
    }
    (batch, rules)
}

/// The line iptables-restore reports as failed ("line 7 failed").
pub(crate) fn failed_line(stderr: &str) -> Option<usize> {
    let i = stderr.find("line ")?;
    let digits: String = stderr[i + 5..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

pub struct IptablesDriver {
    tools: IptablesTools,
    lock: FirewallLock,
    /// For the nft variant: `nft`, to see which base chains iptables-nft
    /// creates for minirun and to remove them again (see `state`).
    nft: Option<PathBuf>,
}

/// The `ip` tables, and (table, chain) pairs, nftables has now.
type IpObjects = (Vec<String>, Vec<(String, String)>);

fn nft_ip_objects(nft: &std::path::Path) -> Result<IpObjects, FirewallError> {
    let parse = |out: &str| -> Result<Vec<Value>, FirewallError> {
        let v: Value = serde_json::from_str(out)
            .map_err(|e| FirewallError::Parse { what: "nft -j output".into(), detail: e.to_string() })?;
        Ok(v.get("nftables").and_then(Value::as_array).cloned().unwrap_or_default())
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let tables = parse(&run(nft, &["-j", "list", "tables", "ip"], None)?.stdout)?
        .iter()
        .filter_map(|i| i.get("table").map(|t| s(t, "name")))
        .collect();
    let chains = parse(&run(nft, &["-j", "list", "chains", "ip"], None)?.stdout)?
        .iter()
        .filter_map(|i| i.get("chain").map(|c| (s(c, "table"), s(c, "name"))))
        .collect();
    Ok((tables, chains))
}

/// What `nft -j list chain|table` shows: (chains, whether there is any
/// rule, set or map, whether every base chain's policy is accept).
fn nft_contents(json: &str) -> Option<(usize, bool, bool)> {
    let v = serde_json::from_str::<Value>(json).ok()?;
    let items = v.get("nftables").and_then(Value::as_array)?;
    let chains: Vec<&Value> = items.iter().filter_map(|i| i.get("chain")).collect();
    let filled = items.iter().any(|i| i.get("rule").is_some() || i.get("set").is_some() || i.get("map").is_some());
    let accepting = chains.iter().all(|c| matches!(c.get("policy").and_then(Value::as_str), None | Some("accept")));
    Some((chains.len(), filled, accepting))
}

impl IptablesDriver {
    pub fn new(variant: IptablesVariant, lock: FirewallLock) -> Result<Self, FirewallError> {
        let nft = if variant == IptablesVariant::Nft { exec::find_tool("nft") } else { None };
        Ok(IptablesDriver { tools: IptablesTools::find(variant)?, lock, nft })
    }

    /// Before a batch that jumps from `builtin` chains: which of them, and
    /// of their tables, iptables-nft is about to create.
    fn note_creations(&self, builtin: &[(&str, &str)]) -> Result<FirewallState, FirewallError> {
        let mut st = FirewallState::default();
        let Some(nft) = self.nft.as_deref() else { return Ok(st) };
        if builtin.is_empty() {
            return Ok(st);
        }
        let (tables, chains) = nft_ip_objects(nft)?;
        for (t, c) in builtin {
            if !tables.iter().any(|x| x == t) {
                st.note_table(t);
            }
            if !chains.iter().any(|(xt, xc)| xt == t && xc == c) {
                st.note_chain(t, c);
            }
        }
        Ok(st)
    }

    /// After the last network: deletes the base chains and tables noted in
    /// the state that nobody else has put anything into since, and forgets them.
    fn remove_creations(&self, st: &mut FirewallState, errors: &mut Vec<FirewallError>) {
        let Some(nft) = self.nft.as_deref() else { return };
        let mut keep_chains = Vec::new();
        for (t, c) in &st.created_chains {
            // Absent: nothing to do. In use by someone else now: theirs.
            if let Ok(out) = run(nft, &["-j", "list", "chain", "ip", t, c], None) {
                if nft_contents(&out.stdout) == Some((1, false, true)) {
                    if let Err(e) = run(nft, &["delete", "chain", "ip", t, c], None) {
                        errors.push(e);
                        keep_chains.push((t.clone(), c.clone()));
                    }
                }
            }
        }
        let mut keep_tables = Vec::new();
        for t in &st.created_tables {
            if let Ok(out) = run(nft, &["-j", "list", "table", "ip", t], None) {
                if nft_contents(&out.stdout) == Some((0, false, true)) {
                    if let Err(e) = run(nft, &["delete", "table", "ip", t], None) {
                        errors.push(e);
                        keep_tables.push(t.clone());
                    }
                }
            }
        }
        st.created_chains = keep_chains;
        st.created_tables = keep_tables;
    }

    /// The state file of the calling thread's network namespace.
    fn state_path(&self) -> PathBuf {
        FirewallState::path_for(self.lock.path())
    }

    pub fn variant(&self) -> IptablesVariant {
        self.tools.variant
    }

    /// The name the state's removal recipes go under.
    fn backend_id(&self) -> String {
        format!("iptables-{}", self.tools.variant)
    }

    /// The -D batch of a recipe, if there is a complete one.
    fn recipe(&self, st: &FirewallState, tag: &str) -> Option<Batch> {
        let rec = st.ports.get(&port_key(&self.backend_id(), tag)).filter(|r| r.complete && !r.rules.is_empty())?;
        let mut batch = Batch::default();
        for (table, line) in &rec.rules {
            let table = TABLES.iter().find(|t| **t == table.as_str())?;
            batch.push(table, delete_line(line));
        }
        Some(batch)
    }

    fn run_batch(&self, batch: &Batch) -> Result<(), FirewallError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.tools.restore(&batch.render().0)
    }

    /// Applies the batch `plan` computes from the current rules; if that
    /// fails, reads the rules again and runs the plan's commands one by one,
    /// going on past errors.
    fn apply_or_one_by_one(
        &self,
        operation: &'static str,
        dump: Dump,
        plan: impl Fn(&Dump) -> Batch,
    ) -> Result<(), FirewallError> {
        let batch = plan(&dump);
        let Err(first) = self.run_batch(&batch) else { return Ok(()) };
        let dump = match self.tools.save() {
            Ok(d) => d,
            Err(e) => return FirewallError::collect(operation, vec![first, e]),
        };
        let mut errors = Vec::new();
        for (table, line) in plan(&dump).lines() {
            if let Err(e) = self.tools.command(table, line) {
                errors.push(e);
            }
        }
        // The batch's failure explains nothing if one by one went through.
        FirewallError::collect(operation, errors)
    }
}

/// Deletes every rule tagged for `network` (its ports too); when no other
/// network's rules are left, also minirun's jumps and chains.
fn teardown_plan(dump: &Dump, network: &str) -> Batch {
    let mut batch = Batch::default();
    let others = others_remain(dump, network);
    for table in TABLES {
        let Some(t) = dump.table(table) else { continue };
        for r in &t.rules {
            let Some(c) = rule_comment(r) else { continue };
            match parse_tag(&c) {
                Some(tag) if tag.network() == Some(network) => batch.push(table, delete_line(r)),
                Some(Tag::Base) if !others && !OUR_CHAINS.iter().any(|(_, ch)| *ch == rule_chain(r)) => {
                    batch.push(table, delete_line(r))
                }
                _ => {}
            }
        }
        if !others {
            let ours: Vec<&str> =
                OUR_CHAINS.iter().filter(|(tb, ch)| *tb == table && t.has_chain(ch)).map(|(_, ch)| *ch).collect();
            for ch in &ours {
                batch.push(table, format!("-F {ch}"));
            }
            for ch in &ours {
                batch.push(table, format!("-X {ch}"));
            }
        }
    }
    batch
}

/// Whether rules of networks other than `network` are there.
fn others_remain(dump: &Dump, network: &str) -> bool {
    dump.tables.iter().flat_map(|t| &t.rules).any(|r| {
        rule_comment(r).is_some_and(|c| parse_tag(&c).and_then(|t| t.network().map(|n| n != network)).unwrap_or(false))
    })
}

/// Deletes every rule carrying exactly `tag`.
fn remove_tag_plan(dump: &Dump, tag: &str) -> Batch {
    let mut batch = Batch::default();
    for table in TABLES {
        let Some(t) = dump.table(table) else { continue };
        for r in &t.rules {
            if rule_comment(r).as_deref() == Some(tag) {
                batch.push(table, delete_line(r));
            }
        }
    }
    batch
}

/// Counts of normalized lines, to compare rule sets regardless of order.
fn multiset<'a>(lines: impl Iterator<Item = &'a String>) -> HashMap<Vec<String>, usize> {
    let mut m = HashMap::new();
    for l in lines {
        *m.entry(normalized(l)).or_insert(0) += 1;
    }
    m
}

impl FirewallDriver for IptablesDriver {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn setup_network(&self, net: &NetworkRules) -> Result<(), FirewallError> {
        validate_network(net)?;
        let _guard = self.lock.acquire()?;
        let dump = self.tools.save()?;
        let (batch, builtin) = setup_plan(&dump, net);
        let created = self.note_creations(&builtin)?;
        self.run_batch(&batch)?;
        if created.is_empty() {
            return Ok(());
        }
        let mut st = FirewallState::load(&self.state_path())?;
        created.created_tables.iter().for_each(|t| st.note_table(t));
        created.created_chains.iter().for_each(|(t, c)| st.note_chain(t, c));
        st.store(&self.state_path())
    }

    fn teardown_network(&self, net: &NetworkRules) -> Result<(), FirewallError> {
        validate_network(net)?;
        let _guard = self.lock.acquire()?;
        let dump = self.tools.save()?;
        let last = !others_remain(&dump, &net.network);
        let mut errors = Vec::new();
        if let Err(e) = self.apply_or_one_by_one("teardown_network", dump, |d| teardown_plan(d, &net.network)) {
            errors.push(e);
        }
        let mut st = FirewallState::load_or_default(&self.state_path());
        let before = st.clone();
        if last {
            st.forget_ports(&self.backend_id(), None);
            self.remove_creations(&mut st, &mut errors);
        } else {
            st.forget_ports(&self.backend_id(), Some(&net.network));
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
        let (batch, rules) = ports_batch(net, ports);
        let _guard = self.lock.acquire()?;
        // The removal recipe first: never short of what is in the kernel.
        let mut st = FirewallState::load_or_default(&self.state_path());
        let before = st.clone();
        for (table, line, tag) in &rules {
            let rec = st.ports.entry(port_key(&self.backend_id(), tag)).or_default();
            rec.rules.push((table.to_string(), line.clone()));
            rec.complete = true;
        }
        st.store(&self.state_path())?;
        let (script, commits) = batch.render();
        let Err(cause) = self.tools.restore(&script) else { return Ok(()) };
        let _ = before.store(&self.state_path());

        // Which sections did iptables-restore commit before it failed?
        let failed_at = match &cause {
            FirewallError::Command { stderr, .. } => failed_line(stderr),
            _ => Some(0),
        };
        let committed: Vec<&str> = match failed_at {
            Some(line) => commits.iter().filter(|(_, commit)| *commit < line).map(|(t, _)| *t).collect(),
            // Unknown: a section is committed if all of its rules are there now.
            None => match self.tools.save() {
                Ok(dump) => batch
                    .sections
                    .iter()
                    .filter(|(t, lines)| {
                        let rules = dump.table(t).map(|s| multiset(s.rules.iter())).unwrap_or_default();
                        multiset(lines.iter()).iter().all(|(l, n)| rules.get(l).copied().unwrap_or(0) >= *n)
                    })
                    .map(|(t, _)| *t)
                    .collect(),
                Err(e) => return Err(FirewallError::RollbackFailed { cause: Box::new(cause), rollback: Box::new(e) }),
            },
        };
        let mut undo = Batch::default();
        for (table, line) in batch.lines().filter(|(t, _)| committed.contains(t)) {
            undo.push(table, delete_line(line));
        }
        match self.run_batch(&undo) {
            Ok(()) => Err(cause),
            Err(e) => Err(FirewallError::RollbackFailed { cause: Box::new(cause), rollback: Box::new(e) }),
        }
    }

    fn remove_ports(&self, net: &NetworkRules, container_id: &str) -> Result<(), FirewallError> {
        validate_network(net)?;
        validate_container_id(container_id)?;
        let tag = port_tag(&net.network, container_id);
        let _guard = self.lock.acquire()?;
        let mut st = FirewallState::load_or_default(&self.state_path());
        let key = port_key(&self.backend_id(), &tag);
        // One batch from the recipe; if it does not fit the kernel any more,
        // find the rules by their tag.
        let by_recipe = self.recipe(&st, &tag).is_some_and(|b| self.run_batch(&b).is_ok());
        let result = if by_recipe {
            Ok(())
        } else {
            self.tools.save().and_then(|dump| self.apply_or_one_by_one("remove_ports", dump, |d| remove_tag_plan(d, &tag)))
        };
        if st.ports.remove(&key).is_some() {
            st.store(&self.state_path())?;
        }
        result
    }

    fn explain_setup_network(&self, net: &NetworkRules) -> Result<Vec<String>, FirewallError> {
        validate_network(net)?;
        let (batch, _) = setup_plan(&self.tools.save()?, net);
        Ok(batch_commands(&self.tools.program_name(), &batch))
    }

    fn explain_add_ports(&self, net: &NetworkRules, ports: &[PortRule]) -> Result<Vec<String>, FirewallError> {
        validate_ports(net, ports)?;
        Ok(batch_commands(&self.tools.program_name(), &ports_batch(net, ports).0))
    }

    fn explain_remove_ports(&self, net: &NetworkRules, container_id: &str) -> Result<Vec<String>, FirewallError> {
        validate_network(net)?;
        validate_container_id(container_id)?;
        // What the removal recipe holds, when it fits the tables: the tagged rules.
        let tag = port_tag(&net.network, container_id);
        Ok(batch_commands(&self.tools.program_name(), &remove_tag_plan(&self.tools.save()?, &tag)))
    }

    fn list_rules(&self) -> Result<Vec<String>, FirewallError> {
        let dump = self.tools.save()?;
        let mut out = Vec::new();
        for t in &dump.tables {
            for (ch, _) in t.chains.iter().filter(|(ch, _)| OUR_CHAINS.iter().any(|(tb, c)| *tb == t.name && c == ch)) {
                out.push(format!("-t {} -N {ch}", t.name));
            }
            for r in &t.rules {
                let ours_chain = OUR_CHAINS.iter().any(|(tb, c)| *tb == t.name && *c == rule_chain(r));
                let tagged = rule_comment(r).is_some_and(|c| parse_tag(&c).is_some());
                if ours_chain || tagged {
                    out.push(format!("-t {} {r}", t.name));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Proto;

    const SAVE: &str = r#"# Generated by iptables-save v1.8.9 on Fri Nov 27 23:15:34 2026
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:MINIRUN-FORWARD - [0:0]
-A FORWARD -m comment --comment minirun -j MINIRUN-FORWARD
-A FORWARD -j DOCKER-USER
-A MINIRUN-FORWARD -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "minirun:n1" -j ACCEPT
-A MINIRUN-FORWARD -d 10.0.0.2/32 ! -i br0 -o br0 -p tcp -m tcp --dport 80 -m comment --comment "minirun:n1:c1" -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:MINIRUN-DNAT - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment minirun -j MINIRUN-DNAT
-A MINIRUN-DNAT -p tcp -m tcp --dport 8080 -m comment --comment "minirun:n1:c1" -j DNAT --to-destination 10.0.0.2:80
COMMIT
"#;

    fn net(name: &str, internal: bool) -> NetworkRules {
        NetworkRules { network: name.into(), bridge: "br0".into(), subnet: "10.0.0.0/24".parse().unwrap(), internal }
    }

    #[test]
    fn parses_save_output() {
        let d = parse_save(SAVE);
        let f = d.table("filter").unwrap();
        assert!(f.chains.contains(&("FORWARD".to_string(), "DROP".to_string())));
        assert!(f.has_chain("MINIRUN-FORWARD"));
        assert_eq!(f.rules.len(), 4);
        assert_eq!(rule_chain(&f.rules[2]), "MINIRUN-FORWARD");
        assert_eq!(rule_comment(&f.rules[0]).as_deref(), Some("minirun"));
        assert_eq!(rule_comment(&f.rules[1]), None);
        assert_eq!(rule_comment(&f.rules[3]).as_deref(), Some("minirun:n1:c1"));
        assert!(has_base_rule(Some(f), &base_rules()[3]));
        assert!(!has_base_rule(Some(f), &base_rules()[4]));
    }

    #[test]
    fn quoting_matches_iptables_save() {
        assert_eq!(save_quote("minirun"), "minirun");
        assert_eq!(save_quote("minirun:n1"), "\"minirun:n1\"");
        assert_eq!(save_quote("a.b"), "\"a.b\"");
        assert_eq!(normalized(r#"-A X -m comment --comment "minirun" -j Y"#), normalized("-A X -m comment --comment minirun -j Y"));
    }

    #[test]
    fn port_rules_are_deduplicated_and_tagged() {
        let p = |hport, hip: Option<&str>| PortRule {
            container_id: "c1".into(),
            container_ip: "10.0.0.2".parse().unwrap(),
            host_ip: hip.map(|h| h.parse().unwrap()),
            host_port: hport,
            container_port: 80,
            protocol: Proto::Tcp,
        };
        let rules = port_rules(&net("n1", false), &[p(8080, None), p(8081, Some("192.0.2.1"))]);
        assert!(rules.iter().all(|(_, _, tag)| tag == "minirun:n1:c1"));
        let lines: Vec<&str> = rules.iter().map(|(_, l, _)| l.as_str()).collect();
        assert_eq!(
            lines,
            [
                r#"-A MINIRUN-DNAT -p tcp -m tcp --dport 8080 -m comment --comment "minirun:n1:c1" -j DNAT --to-destination 10.0.0.2:80"#,
                r#"-A MINIRUN-POSTROUTING -s 10.0.0.0/24 -d 10.0.0.2/32 -p tcp -m tcp --dport 80 -m comment --comment "minirun:n1:c1" -j MASQUERADE"#,
                r#"-A MINIRUN-FORWARD -d 10.0.0.2/32 ! -i br0 -o br0 -p tcp -m tcp --dport 80 -m comment --comment "minirun:n1:c1" -j ACCEPT"#,
                r#"-A MINIRUN-DNAT -d 192.0.2.1/32 -p tcp -m tcp --dport 8081 -m comment --comment "minirun:n1:c1" -j DNAT --to-destination 10.0.0.2:80"#,
            ]
        );
    }

    #[test]
    fn internal_networks_have_no_egress_rules() {
        let rules = network_rules(&net("n1", true));
        assert!(rules.iter().all(|(t, _)| *t == FILTER));
        assert!(rules.iter().all(|(_, l)| !l.contains("! -o br0 -m comment --comment \"minirun:n1\" -j ACCEPT")));
        assert!(rules.iter().any(|(_, l)| l.contains("! -i br0 -o br0") && l.ends_with("-j DROP")));
    }

    #[test]
    fn batches_number_their_commits() {
        let mut b = Batch::default();
        b.push(NAT, "-A X -j ACCEPT".into());
        b.push(FILTER, "-A Y -j ACCEPT".into());
        b.push(NAT, "-A Z -j ACCEPT".into());
        let (script, commits) = b.render();
        assert_eq!(script, "*nat\n-A X -j ACCEPT\n-A Z -j ACCEPT\nCOMMIT\n*filter\n-A Y -j ACCEPT\nCOMMIT\n");
        assert_eq!(commits, [(NAT, 4), (FILTER, 7)]);
        assert_eq!(failed_line("iptables-restore: line 6 failed"), Some(6));
        assert_eq!(failed_line("iptables-nft-restore: line 12 failed: No chain/target/match by that name."), Some(12));
        assert_eq!(failed_line("something else"), None);
    }

    #[test]
    fn setup_is_explained_as_iptables_commands() {
        let n1 = net("n1", false);
        // Nothing there yet: the chains, the jumps into them, the network's rules.
        let (batch, builtin) = setup_plan(&Dump::default(), &n1);
        assert_eq!(builtin, [(NAT, "PREROUTING"), (NAT, "OUTPUT"), (NAT, "POSTROUTING"), (FILTER, "FORWARD")]);
        let cmds = batch_commands("iptables", &batch);
        let mut expected = vec![
            "iptables -t nat -N MINIRUN-DNAT".to_string(),
            "iptables -t nat -N MINIRUN-POSTROUTING".into(),
            "iptables -t nat -I PREROUTING 1 -m addrtype --dst-type LOCAL -m comment --comment minirun -j MINIRUN-DNAT".into(),
            "iptables -t nat -I OUTPUT 1 -m addrtype --dst-type LOCAL -m comment --comment minirun -j MINIRUN-DNAT".into(),
            "iptables -t nat -I POSTROUTING 1 -m comment --comment minirun -j MINIRUN-POSTROUTING".into(),
            "iptables -t nat -A MINIRUN-POSTROUTING -s 10.0.0.0/24 ! -o br0 -m comment --comment minirun:n1 -j MASQUERADE".into(),
            "iptables -t nat -A MINIRUN-POSTROUTING -s 127.0.0.0/8 -o br0 -m comment --comment minirun:n1 -j MASQUERADE".into(),
            "iptables -t filter -N MINIRUN-FORWARD".into(),
            "iptables -t filter -N MINIRUN-ISOLATION".into(),
            "iptables -t filter -N MINIRUN-ISOLATION-2".into(),
            "iptables -t filter -I FORWARD 1 -m comment --comment minirun -j MINIRUN-FORWARD".into(),
            "iptables -t filter -I MINIRUN-FORWARD 1 -m comment --comment minirun -j MINIRUN-ISOLATION".into(),
        ];
        expected.extend(network_rules(&n1).iter().filter(|(t, _)| *t == FILTER).map(|(_, l)| {
            format!("iptables -t filter {}", l.replace("\"minirun:n1\"", "minirun:n1"))
        }));
        assert_eq!(cmds, expected);
        // The words are those iptables-restore would have taken.
        for ((table, line), cmd) in batch.lines().zip(&cmds).filter(|((_, l), _)| l.starts_with('-')) {
            let mut words = vec!["iptables".to_string(), "-t".into(), table.to_string()];
            words.extend(split_words(line));
            assert_eq!(split_words(cmd), words);
        }

        // Another network set up already: no chain and no jump again, only n2's rules.
        let d = parse_save(SAVE);
        let (batch, builtin) = setup_plan(&d, &NetworkRules { network: "n2".into(), bridge: "br2".into(), ..n1.clone() });
        let cmds = batch_commands("iptables-nft", &batch);
        assert!(cmds.iter().any(|c| c == "iptables-nft -t filter -N MINIRUN-ISOLATION"), "absent from SAVE: {cmds:?}");
        assert!(!cmds.iter().any(|c| c.contains("-N MINIRUN-FORWARD") || c.contains("-N MINIRUN-DNAT")), "{cmds:?}");
        assert!(!cmds.iter().any(|c| c.contains("-I FORWARD 1") || c.contains("-I PREROUTING 1")), "{cmds:?}");
        assert!(cmds.iter().any(|c| c.contains("-I OUTPUT 1")), "SAVE has no jump from OUTPUT: {cmds:?}");
        assert!(!builtin.contains(&(FILTER, "FORWARD")));
        assert!(cmds.iter().all(|c| !c.contains("minirun:n1")), "{cmds:?}");

        // n1's rules all in place: nothing to do, however they are quoted.
        let mut full = Dump::default();
        for table in TABLES {
            let (b, _) = setup_plan(&Dump::default(), &n1);
            let mut t = SavedTable { name: table.to_string(), ..Default::default() };
            for (_, l) in b.lines().filter(|(tb, _)| *tb == table) {
                match l.strip_prefix(':') {
                    Some(decl) => t.chains.push((decl.split_whitespace().next().unwrap().to_string(), "-".into())),
                    None => t.rules.push(l.replacen("-I ", "-A ", 1).replacen(" 1 ", " ", 1)),
                }
            }
            full.tables.push(t);
        }
        assert!(setup_plan(&full, &n1).0.is_empty());
    }

    #[test]
    fn ports_are_explained_in_batch_order() {
        let n1 = net("n1", false);
        let p = PortRule {
            container_id: "c1".into(),
            container_ip: "10.0.0.2".parse().unwrap(),
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 8080,
            container_port: 80,
            protocol: Proto::Tcp,
        };
        let cmds = batch_commands("iptables-legacy", &ports_batch(&n1, &[p]).0);
        assert_eq!(
            cmds,
            [
                "iptables-legacy -t nat -A MINIRUN-DNAT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -m comment --comment minirun:n1:c1 -j DNAT --to-destination 10.0.0.2:80",
                "iptables-legacy -t nat -A MINIRUN-POSTROUTING -s 10.0.0.0/24 -d 10.0.0.2/32 -p tcp -m tcp --dport 80 -m comment --comment minirun:n1:c1 -j MASQUERADE",
                "iptables-legacy -t filter -A MINIRUN-FORWARD -d 10.0.0.2/32 ! -i br0 -o br0 -p tcp -m tcp --dport 80 -m comment --comment minirun:n1:c1 -j ACCEPT",
            ]
        );
        let removal = batch_commands("iptables", &remove_tag_plan(&parse_save(SAVE), "minirun:n1:c1"));
        assert_eq!(
            removal,
            [
                "iptables -t nat -D MINIRUN-DNAT -p tcp -m tcp --dport 8080 -m comment --comment minirun:n1:c1 -j DNAT --to-destination 10.0.0.2:80",
                "iptables -t filter -D MINIRUN-FORWARD -d 10.0.0.2/32 ! -i br0 -o br0 -p tcp -m tcp --dport 80 -m comment --comment minirun:n1:c1 -j ACCEPT",
            ]
        );
        assert_eq!(command_line("iptables", "filter", "-A X -m comment --comment \"a b\" -j Y"), "iptables -t filter -A X -m comment --comment 'a b' -j Y");
    }

    #[test]
    fn teardown_plans() {
        let d = parse_save(SAVE);
        // n1 is the only network: everything goes, chains last.
        let b = teardown_plan(&d, "n1");
        let lines: Vec<String> = b.lines().map(|(t, l)| format!("{t} {l}")).collect();
        assert_eq!(
            lines,
            [
                "nat -D PREROUTING -m addrtype --dst-type LOCAL -m comment --comment minirun -j MINIRUN-DNAT",
                r#"nat -D MINIRUN-DNAT -p tcp -m tcp --dport 8080 -m comment --comment "minirun:n1:c1" -j DNAT --to-destination 10.0.0.2:80"#,
                "nat -F MINIRUN-DNAT",
                "nat -X MINIRUN-DNAT",
                "filter -D FORWARD -m comment --comment minirun -j MINIRUN-FORWARD",
                r#"filter -D MINIRUN-FORWARD -o br0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "minirun:n1" -j ACCEPT"#,
                r#"filter -D MINIRUN-FORWARD -d 10.0.0.2/32 ! -i br0 -o br0 -p tcp -m tcp --dport 80 -m comment --comment "minirun:n1:c1" -j ACCEPT"#,
                "filter -F MINIRUN-FORWARD",
                "filter -X MINIRUN-FORWARD",
            ]
        );
        // Another network's teardown leaves n1 and the plumbing alone.
        let b = teardown_plan(&d, "n2");
        assert!(b.is_empty(), "{:?}", b);
        let b = remove_tag_plan(&d, "minirun:n1:c1");
        assert_eq!(b.lines().count(), 2);
    }
}
