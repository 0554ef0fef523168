//! What the tags cannot record, or cannot find cheaply.
//!
//! **Removal recipes.** Finding a container's rules by their tag means
//! listing every rule (iptables-save, `nft list`), which costs more the more
//! containers there are. So `add_ports` keeps, per tag, how to delete
//! exactly what it is adding, written before the batch is applied so that
//! a recipe is never short of what is in the kernel: the iptables `-A` lines
//! (deleted by spec with `-D`, the tag being part of the spec), or the keys
//! of the nftables map and set elements. `remove_ports` then is one batch,
//! one process. A recipe that no longer fits the kernel (rules deleted by
//! hand, a crash half-way) makes that batch fail as a whole, and the removal
//! falls back to listing and matching tags. nftables deletes elements by key,
//! whoever's they are, so a key lives in one recipe only, the last one to
//! add it, and the recipes go when `setup_network` has to create the table.
//!
//! **What iptables-nft created.** Which iptables-nft tables and base
//! chains minirun brought into existence.
//!
//! iptables-nft creates `table ip nat` and its base chains lazily, when a
//! rule first needs them (minirun's jump from nat OUTPUT, say), and deleting
//! the rule leaves the empty chain behind. So that the last teardown leaves
//! `nft list ruleset` exactly as it was, the iptables backend (nft variant)
//! notes here what was missing before its first batch, and afterwards
//! deletes those, if they are still empty, with policy accept.
//! (The legacy variant has nothing to note: x_tables tables, once
//! instantiated in a network namespace, stay until it goes, and are
//! invisible to nft.)
//!
//! A JSON file beside the lock file, read and written under the lock. The
//! tables it describes belong to one network namespace in one boot, while
//! the lock file is shared by every minirun (a test in a namespace of its
//! own too), so the file is per network namespace,
//! `firewall-state.<netns cookie>.json`, and says which boot it is from;
//! one from another boot reads as empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::FirewallError;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallState {
    /// The boot and network namespace the state is about (`scope`).
    #[serde(default)]
    pub scope: String,
    /// `ip` tables (nat, filter) iptables-nft created for minirun.
    #[serde(default)]
    pub created_tables: Vec<String>,
    /// (table, base chain) pairs iptables-nft created for minirun.
    #[serde(default)]
    pub created_chains: Vec<(String, String)>,
    /// Removal recipes, by `port_key(backend, tag)`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, PortRecord>,
}

/// How to remove one tag's rules in one batch.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    /// iptables: (table, `-A` line); nftables: (set or map, element key).
    pub rules: Vec<(String, String)>,
    /// False when there is no usable recipe (removal lists instead).
    pub complete: bool,
}

/// The recipes' key: the backend ("iptables-legacy", "iptables-nft",
/// "nftables") and the tag.
pub fn port_key(backend: &str, tag: &str) -> String {
    format!("{backend} {tag}")
}

/// SO_NETNS_COOKIE (Linux 5.14): a network namespace's id, never reused
/// within a boot (inode numbers are).
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_NETNS_COOKIE: libc::c_int = 71;
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_NETNS_COOKIE: libc::c_int = 0x50;

/// The calling thread's network namespace: its cookie, or on kernels
/// without one its inode number.
fn netns_key() -> String {
    // SAFETY: a socket we own, and a u64 buffer of the size we pass.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd >= 0 {
            let mut cookie: u64 = 0;
            let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
            let r = libc::getsockopt(fd, libc::SOL_SOCKET, SO_NETNS_COOKIE, &mut cookie as *mut u64 as *mut libc::c_void, &mut len);
            libc::close(fd);
            if r == 0 {
                return cookie.to_string();
            }
        }
    }
    let link = std::fs::read_link("/proc/thread-self/ns/net").map(|p| p.display().to_string()).unwrap_or_default();
    format!("ino{}", link.trim_start_matches("net:[").trim_end_matches(']'))
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

impl FirewallState {
    /// The state file for the calling thread's network namespace.
    pub fn path_for(lock_path: &Path) -> PathBuf {
        lock_path.with_file_name(format!("firewall-state.{}.json", netns_key()))
    }

    /// What this boot and network namespace are, as `scope` records it.
    pub fn current_scope() -> String {
        format!("{} {}", boot_id(), netns_key())
    }

    /// The state, empty if the file is absent or from another boot.
    pub fn load(path: &Path) -> Result<Self, FirewallError> {
        let perr = |detail: String| FirewallError::Parse { what: path.display().to_string(), detail };
        let scope = Self::current_scope();
        let st: FirewallState = match crate::ipam::lockfile::read_if_present(path) {
            Ok(None) => FirewallState::default(),
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| perr(e.to_string()))?,
            Err(e) => return Err(perr(e.to_string())),
        };
        Ok(if st.scope == scope { st } else { FirewallState { scope, ..Default::default() } })
    }

    /// Writes the state, or removes the file when there is nothing in it.
    pub fn store(&self, path: &Path) -> Result<(), FirewallError> {
        let err = |source| FirewallError::Lock { path: path.to_path_buf(), source };
        if self.is_empty() {
            return crate::ipam::lockfile::remove_if_present(path).map_err(err);
        }
        let mut st = self.clone();
        st.scope = Self::current_scope();
        let bytes = serde_json::to_vec(&st).expect("state serialises");
        // Replaced by rename, so a reader never sees half a file; not
        // fsync'ed: what it describes, the kernel's tables, does not survive
        // a power cut either, and fsync would cost each container start
        // milliseconds on a disk-backed /run.
        let tmp = path.with_file_name(".firewall-state.json.tmp");
        std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path)).map_err(err)
    }

    /// The state, or an empty one if the file is unreadable: the recipes
    /// are a shortcut, and a container start must not fail for want of one.
    pub fn load_or_default(path: &Path) -> Self {
        Self::load(path).unwrap_or_default()
    }

    /// Nothing recorded (whatever the scope).
    pub fn is_empty(&self) -> bool {
        self.created_tables.is_empty()
            && self.created_chains.is_empty()
            && self.ports.is_empty()
    }

    /// Drops the recipes of `backend` for the ports of `network`, or for
    /// every network when None.
    pub fn forget_ports(&mut self, backend: &str, network: Option<&str>) {
        self.ports.retain(|key, _| {
            let Some((b, tag)) = key.split_once(' ') else { return false };
            if b != backend {
                return true;
            }
            match (network, super::parse_tag(tag).and_then(|t| t.network().map(str::to_string))) {
                (None, _) => false,
                (Some(n), Some(tn)) => tn != n,
                (Some(_), None) => false,
            }
        });
    }

    pub fn note_table(&mut self, table: &str) {
        if !self.created_tables.iter().any(|t| t == table) {
            self.created_tables.push(table.to_string());
        }
    }

    pub fn note_chain(&mut self, table: &str, chain: &str) {
        if !self.created_chains.iter().any(|(t, c)| t == table && c == chain) {
            self.created_chains.push((table.to_string(), chain.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_vanishes_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = FirewallState::path_for(&dir.path().join("firewall.lock"));
        assert!(FirewallState::load(&path).unwrap().is_empty());
        let mut s = FirewallState { scope: FirewallState::current_scope(), ..Default::default() };
        s.note_table("nat");
        s.note_chain("nat", "OUTPUT");
        s.note_chain("nat", "OUTPUT");
        s.store(&path).unwrap();
        assert_eq!(FirewallState::load(&path).unwrap(), s);
        assert_eq!(s.created_chains.len(), 1);
        FirewallState::default().store(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn forgets_ports_by_backend_and_network() {
        let mut s = FirewallState { scope: FirewallState::current_scope(), ..Default::default() };
        for (b, t) in [("nftables", "minirun:a:c1"), ("nftables", "minirun:b:c2"), ("iptables-nft", "minirun:a:c3")] {
            s.ports.insert(port_key(b, t), PortRecord { rules: vec![("PORTS".into(), "7".into())], complete: true });
        }
        s.forget_ports("nftables", Some("a"));
        assert_eq!(s.ports.keys().collect::<Vec<_>>(), ["iptables-nft minirun:a:c3", "nftables minirun:b:c2"]);
        s.forget_ports("nftables", None);
        assert_eq!(s.ports.keys().collect::<Vec<_>>(), ["iptables-nft minirun:a:c3"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        s.store(&path).unwrap();
        assert_eq!(FirewallState::load(&path).unwrap(), s);
        std::fs::write(&path, "{not json").unwrap();
        assert!(FirewallState::load_or_default(&path).is_empty());
        // Another boot's state reads as empty.
        std::fs::write(&path, r#"{"scope": "other-boot 1", "created_tables": ["nat"]}"#).unwrap();
        assert!(FirewallState::load(&path).unwrap().is_empty());
        assert!(FirewallState::path_for(&path).display().to_string().contains("firewall-state."));
    }
}
