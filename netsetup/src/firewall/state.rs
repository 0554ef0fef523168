//! What the tags cannot record, or cannot find cheaply.
//!
//! **Removal recipes.** Finding a container's rules by their tag means
//! listing every rule (iptables-save, `nft list`), which costs more the more
//! containers there are, and an nftables listing decodes every rule. So
//! `add_ports` keeps, per tag, how to delete exactly what it added: the
//! iptables `-A` lines (deleted by spec with `-D`), or the nftables rule
//! handles. `remove_ports` then is one batch, one process. A recipe that no
//! longer matches the kernel (rules deleted by hand, a crash half-way) makes
//! that batch fail as a whole, and the removal falls back to the listing.
//! iptables records the lines before applying them, so a recipe is never
//! short of what is in the kernel; nftables learns its handles only from the
//! applied batch (`nft --echo`), so it marks the recipe incomplete first.
//! Rule handles are unique for the life of a table, and table handles for
//! the life of the network namespace: `setup_network` drops the recipes if
//! `ip minirun` is not the table they were made in.
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
//! A JSON file beside the lock file (`firewall-state.json`), read and
//! written under the lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::FirewallError;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallState {
    /// `ip` tables (nat, filter) iptables-nft created for minirun.
    #[serde(default)]
    pub created_tables: Vec<String>,
    /// (table, base chain) pairs iptables-nft created for minirun.
    #[serde(default)]
    pub created_chains: Vec<(String, String)>,
    /// Removal recipes, by `port_key(backend, tag)`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, PortRecord>,
    /// The handle of the `ip minirun` table the nftables recipes belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nft_table_handle: Option<u64>,
}

/// How to remove one tag's rules in one batch.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    /// iptables: (table, `-A` line); nftables: (chain, rule handle).
    pub rules: Vec<(String, String)>,
    /// False from before a batch is applied until its handles are known.
    pub complete: bool,
}

/// The recipes' key: the backend ("iptables-legacy", "iptables-nft",
/// "nftables") and the tag.
pub fn port_key(backend: &str, tag: &str) -> String {
    format!("{backend} {tag}")
}

impl FirewallState {
    pub fn path_for(lock_path: &Path) -> PathBuf {
        lock_path.with_file_name("firewall-state.json")
    }

    pub fn load(path: &Path) -> Result<Self, FirewallError> {
        let perr = |detail: String| FirewallError::Parse { what: path.display().to_string(), detail };
        match crate::ipam::lockfile::read_if_present(path) {
            Ok(None) => Ok(FirewallState::default()),
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| perr(e.to_string())),
            Err(e) => Err(perr(e.to_string())),
        }
    }

    /// Writes the state, or removes the file when there is nothing in it.
    pub fn store(&self, path: &Path) -> Result<(), FirewallError> {
        let err = |source| FirewallError::Lock { path: path.to_path_buf(), source };
        if self.is_empty() {
            return crate::ipam::lockfile::remove_if_present(path).map_err(err);
        }
        let bytes = serde_json::to_vec_pretty(self).expect("state serialises");
        crate::ipam::lockfile::write_atomic(path, &bytes).map_err(err)
    }

    /// The state, or an empty one if the file is unreadable: the recipes
    /// are a shortcut, and a container start must not fail for want of one.
    pub fn load_or_default(path: &Path) -> Self {
        Self::load(path).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.created_tables.is_empty()
            && self.created_chains.is_empty()
            && self.ports.is_empty()
            && self.nft_table_handle.is_none()
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
        assert_eq!(FirewallState::load(&path).unwrap(), FirewallState::default());
        let mut s = FirewallState::default();
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
        let mut s = FirewallState::default();
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
        assert_eq!(FirewallState::load_or_default(&path), FirewallState::default());
    }
}
