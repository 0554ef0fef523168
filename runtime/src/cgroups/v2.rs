//! cgroup v2: one directory; controllers must be enabled in every
//! ancestor's cgroup.subtree_control before their files appear in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxResources};

use super::path::CgroupPath;
use super::resources::{self, invalid, requested, Controller, Demand, V2Support};
use super::{devices, files, CgroupError, CgroupManager, Stats};

const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CPU_PERIOD: u64 = 100_000;

/// How controllers get into the container's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EnableControllers {
    /// Pure v2 host: everything the root offers, at create time, as runc
    /// does; later writes then only check.
    AllOnCreate,
    /// The unified half of a hybrid host: the host's controllers live in
    /// v1, and the unified root's subtree_control is left alone unless a
    /// resource needs a controller only v2 offers.
    OnDemand,
}

#[derive(Debug)]
pub(super) struct V2Manager {
    mountpoint: PathBuf,
    path: CgroupPath,
    dir: PathBuf,
    enable: EnableControllers,
}

impl V2Manager {
    pub(super) fn new(mountpoint: &Path, path: &CgroupPath, enable: EnableControllers) -> V2Manager {
        V2Manager {
            mountpoint: mountpoint.to_owned(),
            path: path.clone(),
            dir: path.under(mountpoint),
            enable,
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directories whose subtree_control decides what the container's
    /// directory gets: the mountpoint and each ancestor below it.
    fn parents(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.mountpoint.clone()];
        let mut current = self.mountpoint.clone();
        for component in self.path.relative().components() {
            current.push(component);
            dirs.push(current.clone());
        }
        dirs.pop();
        dirs
    }

    pub(super) fn destroy_until(&self, deadline: Instant) -> Result<(), CgroupError> {
        files::remove_cgroup(&self.dir, deadline)
    }

    pub(super) fn create_dir(&self) -> Result<(), CgroupError> {
        files::create_dir(&self.dir)
    }

    /// Best effort: a controller an ancestor cannot pass on (it has
    /// processes, or is threaded) only matters if a resource needs it, and
    /// `ensure_controller` reports that precisely.
    fn enable_all(&self) -> Result<(), CgroupError> {
        for parent in self.parents() {
            let Some(available) = files::read_if_exists(&parent, "cgroup.controllers")? else {
                continue;
            };
            let enabled = files::read_if_exists(&parent, "cgroup.subtree_control")?.unwrap_or_default();
            let missing: Vec<String> = available
                .split_whitespace()
                .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
                .map(|c| format!("+{c}"))
                .collect();
            if missing.is_empty() {
                continue;
            }
            if files::write(&parent, "cgroup.subtree_control", &missing.join(" ")).is_err() {
                for one in &missing {
                    let _ = files::write(&parent, "cgroup.subtree_control", one);
                }
            }
        }
        Ok(())
    }

    /// Whether the hierarchy root offers `controller` at all.
    pub(super) fn root_offers(&self, controller: &str) -> Result<bool, CgroupError> {
        Ok(files::read_if_exists(&self.mountpoint, "cgroup.controllers")?
            .is_some_and(|text| text.split_whitespace().any(|c| c == controller)))
    }

    /// Makes `controller` available in the container's directory, enabling
    /// it top-down where needed.
    pub(super) fn ensure_controller(&self, controller: &str, resource: &str) -> Result<(), CgroupError> {
        let unavailable = |reason: String| CgroupError::Unavailable {
            resource: resource.to_owned(),
            reason,
        };
        for parent in self.parents() {
            let available = files::read_if_exists(&parent, "cgroup.controllers")?.unwrap_or_default();
            if !available.split_whitespace().any(|c| c == controller) {
                return Err(unavailable(format!(
                    "the {controller} controller is not available in {} (cgroup.controllers: {:?})",
                    parent.display(),
                    available.trim()
                )));
            }
            let enabled = files::read_if_exists(&parent, "cgroup.subtree_control")?.unwrap_or_default();
            if enabled.split_whitespace().any(|c| c == controller) {
                continue;
            }
            if let Err(e) = files::write(&parent, "cgroup.subtree_control", &format!("+{controller}")) {
                let hint = match e.errno() {
                    Some(libc::EBUSY) => " (that cgroup has processes of its own; cgroup v2 only hands controllers to children of cgroups without processes)",
                    Some(libc::EOPNOTSUPP) => " (threaded cgroups cannot use this controller)",
                    _ => "",
                };
                return Err(unavailable(format!(
                    "the {controller} controller cannot be enabled: {e}{hint}"
                )));
            }
        }
        Ok(())
    }

    /// One resource group into the container's directory.
    pub(super) fn apply_controller(&self, c: Controller, r: &LinuxResources) -> Result<(), CgroupError> {
        if let V2Support::Controller(name) = c.v2() {
            self.ensure_controller(name, c.resource())?;
        }
        apply(c, &self.dir, r)
    }

    /// linux.resources.unified: file name -> value, written verbatim, one
    /// line per write so multi-device values like io.max work.
    pub(super) fn apply_unified(&self, map: &HashMap<String, String>) -> Result<(), CgroupError> {
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort();
        for (key, value) in entries {
            let resource = format!("linux.resources.unified[{key:?}]");
            let Some((controller, _)) = key.split_once('.') else {
                return Err(invalid(&resource, "keys must be cgroup v2 file names such as \"memory.high\""));
            };
            if key.contains('/') || key == ".." || controller.is_empty() {
                return Err(invalid(&resource, "keys must be plain file names"));
            }
            // Kept only to explain a failed write: files such as
            // cgroup.* or *.pressure need no controller at all.
            let enable_error = match controller {
                "cgroup" => None,
                _ => self.ensure_controller(controller, &resource).err(),
            };
            let lines: Vec<&str> = if value.contains('\n') {
                value.lines().filter(|l| !l.is_empty()).collect()
            } else {
                vec![value.as_str()]
            };
            for line in lines {
                if let Err(e) = files::write(&self.dir, key, line) {
                    return Err(match (e.errno(), enable_error) {
                        (Some(libc::ENOENT), Some(enable_error)) => enable_error,
                        _ => e,
                    });
                }
            }
        }
        Ok(())
    }
}

impl CgroupManager for V2Manager {
    fn create(&self) -> Result<(), CgroupError> {
        self.create_dir()?;
        if self.enable == EnableControllers::AllOnCreate {
            self.enable_all()?;
        }
        Ok(())
    }

    fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        files::add_pid(&self.dir, pid)
    }

    fn apply_resources(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        for (c, demand) in requested(r) {
            let result = match c.v2() {
                V2Support::Missing => Err(c.unavailable(format!(
                    "cgroup v2 has no {} controller",
                    c.v1_name()
                ))),
                _ => self.apply_controller(c, r),
            };
            match result {
                Err(CgroupError::Unavailable { .. }) if demand == Demand::IfAvailable => {}
                other => other?,
            }
        }
        if let Some(map) = r.unified() {
            self.apply_unified(map)?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        freeze(&self.dir)
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        thaw(&self.dir)
    }

    fn is_frozen(&self) -> Result<bool, CgroupError> {
        is_frozen(&self.dir)
    }

    fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        Ok(files::pids_recursive(&self.dir)?
            .into_iter()
            .map(Pid::from_raw)
            .collect())
    }

    fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        oom_kills(&self.dir)
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        stats(&self.dir)
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        files::remove_cgroup(&self.dir, Instant::now() + files::REMOVE_PATIENCE)
    }

    fn host_paths(&self) -> Vec<(String, PathBuf)> {
        vec![(String::new(), self.dir.clone())]
    }
}

/// Writes the settings of one resource group into `dir`.
pub(super) fn apply(c: Controller, dir: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    match c {
        Controller::Cpuset => r.cpu().as_ref().map_or(Ok(()), |cpu| {
            if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
                files::write(dir, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
                files::write(dir, "cpuset.mems", mems)?;
            }
            Ok(())
        }),
        Controller::Devices => r
            .devices()
            .as_ref()
            .map_or(Ok(()), |rules| devices::apply_v2(dir, rules)),
        Controller::Memory => r.memory().as_ref().map_or(Ok(()), |m| memory(dir, m)),
        Controller::Cpu => r.cpu().as_ref().map_or(Ok(()), |cpu| self::cpu(dir, cpu)),
        Controller::Pids => r.pids().as_ref().map_or(Ok(()), |p| resources::write_pids(dir, p)),
        Controller::Blkio => r.block_io().as_ref().map_or(Ok(()), |b| io(dir, b)),
        Controller::Hugetlb => r
            .hugepage_limits()
            .as_ref()
            .map_or(Ok(()), |h| hugetlb(dir, h)),
        Controller::Rdma => r.rdma().as_ref().map_or(Ok(()), |m| resources::write_rdma(dir, m)),
        Controller::NetCls | Controller::NetPrio => Err(c.unavailable(format!(
            "cgroup v2 has no {} controller",
            c.v1_name()
        ))),
    }
}

/// cpu.shares (v1, 2..=262144, default 1024) to cpu.weight (v2, 1..=10000,
/// default 100) with runc's linear mapping; 0 stays 0 ("not set").
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// blkio.weight (10..=1000) to io.weight (1..=10000), as runc converts.
fn blkio_weight_to_io(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// OCI's memory.swap is memory+swap (the v1 memsw semantics); v2 limits
/// swap alone. Returns the memory.swap.max value, or `None` to leave it.
/// `swap`/`limit` use the spec's encoding: 0 unset, -1 unlimited.
pub fn memory_swap_to_v2(swap: i64, limit: i64) -> Result<Option<String>, CgroupError> {
    const RES: &str = "linux.resources.memory.swap";
    match (swap, limit) {
        // Unlimited memory with swap unspecified: unlimited swap too, as
        // v1 would behave.
        (0, -1) => Ok(Some("max".into())),
        (0, _) => Ok(None),
        (-1, _) => Ok(Some("max".into())),
        (s, _) if s < 0 => Err(invalid(RES, format!("{s} is not a byte count or -1"))),
        (s, -1) => Ok(Some(s.to_string())),
        (_, 0) => Err(invalid(RES, "a swap limit needs a memory limit to be computed on cgroup v2")),
        (_, l) if l < 0 => Err(invalid("linux.resources.memory.limit", format!("{l} is not a byte count or -1"))),
        (s, l) if s < l => Err(invalid(
            RES,
            format!("memory+swap ({s}) must not be smaller than the memory limit ({l})"),
        )),
        (s, l) => Ok(Some((s - l).to_string())),
    }
}

fn limit_value(resource: &str, v: i64) -> Result<String, CgroupError> {
    match v {
        -1 => Ok("max".into()),
        v if v < 0 => Err(invalid(resource, format!("{v} is not a byte count or -1"))),
        v => Ok(v.to_string()),
    }
}

fn memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let swap = memory_swap_to_v2(m.swap().unwrap_or(0), m.limit().unwrap_or(0))?;
    // Swap first, like runc: memory.max alone never fails for ordering
    // reasons on v2, but a rejected swap value should stop before the
    // limit changes.
    if let Some(value) = swap {
        match files::write(dir, "memory.swap.max", &value) {
            // No swap accounting: "no swap" and "any swap" are both moot.
            Err(e) if e.errno() == Some(libc::ENOENT) && (value == "max" || value == "0") => {}
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                return Err(CgroupError::Unavailable {
                    resource: "linux.resources.memory.swap".into(),
                    reason: format!("the kernel does not account swap ({e})"),
                })
            }
            other => other?,
        }
    }
    if let Some(limit) = m.limit().filter(|&v| v != 0) {
        files::write(dir, "memory.max", &limit_value("linux.resources.memory.limit", limit)?)?;
    }
    if let Some(low) = m.reservation().filter(|&v| v != 0) {
        files::write(dir, "memory.low", &limit_value("linux.resources.memory.reservation", low)?)?;
    }
    // swappiness and disableOOMKiller have no v2 files; runc ignores them
    // there too, so configs written for runc keep working.
    Ok(())
}

fn cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if resources::realtime_set(c) {
        return Err(CgroupError::Unavailable {
            resource: "linux.resources.cpu.realtimeRuntime/realtimePeriod".into(),
            reason: "cgroup v2 has no realtime group scheduling".into(),
        });
    }
    if let Some(shares) = c.shares().filter(|&s| s != 0) {
        files::write(dir, "cpu.weight", &cpu_shares_to_weight(shares).to_string())?;
    }
    if let Some(idle) = c.idle() {
        files::write(dir, "cpu.idle", &idle.to_string())?;
    }
    let quota = c.quota().filter(|&q| q != 0);
    let period = c.period().filter(|&p| p != 0);
    let sets_max = quota.is_some() || period.is_some();
    // A burst above the old quota is refused until the new quota is in;
    // then it is written again afterwards (runc's order).
    let mut burst_after_max = None;
    if let Some(burst) = c.burst() {
        match files::write(dir, "cpu.max.burst", &burst.to_string()) {
            Err(e) if e.errno() == Some(libc::EINVAL) && sets_max => burst_after_max = Some(burst),
            other => other?,
        }
    }
    if sets_max {
        // cpu.max holds both numbers; keep the one the config leaves out.
        let current = files::read_if_exists(dir, "cpu.max")?.unwrap_or_default();
        let mut current = current.split_whitespace();
        let current_quota = current.next().unwrap_or("max").to_owned();
        let current_period = current.next().and_then(|p| p.parse().ok());
        let quota = match quota {
            Some(q) if q > 0 => q.to_string(),
            Some(_) => "max".to_owned(),
            None => current_quota,
        };
        let period = period.or(current_period).unwrap_or(DEFAULT_CPU_PERIOD);
        files::write(dir, "cpu.max", &format!("{quota} {period}"))?;
    }
    if let Some(burst) = burst_after_max {
        files::write(dir, "cpu.max.burst", &burst.to_string())?;
    }
    Ok(())
}

fn io(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    // With BFQ, io.bfq.weight takes blkio's 1..1000 scale directly; without
    // it io.weight (the io.cost model) uses 1..10000.
    let bfq = files::exists(dir, "io.bfq.weight");
    if let Some(w) = b.weight() {
        if bfq {
            files::write(dir, "io.bfq.weight", &w.to_string())?;
        } else {
            files::write(dir, "io.weight", &blkio_weight_to_io(w).to_string())?;
        }
    }
    // leafWeight has no v2 counterpart (there are no internal tasks to
    // weigh against children); ignored like runc does.
    for wd in b.weight_device().iter().flatten() {
        let dev = resources::device_numbers("linux.resources.blockIO.weightDevice", wd.major(), wd.minor())?;
        if let Some(w) = wd.weight() {
            if bfq {
                files::write(dir, "io.bfq.weight", &format!("{dev} {w}"))?;
            } else {
                files::write(dir, "io.weight", &format!("{dev} {}", blkio_weight_to_io(w)))?;
            }
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, devices) in throttles {
        for t in devices.iter().flatten() {
            let dev = resources::device_numbers("linux.resources.blockIO throttle device", t.major(), t.minor())?;
            files::write(dir, "io.max", &format!("{dev} {key}={}", t.rate()))?;
        }
    }
    Ok(())
}

fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    resources::write_hugetlb(dir, limits, "max", "max")
}

pub(super) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    if !files::exists(dir, "cgroup.freeze") {
        return Err(CgroupError::Freezer {
            action: "freeze",
            path: dir.to_owned(),
            reason: "cgroup.freeze is missing (the cgroup does not exist, or the kernel predates 5.2)".into(),
        });
    }
    files::write(dir, "cgroup.freeze", "1")?;
    // Freezing is asynchronous; cgroup.events says when every task stopped.
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    let mut pause = Duration::from_micros(100);
    loop {
        let events = files::read(dir, "cgroup.events")?;
        if files::keyed_value(&events, "frozen") == Some(1) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = files::write(dir, "cgroup.freeze", "0");
            return Err(CgroupError::Freezer {
                action: "freeze",
                path: dir.to_owned(),
                reason: format!("cgroup.events did not report frozen within {FREEZE_TIMEOUT:?}"),
            });
        }
        sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

pub(super) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    files::write(dir, "cgroup.freeze", "0")
}

/// Whether the cgroup itself is asked to be frozen (cgroup.freeze); a
/// freeze still settling counts, and a frozen ancestor does not.
pub(super) fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    Ok(files::read_if_exists(dir, "cgroup.freeze")?.is_some_and(|v| v.trim() == "1"))
}

fn oom_kills(dir: &Path) -> Result<u64, CgroupError> {
    Ok(files::read_if_exists(dir, "memory.events")?
        .and_then(|text| files::keyed_value(&text, "oom_kill"))
        .unwrap_or(0))
}

pub(super) fn stats(dir: &Path) -> Result<Stats, CgroupError> {
    Ok(Stats {
        memory_usage_bytes: files::read_u64_if_exists(dir, "memory.current")?,
        memory_max_usage_bytes: files::read_u64_if_exists(dir, "memory.peak")?,
        memory_limit_bytes: files::read_u64_if_exists(dir, "memory.max")?,
        cpu_usage_ns: files::read_if_exists(dir, "cpu.stat")?
            .and_then(|text| files::keyed_value(&text, "usage_usec"))
            .map(|us| us.saturating_mul(1000)),
        pids_current: files::read_u64_if_exists(dir, "pids.current")?,
        pids_limit: files::read_u64_if_exists(dir, "pids.max")?,
        oom_kills: oom_kills(dir)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::FakeTree;
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
        LinuxNetworkBuilder, LinuxPidsBuilder, LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
    };

    const LEAF_FILES: &[&str] = &[
        "cgroup.procs",
        "cgroup.freeze",
        "cgroup.events",
        "cpu.weight",
        "cpu.max",
        "cpu.max.burst",
        "cpuset.cpus",
        "cpuset.mems",
        "memory.max",
        "memory.swap.max",
        "memory.low",
        "memory.high",
        "pids.max",
        "io.weight",
        "io.max",
        "hugetlb.2MB.max",
        "hugetlb.2MB.rsvd.max",
    ];

    fn tree(root_controllers: &str) -> (FakeTree, Box<dyn CgroupManager>) {
        let t = FakeTree::v2(root_controllers, LEAF_FILES);
        let m = t.manager("/minirun/c1");
        (t, m)
    }

    #[test]
    fn shares_to_weight() {
        assert_eq!(cpu_shares_to_weight(0), 0);
        assert_eq!(cpu_shares_to_weight(1), 1);
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(512), 20);
        assert_eq!(cpu_shares_to_weight(1024), 39);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
        assert_eq!(cpu_shares_to_weight(u64::MAX), 10_000);
        assert_eq!(blkio_weight_to_io(10), 1);
        assert_eq!(blkio_weight_to_io(1000), 10_000);
        assert_eq!(blkio_weight_to_io(500), 4950);
    }

    #[test]
    fn swap_conversion() {
        let conv = |s, l| memory_swap_to_v2(s, l).map_err(|e| e.to_string());
        assert_eq!(conv(0, 0), Ok(None));
        assert_eq!(conv(0, 100), Ok(None));
        assert_eq!(conv(0, -1), Ok(Some("max".into())));
        assert_eq!(conv(-1, 100), Ok(Some("max".into())));
        assert_eq!(conv(300, 100), Ok(Some("200".into())));
        assert_eq!(conv(100, 100), Ok(Some("0".into())));
        assert_eq!(conv(300, -1), Ok(Some("300".into())));
        assert!(conv(50, 100).unwrap_err().contains("memory+swap"));
        assert!(conv(300, 0).unwrap_err().contains("needs a memory limit"));
        assert!(conv(-5, 100).is_err());
        assert!(conv(300, -7).is_err());
    }

    #[test]
    fn create_enables_available_controllers() {
        let (t, m) = tree("cpu memory pids io hugetlb cpuset");
        m.create().unwrap();
        assert!(t.root().join("minirun/c1").is_dir());
        // Plain files keep only the last write, so the batch shows as one.
        assert_eq!(
            t.read("cgroup.subtree_control"),
            "+cpu +memory +pids +io +hugetlb +cpuset"
        );
        assert_eq!(m.host_paths(), vec![(String::new(), t.root().join("minirun/c1"))]);
    }

    #[test]
    fn writes_v2_files() {
        let (t, m) = tree("cpu memory pids io hugetlb cpuset");
        t.populate("minirun/c1");
        t.write("minirun/c1/cpu.max", "max 100000\n");
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64i64 << 20)
                    .swap(96i64 << 20)
                    .reservation(16i64 << 20)
                    .swappiness(30u64)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(20_000i64)
                    .cpus("1")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(50i64).build().unwrap())
            .block_io(
                LinuxBlockIoBuilder::default()
                    .weight(500u16)
                    .throttle_write_iops_device(vec![LinuxThrottleDeviceBuilder::default()
                        .major(8i64)
                        .minor(0i64)
                        .rate(100u64)
                        .build()
                        .unwrap()])
                    .build()
                    .unwrap(),
            )
            .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
                .page_size("2MB")
                .limit(-1i64)
                .build()
                .unwrap()])
            .unified(
                [("memory.high".to_owned(), "50000000".to_owned())]
                    .into_iter()
                    .collect::<HashMap<_, _>>(),
            )
            .build()
            .unwrap();
        m.apply_resources(&r).unwrap();
        let c = |f: &str| t.read(&format!("minirun/c1/{f}"));
        assert_eq!(c("memory.max"), "67108864");
        assert_eq!(c("memory.swap.max"), "33554432");
        assert_eq!(c("memory.low"), "16777216");
        assert_eq!(c("memory.high"), "50000000");
        assert_eq!(c("cpu.weight"), "39");
        // The period the config leaves out is kept from cpu.max.
        assert_eq!(c("cpu.max"), "20000 100000");
        assert_eq!(c("cpuset.cpus"), "1");
        assert_eq!(c("pids.max"), "50");
        assert_eq!(c("io.weight"), "4950");
        assert_eq!(c("io.max"), "8:0 wiops=100");
        assert_eq!(c("hugetlb.2MB.max"), "max");
        assert_eq!(c("hugetlb.2MB.rsvd.max"), "max");
        // Controllers were enabled on the way down.
        assert_eq!(t.read("minirun/cgroup.subtree_control"), "+memory");
    }

    #[test]
    fn cpu_max_forms() {
        let (t, m) = tree("cpu");
        t.populate("minirun/c1");
        let apply = |quota: Option<i64>, period: Option<u64>| {
            let mut b = LinuxCpuBuilder::default();
            if let Some(q) = quota {
                b = b.quota(q);
            }
            if let Some(p) = period {
                b = b.period(p);
            }
            let r = LinuxResourcesBuilder::default().cpu(b.build().unwrap()).build().unwrap();
            m.apply_resources(&r).unwrap();
            t.read("minirun/c1/cpu.max")
        };
        t.write("minirun/c1/cpu.max", "");
        assert_eq!(apply(Some(50_000), Some(200_000)), "50000 200000");
        assert_eq!(apply(Some(-1), Some(200_000)), "max 200000");
        assert_eq!(apply(None, Some(50_000)), "max 50000");
        t.write("minirun/c1/cpu.max", "30000 100000");
        assert_eq!(apply(None, Some(50_000)), "30000 50000");
        t.write("minirun/c1/cpu.max", "");
        assert_eq!(apply(Some(10_000), None), "10000 100000");
    }

    #[test]
    fn missing_controller_is_reported_when_asked_for() {
        let (t, m) = tree("cpu");
        t.populate("minirun/c1");
        let mem = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(1i64 << 20).build().unwrap())
            .build()
            .unwrap();
        let err = m.apply_resources(&mem).unwrap_err().to_string();
        assert!(
            err.contains("linux.resources.memory") && err.contains("memory controller is not available"),
            "{err}"
        );
        // "Unlimited" needs no controller.
        let unlimited = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(-1i64).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(-1i64).build().unwrap())
            .build()
            .unwrap();
        m.apply_resources(&unlimited).unwrap();
        let net = LinuxResourcesBuilder::default()
            .network(LinuxNetworkBuilder::default().class_id(7u32).build().unwrap())
            .build()
            .unwrap();
        let err = m.apply_resources(&net).unwrap_err().to_string();
        assert!(err.contains("net_cls"), "{err}");
        let rt = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().realtime_runtime(1000i64).build().unwrap())
            .build()
            .unwrap();
        let err = m.apply_resources(&rt).unwrap_err().to_string();
        assert!(err.contains("realtime"), "{err}");
    }

    #[test]
    fn unified_keys() {
        let (t, m) = tree("cpu memory");
        t.populate("minirun/c1");
        let unified = |k: &str, v: &str| {
            LinuxResourcesBuilder::default()
                .unified([(k.to_owned(), v.to_owned())].into_iter().collect::<HashMap<_, _>>())
                .build()
                .unwrap()
        };
        t.write("cgroup.controllers", "cpu memory io");
        t.write("minirun/cgroup.controllers", "cpu memory io");
        m.apply_resources(&unified("io.max", "8:0 rbps=1\n8:16 wbps=2\n")).unwrap();
        assert_eq!(t.read("minirun/c1/io.max"), "8:16 wbps=2");
        for bad in ["../x", "a/b", "nodot", ".x"] {
            let err = m.apply_resources(&unified(bad, "1")).unwrap_err();
            assert!(matches!(err, CgroupError::InvalidResource { .. }), "{bad}: {err}");
        }
        let err = m.apply_resources(&unified("rdma.max", "x")).unwrap_err().to_string();
        assert!(err.contains("rdma controller is not available"), "{err}");
    }

    #[test]
    fn freeze_and_stats() {
        let (t, m) = tree("cpu memory pids");
        t.populate("minirun/c1");
        t.write("minirun/c1/cgroup.events", "populated 1\nfrozen 1\n");
        m.freeze().unwrap();
        assert_eq!(t.read("minirun/c1/cgroup.freeze"), "1");
        assert!(m.is_frozen().unwrap());
        m.thaw().unwrap();
        assert!(!m.is_frozen().unwrap());
        t.write("minirun/c1/memory.current", "8192\n");
        t.write("minirun/c1/memory.max", "max\n");
        t.write("minirun/c1/memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n");
        t.write("minirun/c1/cpu.stat", "usage_usec 250\nuser_usec 200\n");
        t.write("minirun/c1/pids.current", "2\n");
        t.write("minirun/c1/pids.max", "50\n");
        let s = m.stats().unwrap();
        assert_eq!(
            s,
            Stats {
                memory_usage_bytes: Some(8192),
                memory_max_usage_bytes: None,
                memory_limit_bytes: None,
                cpu_usage_ns: Some(250_000),
                pids_current: Some(2),
                pids_limit: Some(50),
                oom_kills: 1,
            }
        );
        assert_eq!(m.oom_kill_count().unwrap(), 1);
        t.write("minirun/c1/cgroup.procs", "42\n");
        assert_eq!(m.pids().unwrap(), vec![Pid::from_raw(42)]);
    }

    #[test]
    fn freeze_without_cgroup() {
        let (_t, m) = tree("cpu");
        let err = m.freeze().unwrap_err().to_string();
        assert!(err.contains("cgroup.freeze"), "{err}");
        assert!(!m.is_frozen().unwrap());
        m.destroy().unwrap();
    }
}
