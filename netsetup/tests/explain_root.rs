//! `explain` against the real thing, per firewall backend, each test in a
//! throwaway network namespace of its own (see firewall_common.rs), so the
//! bridge, the veths, the sysctls and every table the commands touch are
//! that namespace's and vanish with it, whatever happens; the state root is
//! a temporary directory, and the "containers" are processes in further
//! namespaces, killed when the test ends.
//!
//! 1. `explain_then_attach_*`: what `attach_commands` says (address, veth,
//!    MAC, MTU, bridge, route, each firewall command) is what `attach` then
//!    does, found in the kernel (`ip -j`) and in `list_rules()`, and every
//!    rule listed after that first attach (the container's port rules
//!    among them) was explained; explaining changed nothing. Then a second container on the existing bridge, one in the
//!    place of a container whose process died, and `detach_commands`.
//! 2. `explained_script_works_*`: the explained commands, run with `sh -e`
//!    in a fresh namespace for another network, connect a container that
//!    pings its gateway and serves on its published port, and leave the same
//!    rules and links as a real attach does.

#[path = "firewall_common.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use minirun_netsetup::attach::{AttachRequest, NetContext, DEFAULT_NETWORK};
use minirun_netsetup::explain::{attach_commands, detach_commands};
use minirun_netsetup::firewall::{port_tag, Backend, BackendChoice, IptablesVariant};
use minirun_netsetup::ipam::LeaseOwner;
use minirun_netsetup::ports::{PortMapping, Protocol};
use serde_json::Value;

fn choice(flavour: Flavour) -> BackendChoice {
    match flavour {
        Flavour::IptablesLegacy => BackendChoice { backend: Some(Backend::Iptables), iptables_variant: Some(IptablesVariant::Legacy) },
        Flavour::IptablesNft => BackendChoice { backend: Some(Backend::Iptables), iptables_variant: Some(IptablesVariant::Nft) },
        Flavour::Nftables => BackendChoice { backend: Some(Backend::Nftables), iptables_variant: None },
    }
}

fn tcp(host_port: u16, container_port: u16) -> PortMapping {
    PortMapping { host_ip: None, host_port, container_port, protocol: Protocol::Tcp }
}

/// A "container": busybox httpd serving `name` on port 80, in a network
/// namespace of its own.
fn container(dir: &Path, name: &str) -> Netns {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), format!("{name}\n")).unwrap();
    Netns::spawn(name, BUSYBOX, &["httpd", "-f", "-p", "80", "-h", root.to_str().unwrap()])
}

fn netns_path(ns: &Netns) -> String {
    format!("/proc/{}/ns/net", ns.pid())
}

fn attach(ctx: &NetContext, network: &str, id: &str, ns: &Netns, ports: &[PortMapping]) -> minirun_netsetup::attach::Attachment {
    let path = PathBuf::from(netns_path(ns));
    let owner = LeaseOwner::of_process(ns.pid() as i32).expect("container process");
    let req = AttachRequest { network, container_id: id, netns: &path, owner, ports, address: None };
    ctx.attach(&req).unwrap_or_else(|e| panic!("attach {id}: {e}"))
}

/// Splits a command line as sh does (quotes; the commands have no expansions).
fn sh_words(line: &str) -> Vec<String> {
    let (mut words, mut cur, mut in_word, mut quote) = (Vec::new(), String::new(), false, None);
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

fn commands(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).filter(|l| !l.starts_with('#')).collect()
}

/// The one command starting with `prefix`.
fn command<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    let found: Vec<&str> = commands(lines).into_iter().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "one command starting with {prefix:?} in\n{}", lines.join("\n"));
    found[0]
}

/// The word after `key` in a command.
fn after(line: &str, key: &str) -> String {
    let w = sh_words(line);
    let i = w.iter().position(|x| x == key).unwrap_or_else(|| panic!("no {key} in {line}"));
    w[i + 1].clone()
}

fn firewall_commands(lines: &[String]) -> Vec<&str> {
    commands(lines).into_iter().filter(|l| l.starts_with("iptables") || l.starts_with("nft ")).collect()
}

fn ip_json(ns: Option<&Netns>, args: &str) -> Value {
    let cmd = format!("ip -j -d {args}");
    let out = match ns {
        Some(ns) => ns.sh(&cmd),
        None => sh(&cmd),
    };
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{cmd}: {e}: {out}"))
}

/// What the kernel has for a container: (host veth, its master, its MTU,
/// hairpin, eth0's MAC, eth0's address, eth0's MTU, default gateway).
fn real_link_facts(veth: &str, ns: &Netns) -> BTreeMap<&'static str, String> {
    let host = &ip_json(None, &format!("link show dev {veth}"))[0];
    let eth0 = &ip_json(Some(ns), "addr show dev eth0")[0];
    let route = &ip_json(Some(ns), "route show default")[0];
    let inet = eth0["addr_info"].as_array().unwrap().iter().find(|a| a["family"] == "inet").expect("eth0 has an IPv4 address");
    let s = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    BTreeMap::from([
        ("veth", s(&host["ifname"])),
        ("master", s(&host["master"])),
        ("veth mtu", s(&host["mtu"])),
        ("hairpin", s(&host["linkinfo"]["info_slave_data"]["hairpin"])),
        ("mac", s(&eth0["address"])),
        ("address", format!("{}/{}", s(&inet["local"]), inet["prefixlen"])),
        ("mtu", s(&eth0["mtu"])),
        ("gateway", s(&route["gateway"])),
    ])
}

/// The same facts as the explanation states them.
fn explained_link_facts(lines: &[String], enter: &str) -> BTreeMap<&'static str, String> {
    let veth = command(lines, "ip link add name mr");
    let mac = command(lines, &format!("{enter}ip link set dev eth0 address"));
    let addr = command(lines, &format!("{enter}ip addr add"));
    let route = command(lines, &format!("{enter}ip route add default via"));
    let hairpin = command(lines, "ip link set dev mr");
    assert!(hairpin.ends_with("type bridge_slave hairpin on"), "{hairpin}");
    BTreeMap::from([
        ("veth", after(veth, "name")),
        ("master", after(veth, "master")),
        ("veth mtu", after(veth, "mtu")),
        ("hairpin", "true".to_string()),
        ("mac", after(mac, "address")),
        ("address", after(addr, "add")),
        ("mtu", after(veth, "mtu")),
        ("gateway", after(route, "via")),
    ])
}

/// A list_rules line as words, and the iptables variant it names, if any
/// (the nftables backend lists its iptables rules as `iptables-legacy ...`
/// and `iptables-nft ...`; the iptables backend's lines start at `-t`).
fn listed_words(line: &str) -> (Option<String>, Vec<String>) {
    let w = sh_words(line);
    match w.first().and_then(|x| x.strip_prefix("iptables-")) {
        Some(variant) => (Some(variant.to_string()), w[1..].to_vec()),
        None => (None, w),
    }
}

/// The variant an explained iptables command runs: plain `iptables` is
/// whichever this host's `iptables` is.
fn variant_of(program: &str) -> String {
    if let Some(v) = program.strip_prefix("iptables-") {
        return v.to_string();
    }
    let real = std::fs::canonicalize(tool("iptables").expect("iptables")).unwrap();
    let name = real.file_name().unwrap().to_string_lossy().into_owned();
    if name.contains("legacy") || (!name.contains("nft") && !sh("iptables -V").contains("nf_tables")) {
        "legacy".into()
    } else {
        "nft".into()
    }
}

/// How `list_rules` shows what an explained firewall command adds.
#[derive(Debug)]
enum Listed {
    /// An iptables rule or chain: the variant, and the words after the
    /// program (`-I CHAIN 1` is listed as `-A CHAIN`).
    Words(String, Vec<String>),
    /// An nft rule or element line (an element under `set` or `map`).
    Lines(Vec<String>),
    /// An nft base chain: its line starts so.
    Hook(String),
    /// A table, set, map or plain chain: not listed, only in the table.
    Declaration { kind: String, name: String },
}

fn listed_form(cmd: &str) -> Listed {
    let w = sh_words(cmd);
    if w[0].starts_with("iptables") {
        let mut want = w[1..].to_vec();
        match want[2].as_str() {
            "-N" | "-A" => {}
            "-I" => {
                assert_eq!(want[4], "1", "{cmd}");
                want[2] = "-A".into();
                want.remove(4);
            }
            other => panic!("unexpected iptables operation {other} in {cmd}"),
        }
        return Listed::Words(variant_of(&w[0]), want);
    }
    assert_eq!(w[0], "nft", "{cmd}");
    assert!(w[1] == "add" || w[1] == "insert", "{cmd}");
    assert_eq!((w[3].as_str(), w[4].as_str()), ("ip", "minirun"), "{cmd}");
    match w[2].as_str() {
        "table" => Listed::Declaration { kind: "table".into(), name: "minirun".into() },
        "chain" if w.len() > 6 => Listed::Hook(format!("ip minirun {}: type ", w[5])),
        "chain" | "set" | "map" => Listed::Declaration { kind: w[2].clone(), name: w[5].clone() },
        "rule" => Listed::Lines(vec![format!("ip minirun {}: {}", w[5], w[6..].join(" "))]),
        "element" => {
            let inner = w[6].trim_start_matches("{ ").trim_end_matches(" }");
            Listed::Lines(vec![format!("ip minirun set {}: {inner}", w[5]), format!("ip minirun map {}: {inner}", w[5])])
        }
        other => panic!("unexpected nft object {other} in {cmd}"),
    }
}

fn is_listed_as(form: &Listed, line: &str) -> bool {
    match form {
        Listed::Words(variant, w) => {
            let (listed_variant, words) = listed_words(line);
            words == *w && (listed_variant.is_none() || listed_variant.as_ref() == Some(variant))
        }
        Listed::Lines(l) => l.iter().any(|x| x == line),
        Listed::Hook(prefix) => line.starts_with(prefix.as_str()),
        Listed::Declaration { .. } => false,
    }
}

/// Checks that every explained firewall command is in place: found among
/// the listed rules, or for a declaration, in minirun's nft table.
fn assert_explained_rules_in_place(explained: &[&str], listed: &[String]) {
    let nft_table = if explained.iter().any(|c| c.starts_with("nft ")) { sh("nft -s list table ip minirun") } else { String::new() };
    for cmd in explained {
        match listed_form(cmd) {
            Listed::Declaration { kind, name } if kind == "table" => assert!(nft_table.starts_with(&format!("table ip {name} {{")), "{cmd}"),
            Listed::Declaration { kind, name } => {
                assert!(nft_table.contains(&format!("\t{kind} {name} {{")), "{cmd}: not in\n{nft_table}")
            }
            form => assert!(
                listed.iter().any(|l| is_listed_as(&form, l)),
                "explained `{cmd}` ({form:?}) is not in the rules:\n{}",
                listed.join("\n")
            ),
        }
    }
}

/// Checks that every listed rule is explained.
fn assert_listed_rules_explained(explained: &[&str], listed: &[String]) {
    let forms: Vec<Listed> = explained.iter().map(|c| listed_form(c)).collect();
    for line in listed {
        assert!(forms.iter().any(|f| is_listed_as(f, line)), "`{line}` is in the rules but not explained in\n{}", explained.join("\n"));
    }
}

/// The container's port rules: each explained one is listed, and each listed one explained.
fn port_rules_both_ways(explained: &[&str], listed: &[String], tag: &str) {
    let tagged: Vec<String> = listed
        .iter()
        .filter(|l| sh_words(l).iter().any(|w| w == tag) || l.contains(&format!("comment \"{tag}\"")))
        .cloned()
        .collect();
    assert!(!tagged.is_empty(), "no rules tagged {tag}:\n{}", listed.join("\n"));
    let mine: Vec<&str> = explained.iter().copied().filter(|c| c.contains(tag)).collect();
    assert_explained_rules_in_place(&mine, listed);
    assert_listed_rules_explained(&mine, &tagged);
    assert_eq!(mine.len(), tagged.len(), "explained {mine:#?}, listed {tagged:#?}");
}

/// Everything that explaining must leave alone.
fn host_state(root: &Path) -> String {
    let mut files: Vec<String> = walk(root);
    files.sort();
    format!(
        "files: {files:?}\nlinks: {}\nforward: {}\n{}",
        sh("ip -br link"),
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        snapshot()
    )
}

fn walk(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            out.push(e.path().display().to_string());
            out.extend(walk(&e.path()));
        }
    }
    out
}

fn ping(ns: &Netns, addr: &str) -> bool {
    (0..3).any(|_| try_ns_sh(ns, &format!("{BUSYBOX} ping -c1 -W1 {addr}")))
}

fn try_ns_sh(ns: &Netns, cmd: &str) -> bool {
    let out = std::process::Command::new("nsenter").arg(format!("--net={}", netns_path(ns))).args(["sh", "-c", cmd]).output().unwrap();
    out.status.success()
}

fn print_script(what: &str, lines: &[String]) {
    println!("---- {what}\n{}\n----", lines.join("\n"));
}

fn explain_then_attach(flavour: Flavour) {
    sh("ip link set lo up");
    // Another engine's rules and FORWARD policy of DROP, as on a real host.
    foreign_state(flavour);
    let dir = tempfile::tempdir().unwrap();
    let ctx = NetContext { state_root: dir.path().join("state"), firewall: choice(flavour) };
    let pid = std::process::id();
    let (id_a, id_b, id_c) = (format!("xp{pid}a"), format!("xp{pid}b"), format!("xp{pid}c"));
    let a = container(dir.path(), "A");
    let ports = [tcp(8080, 80)];

    // 1. Explaining changes nothing: no network record, lease, link, sysctl or rule.
    let pristine = host_state(&ctx.state_root);
    let explained = attach_commands(&ctx, DEFAULT_NETWORK, &id_a, &netns_path(&a), &ports).unwrap();
    print_script("attach A", &explained);
    assert_eq!(host_state(&ctx.state_root), pristine, "explaining changed the host");
    assert!(!ctx.state_root.exists());
    assert!(explained.iter().all(|l| !l.starts_with('#') || l.starts_with("# ")));

    let att = attach(&ctx, DEFAULT_NETWORK, &id_a, &a, &ports);
    let enter = format!("nsenter --net={} ", netns_path(&a));

    // The network the explanation announced is the one attach made.
    let network = ctx.network(DEFAULT_NETWORK).unwrap();
    assert!(
        explained.iter().any(|l| l.starts_with(&format!(
            "# the default network bridge is made on first use: bridge {}, subnet {}",
            network.bridge, network.subnet
        ))),
        "{explained:#?}"
    );
    // Address, veth, MAC, MTU, route: as explained, in the kernel and in the record.
    let facts = real_link_facts(&att.host_veth, &a);
    assert_eq!(explained_link_facts(&explained, &enter), facts);
    assert_eq!(facts["address"], att.address.to_string());
    assert_eq!(facts["mac"], att.mac);
    assert_eq!((facts["veth"].as_str(), facts["master"].as_str()), (att.host_veth.as_str(), att.bridge.as_str()));
    // The bridge: made as explained, with the gateway's address.
    let bridge_add = command(&explained, &format!("ip link add name {} ", network.bridge));
    assert!(bridge_add.ends_with(" up type bridge"), "{bridge_add}");
    let br = &ip_json(None, &format!("addr show dev {}", network.bridge))[0];
    assert_eq!(br["linkinfo"]["info_kind"], "bridge");
    assert_eq!(br["mtu"].to_string(), after(bridge_add, "mtu"));
    let gw = format!("{}/{}", network.gateway, network.subnet.prefix_len());
    assert_eq!(command(&explained, "ip addr add"), format!("ip addr add {gw} brd + dev {}", network.bridge));
    assert!(br["addr_info"].as_array().unwrap().iter().any(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]) == gw));
    // Forwarding is on, as explained.
    assert_eq!(std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{}/route_localnet", network.bridge)).unwrap().trim(), "1");
    assert!(commands(&explained).contains(&format!("sysctl -w net.ipv4.conf.{}.route_localnet=1", network.bridge).as_str()));

    // Every explained firewall command is in place; the container's port rules are all explained.
    let fw = ctx.firewall().unwrap();
    let listed = fw.list_rules().unwrap();
    let fw_explained = firewall_commands(&explained);
    assert!(fw_explained.iter().any(|c| c.contains("MASQUERADE") || c.contains("masquerade")), "{fw_explained:#?}");
    assert_explained_rules_in_place(&fw_explained, &listed);
    // A's attach was minirun's first here: everything it has in the tables is explained.
    assert_listed_rules_explained(&fw_explained, &listed);
    let tag_a = port_tag(&network.name, &id_a);
    port_rules_both_ways(&fw_explained, &listed, &tag_a);
    // And it works: the published port answers on the host's 127.0.0.1.
    wait_for(|| host_get("127.0.0.1:8080", "/").as_deref() == Ok("A"), "A through 127.0.0.1:8080");
    assert!(ping(&a, &network.gateway.to_string()), "A pings its gateway");

    // 2. A second container: the bridge exists, so its first-use steps are not explained.
    let b = container(dir.path(), "B");
    let before = host_state(&ctx.state_root);
    let explained_b = attach_commands(&ctx, DEFAULT_NETWORK, &id_b, &netns_path(&b), &[]).unwrap();
    print_script("attach B", &explained_b);
    assert_eq!(host_state(&ctx.state_root), before, "explaining changed the host");
    assert!(!commands(&explained_b).iter().any(|c| c.ends_with("type bridge") || c.contains("ip addr add") && c.contains(&network.bridge)));
    assert!(firewall_commands(&explained_b).is_empty(), "{explained_b:#?}");
    assert!(explained_b.iter().any(|l| l.starts_with(&format!("# bridge {} exists:", network.bridge))), "{explained_b:#?}");
    assert!(!explained_b.iter().any(|l| l.contains("made on first use: bridge")), "the network is stored now");
    let att_b = attach(&ctx, DEFAULT_NETWORK, &id_b, &b, &[]);
    assert_eq!(explained_link_facts(&explained_b, &format!("nsenter --net={} ", netns_path(&b))), real_link_facts(&att_b.host_veth, &b));

    // 3. B's process dies: attach reclaims it first, and C gets its address.
    drop(b);
    let c = container(dir.path(), "C");
    let explained_c = attach_commands(&ctx, DEFAULT_NETWORK, &id_c, &netns_path(&c), &[]).unwrap();
    print_script("attach C", &explained_c);
    assert!(explained_c.iter().any(|l| l.starts_with(&format!("# first, container {id_b} is gone"))), "{explained_c:#?}");
    assert!(explained_c.iter().any(|l| l.starts_with(&format!("# detach container {id_b} from network bridge"))), "{explained_c:#?}");
    let att_c = attach(&ctx, DEFAULT_NETWORK, &id_c, &c, &[]);
    assert_eq!(att_c.address, att_b.address, "the dead container's address is free again");
    assert_eq!(explained_link_facts(&explained_c, &format!("nsenter --net={} ", netns_path(&c))), real_link_facts(&att_c.host_veth, &c));

    // 4. Detach: the explained removals are exactly A's port rules and its veth.
    let before = host_state(&ctx.state_root);
    let undo = detach_commands(&ctx, &id_a).unwrap();
    print_script("detach A", &undo);
    assert_eq!(host_state(&ctx.state_root), before, "explaining changed the host");
    let removals = firewall_commands(&undo);
    let listed = fw.list_rules().unwrap();
    let tagged = listed.iter().filter(|l| l.contains(&tag_a)).count();
    assert_eq!(removals.len(), tagged, "{removals:#?} for {listed:#?}");
    for r in &removals {
        assert!(r.contains(&tag_a) || r.starts_with("nft delete element"), "{r}");
        if r.starts_with("iptables") {
            let added = sh_words(r)[1..].iter().map(|w| if w == "-D" { "-A".to_string() } else { w.clone() }).collect::<Vec<_>>();
            assert!(listed.iter().any(|l| listed_words(l).1 == added), "{r}");
        } else {
            let key = sh_words(r)[6].trim_start_matches("{ ").trim_end_matches(" }").to_string();
            assert!(listed.iter().any(|l| l.contains(&format!(": {key} comment \"{tag_a}\""))), "{r}: {listed:#?}");
        }
    }
    assert_eq!(command(&undo, "ip link delete"), format!("ip link delete dev {}", att.host_veth));
    ctx.detach(&id_a).unwrap();
    assert!(fw.list_rules().unwrap().iter().all(|l| !l.contains(&tag_a)));
    assert!(!try_sh(&format!("ip link show dev {}", att.host_veth)).0);
    assert_eq!(
        detach_commands(&ctx, &id_a).unwrap(),
        [format!("# container {id_a} is not attached to any network: detach has nothing to do")]
    );

    // Clean up: the tables are as before minirun.
    ctx.detach(&id_c).unwrap();
    ctx.remove_network(DEFAULT_NETWORK).unwrap();
    drop((a, c));
    assert_eq!(fw.list_rules().unwrap(), Vec::<String>::new());
}

fn explained_script_works(flavour: Flavour) {
    sh("ip link set lo up");
    foreign_state(flavour);
    let dir = tempfile::tempdir().unwrap();
    let ctx = NetContext { state_root: dir.path().join("state"), firewall: choice(flavour) };
    let pid = std::process::id();
    let name = format!("xp-{pid}");
    let id = format!("xp{pid}s");
    // A network of its own, unlike the default one of the other test.
    let network = ctx.store().unwrap().create(&name, Some("10.123.0.0/24".parse().unwrap()), false, &[]).unwrap();
    let ports = [tcp(8081, 80)];

    // The explained commands, run by a shell that stops at the first failure.
    let s = container(dir.path(), "S");
    let explained = attach_commands(&ctx, &name, &id, &netns_path(&s), &ports).unwrap();
    print_script("script", &explained);
    let script = dir.path().join("attach.sh");
    std::fs::write(&script, explained.join("\n") + "\n").unwrap();
    let (ok, out) = try_sh(&format!("sh -e {}", script.display()));
    assert!(ok, "the explained script failed:\n{out}");

    // It works like the real thing: the container pings its gateway, serves
    // on its published port, and leaves the others' rules alone.
    assert!(ping(&s, &network.gateway.to_string()), "the scripted container pings its gateway");
    wait_for(|| host_get("127.0.0.1:8081", "/").as_deref() == Ok("S"), "S through 127.0.0.1:8081");
    let fw = ctx.firewall().unwrap();
    let mut scripted_rules = fw.list_rules().unwrap();
    scripted_rules.sort();
    let scripted_links = real_link_facts(&minirun_netsetup::attach::host_veth_name(&id), &s);
    // Nothing of minirun's own state was made by the script.
    assert!(ctx.attachments().unwrap().is_empty());

    // Undo it, then attach for real, from the same starting point.
    sh(&format!("ip link delete dev {}", scripted_links["veth"]));
    fw.teardown_network(&minirun_netsetup::firewall::NetworkRules {
        network: network.name.clone(),
        bridge: network.bridge.clone(),
        subnet: network.subnet,
        internal: false,
    })
    .unwrap();
    sh(&format!("ip link delete dev {}", network.bridge));
    assert_eq!(fw.list_rules().unwrap(), Vec::<String>::new());
    drop(s);
    let r = container(dir.path(), "S");
    let real = attach(&ctx, &name, &id, &r, &ports);
    assert!(ping(&r, &network.gateway.to_string()), "the attached container pings its gateway");
    wait_for(|| host_get("127.0.0.1:8081", "/").as_deref() == Ok("S"), "S through 127.0.0.1:8081 after attach");
    let mut real_rules = fw.list_rules().unwrap();
    real_rules.sort();
    assert_eq!(scripted_rules, real_rules, "the script and attach leave different rules");
    assert_eq!(scripted_links, real_link_facts(&real.host_veth, &r), "the script and attach wire the container differently");

    ctx.detach(&id).unwrap();
    ctx.remove_network(&name).unwrap();
    drop(r);
}

#[test]
fn explain_then_attach_iptables_legacy() {
    let f = Flavour::IptablesLegacy;
    in_netns("explain_then_attach_iptables_legacy", &[f.tools(), &[BUSYBOX, "nsenter"]].concat(), || explain_then_attach(f));
}

#[test]
fn explain_then_attach_iptables_nft() {
    let f = Flavour::IptablesNft;
    in_netns("explain_then_attach_iptables_nft", &[f.tools(), &[BUSYBOX, "nsenter"]].concat(), || explain_then_attach(f));
}

#[test]
fn explain_then_attach_nftables() {
    let f = Flavour::Nftables;
    in_netns("explain_then_attach_nftables", &[f.tools(), &[BUSYBOX, "nsenter"]].concat(), || explain_then_attach(f));
}

#[test]
fn explained_script_works_iptables_legacy() {
    let f = Flavour::IptablesLegacy;
    in_netns("explained_script_works_iptables_legacy", &[f.tools(), &[BUSYBOX, "nsenter", "sysctl"]].concat(), || {
        explained_script_works(f)
    });
}

#[test]
fn explained_script_works_iptables_nft() {
    let f = Flavour::IptablesNft;
    in_netns("explained_script_works_iptables_nft", &[f.tools(), &[BUSYBOX, "nsenter", "sysctl"]].concat(), || {
        explained_script_works(f)
    });
}

#[test]
fn explained_script_works_nftables() {
    let f = Flavour::Nftables;
    in_netns("explained_script_works_nftables", &[f.tools(), &[BUSYBOX, "nsenter", "sysctl"]].concat(), || {
        explained_script_works(f)
    });
}
