//! Running the firewall tools, finding them, and probing the kernel.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{FirewallError, IptablesVariant};

static SPAWNS: AtomicU64 = AtomicU64::new(0);

/// How many firewall tool processes this process has started so far.
pub fn process_spawns() -> u64 {
    SPAWNS.load(Ordering::Relaxed)
}

/// Where the tools live when PATH (a service's, a test's) lacks the sbin dirs.
const EXTRA_DIRS: [&str; 5] = ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"];

pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

pub(crate) fn need_tool(name: &str) -> Result<PathBuf, FirewallError> {
    find_tool(name).ok_or_else(|| FirewallError::NotAvailable(format!("{name} not found (install iptables / nftables)")))
}

/// What a successful run printed.
pub(crate) struct Ran {
    pub stdout: String,
}

/// Runs `program args`, feeding `stdin`; a non-zero exit is an error carrying
/// stderr. The C locale keeps the tools' messages parseable. With
/// MINIRUN_FIREWALL_TRACE set, each command, its input and its duration go
/// to stderr.
pub(crate) fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> Result<Ran, FirewallError> {
    let shown = || {
        let mut s = program.display().to_string();
        for a in args {
            s.push(' ');
            s.push_str(a);
        }
        s
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("LC_ALL", "C")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    SPAWNS.fetch_add(1, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let mut child = cmd.spawn().map_err(|source| FirewallError::Spawn { program: program.display().to_string(), source })?;
    if let Some(input) = stdin {
        // The tools read all of their input before they write much, so
        // writing it whole first cannot deadlock on a full stdout pipe.
        let mut pipe = child.stdin.take().expect("piped stdin");
        let written = pipe.write_all(input.as_bytes());
        drop(pipe);
        if let Err(source) = written {
            let _ = child.wait();
            return Err(FirewallError::Spawn { program: program.display().to_string(), source });
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|source| FirewallError::Spawn { program: program.display().to_string(), source })?;
    if std::env::var_os("MINIRUN_FIREWALL_TRACE").is_some() {
        eprintln!("firewall: {:>7.2} ms  {}{}", started.elapsed().as_secs_f64() * 1e3, shown(), if stdin.is_some() { " <batch" } else { "" });
        if let Some(input) = stdin {
            for l in input.lines() {
                eprintln!("firewall:             | {l}");
            }
        }
    }
    if !out.status.success() {
        return Err(FirewallError::Command {
            command: shown(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(Ran { stdout: String::from_utf8_lossy(&out.stdout).into_owned() })
}

/// The variant `iptables` on the PATH is, or None without one. Debian and
/// Fedora point it (through update-alternatives) at `xtables-legacy-multi`
/// or `xtables-nft-multi`; the name says it, else `iptables -V` does
/// ("iptables v1.8.9 (nf_tables)" / "(legacy)"; before 1.8, always legacy).
pub(crate) fn default_iptables_variant() -> Option<IptablesVariant> {
    let path = find_tool("iptables")?;
    let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let name = real.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name.contains("legacy") {
        return Some(IptablesVariant::Legacy);
    }
    if name.contains("nft") {
        return Some(IptablesVariant::Nft);
    }
    let version = run(&path, &["-V"], None).map(|r| r.stdout).unwrap_or_default();
    Some(if version.contains("nf_tables") { IptablesVariant::Nft } else { IptablesVariant::Legacy })
}

/// Whether the kernel serves nf_tables: an NFT_MSG_GETGEN request on a
/// NETLINK_NETFILTER socket gets a NEWGEN answer, not an error. Costs
/// microseconds, where `nft list tables` would cost a process.
pub(crate) fn kernel_has_nftables() -> bool {
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_GETGEN: u16 = 16;
    // SAFETY: plain socket calls on a descriptor we own, with buffers that
    // outlive them and lengths that match.
    unsafe {
        let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_NETFILTER);
        if fd < 0 {
            return false;
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        // nlmsghdr (16 bytes) + nfgenmsg (family, version, res_id).
        let mut req = [0u8; 20];
        req[0..4].copy_from_slice(&20u32.to_ne_bytes());
        req[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN).to_ne_bytes());
        req[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
        req[8..12].copy_from_slice(&1u32.to_ne_bytes());
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let sent = libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr() as *const libc::c_void,
            req.len(),
            0,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        if sent != req.len() as isize {
            return false;
        }
        let mut buf = [0u8; 8192];
        let n = libc::recv(fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
        if n < 16 {
            return false;
        }
        let msg_type = u16::from_ne_bytes([buf[4], buf[5]]);
        if msg_type == libc::NLMSG_ERROR as u16 {
            // An ack (error 0) before any NEWGEN would be odd; anything else is a refusal.
            return n >= 20 && i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]) == 0;
        }
        true
    }
}

/// Splits a line the way iptables-restore does: on blanks, with double
/// quotes grouping (and dropped) and backslash escaping the next character.
pub(crate) fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewall_split_words() {
        assert_eq!(
            split_words(r#"-A X -m comment --comment "minirun:a b" -j ACCEPT"#),
            ["-A", "X", "-m", "comment", "--comment", "minirun:a b", "-j", "ACCEPT"]
        );
        assert_eq!(split_words(r#"  a  "" \"b "#), ["a", "", "\"b"]);
    }

    #[test]
    fn firewall_run_reports_failures() {
        let sh = find_tool("sh").expect("sh");
        let before = process_spawns();
        let ok = run(&sh, &["-c", "cat"], Some("hello")).unwrap();
        assert_eq!(ok.stdout, "hello");
        let err = run(&sh, &["-c", "echo oops >&2; exit 3"], None).err().unwrap();
        assert!(matches!(&err, FirewallError::Command { stderr, .. } if stderr == "oops"), "{err}");
        assert_eq!(process_spawns() - before, 2);
    }
}
