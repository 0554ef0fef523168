//! linux.resources on the host's cgroups (v1 controllers here, hybrid),
//! cgroupsPath (default, custom, --systemd-cgroup), ps, pause/resume, OOM,
//! devices, and removal on delete.

use std::path::Path;

use minirun_tests::{both, cgroup_dir, cgroup_dirs_named, proc_cgroups, require_root, text, unique_name, wait_until, Bundle, Runtime};
use serde_json::json;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_string()
}

#[test]
fn resources_are_written_to_the_v1_files() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sleep", "60"]);
    bundle.config["linux"]["resources"] = json!({
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
        "pids": {"limit": 50},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "blockIO": {"weight": 500}
    });
    bundle.save();
    let id = unique_name("res");
    rt.run_detached(&bundle, &id);
    let pid = rt.init_pid(&id);
    let mem = cgroup_dir(pid, "memory");
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), "67108864");
    assert_eq!(read(&mem.join("memory.soft_limit_in_bytes")), "33554432");
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(read(&mem.join("memory.memsw.limit_in_bytes")), "134217728");
    } else {
        eprintln!("skipped swap: no memory.memsw.limit_in_bytes");
    }
    assert_eq!(read(&cgroup_dir(pid, "pids").join("pids.max")), "50");
    let cpu = cgroup_dir(pid, "cpu");
    assert_eq!(read(&cpu.join("cpu.shares")), "512");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
    let cpuset = cgroup_dir(pid, "cpuset");
    assert_eq!(read(&cpuset.join("cpuset.cpus")), "0");
    assert_eq!(read(&cpuset.join("cpuset.mems")), "0");
    let blkio = cgroup_dir(pid, "blkio");
    match ["blkio.weight", "blkio.bfq.weight"].iter().map(|f| blkio.join(f)).find(|p| p.exists()) {
        // blkio.bfq.weight reads "default 500".
        Some(file) => assert!(read(&file).split_whitespace().any(|w| w == "500"), "{}: {}", file.display(), read(&file)),
        None => eprintln!("skipped blkio weight: neither blkio.weight nor blkio.bfq.weight on this kernel"),
    }
    // The init is in each of them.
    for dir in [&mem, &cpu, &cpuset, &blkio] {
        assert!(read(&dir.join("cgroup.procs")).lines().any(|l| l == pid.to_string()), "{pid} not in {}", dir.display());
    }
}

#[test]
fn invalid_resources_fail_create_and_leave_nothing() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["true"]);
    // cpu 4096 does not exist on this machine.
    bundle.config["linux"]["resources"] = json!({"cpu": {"cpus": "4096"}});
    bundle.save();
    let id = unique_name("badres");
    let out = rt.create(&bundle, &id);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cpuset") || text(&out.stderr).contains("4096"), "{}", text(&out.stderr));
    assert!(!rt.root().join(&id).exists());
    assert!(cgroup_dirs_named(&id).is_empty(), "{:?}", cgroup_dirs_named(&id));
}

#[test]
fn default_cgroups_path() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sleep", "60"]);
    let id = unique_name("defcg");
    rt.run_detached(&bundle, &id);
    let cgroups = proc_cgroups(rt.init_pid(&id));
    for ctrl in ["memory", "pids", "cpu", "cpuset", "devices", "freezer", "blkio"] {
        assert_eq!(cgroups.get(ctrl).map(String::as_str), Some(format!("/minirun/{id}").as_str()), "{ctrl}: {cgroups:?}");
    }
}

#[test]
fn custom_cgroups_path() {
    require_root!();
    let rt = Runtime::new();
    let id = unique_name("custcg");
    let path = format!("/{id}-custom");
    let mut bundle = Bundle::busybox(&["sleep", "60"]);
    bundle.config["linux"]["cgroupsPath"] = json!(path);
    bundle.save();
    rt.run_detached(&bundle, &id);
    let cgroups = proc_cgroups(rt.init_pid(&id));
    for ctrl in ["memory", "pids", "cpu", "devices", "freezer"] {
        assert_eq!(cgroups.get(ctrl), Some(&path), "{ctrl}: {cgroups:?}");
    }
    rt.ok(&["delete", "--force", &id]);
    assert!(cgroup_dirs_named(&id).is_empty(), "{:?}", cgroup_dirs_named(&id));
}

#[test]
fn ps_lists_the_init_and_its_child() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sh", "-c", "sleep 60 & wait"]);
    let id = unique_name("ps");
    rt.run_detached(&bundle, &id);
    let init = rt.init_pid(&id);
    let mut pids = Vec::new();
    let ok = wait_until(10, || {
        let out = rt.output(&["ps", "--format", "json", &id]);
        pids = serde_json::from_slice::<Vec<i64>>(&out.stdout).unwrap_or_default();
        pids.len() == 2
    });
    assert!(ok, "ps --format json: {pids:?}");
    assert!(pids.contains(&(init as i64)), "{pids:?} lacks the init {init}");
    let child = pids.iter().find(|p| **p != init as i64).unwrap();
    assert_eq!(std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap().trim(), "sleep");
    let table = rt.ok(&["ps", &id]);
    assert!(table.lines().next().unwrap().contains("PID"), "{table}");
    assert_eq!(table.lines().count(), 3, "header and two processes: {table}");
}

#[test]
fn pause_and_resume() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sh", "-c", "while true; do date +%s%N > /tmp/tick; sleep 0.05; done"]);
    let id = unique_name("pause");
    rt.run_detached(&bundle, &id);
    let freezer = cgroup_dir(rt.init_pid(&id), "freezer");
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id).unwrap(), "paused");
    assert_eq!(read(&freezer.join("freezer.state")), "FROZEN");
    let tick = bundle.rootfs().join("tmp/tick");
    let frozen = std::fs::read_to_string(&tick).unwrap_or_default();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(std::fs::read_to_string(&tick).unwrap_or_default(), frozen, "a paused container kept running");
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id).unwrap(), "running");
    assert_eq!(read(&freezer.join("freezer.state")), "THAWED");
    assert!(wait_until(5, || std::fs::read_to_string(&tick).unwrap_or_default() != frozen), "a resumed container does not run");
    // Deleting a paused container with --force works too.
    rt.ok(&["pause", &id]);
    rt.ok(&["delete", "--force", &id]);
    assert!(rt.state(&id).is_none());
    assert!(cgroup_dirs_named(&id).is_empty(), "{:?}", cgroup_dirs_named(&id));
}

#[test]
fn oom_kill_is_exit_137() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    bundle.config["linux"]["resources"] = json!({"memory": {"limit": 16777216, "swap": 16777216}});
    bundle.save();
    let out = rt.run(&bundle, &unique_name("oom"));
    assert_eq!(out.status.code(), Some(137), "{}", both(&out));

    // The same program within its limit succeeds.
    let mut bundle = Bundle::busybox(&["dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=1"]);
    bundle.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    bundle.save();
    let out = rt.run(&bundle, &unique_name("nooom"));
    assert!(out.status.success(), "{}", both(&out));
}

#[test]
fn cgroups_removed_after_delete_in_every_hierarchy() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sleep", "60"]);
    let id = unique_name("cgdel");
    rt.run_detached(&bundle, &id);
    let dirs = cgroup_dirs_named(&id);
    let hierarchies = std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten().filter(|e| e.path().join("cgroup.procs").exists()).count();
    assert!(dirs.len() >= hierarchies, "one dir per hierarchy ({hierarchies}): {dirs:?}");
    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    assert!(cgroup_dirs_named(&id).is_empty(), "{:?}", cgroup_dirs_named(&id));
}

#[test]
fn systemd_cgroup_path_maps_to_a_scope() {
    require_root!();
    let rt = Runtime::new();
    let id = unique_name("sd");
    // The slice is a parent that delete leaves (as runc's cgroupfs driver
    // does); if this test made it, it takes it away again (rmdir: only if
    // it is empty).
    let slices: Vec<std::path::PathBuf> = std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten().map(|h| h.path().join("system.slice")).filter(|p| !p.exists()).collect();
    let _slice_guard = minirun_tests::guard(move || {
        for p in &slices {
            let _ = std::fs::remove_dir(p);
        }
    });
    let mut bundle = Bundle::busybox(&["sleep", "60"]);
    bundle.config["linux"]["cgroupsPath"] = json!(format!("system.slice:minirun-test:{id}"));
    bundle.save();
    let out = rt.create_global(&["--systemd-cgroup"], &bundle, &id, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    rt.ok(&["start", &id]);
    let scope = format!("/system.slice/minirun-test-{id}.scope");
    let cgroups = proc_cgroups(rt.init_pid(&id));
    for ctrl in ["memory", "pids", "cpu", "devices", "freezer", "name=systemd"] {
        assert_eq!(cgroups.get(ctrl), Some(&scope), "{ctrl}: {cgroups:?}");
    }
    rt.ok(&["delete", "--force", &id]);
    assert!(cgroup_dirs_named(&id).is_empty(), "{:?}", cgroup_dirs_named(&id));
}

/// Deny everything, allow /dev/null: minirun (as runc) adds its default
/// allowed devices (null, zero, full, random, urandom, tty, console, pts,
/// ptmx, tun, and mknod of anything), so a node outside that list - here
/// 1:6, a minor the mem driver does not have, made with mknod - cannot be
/// opened: EPERM from the devices cgroup (allowed, the open would reach the
/// driver and get ENXIO, "No such device or address").
#[test]
fn devices_cgroup_denies_what_is_not_allowed() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "mknod /dev/mrtk c 1 6 && echo made; head -c1 /dev/mrtk; echo rc=$?; echo x > /dev/null && echo null-ok"]);
    bundle.config["process"]["capabilities"]["bounding"].as_array_mut().unwrap().push(json!("CAP_MKNOD"));
    bundle.config["process"]["capabilities"]["effective"].as_array_mut().unwrap().push(json!("CAP_MKNOD"));
    bundle.config["process"]["capabilities"]["permitted"].as_array_mut().unwrap().push(json!("CAP_MKNOD"));
    bundle.config["linux"]["resources"] = json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]});
    bundle.save();
    let id = unique_name("devcg");
    let out = rt.run(&bundle, &id);
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("made\n"), "mknod is allowed by the defaults: {}", both(&out));
    assert!(stdout.contains("rc=1\n"), "{}", both(&out));
    assert!(text(&out.stderr).contains("Operation not permitted"), "the devices cgroup did not deny 1:6: {}", both(&out));
    assert!(stdout.contains("null-ok"), "{}", both(&out));

    // Control: allowed, the same open reaches the driver.
    bundle.config["linux"]["resources"] = json!({"devices": [{"allow": true, "access": "rwm"}]});
    bundle.save();
    let out = rt.run(&bundle, &unique_name("devcg-all"));
    assert!(text(&out.stderr).contains("No such device or address"), "{}", both(&out));
}

#[test]
fn devices_list_in_the_v1_cgroup() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sleep", "60"]);
    bundle.config["linux"]["resources"] = json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]});
    bundle.save();
    let id = unique_name("devlist");
    rt.run_detached(&bundle, &id);
    let list = read(&cgroup_dir(rt.init_pid(&id), "devices").join("devices.list"));
    let rules: Vec<&str> = list.lines().collect();
    assert!(!rules.contains(&"a *:* rwm"), "devices are not restricted: {list}");
    assert!(rules.contains(&"c 1:3 rwm"), "{list}");
    assert!(!rules.iter().any(|r| r.starts_with("c 1:6 ")), "{list}");
}
