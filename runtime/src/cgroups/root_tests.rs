//! Tests against the host's real cgroup hierarchies. They need root and
//! return early (with a note on stderr) without it. Each test uses its own
//! "/minirun-test-<pid>-<n>" cgroup and a guard that kills its processes
//! and removes the cgroup even when an assertion fails.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::unistd::{geteuid, Pid};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder,
};

use super::v2::{EnableControllers, V2Manager};
use super::{ebpf, files, manager_for_root, CgroupError, CgroupManager, CgroupPath, Layout, DEFAULT_MOUNT_ROOT};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique_path() -> CgroupPath {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    CgroupPath::new(&format!("/minirun-test-{}-{n}", std::process::id())).expect("valid path")
}

fn host_layout(test: &str) -> Option<Layout> {
    if !geteuid().is_root() {
        eprintln!("skipping {test}: needs root");
        return None;
    }
    match Layout::detect() {
        Ok(layout) => Some(layout),
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            None
        }
    }
}

/// Cleans up in the order the kernel needs: thaw (frozen tasks cannot
/// die), kill and reap the children, then remove the cgroup.
struct Guard<M: CgroupManager + ?Sized> {
    manager: Box<M>,
    children: Vec<Child>,
}

impl<M: CgroupManager + ?Sized> Guard<M> {
    fn new(manager: Box<M>) -> Self {
        Guard {
            manager,
            children: Vec::new(),
        }
    }

    fn spawn(&mut self, cmd: &mut Command) -> Pid {
        let child = cmd.spawn().expect("spawn test child");
        let pid = Pid::from_raw(child.id() as i32);
        self.children.push(child);
        pid
    }

    fn kill_children(&mut self) {
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl<M: CgroupManager + ?Sized> Drop for Guard<M> {
    fn drop(&mut self) {
        let _ = self.manager.thaw();
        self.kill_children();
        if let Err(e) = self.manager.destroy() {
            eprintln!("cleanup of a test cgroup failed: {e}");
        }
    }
}

fn sleeper() -> Command {
    let mut cmd = Command::new("sleep");
    cmd.arg("1000");
    cmd
}

fn path_of(paths: &[(String, PathBuf)], controller: &str) -> Option<PathBuf> {
    paths
        .iter()
        .find(|(key, _)| key.is_empty() || key.split(',').any(|c| c == controller))
        .map(|(_, dir)| dir.clone())
}

fn read_trimmed(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_owned()
}

#[test]
fn lifecycle_on_the_real_hierarchy() {
    let Some(layout) = host_layout("lifecycle_on_the_real_hierarchy") else {
        return;
    };
    let path = unique_path();
    let manager = manager_for_root(Path::new(DEFAULT_MOUNT_ROOT), layout, path.clone()).unwrap();
    let mut guard = Guard::new(manager);
    let m = &guard.manager;

    m.create().unwrap();
    let paths = m.host_paths();
    for (key, dir) in &paths {
        assert!(dir.is_dir(), "{key}: {} missing", dir.display());
    }

    let resources: LinuxResources = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(64i64 << 20).build().unwrap())
        .pids(LinuxPidsBuilder::default().limit(50i64).build().unwrap())
        .cpu(LinuxCpuBuilder::default().shares(512u64).build().unwrap())
        .build()
        .unwrap();
    m.apply_resources(&resources).unwrap();

    let mem = path_of(&paths, "memory").expect("memory hierarchy");
    if mem.join("memory.limit_in_bytes").exists() {
        assert_eq!(read_trimmed(&mem.join("memory.limit_in_bytes")), "67108864");
    } else {
        assert_eq!(read_trimmed(&mem.join("memory.max")), "67108864");
    }
    let pids_dir = path_of(&paths, "pids").expect("pids hierarchy");
    assert_eq!(read_trimmed(&pids_dir.join("pids.max")), "50");
    let cpu = path_of(&paths, "cpu").expect("cpu hierarchy");
    if cpu.join("cpu.shares").exists() {
        assert_eq!(read_trimmed(&cpu.join("cpu.shares")), "512");
    } else {
        assert_eq!(read_trimmed(&cpu.join("cpu.weight")), "20");
    }

    let pid = guard.spawn(&mut sleeper());
    let m = &guard.manager;
    m.add_task(pid).unwrap();
    assert_eq!(m.pids().unwrap(), vec![pid]);

    // Every hierarchy shows the process in the container's cgroup.
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let expected = format!(":{path}");
    let lines: Vec<&str> = own.lines().filter(|l| !l.trim().is_empty()).collect();
    for (key, _) in &paths {
        let key = if key == "unified" { "" } else { key.as_str() };
        let line = lines
            .iter()
            .find(|l| l.split(':').nth(1) == Some(key))
            .unwrap_or_else(|| panic!("no {key:?} line in {own}"));
        assert!(line.ends_with(&expected), "{line} (want {expected})");
    }

    let stats = m.stats().unwrap();
    assert!(stats.pids_current.unwrap_or(1) >= 1, "{stats:?}");
    assert_eq!(stats.memory_limit_bytes, Some(64 << 20));
    assert_eq!(m.oom_kill_count().unwrap(), 0);

    // Freeze with a real process and see it stop.
    m.freeze().unwrap();
    assert!(m.is_frozen().unwrap());
    if let Some(freezer) = path_of(&paths, "freezer").filter(|d| d.join("freezer.state").exists()) {
        assert_eq!(read_trimmed(&freezer.join("freezer.state")), "FROZEN");
    }
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    eprintln!(
        "frozen child: {}",
        status.lines().find(|l| l.starts_with("State:")).unwrap_or("?")
    );
    m.thaw().unwrap();
    assert!(!m.is_frozen().unwrap());

    // A process in a sub-cgroup the "container" made still counts, and
    // destroy removes the sub-cgroup too.
    let second = guard.spawn(&mut sleeper());
    let m = &guard.manager;
    m.add_task(second).unwrap();
    let sub = pids_dir.join("sub");
    fs::create_dir(&sub).unwrap();
    files::add_pid(&sub, second).unwrap();
    let mut expected_pids = vec![pid, second];
    expected_pids.sort_by_key(|p| p.as_raw());
    assert_eq!(m.pids().unwrap(), expected_pids);

    // Busy while processes live: retried, then a clear error.
    match m.destroy() {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("busy") || msg.contains("Busy"), "{msg}");
            assert!(msg.contains(&pid.to_string()) || msg.contains(&second.to_string()), "{msg}");
        }
        Ok(()) => panic!("destroy succeeded with live processes"),
    }

    guard.kill_children();
    guard.manager.destroy().unwrap();
    for (key, dir) in &paths {
        assert!(!dir.exists(), "{key}: {} still exists", dir.display());
    }
    guard.manager.destroy().unwrap();
    assert!(guard.manager.pids().unwrap().is_empty());
}

/// Starts a shell that reports which devices it may open. It waits on
/// stdin, so the caller can move it into the cgroup before it tries.
fn start_probe(guard: &mut Guard<impl CgroupManager + ?Sized>) -> Pid {
    let script = "read x; \
        if (: </dev/null) 2>/dev/null; then echo null-ok; else echo null-denied; fi; \
        if (: </dev/kmsg) 2>/dev/null; then echo kmsg-ok; else echo kmsg-denied; fi";
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped());
    guard.spawn(&mut cmd)
}

fn finish_probe(guard: &mut Guard<impl CgroupManager + ?Sized>) -> Vec<String> {
    let child = guard.children.last_mut().expect("probe child");
    child.stdin.take().expect("stdin").write_all(b"go\n").unwrap();
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    out.lines().map_while(Result::ok).collect()
}

fn deny_all_devices() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap()])
        .build()
        .unwrap()
}

#[test]
fn v1_device_rules_are_enforced() {
    let Some(layout) = host_layout("v1_device_rules_are_enforced") else {
        return;
    };
    let has_v1_devices = match &layout {
        Layout::V1 { hierarchies } | Layout::Hybrid { hierarchies, .. } => {
            hierarchies.iter().any(|h| h.has("devices"))
        }
        Layout::V2 { .. } => false,
    };
    if !has_v1_devices {
        eprintln!("skipping v1_device_rules_are_enforced: no v1 devices hierarchy");
        return;
    }
    let manager = manager_for_root(Path::new(DEFAULT_MOUNT_ROOT), layout, unique_path()).unwrap();
    let mut guard = Guard::new(manager);
    guard.manager.create().unwrap();
    guard.manager.apply_resources(&deny_all_devices()).unwrap();
    let devices = path_of(&guard.manager.host_paths(), "devices").unwrap();
    let list = fs::read_to_string(devices.join("devices.list")).unwrap();
    assert!(list.contains("c 1:3 rwm"), "{list}");
    assert!(!list.contains("a *:*"), "{list}");
    // Applying the same rules again is a no-op transition.
    guard.manager.apply_resources(&deny_all_devices()).unwrap();
    assert_eq!(fs::read_to_string(devices.join("devices.list")).unwrap(), list);

    let pid = start_probe(&mut guard);
    guard.manager.add_task(pid).unwrap();
    let out = finish_probe(&mut guard);
    assert_eq!(out, vec!["null-ok", "kmsg-denied"]);
}

/// The eBPF device filter on a cgroup2 directory. On a hybrid host this
/// uses the unified hierarchy, which needs no controllers for it.
#[test]
fn ebpf_device_filter_is_enforced() {
    let Some(layout) = host_layout("ebpf_device_filter_is_enforced") else {
        return;
    };
    let mountpoint = match layout {
        Layout::Hybrid { unified, .. } => unified,
        Layout::V2 { mountpoint } => mountpoint,
        Layout::V1 { .. } => {
            eprintln!("skipping ebpf_device_filter_is_enforced: no cgroup2 mount");
            return;
        }
    };
    let manager = Box::new(V2Manager::new(&mountpoint, &unique_path(), EnableControllers::OnDemand));
    let mut guard = Guard::new(manager);
    guard.manager.create().unwrap();
    match guard.manager.apply_resources(&deny_all_devices()) {
        Err(CgroupError::Bpf { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => {
            eprintln!("skipping ebpf_device_filter_is_enforced: bpf() not permitted here");
            return;
        }
        other => other.unwrap(),
    }
    assert_eq!(ebpf::our_program_count(guard.manager.dir()).unwrap(), 1);
    // Re-applying replaces minirun's program instead of stacking another.
    guard.manager.apply_resources(&deny_all_devices()).unwrap();
    assert_eq!(ebpf::our_program_count(guard.manager.dir()).unwrap(), 1);
    let pid = start_probe(&mut guard);
    guard.manager.add_task(pid).unwrap();
    let out = finish_probe(&mut guard);
    assert_eq!(out, vec!["null-ok", "kmsg-denied"]);
}

/// cgroup2's freezer on the unified hierarchy, which hybrid hosts fall back
/// to without a v1 freezer.
#[test]
fn cgroup2_freeze_with_a_real_process() {
    let Some(layout) = host_layout("cgroup2_freeze_with_a_real_process") else {
        return;
    };
    let mountpoint = match layout {
        Layout::Hybrid { unified, .. } => unified,
        Layout::V2 { mountpoint } => mountpoint,
        Layout::V1 { .. } => {
            eprintln!("skipping cgroup2_freeze_with_a_real_process: no cgroup2 mount");
            return;
        }
    };
    let manager = Box::new(V2Manager::new(&mountpoint, &unique_path(), EnableControllers::OnDemand));
    let mut guard = Guard::new(manager);
    guard.manager.create().unwrap();
    if !guard.manager.dir().join("cgroup.freeze").exists() {
        eprintln!("skipping cgroup2_freeze_with_a_real_process: kernel without cgroup.freeze");
        return;
    }
    let pid = guard.spawn(&mut sleeper());
    guard.manager.add_task(pid).unwrap();
    guard.manager.freeze().unwrap();
    assert!(guard.manager.is_frozen().unwrap());
    let events = fs::read_to_string(guard.manager.dir().join("cgroup.events")).unwrap();
    assert!(events.contains("frozen 1"), "{events}");
    guard.manager.thaw().unwrap();
    assert!(!guard.manager.is_frozen().unwrap());
}

/// Raising and lowering memory+swap together must pass the kernel's
/// memsw >= limit check in both directions.
#[test]
fn memory_and_swap_updates_in_both_directions() {
    let Some(layout) = host_layout("memory_and_swap_updates_in_both_directions") else {
        return;
    };
    let manager = manager_for_root(Path::new(DEFAULT_MOUNT_ROOT), layout, unique_path()).unwrap();
    let guard = Guard::new(manager);
    let m = &guard.manager;
    m.create().unwrap();
    let mem = path_of(&m.host_paths(), "memory").expect("memory hierarchy");
    let v1 = mem.join("memory.limit_in_bytes").exists();
    if (v1 && !mem.join("memory.memsw.limit_in_bytes").exists())
        || (!v1 && !mem.join("memory.swap.max").exists())
    {
        eprintln!("skipping memory_and_swap_updates_in_both_directions: no swap accounting");
        return;
    }
    let set = |limit_mib: i64, swap_mib: i64| {
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(limit_mib << 20)
                    .swap(swap_mib << 20)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        m.apply_resources(&r).unwrap();
        if v1 {
            (
                read_trimmed(&mem.join("memory.limit_in_bytes")),
                read_trimmed(&mem.join("memory.memsw.limit_in_bytes")),
            )
        } else {
            (read_trimmed(&mem.join("memory.max")), read_trimmed(&mem.join("memory.swap.max")))
        }
    };
    let mib = |n: i64| (n << 20).to_string();
    let expect = |limit: i64, swap: i64| {
        if v1 {
            (mib(limit), mib(swap))
        } else {
            (mib(limit), mib(swap - limit))
        }
    };
    assert_eq!(set(64, 128), expect(64, 128));
    assert_eq!(set(256, 512), expect(256, 512));
    assert_eq!(set(32, 48), expect(32, 48));
}
