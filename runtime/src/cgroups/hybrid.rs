//! Hybrid hosts: v1 controllers plus a cgroup2 mount (usually without
//! controllers, at /sys/fs/cgroup/unified).
//!
//! Resources go to v1 as on a v1 host. The container also gets its own
//! directory in the unified hierarchy, as runc gives it: systemd and other
//! tools read cgroup2 membership, and eBPF device filters and cgroup.freeze
//! act on it. That directory is also the fallback for what v1 lacks - a
//! controller only the unified root offers, device filtering without a v1
//! devices hierarchy, freezing without a v1 freezer - and the home of
//! `linux.resources.unified`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::layout::V1Hierarchy;
use super::path::CgroupPath;
use super::resources::{Demand, V2Support};
use super::v1::{self, V1Manager};
use super::v2::{self, EnableControllers, V2Manager};
use super::{combine, files, CgroupError, CgroupManager, Stats};

#[derive(Debug)]
pub(super) struct HybridManager {
    v1: V1Manager,
    unified: V2Manager,
}

impl HybridManager {
    pub(super) fn new(hierarchies: &[V1Hierarchy], unified: &Path, path: &CgroupPath) -> HybridManager {
        HybridManager {
            v1: V1Manager::new(hierarchies, path),
            unified: V2Manager::new(unified, path, EnableControllers::OnDemand),
        }
    }
}

impl CgroupManager for HybridManager {
    fn create(&self) -> Result<(), CgroupError> {
        self.v1.create()?;
        self.unified.create_dir()
    }

    fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        self.v1.add_task(pid)?;
        files::add_pid(self.unified.dir(), pid)
    }

    fn apply_resources(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        for (c, demand) in self.v1.apply_available(r)? {
            let in_unified = match c.v2() {
                V2Support::Controller(name) => self.unified.root_offers(name)?,
                V2Support::Core => true,
                V2Support::Missing => false,
            };
            if in_unified {
                match self.unified.apply_controller(c, r) {
                    Err(CgroupError::Unavailable { .. }) if demand == Demand::IfAvailable => {}
                    other => other?,
                }
            } else if demand == Demand::Required {
                return Err(c.unavailable(format!(
                    "neither a cgroup v1 hierarchy nor the unified hierarchy provides the {} controller",
                    c.v1_name()
                )));
            }
        }
        if let Some(map) = r.unified() {
            self.unified.apply_unified(map)?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        match self.v1.dir_for("freezer") {
            Some(dir) => v1::freeze(dir),
            None => v2::freeze(self.unified.dir()),
        }
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        match self.v1.dir_for("freezer") {
            Some(dir) => v1::thaw(dir),
            None => v2::thaw(self.unified.dir()),
        }
    }

    fn is_frozen(&self) -> Result<bool, CgroupError> {
        match self.v1.dir_for("freezer") {
            Some(dir) => v1::is_frozen(dir),
            None => v2::is_frozen(self.unified.dir()),
        }
    }

    fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        let mut pids = self.v1.pids()?;
        pids.extend(self.unified.pids()?);
        pids.sort_unstable_by_key(|p| p.as_raw());
        pids.dedup();
        Ok(pids)
    }

    fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        match self.v1.dir_for("memory") {
            Some(_) => self.v1.oom_kill_count(),
            None => self.unified.oom_kill_count(),
        }
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        Ok(self.v1.stats()?.or(self.unified.stats()?))
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + files::REMOVE_PATIENCE;
        let mut errors = self.v1.destroy_until(deadline);
        errors.extend(self.unified.destroy_until(deadline).err());
        combine(errors)
    }

    fn host_paths(&self) -> Vec<(String, PathBuf)> {
        let mut paths = self.v1.host_paths();
        paths.push(("unified".to_owned(), self.unified.dir().to_owned()));
        paths
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::FakeTree;
    use super::*;
    use oci_spec::runtime::{
        LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };
    use std::collections::HashMap;

    fn tree(unified_controllers: &str) -> (FakeTree, Box<dyn CgroupManager>) {
        let t = FakeTree::hybrid(
            &[
                ("memory", &["memory.limit_in_bytes", "memory.oom_control"]),
                ("freezer", &["freezer.state"]),
                ("name=systemd", &[]),
            ],
            unified_controllers,
            &["cgroup.procs", "cgroup.freeze", "cgroup.events", "hugetlb.2MB.max", "memory.high"],
        );
        let m = t.manager("/minirun/c1");
        (t, m)
    }

    #[test]
    fn unified_directory_is_created_joined_and_removed() {
        let (t, m) = tree("");
        m.create().unwrap();
        let paths = m.host_paths();
        let keys: Vec<&str> = paths.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["memory", "freezer", "name=systemd", "unified"]);
        for (_, dir) in &paths {
            assert!(dir.is_dir(), "{}", dir.display());
        }
        assert_eq!(paths[3].1, t.root().join("unified/minirun/c1"));
        // No controller was enabled in the unified root.
        assert_eq!(t.read("unified/cgroup.subtree_control"), "");

        t.populate("minirun/c1");
        m.add_task(Pid::from_raw(4242)).unwrap();
        for (key, dir) in &paths {
            assert_eq!(std::fs::read_to_string(dir.join("cgroup.procs")).unwrap(), "4242", "{key}");
        }
        assert_eq!(m.pids().unwrap(), vec![Pid::from_raw(4242)]);

        t.clear_files("");
        m.destroy().unwrap();
        for (_, dir) in &paths {
            assert!(!dir.exists(), "{}", dir.display());
        }
    }

    #[test]
    fn v1_first_unified_fallback() {
        let (t, m) = tree("hugetlb");
        t.populate("minirun/c1");
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(1i64 << 20).build().unwrap())
            .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
                .page_size("2MB")
                .limit(1i64 << 21)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        m.apply_resources(&r).unwrap();
        assert_eq!(t.read("memory/minirun/c1/memory.limit_in_bytes"), "1048576");
        assert_eq!(t.read("unified/minirun/c1/hugetlb.2MB.max"), "2097152");
        // Enabled only because it was needed.
        assert_eq!(t.read("unified/cgroup.subtree_control"), "+hugetlb");

        let pids = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(5i64).build().unwrap())
            .build()
            .unwrap();
        let err = m.apply_resources(&pids).unwrap_err().to_string();
        assert!(err.contains("neither a cgroup v1 hierarchy nor the unified"), "{err}");

        // unified goes to the unified directory; a v1-bound controller's
        // file is refused with a reason.
        let unified = |k: &str| {
            LinuxResourcesBuilder::default()
                .unified([(k.to_owned(), "1".to_owned())].into_iter().collect::<HashMap<_, _>>())
                .build()
                .unwrap()
        };
        t.remove("unified/minirun/c1/memory.high");
        let err = m.apply_resources(&unified("memory.high")).unwrap_err().to_string();
        assert!(err.contains("memory controller is not available"), "{err}");
        m.apply_resources(&unified("cgroup.freeze")).unwrap();
    }

    #[test]
    fn freezer_falls_back_to_cgroup_freeze() {
        let t = FakeTree::hybrid(
            &[("memory", &[])],
            "",
            &["cgroup.procs", "cgroup.freeze", "cgroup.events"],
        );
        let m = t.manager("/c");
        t.populate("c");
        t.write("unified/c/cgroup.events", "frozen 1\n");
        m.freeze().unwrap();
        assert_eq!(t.read("unified/c/cgroup.freeze"), "1");
        assert!(m.is_frozen().unwrap());
        m.thaw().unwrap();
        assert!(!m.is_frozen().unwrap());
    }
}
