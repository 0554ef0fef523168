//! Which controllers a `LinuxResources` asks for, and value checks shared by
//! the v1 and v2 writers.

use std::collections::HashMap;

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxRdma, LinuxResources};

use super::{files, CgroupError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Controller {
    Cpuset,
    Devices,
    Memory,
    Cpu,
    Pids,
    Blkio,
    Hugetlb,
    NetCls,
    NetPrio,
    Rdma,
}

/// How cgroup v2 provides what a v1 controller did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum V2Support {
    Controller(&'static str),
    /// Needs no controller: device filtering is an eBPF program attached to
    /// the directory.
    Core,
    Missing,
}

impl Controller {
    pub(super) fn v1_name(self) -> &'static str {
        match self {
            Controller::Cpuset => "cpuset",
            Controller::Devices => "devices",
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
            Controller::Blkio => "blkio",
            Controller::Hugetlb => "hugetlb",
            Controller::NetCls => "net_cls",
            Controller::NetPrio => "net_prio",
            Controller::Rdma => "rdma",
        }
    }

    pub(super) fn v2(self) -> V2Support {
        match self {
            Controller::Cpuset => V2Support::Controller("cpuset"),
            Controller::Devices => V2Support::Core,
            Controller::Memory => V2Support::Controller("memory"),
            Controller::Cpu => V2Support::Controller("cpu"),
            Controller::Pids => V2Support::Controller("pids"),
            Controller::Blkio => V2Support::Controller("io"),
            Controller::Hugetlb => V2Support::Controller("hugetlb"),
            Controller::Rdma => V2Support::Controller("rdma"),
            Controller::NetCls | Controller::NetPrio => V2Support::Missing,
        }
    }

    /// The config.json field, for error messages.
    pub(super) fn resource(self) -> &'static str {
        match self {
            Controller::Cpuset => "linux.resources.cpu.cpus/mems",
            Controller::Devices => "linux.resources.devices",
            Controller::Memory => "linux.resources.memory",
            Controller::Cpu => "linux.resources.cpu",
            Controller::Pids => "linux.resources.pids",
            Controller::Blkio => "linux.resources.blockIO",
            Controller::Hugetlb => "linux.resources.hugepageLimits",
            Controller::NetCls => "linux.resources.network.classID",
            Controller::NetPrio => "linux.resources.network.priorities",
            Controller::Rdma => "linux.resources.rdma",
        }
    }

    pub(super) fn unavailable(self, reason: impl Into<String>) -> CgroupError {
        CgroupError::Unavailable {
            resource: self.resource().to_owned(),
            reason: reason.into(),
        }
    }
}

/// Whether a missing controller is an error for this config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Demand {
    /// The config sets a real limit: no controller, no container.
    Required,
    /// The config only spells out "unlimited"/defaults; nothing is lost if
    /// the controller is absent, but it is written if present (so an update
    /// can lift an earlier limit).
    IfAvailable,
}

/// The controllers `r` touches, in the order they are written: cpuset
/// before anything else so tasks can be attached, devices early so a denied
/// device is never briefly open, and everything before `unified` so its
/// verbatim values win.
pub(super) fn requested(r: &LinuxResources) -> Vec<(Controller, Demand)> {
    let mut out = Vec::new();
    let mut push = |c, d: Option<Demand>| {
        if let Some(d) = d {
            out.push((c, d));
        }
    };
    let required = |b: bool| b.then_some(Demand::Required);

    push(Controller::Cpuset, required(r.cpu().as_ref().is_some_and(cpuset_set)));
    push(Controller::Devices, required(r.devices().is_some()));
    push(Controller::Memory, r.memory().as_ref().and_then(memory_demand));
    push(Controller::Cpu, required(r.cpu().as_ref().is_some_and(cpu_set)));
    push(
        Controller::Pids,
        r.pids().as_ref().map(|p| {
            if p.limit() > 0 {
                Demand::Required
            } else {
                Demand::IfAvailable
            }
        }),
    );
    push(Controller::Blkio, required(r.block_io().as_ref().is_some_and(blkio_set)));
    push(
        Controller::Hugetlb,
        required(r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())),
    );
    let net = r.network().as_ref();
    push(
        Controller::NetCls,
        required(net.is_some_and(|n| n.class_id().is_some())),
    );
    push(
        Controller::NetPrio,
        required(net.is_some_and(|n| n.priorities().as_ref().is_some_and(|p| !p.is_empty()))),
    );
    push(
        Controller::Rdma,
        required(r.rdma().as_ref().is_some_and(|m| !m.is_empty())),
    );
    out
}

fn memory_demand(m: &LinuxMemory) -> Option<Demand> {
    let limits = [m.limit(), m.reservation(), m.swap()];
    if limits.iter().any(|v| v.is_some_and(|v| v > 0))
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true)
    {
        Some(Demand::Required)
    } else if limits.iter().any(|v| v.is_some_and(|v| v != 0)) {
        Some(Demand::IfAvailable)
    } else {
        None
    }
}

fn cpu_set(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|v| v != 0)
        || c.quota().is_some_and(|v| v != 0)
        || c.period().is_some_and(|v| v != 0)
        || c.burst().is_some()
        || c.idle().is_some()
        || realtime_set(c)
}

pub(super) fn realtime_set(c: &LinuxCpu) -> bool {
    c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0)
}

fn cpuset_set(c: &LinuxCpu) -> bool {
    c.cpus().as_deref().is_some_and(|s| !s.is_empty())
        || c.mems().as_deref().is_some_and(|s| !s.is_empty())
}

fn blkio_set(b: &LinuxBlockIo) -> bool {
    let non_empty = |v: &Option<Vec<_>>| v.as_ref().is_some_and(|v| !v.is_empty());
    b.weight().is_some()
        || b.leaf_weight().is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || non_empty(b.throttle_read_bps_device())
        || non_empty(b.throttle_write_bps_device())
        || non_empty(b.throttle_read_iops_device())
        || non_empty(b.throttle_write_iops_device())
}

pub(super) fn invalid(resource: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::InvalidResource {
        resource: resource.to_owned(),
        reason: reason.into(),
    }
}

/// Page sizes become part of a file name ("hugetlb.2MB.max"), so only the
/// characters of a size with unit are let through.
pub(super) fn hugepage_size(size: &str) -> Result<&str, CgroupError> {
    if !size.is_empty() && size.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(size)
    } else {
        Err(invalid(
            "linux.resources.hugepageLimits.pageSize",
            format!("{size:?} is not a page size such as \"2MB\" or \"1GB\""),
        ))
    }
}

/// "major:minor" for the per-device blkio/io files.
pub(super) fn device_numbers(resource: &str, major: i64, minor: i64) -> Result<String, CgroupError> {
    let ok = |n: i64| (0..=i64::from(u32::MAX)).contains(&n);
    if ok(major) && ok(minor) {
        Ok(format!("{major}:{minor}"))
    } else {
        Err(invalid(resource, format!("device {major}:{minor} is not a valid device number")))
    }
}

/// Lines for rdma.max (same format on v1 and v2), in a stable order.
pub(super) fn rdma_lines(map: &HashMap<String, LinuxRdma>) -> Result<Vec<String>, CgroupError> {
    let mut devices: Vec<_> = map.iter().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    let mut lines = Vec::new();
    for (device, limits) in devices {
        if device.is_empty() || device.contains(char::is_whitespace) {
            return Err(invalid("linux.resources.rdma", format!("bad device name {device:?}")));
        }
        let mut line = device.clone();
        if let Some(h) = limits.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = limits.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if line.len() > device.len() {
            lines.push(line);
        }
    }
    Ok(lines)
}

/// hugetlb limits, the same on both hierarchies but for the file names
/// (`hugetlb.<size>.<limit_file>`) and how "no limit" is written.
pub(super) fn write_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit], limit_file: &str, unlimited: &str) -> Result<(), CgroupError> {
    for h in limits {
        let size = hugepage_size(h.page_size())?;
        let file = format!("hugetlb.{size}.{limit_file}");
        if !files::exists(dir, &file) {
            return Err(CgroupError::Unavailable {
                resource: format!("linux.resources.hugepageLimits[{size}]"),
                reason: format!("this kernel has no {size} huge pages ({file} is missing)"),
            });
        }
        let value = if h.limit() < 0 { unlimited.to_owned() } else { h.limit().to_string() };
        files::write(dir, &file, &value)?;
        // Reservations (5.7+) must be limited too, or a task can reserve
        // more pages than it may fault in.
        let rsvd = format!("hugetlb.{size}.rsvd.{limit_file}");
        if files::exists(dir, &rsvd) {
            files::write(dir, &rsvd, &value)?;
        }
    }
    Ok(())
}

/// pids.max, the same file on both hierarchies; a limit of 0 or below
/// means none.
pub(super) fn write_pids(dir: &Path, pids: &oci_spec::runtime::LinuxPids) -> Result<(), CgroupError> {
    let value = if pids.limit() > 0 { pids.limit().to_string() } else { "max".to_owned() };
    files::write(dir, "pids.max", &value)
}

/// rdma.max, one line per device, the same on both hierarchies.
pub(super) fn write_rdma(dir: &Path, rdma: &HashMap<String, LinuxRdma>) -> Result<(), CgroupError> {
    rdma_lines(rdma)?.iter().try_for_each(|line| files::write(dir, "rdma.max", line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    fn controllers(r: &LinuxResources) -> Vec<(Controller, Demand)> {
        requested(r)
    }

    #[test]
    fn empty_resources_ask_for_nothing() {
        let r = LinuxResourcesBuilder::default().build().unwrap();
        assert!(controllers(&r).is_empty());
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().kernel(1_000_000i64).build().unwrap())
            .cpu(LinuxCpuBuilder::default().shares(0u64).cpus("").build().unwrap())
            .build()
            .unwrap();
        assert!(controllers(&r).is_empty(), "{:?}", controllers(&r));
    }

    #[test]
    fn demands() {
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(-1i64).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(0i64).build().unwrap())
            .cpu(LinuxCpuBuilder::default().shares(512u64).mems("0").build().unwrap())
            .devices(vec![])
            .build()
            .unwrap();
        assert_eq!(
            controllers(&r),
            vec![
                (Controller::Cpuset, Demand::Required),
                (Controller::Devices, Demand::Required),
                (Controller::Memory, Demand::IfAvailable),
                (Controller::Cpu, Demand::Required),
                (Controller::Pids, Demand::IfAvailable),
            ]
        );
    }

    #[test]
    fn value_checks() {
        assert_eq!(hugepage_size("2MB").unwrap(), "2MB");
        assert!(hugepage_size("../x").is_err());
        assert!(hugepage_size("").is_err());
        assert_eq!(device_numbers("x", 8, 0).unwrap(), "8:0");
        assert!(device_numbers("x", -1, 0).is_err());
    }
}
