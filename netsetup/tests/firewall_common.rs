//! Shared by the firewall_*.rs tests (included with `#[path]`): every test
//! body runs in a child process that is in a network namespace of its own,
//! so iptables and nftables start empty there and the host's tables are
//! never read or written.
//!
//! How: the test re-executes its own test binary, filtered to itself, with
//! `unshare(CLONE_NEWNET)` between fork and exec; the child sees an
//! environment variable saying it is the child, checks that its network
//! namespace is not its parent's, and runs the body. "Containers" and the
//! "outside host" are processes in further namespaces of their own (a
//! busybox httpd each), wired to bridges in the test's namespace with veth
//! pairs; the HTTP client is a thread that setns()es into the namespace it
//! speaks from.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minirun_netsetup::firewall::{self, Backend, DriverOptions, FirewallDriver, IptablesVariant, NetworkRules};

const CHILD_ENV: &str = "MINIRUN_FW_TEST_CHILD";
const PARENT_NETNS_ENV: &str = "MINIRUN_FW_TEST_PARENT_NETNS";
pub const BUSYBOX: &str = "/bin/busybox";

fn netns_id(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).map(|p| p.display().to_string()).unwrap_or_default()
}

pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.exists())
}

/// Runs `body` in a fresh network namespace (see the module doc). Skips,
/// passing, when not root, when a tool in `needs` is missing, or when
/// namespaces cannot be made.
pub fn in_netns(test: &str, needs: &[&str], body: impl FnOnce()) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(test) {
        let parent = std::env::var(PARENT_NETNS_ENV).expect("parent netns");
        let mine = netns_id("self");
        assert!(!mine.is_empty() && mine != parent, "refusing to run: not in a network namespace of our own ({mine})");
        body();
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping {test}: needs root");
        return;
    }
    for t in needs {
        if tool(t).is_none() && !Path::new(t).exists() {
            eprintln!("skipping {test}: {t} not installed");
            return;
        }
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .env(PARENT_NETNS_ENV, netns_id("self"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipping {test}: cannot make a network namespace: {e}");
            return;
        }
    };
    let out = wait_with_timeout(child, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(out.status.success(), "{test} failed in its network namespace ({})", out.status);
    assert!(stdout.contains("1 passed"), "{test} did not run in the child");
}

fn wait_with_timeout(mut child: Child, limit: Duration) -> std::process::Output {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output { status, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() }
}

/// `sh -c script` in the current namespace; panics on failure.
pub fn sh(script: &str) -> String {
    let (ok, out) = try_sh(script);
    assert!(ok, "`{script}` failed: {out}");
    out
}

pub fn try_sh(script: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(script).output().expect("sh");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The three backends the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    IptablesLegacy,
    IptablesNft,
    Nftables,
}

impl Flavour {
    pub fn tools(self) -> &'static [&'static str] {
        match self {
            Flavour::IptablesLegacy => &["iptables-legacy", "iptables-legacy-save", "iptables-legacy-restore", "ip"],
            Flavour::IptablesNft => &["iptables-nft", "iptables-nft-save", "iptables-nft-restore", "nft", "ip"],
            Flavour::Nftables => &["nft", "ip"],
        }
    }

    pub fn driver(self, lock_dir: &Path) -> Box<dyn FirewallDriver> {
        let (backend, iptables_variant) = match self {
            Flavour::IptablesLegacy => (Backend::Iptables, Some(IptablesVariant::Legacy)),
            Flavour::IptablesNft => (Backend::Iptables, Some(IptablesVariant::Nft)),
            Flavour::Nftables => (Backend::Nftables, None),
        };
        firewall::driver_with(DriverOptions { backend: Some(backend), iptables_variant, lock_path: lock_dir.join("fw.lock") })
            .expect("driver")
    }

    /// The iptables command another engine on this "host" would use: where
    /// the tests put a DROP policy and foreign rules.
    pub fn foreign_iptables(self) -> &'static [&'static str] {
        match self {
            Flavour::IptablesLegacy => &["iptables-legacy"],
            Flavour::IptablesNft => &["iptables-nft"],
            // Both: the mark rule has to work in either.
            Flavour::Nftables => &["iptables-legacy", "iptables-nft"],
        }
    }
}

/// What another engine (Docker, say) would have put there: a FORWARD
/// policy of DROP, its own chains and rules in filter and nat, and for
/// nftables a table of its own.
pub fn foreign_state(flavour: Flavour) {
    for ipt in flavour.foreign_iptables() {
        if tool(ipt).is_none() {
            continue;
        }
        sh(&format!(
            "{ipt} -w -P FORWARD DROP && {ipt} -w -N FOREIGN-FWD && {ipt} -w -A FORWARD -j FOREIGN-FWD && \
             {ipt} -w -A FOREIGN-FWD -i foreign0 -j ACCEPT && \
             {ipt} -w -t nat -N FOREIGN-NAT && {ipt} -w -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j FOREIGN-NAT && \
             {ipt} -w -t nat -A POSTROUTING -s 10.99.0.0/16 ! -o foreign0 -j MASQUERADE"
        ));
    }
    if flavour == Flavour::Nftables || flavour == Flavour::IptablesNft {
        sh("nft add table inet foreign && nft add chain inet foreign fchain '{ type filter hook forward priority 10; policy accept; }' && \
            nft add rule inet foreign fchain iifname foreign0 counter accept");
    }
}

/// Everything in every table, counters zeroed and comments dropped, for
/// before/after comparisons.
pub fn snapshot() -> String {
    let mut out = String::new();
    for save in ["iptables-legacy-save", "iptables-nft-save"] {
        if tool(save).is_some() {
            out.push_str(&format!("== {save}\n"));
            for l in sh(save).lines().filter(|l| !l.starts_with('#')) {
                out.push_str(&zero_counters(l));
                out.push('\n');
            }
        }
    }
    if tool("nft").is_some() {
        out.push_str("== nft\n");
        for l in sh("nft -s list ruleset").lines().filter(|l| !l.trim_start().starts_with('#')) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

fn zero_counters(line: &str) -> String {
    match (line.find('['), line.rfind(']')) {
        (Some(a), Some(b)) if line.starts_with(':') && a < b => format!("{}[0:0]", &line[..a]),
        _ => line.to_string(),
    }
}

pub fn lines_with(lines: &[String], needle: &str) -> Vec<String> {
    lines.iter().filter(|l| l.contains(needle)).cloned().collect()
}

/// A process in a network namespace of its own.
pub struct Netns {
    pub name: String,
    child: Child,
    ns: File,
}

impl Netns {
    /// Starts `program args` in a new network namespace; it dies with the test.
    pub fn spawn(name: &str, program: &str, args: &[&str]) -> Netns {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::unshare(libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn namespace process");
        // Wait until it has left our namespace.
        let ours = netns_id("self");
        let pid = child.id().to_string();
        let start = Instant::now();
        while netns_id(&pid) == ours || netns_id(&pid).is_empty() {
            assert!(start.elapsed() < Duration::from_secs(5), "{name} never got its namespace");
            std::thread::sleep(Duration::from_millis(5));
        }
        let ns = File::open(format!("/proc/{pid}/ns/net")).expect("ns file");
        Netns { name: name.to_string(), child, ns }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `sh -c script` inside this namespace.
    pub fn sh(&self, script: &str) -> String {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        let fd = self.ns.as_raw_fd();
        // SAFETY: setns is async-signal-safe; fd stays open in the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().expect("sh in netns");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "[{}] `{script}` failed: {text}", self.name);
        text
    }

    /// An HTTP GET from inside this namespace.
    pub fn get(&self, addr: &str, path: &str) -> Result<String, String> {
        http_get(Some(&self.ns), addr, path)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` from `addr` ("ip:port"), from the namespace `ns` (or the
/// test's own): the body on a 200, else why not. A thread of its own does
/// the setns, so the test's namespace is untouched.
pub fn http_get(ns: Option<&File>, addr: &str, path: &str) -> Result<String, String> {
    let addr: SocketAddr = addr.parse().expect("addr");
    let fd = ns.map(|f| f.as_raw_fd());
    let path = path.to_string();
    std::thread::spawn(move || {
        if let Some(fd) = fd {
            // SAFETY: setns on a descriptor owned by the caller, which waits for us.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
        }
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(1500)).map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).map_err(|e| format!("read from {addr}: {e}"))?;
        // CGI output ends its headers with a bare "\n\n".
        let resp = resp.replace("\r\n", "\n");
        let (head, body) = resp.split_once("\n\n").unwrap_or((resp.as_str(), ""));
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            return Err(format!("{addr}: {head}"));
        }
        Ok(body.trim().to_string())
    })
    .join()
    .expect("client thread")
}

pub fn host_get(addr: &str, path: &str) -> Result<String, String> {
    http_get(None, addr, path)
}

/// The test's network namespace as a "host": two ordinary networks, an
/// internal one, four containers serving their names over HTTP on port 80,
/// and an "outside host" (192.0.2.2, serving the client's address on
/// /cgi-bin/ip) that has no route to any container subnet, so only
/// MASQUERADEd traffic gets answers.
pub struct Topology {
    pub outside: Netns,
    pub a1: Netns,
    pub a2: Netns,
    pub b1: Netns,
    pub i1: Netns,
    pub net_a: NetworkRules,
    pub net_b: NetworkRules,
    pub net_i: NetworkRules,
    _dir: tempfile::TempDir,
}

pub const HOST_IP: &str = "192.0.2.1";
pub const OUTSIDE_IP: &str = "192.0.2.2";

fn web_root(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(root.join("cgi-bin")).unwrap();
    std::fs::write(root.join("index.html"), format!("{name}\n")).unwrap();
    let cgi = root.join("cgi-bin/ip");
    std::fs::write(&cgi, "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\" | sed 's/^\\[::ffff://; s/\\]$//'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755)).unwrap();
    root
}

fn httpd(name: &str, dir: &Path, port: u16) -> Netns {
    let root = web_root(dir, name);
    Netns::spawn(name, BUSYBOX, &["httpd", "-f", "-p", &port.to_string(), "-h", root.to_str().unwrap()])
}

fn container(dir: &Path, name: &str, bridge: &str, ip: &str, gw: &str) -> Netns {
    let ns = httpd(name, dir, 80);
    let veth = format!("v{name}");
    // Hairpin mode, as Docker sets it without its proxy: with br_netfilter
    // loaded, a container reaching itself through a published port is
    // DNATed at the bridge and sent back out of the port it came in by.
    sh(&format!(
        "ip link add {veth} type veth peer name eth0 netns {} && ip link set {veth} master {bridge} up && \
         ip link set {veth} type bridge_slave hairpin on",
        ns.pid()
    ));
    ns.sh(&format!(
        "ip link set lo up && ip addr add {ip}/24 dev eth0 && ip link set eth0 up && ip route add default via {gw}"
    ));
    ns
}

pub fn net(network: &str, bridge: &str, subnet: &str, internal: bool) -> NetworkRules {
    NetworkRules { network: network.into(), bridge: bridge.into(), subnet: subnet.parse().unwrap(), internal }
}

impl Topology {
    pub fn build() -> Topology {
        let dir = tempfile::tempdir().unwrap();
        sh("ip link set lo up && echo 1 > /proc/sys/net/ipv4/ip_forward");
        for (br, addr) in [("mrA", "10.88.1.1/24"), ("mrB", "10.88.2.1/24"), ("mrI", "10.88.3.1/24")] {
            sh(&format!("ip link add {br} type bridge && ip addr add {addr} dev {br} && ip link set {br} up"));
            // What the caller does for ports published on 127.0.0.1.
            sh(&format!("echo 1 > /proc/sys/net/ipv4/conf/{br}/route_localnet"));
        }
        let outside = httpd("outside", dir.path(), 8000);
        sh(&format!(
            "ip link add up0 type veth peer name up1 netns {} && ip addr add {HOST_IP}/24 dev up0 && ip link set up0 up",
            outside.pid()
        ));
        outside.sh(&format!("ip link set lo up && ip addr add {OUTSIDE_IP}/24 dev up1 && ip link set up1 up"));
        let a1 = container(dir.path(), "A1", "mrA", "10.88.1.2", "10.88.1.1");
        let a2 = container(dir.path(), "A2", "mrA", "10.88.1.3", "10.88.1.1");
        let b1 = container(dir.path(), "B1", "mrB", "10.88.2.2", "10.88.2.1");
        let i1 = container(dir.path(), "I1", "mrI", "10.88.3.2", "10.88.3.1");
        let t = Topology {
            outside,
            a1,
            a2,
            b1,
            i1,
            net_a: net("fwa", "mrA", "10.88.1.0/24", false),
            net_b: net("fwb", "mrB", "10.88.2.0/24", false),
            net_i: net("fwi", "mrI", "10.88.3.0/24", true),
            _dir: dir,
        };
        // The servers are up (directly reachable from the host, no forwarding involved).
        for (ip, name) in [("10.88.1.2", "A1"), ("10.88.1.3", "A2"), ("10.88.2.2", "B1"), ("10.88.3.2", "I1")] {
            wait_for(|| host_get(&format!("{ip}:80"), "/").as_deref() == Ok(name), &format!("{name}'s httpd"));
        }
        wait_for(|| host_get(&format!("{OUTSIDE_IP}:8000"), "/").as_deref() == Ok("outside"), "outside httpd");
        t
    }
}

pub fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts `r` is the body `want`.
#[track_caller]
pub fn expect_body(r: Result<String, String>, want: &str, what: &str) {
    assert_eq!(r.as_deref(), Ok(want), "{what}");
}

#[track_caller]
pub fn expect_fail(r: Result<String, String>, what: &str) {
    assert!(r.is_err(), "{what}: expected no answer, got {r:?}");
}
