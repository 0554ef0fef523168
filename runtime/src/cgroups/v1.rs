//! cgroup v1: the container gets the same relative directory in every
//! mounted hierarchy, and each resource goes to its controller's hierarchy.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxNetwork, LinuxResources,
};

use super::layout::V1Hierarchy;
use super::path::CgroupPath;
use super::resources::{self, invalid, requested, Controller, Demand};
use super::{combine, devices, files, CgroupError, CgroupManager, Stats};

const MEMORY_LIMIT: &str = "memory.limit_in_bytes";
const MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";

/// v1 reports "no limit" as the largest page-aligned i64.
const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;

#[derive(Debug)]
struct V1Dir {
    hierarchy: V1Hierarchy,
    dir: PathBuf,
}

#[derive(Debug)]
pub(super) struct V1Manager {
    path: CgroupPath,
    dirs: Vec<V1Dir>,
}

impl V1Manager {
    pub(super) fn new(hierarchies: &[V1Hierarchy], path: &CgroupPath) -> V1Manager {
        V1Manager {
            path: path.clone(),
            dirs: hierarchies
                .iter()
                .map(|h| V1Dir {
                    hierarchy: h.clone(),
                    dir: path.under(&h.mountpoint),
                })
                .collect(),
        }
    }

    pub(super) fn dir_for(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.hierarchy.has(controller))
            .map(|d| d.dir.as_path())
    }

    fn freezer_dir(&self, action: &'static str) -> Result<&Path, CgroupError> {
        self.dir_for("freezer").ok_or_else(|| CgroupError::Freezer {
            action,
            path: self.path.to_string().into(),
            reason: "no freezer hierarchy is mounted".into(),
        })
    }

    fn all_pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        for d in &self.dirs {
            pids.extend(files::pids_recursive(&d.dir)?);
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Removes the directory in every hierarchy, carrying on past failures.
    pub(super) fn destroy_until(&self, deadline: Instant) -> Vec<CgroupError> {
        self.dirs
            .iter()
            .filter_map(|d| files::remove_cgroup(&d.dir, deadline).err())
            .collect()
    }

    /// Writes what the v1 hierarchies can take; returns the controllers that
    /// had no hierarchy, with their demand, for the caller to place.
    pub(super) fn apply_available(
        &self,
        r: &LinuxResources,
    ) -> Result<Vec<(Controller, Demand)>, CgroupError> {
        let mut missing = Vec::new();
        for (c, demand) in requested(r) {
            match self.dir_for(c.v1_name()) {
                Some(dir) => apply(c, dir, r)?,
                None => missing.push((c, demand)),
            }
        }
        Ok(missing)
    }
}

impl CgroupManager for V1Manager {
    fn create(&self) -> Result<(), CgroupError> {
        for d in &self.dirs {
            files::create_dir(&d.dir)?;
            if d.hierarchy.has("cpuset") {
                init_cpuset(&d.hierarchy.mountpoint, self.path.relative())?;
            }
        }
        Ok(())
    }

    fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        self.dirs.iter().try_for_each(|d| files::add_pid(&d.dir, pid))
    }

    fn apply_resources(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        for (c, demand) in self.apply_available(r)? {
            if demand == Demand::Required {
                return Err(c.unavailable(format!(
                    "no cgroup v1 hierarchy has the {} controller mounted",
                    c.v1_name()
                )));
            }
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(CgroupError::Unavailable {
                resource: "linux.resources.unified".into(),
                reason: "this host has only cgroup v1 hierarchies".into(),
            });
        }
        Ok(())
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        freeze(self.freezer_dir("freeze")?)
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        thaw(self.freezer_dir("thaw")?)
    }

    fn is_frozen(&self) -> Result<bool, CgroupError> {
        match self.dir_for("freezer") {
            Some(dir) => is_frozen(dir),
            None => Ok(false),
        }
    }

    fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        Ok(self.all_pids()?.into_iter().map(Pid::from_raw).collect())
    }

    fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        match self.dir_for("memory") {
            Some(dir) => oom_kills(dir),
            None => Ok(0),
        }
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        stats(
            self.dir_for("memory"),
            self.dir_for("cpuacct"),
            self.dir_for("pids"),
        )
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        combine(self.destroy_until(Instant::now() + files::REMOVE_PATIENCE))
    }

    fn host_paths(&self) -> Vec<(String, PathBuf)> {
        self.dirs
            .iter()
            .map(|d| (d.hierarchy.key(), d.dir.clone()))
            .collect()
    }
}

/// cpuset refuses tasks while cpuset.cpus or cpuset.mems is empty, and new
/// v1 cpuset cgroups start out empty (unless clone_children is set), so
/// each level below the mountpoint gets its parent's values.
fn init_cpuset(mountpoint: &Path, rel: &Path) -> Result<(), CgroupError> {
    let mut parent = mountpoint.to_path_buf();
    for component in rel.components() {
        let dir = parent.join(component);
        for what in ["cpus", "mems"] {
            let name = cpuset_file(&dir, what);
            let Some(current) = files::read_if_exists(&dir, &name)? else {
                continue;
            };
            if !current.trim().is_empty() {
                continue;
            }
            let inherited = files::read_if_exists(&parent, &cpuset_file(&parent, what))?;
            if let Some(value) = inherited.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                files::write(&dir, &name, value)?;
            }
        }
        parent = dir;
    }
    Ok(())
}

/// cpuset may be mounted with `noprefix`, dropping the "cpuset." prefix.
fn cpuset_file(dir: &Path, what: &str) -> String {
    let prefixed = format!("cpuset.{what}");
    if !files::exists(dir, &prefixed) && files::exists(dir, what) {
        what.to_owned()
    } else {
        prefixed
    }
}

/// Writes the settings of one controller into its directory.
pub(super) fn apply(c: Controller, dir: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    match c {
        Controller::Cpuset => r.cpu().as_ref().map_or(Ok(()), |cpu| cpuset(dir, cpu)),
        Controller::Devices => r
            .devices()
            .as_ref()
            .map_or(Ok(()), |rules| devices::apply_v1(dir, rules).map(drop)),
        Controller::Memory => r.memory().as_ref().map_or(Ok(()), |m| memory(dir, m)),
        Controller::Cpu => r.cpu().as_ref().map_or(Ok(()), |cpu| self::cpu(dir, cpu)),
        Controller::Pids => r.pids().as_ref().map_or(Ok(()), |p| resources::write_pids(dir, p)),
        Controller::Blkio => r.block_io().as_ref().map_or(Ok(()), |b| blkio(dir, b)),
        Controller::Hugetlb => r
            .hugepage_limits()
            .as_ref()
            .map_or(Ok(()), |h| hugetlb(dir, h)),
        Controller::NetCls => r.network().as_ref().map_or(Ok(()), |n| net_cls(dir, n)),
        Controller::NetPrio => r.network().as_ref().map_or(Ok(()), |n| net_prio(dir, n)),
        Controller::Rdma => r.rdma().as_ref().map_or(Ok(()), |m| resources::write_rdma(dir, m)),
    }
}

fn memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    // 0 means "not set" in runc's reading of the spec.
    let limit = m.limit().filter(|&v| v != 0);
    let mut swap = m.swap().filter(|&v| v != 0);
    let reservation = m.reservation().filter(|&v| v != 0);
    for (field, value) in [("limit", limit), ("swap", swap), ("reservation", reservation)] {
        if value.is_some_and(|v| v < -1) {
            return Err(invalid(
                &format!("linux.resources.memory.{field}"),
                "must be a byte count or -1 for unlimited",
            ));
        }
    }

    let has_memsw = files::exists(dir, MEMSW_LIMIT);
    // Lifting the limit without a word about swap lifts both (runc does the
    // same): a stale memsw limit would otherwise still cap the container.
    if limit == Some(-1) && swap.is_none() && has_memsw {
        swap = Some(-1);
    }
    if let Some(s) = swap {
        if !has_memsw {
            if s != -1 {
                return Err(CgroupError::Unavailable {
                    resource: "linux.resources.memory.swap".into(),
                    reason: format!(
                        "the kernel does not account swap ({} is missing; boot with swapaccount=1)",
                        dir.join(MEMSW_LIMIT).display()
                    ),
                });
            }
            swap = None;
        }
    }
    if let (Some(l), Some(s)) = (limit, swap) {
        if l > 0 && s > 0 && s < l {
            return Err(invalid(
                "linux.resources.memory.swap",
                format!("memory+swap ({s}) must not be smaller than the memory limit ({l})"),
            ));
        }
    }

    match (limit, swap) {
        (Some(l), Some(s)) => {
            // The kernel keeps memsw >= limit at every step, so raise memsw
            // first when growing and the limit first when shrinking. The
            // current value is only a hint; EINVAL means the guess was wrong.
            let current = files::read_u64_if_exists(dir, MEMORY_LIMIT).ok().flatten();
            let swap_first = s == -1 || current.is_some_and(|c| c < s as u64);
            let memsw = (MEMSW_LIMIT, s);
            let mem = (MEMORY_LIMIT, l);
            let (first, second) = if swap_first { (memsw, mem) } else { (mem, memsw) };
            match write_memory_value(dir, first) {
                Err(e) if e.errno() == Some(libc::EINVAL) => {
                    write_memory_value(dir, second)?;
                    write_memory_value(dir, first)?;
                }
                result => {
                    result?;
                    write_memory_value(dir, second)?;
                }
            }
        }
        (Some(l), None) => write_memory_value(dir, (MEMORY_LIMIT, l))?,
        (None, Some(s)) => write_memory_value(dir, (MEMSW_LIMIT, s))?,
        (None, None) => {}
    }

    if let Some(r) = reservation {
        files::write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(invalid(
                "linux.resources.memory.swappiness",
                format!("{s} is outside 0..=100"),
            ));
        }
        files::write(dir, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        files::write(dir, "memory.oom_control", "1")?;
    }
    // kernel and kernelTCP are ignored, as runc does: kmem limits are
    // deprecated and gone from kernels since 5.16.
    Ok(())
}

fn write_memory_value(dir: &Path, (file, value): (&str, i64)) -> Result<(), CgroupError> {
    match files::write(dir, file, &value.to_string()) {
        // EBUSY: usage is already above the new limit and reclaim failed.
        Err(e) if e.errno() == Some(libc::EBUSY) => {
            let usage = files::read_u64_if_exists(dir, "memory.usage_in_bytes")
                .ok()
                .flatten()
                .map_or_else(|| "unknown".to_owned(), |u| u.to_string());
            Err(invalid(
                "linux.resources.memory",
                format!("cannot set {file} to {value}: the cgroup already uses {usage} bytes"),
            ))
        }
        other => other,
    }
}

fn cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(shares) = c.shares().filter(|&s| s != 0) {
        files::write(dir, "cpu.shares", &shares.to_string())?;
    }
    let quota = c.quota().filter(|&q| q != 0);
    let mut period_after_quota = None;
    if let Some(period) = c.period().filter(|&p| p != 0) {
        // A shorter period can push quota/period over the parent's limit
        // until the new quota is in (EINVAL); then it goes in afterwards.
        match files::write(dir, "cpu.cfs_period_us", &period.to_string()) {
            Err(e) if e.errno() == Some(libc::EINVAL) && quota.is_some() => {
                period_after_quota = Some(period);
            }
            result => result?,
        }
    }
    if let Some(q) = quota {
        let value = if q < 0 { "-1".to_owned() } else { q.to_string() };
        files::write(dir, "cpu.cfs_quota_us", &value)?;
    }
    if let Some(period) = period_after_quota {
        files::write(dir, "cpu.cfs_period_us", &period.to_string())?;
    }
    if let Some(burst) = c.burst() {
        files::write(dir, "cpu.cfs_burst_us", &burst.to_string())?;
    }
    if let Some(idle) = c.idle() {
        files::write(dir, "cpu.idle", &idle.to_string())?;
    }
    if resources::realtime_set(c) {
        if !files::exists(dir, "cpu.rt_runtime_us") {
            return Err(CgroupError::Unavailable {
                resource: "linux.resources.cpu.realtimeRuntime/realtimePeriod".into(),
                reason: "the kernel has no realtime group scheduling (CONFIG_RT_GROUP_SCHED)".into(),
            });
        }
        // The runtime is validated against the period, so the period first.
        if let Some(p) = c.realtime_period().filter(|&p| p != 0) {
            files::write(dir, "cpu.rt_period_us", &p.to_string())?;
        }
        if let Some(rt) = c.realtime_runtime().filter(|&r| r != 0) {
            files::write(dir, "cpu.rt_runtime_us", &rt.to_string())?;
        }
    }
    Ok(())
}

fn cpuset(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        files::write(dir, &cpuset_file(dir, "cpus"), cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        files::write(dir, &cpuset_file(dir, "mems"), mems)?;
    }
    Ok(())
}

fn blkio(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    // CFQ provides blkio.weight, BFQ blkio.bfq.weight; which one exists
    // depends on the kernel's I/O schedulers.
    let bfq = !files::exists(dir, "blkio.weight") && files::exists(dir, "blkio.bfq.weight");
    let (weight_file, weight_device_file) = if bfq {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    let needs = |file: &str, what: &str| -> Result<(), CgroupError> {
        if files::exists(dir, file) {
            Ok(())
        } else {
            Err(CgroupError::Unavailable {
                resource: format!("linux.resources.blockIO.{what}"),
                reason: format!(
                    "{} does not exist (no CFQ or BFQ I/O scheduler with group support)",
                    dir.join(file).display()
                ),
            })
        }
    };
    if let Some(w) = b.weight() {
        needs(weight_file, "weight")?;
        files::write(dir, weight_file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight() {
        needs("blkio.leaf_weight", "leafWeight")?;
        files::write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for wd in b.weight_device().iter().flatten() {
        let dev = resources::device_numbers("linux.resources.blockIO.weightDevice", wd.major(), wd.minor())?;
        if let Some(w) = wd.weight() {
            needs(weight_device_file, "weightDevice")?;
            files::write(dir, weight_device_file, &format!("{dev} {w}"))?;
        }
        if let Some(w) = wd.leaf_weight() {
            needs("blkio.leaf_weight_device", "weightDevice.leafWeight")?;
            files::write(dir, "blkio.leaf_weight_device", &format!("{dev} {w}"))?;
        }
    }
    let throttles = [
        ("blkio.throttle.read_bps_device", b.throttle_read_bps_device()),
        ("blkio.throttle.write_bps_device", b.throttle_write_bps_device()),
        ("blkio.throttle.read_iops_device", b.throttle_read_iops_device()),
        ("blkio.throttle.write_iops_device", b.throttle_write_iops_device()),
    ];
    for (file, devices) in throttles {
        for t in devices.iter().flatten() {
            let dev = resources::device_numbers("linux.resources.blockIO throttle device", t.major(), t.minor())?;
            files::write(dir, file, &format!("{dev} {}", t.rate()))?;
        }
    }
    Ok(())
}

fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    resources::write_hugetlb(dir, limits, "limit_in_bytes", "-1")
}

fn net_cls(dir: &Path, n: &LinuxNetwork) -> Result<(), CgroupError> {
    match n.class_id() {
        Some(id) => files::write(dir, "net_cls.classid", &id.to_string()),
        None => Ok(()),
    }
}

fn net_prio(dir: &Path, n: &LinuxNetwork) -> Result<(), CgroupError> {
    for p in n.priorities().iter().flatten() {
        if p.name().is_empty() || p.name().contains(char::is_whitespace) {
            return Err(invalid(
                "linux.resources.network.priorities",
                format!("bad interface name {:?}", p.name()),
            ));
        }
        files::write(dir, "net_prio.ifpriomap", &format!("{} {}", p.name(), p.priority()))?;
    }
    Ok(())
}

const FREEZE_ATTEMPTS: u32 = 1000;

/// FROZEN is written until the state reads back FROZEN: v1 can get stuck in
/// FREEZING while tasks keep forking, and an occasional thaw lets it settle
/// (the retry pattern runc found to work). On failure the cgroup is thawed
/// again rather than left half frozen.
pub(super) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    let result = try_freeze(dir);
    if result.is_err() {
        let _ = files::write(dir, "freezer.state", "THAWED");
    }
    result
}

fn try_freeze(dir: &Path) -> Result<(), CgroupError> {
    for attempt in 0..FREEZE_ATTEMPTS {
        if attempt % 50 == 49 {
            files::write(dir, "freezer.state", "THAWED")?;
            sleep(Duration::from_millis(10));
        }
        files::write(dir, "freezer.state", "FROZEN")?;
        if attempt % 25 == 24 {
            sleep(Duration::from_micros(10));
        }
        match files::read(dir, "freezer.state")?.trim() {
            "FROZEN" => return Ok(()),
            "FREEZING" => continue,
            other => {
                return Err(CgroupError::Parse {
                    path: dir.join("freezer.state"),
                    reason: format!("unexpected state {other:?} while freezing"),
                })
            }
        }
    }
    Err(CgroupError::Freezer {
        action: "freeze",
        path: dir.to_owned(),
        reason: format!("still FREEZING after {FREEZE_ATTEMPTS} attempts"),
    })
}

pub(super) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    files::write(dir, "freezer.state", "THAWED")
}

/// Frozen by us, not merely through a frozen ancestor (freezer.self_freezing).
/// A transient FREEZING is waited out briefly and then counts as frozen.
pub(super) fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    for _ in 0..1000 {
        let Some(state) = files::read_if_exists(dir, "freezer.state")? else {
            return Ok(false);
        };
        match state.trim() {
            "THAWED" => return Ok(false),
            "FROZEN" => {
                return Ok(match files::read_if_exists(dir, "freezer.self_freezing")? {
                    Some(s) => s.trim() == "1",
                    None => true,
                })
            }
            "FREEZING" => sleep(Duration::from_millis(1)),
            other => {
                return Err(CgroupError::Parse {
                    path: dir.join("freezer.state"),
                    reason: format!("unknown state {other:?}"),
                })
            }
        }
    }
    Ok(true)
}

fn oom_kills(memory_dir: &Path) -> Result<u64, CgroupError> {
    Ok(files::read_if_exists(memory_dir, "memory.oom_control")?
        .and_then(|text| files::keyed_value(&text, "oom_kill"))
        .unwrap_or(0))
}

fn stats(memory: Option<&Path>, cpuacct: Option<&Path>, pids: Option<&Path>) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    if let Some(dir) = memory {
        s.memory_usage_bytes = files::read_u64_if_exists(dir, "memory.usage_in_bytes")?;
        s.memory_max_usage_bytes = files::read_u64_if_exists(dir, "memory.max_usage_in_bytes")?;
        s.memory_limit_bytes =
            files::read_u64_if_exists(dir, MEMORY_LIMIT)?.filter(|&l| l < V1_UNLIMITED);
        s.oom_kills = oom_kills(dir)?;
    }
    if let Some(dir) = cpuacct {
        s.cpu_usage_ns = files::read_u64_if_exists(dir, "cpuacct.usage")?;
    }
    if let Some(dir) = pids {
        s.pids_current = files::read_u64_if_exists(dir, "pids.current")?;
        s.pids_limit = files::read_u64_if_exists(dir, "pids.max")?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::FakeTree;
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxHugepageLimitBuilder,
        LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
        LinuxWeightDeviceBuilder,
    };

    const V1_FILES: &[(&str, &[&str])] = &[
        ("cpu,cpuacct", &["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpuacct.usage"]),
        (
            "memory",
            &[
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "memory.soft_limit_in_bytes",
                "memory.swappiness",
                "memory.oom_control",
                "memory.usage_in_bytes",
            ],
        ),
        ("pids", &["pids.max", "pids.current"]),
        ("cpuset", &["cpuset.cpus", "cpuset.mems"]),
        (
            "blkio",
            &["blkio.bfq.weight", "blkio.bfq.weight_device", "blkio.throttle.read_bps_device"],
        ),
        ("freezer", &["freezer.state"]),
        ("devices", &["devices.allow", "devices.deny", "devices.list"]),
    ];

    fn tree() -> (FakeTree, Box<dyn CgroupManager>) {
        let t = FakeTree::v1(V1_FILES);
        let m = t.manager("/minirun/c1");
        (t, m)
    }

    fn mem(limit: i64, swap: Option<i64>) -> LinuxResources {
        let mut b = LinuxMemoryBuilder::default().limit(limit);
        if let Some(s) = swap {
            b = b.swap(s);
        }
        LinuxResourcesBuilder::default().memory(b.build().unwrap()).build().unwrap()
    }

    #[test]
    fn create_and_host_paths() {
        let (t, m) = tree();
        m.create().unwrap();
        let paths = m.host_paths();
        assert_eq!(paths.len(), V1_FILES.len());
        for (key, dir) in &paths {
            assert!(dir.is_dir(), "{key}");
            assert!(dir.ends_with("minirun/c1"));
        }
        assert_eq!(paths[0].0, "cpu,cpuacct");
        assert_eq!(paths[0].1, t.root().join("cpu,cpuacct/minirun/c1"));
    }

    #[test]
    fn cpuset_is_copied_down() {
        let (t, m) = tree();
        t.write("cpuset/cpuset.cpus", "0-3\n");
        t.write("cpuset/cpuset.mems", "0\n");
        // Real cgroupfs creates these files empty in every new directory.
        t.write("cpuset/minirun/cpuset.cpus", "");
        t.write("cpuset/minirun/cpuset.mems", "");
        t.write("cpuset/minirun/c1/cpuset.cpus", "\n");
        t.write("cpuset/minirun/c1/cpuset.mems", "");
        m.create().unwrap();
        assert_eq!(t.read("cpuset/minirun/cpuset.cpus"), "0-3");
        assert_eq!(t.read("cpuset/minirun/c1/cpuset.cpus"), "0-3");
        assert_eq!(t.read("cpuset/minirun/c1/cpuset.mems"), "0");
        // Values the container set stay.
        t.write("cpuset/minirun/c1/cpuset.cpus", "1");
        m.create().unwrap();
        assert_eq!(t.read("cpuset/minirun/c1/cpuset.cpus"), "1");
    }

    #[test]
    fn writes_each_resource_to_its_hierarchy() {
        let (t, m) = tree();
        t.populate("minirun/c1");
        t.write("memory/minirun/c1/memory.limit_in_bytes", "9223372036854771712");
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64i64 << 20)
                    .swap(128i64 << 20)
                    .reservation(32i64 << 20)
                    .swappiness(10u64)
                    .disable_oom_killer(true)
                    .kernel(1i64)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(512u64)
                    .quota(50_000i64)
                    .period(100_000u64)
                    .cpus("0-1")
                    .mems("0")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(50i64).build().unwrap())
            .block_io(
                LinuxBlockIoBuilder::default()
                    .weight(300u16)
                    .weight_device(vec![LinuxWeightDeviceBuilder::default()
                        .major(8i64)
                        .minor(0i64)
                        .weight(200u16)
                        .build()
                        .unwrap()])
                    .throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                        .major(8i64)
                        .minor(16i64)
                        .rate(1_048_576u64)
                        .build()
                        .unwrap()])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        m.apply_resources(&r).unwrap();
        let c = "minirun/c1";
        assert_eq!(t.read(&format!("memory/{c}/memory.limit_in_bytes")), "67108864");
        assert_eq!(t.read(&format!("memory/{c}/memory.memsw.limit_in_bytes")), "134217728");
        assert_eq!(t.read(&format!("memory/{c}/memory.soft_limit_in_bytes")), "33554432");
        assert_eq!(t.read(&format!("memory/{c}/memory.swappiness")), "10");
        assert_eq!(t.read(&format!("memory/{c}/memory.oom_control")), "1");
        assert_eq!(t.read(&format!("cpu,cpuacct/{c}/cpu.shares")), "512");
        assert_eq!(t.read(&format!("cpu,cpuacct/{c}/cpu.cfs_quota_us")), "50000");
        assert_eq!(t.read(&format!("cpu,cpuacct/{c}/cpu.cfs_period_us")), "100000");
        assert_eq!(t.read(&format!("cpuset/{c}/cpuset.cpus")), "0-1");
        assert_eq!(t.read(&format!("cpuset/{c}/cpuset.mems")), "0");
        assert_eq!(t.read(&format!("pids/{c}/pids.max")), "50");
        assert_eq!(t.read(&format!("blkio/{c}/blkio.bfq.weight")), "300");
        assert_eq!(t.read(&format!("blkio/{c}/blkio.bfq.weight_device")), "8:0 200");
        assert_eq!(t.read(&format!("blkio/{c}/blkio.throttle.read_bps_device")), "8:16 1048576");
    }

    #[test]
    fn unlimited_values() {
        let (t, m) = tree();
        t.populate("minirun/c1");
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(-1i64).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(-1i64).build().unwrap())
            .cpu(LinuxCpuBuilder::default().quota(-1i64).build().unwrap())
            .build()
            .unwrap();
        m.apply_resources(&r).unwrap();
        assert_eq!(t.read("memory/minirun/c1/memory.limit_in_bytes"), "-1");
        // memsw follows an unlimited limit.
        assert_eq!(t.read("memory/minirun/c1/memory.memsw.limit_in_bytes"), "-1");
        assert_eq!(t.read("pids/minirun/c1/pids.max"), "max");
        assert_eq!(t.read("cpu,cpuacct/minirun/c1/cpu.cfs_quota_us"), "-1");
    }

    #[test]
    fn swap_smaller_than_limit_is_rejected() {
        let (t, m) = tree();
        t.populate("minirun/c1");
        let err = m.apply_resources(&mem(100, Some(50))).unwrap_err();
        assert!(err.to_string().contains("memory+swap"), "{err}");
    }

    #[test]
    fn swap_without_accounting() {
        let (t, m) = tree();
        t.populate("minirun/c1");
        t.remove("memory/minirun/c1/memory.memsw.limit_in_bytes");
        let err = m.apply_resources(&mem(100, Some(200))).unwrap_err();
        assert!(err.to_string().contains("swapaccount"), "{err}");
        // Unlimited swap needs no accounting.
        m.apply_resources(&mem(100, Some(-1))).unwrap();
        assert_eq!(t.read("memory/minirun/c1/memory.limit_in_bytes"), "100");
    }

    #[test]
    fn missing_controllers() {
        let t = FakeTree::v1(&[("memory", &["memory.limit_in_bytes"])]);
        let m = t.manager("/c");
        t.populate("c");
        // Absent controllers are fine while the config does not use them.
        m.apply_resources(&mem(1 << 20, None)).unwrap();
        let unlimited_pids = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(0i64).build().unwrap())
            .build()
            .unwrap();
        m.apply_resources(&unlimited_pids).unwrap();
        let pids = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(10i64).build().unwrap())
            .build()
            .unwrap();
        let err = m.apply_resources(&pids).unwrap_err().to_string();
        assert!(err.contains("linux.resources.pids") && err.contains("pids controller"), "{err}");
        let hugetlb = LinuxResourcesBuilder::default()
            .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
                .page_size("2MB")
                .limit(1i64 << 21)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        assert!(m.apply_resources(&hugetlb).is_err());
        let unified = LinuxResourcesBuilder::default()
            .unified([("memory.high".to_owned(), "1".to_owned())].into_iter().collect::<std::collections::HashMap<_, _>>())
            .build()
            .unwrap();
        let err = m.apply_resources(&unified).unwrap_err().to_string();
        assert!(err.contains("unified"), "{err}");
        assert!(m.freeze().is_err());
        assert!(!m.is_frozen().unwrap());
    }

    #[test]
    fn hugetlb_limits() {
        let t = FakeTree::v1(&[(
            "hugetlb",
            &["hugetlb.2MB.limit_in_bytes", "hugetlb.2MB.rsvd.limit_in_bytes", "hugetlb.1GB.limit_in_bytes"],
        )]);
        let m = t.manager("/c");
        t.populate("c");
        let limit = |size: &str, limit: i64| {
            LinuxHugepageLimitBuilder::default().page_size(size).limit(limit).build().unwrap()
        };
        let r = LinuxResourcesBuilder::default()
            .hugepage_limits(vec![limit("2MB", 4 << 21), limit("1GB", -1)])
            .build()
            .unwrap();
        m.apply_resources(&r).unwrap();
        assert_eq!(t.read("hugetlb/c/hugetlb.2MB.limit_in_bytes"), "8388608");
        assert_eq!(t.read("hugetlb/c/hugetlb.2MB.rsvd.limit_in_bytes"), "8388608");
        assert_eq!(t.read("hugetlb/c/hugetlb.1GB.limit_in_bytes"), "-1");
        let bad = LinuxResourcesBuilder::default()
            .hugepage_limits(vec![limit("64KB", 1)])
            .build()
            .unwrap();
        let err = m.apply_resources(&bad).unwrap_err().to_string();
        assert!(err.contains("64KB"), "{err}");
    }

    #[test]
    fn device_rules_are_written() {
        let (t, m) = tree();
        t.populate("minirun/c1");
        t.write("devices/minirun/c1/devices.list", "a *:* rwm\n");
        let deny_all = LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().unwrap();
        let r = LinuxResourcesBuilder::default().devices(vec![deny_all.clone()]).build().unwrap();
        let writes = devices::apply_v1(&t.root().join("devices/minirun/c1"), r.devices().as_ref().unwrap()).unwrap();
        assert_eq!(writes[0], ("devices.deny", "a".to_owned()));
        assert!(writes.iter().skip(1).all(|(f, _)| *f == "devices.allow"));
        m.apply_resources(&r).unwrap();
        // The fake file keeps only the last write; it is an allow rule.
        assert!(!t.read("devices/minirun/c1/devices.allow").is_empty());
    }

    #[test]
    fn freezer_state_machine() {
        let (t, m) = tree();
        t.populate("minirun/c1");
        // A plain file reads back what was written, like a freeze that
        // completes at once.
        m.freeze().unwrap();
        assert_eq!(t.read("freezer/minirun/c1/freezer.state"), "FROZEN");
        assert!(m.is_frozen().unwrap());
        m.thaw().unwrap();
        assert!(!m.is_frozen().unwrap());
    }

    #[test]
    fn pids_stats_oom_and_destroy() {
        let (t, m) = tree();
        m.create().unwrap();
        t.write("memory/minirun/c1/cgroup.procs", "7\n3\n");
        t.write("pids/minirun/c1/cgroup.procs", "3\n");
        t.write("pids/minirun/c1/sub/cgroup.procs", "9\n");
        assert_eq!(m.pids().unwrap(), vec![Pid::from_raw(3), Pid::from_raw(7), Pid::from_raw(9)]);
        t.write("memory/minirun/c1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
        t.write("memory/minirun/c1/memory.usage_in_bytes", "4096\n");
        t.write("memory/minirun/c1/memory.limit_in_bytes", "9223372036854771712\n");
        t.write("cpu,cpuacct/minirun/c1/cpuacct.usage", "123\n");
        t.write("pids/minirun/c1/pids.current", "3\n");
        t.write("pids/minirun/c1/pids.max", "max\n");
        assert_eq!(m.oom_kill_count().unwrap(), 2);
        let s = m.stats().unwrap();
        assert_eq!(s.memory_usage_bytes, Some(4096));
        assert_eq!(s.memory_limit_bytes, None);
        assert_eq!(s.cpu_usage_ns, Some(123));
        assert_eq!(s.pids_current, Some(3));
        assert_eq!(s.pids_limit, None);
        assert_eq!(s.oom_kills, 2);

        // Plain directories with files cannot be rmdir'ed; every failure is
        // reported, not just the first.
        let err = m.destroy().unwrap_err();
        let CgroupError::Multiple(errs) = &err else {
            panic!("{err}")
        };
        assert_eq!(errs.len(), 3);
        t.clear_files("");
        m.destroy().unwrap();
        for (_, dir) in m.host_paths() {
            assert!(!dir.exists());
        }
        m.destroy().unwrap();
        assert!(m.pids().unwrap().is_empty());
    }
}
