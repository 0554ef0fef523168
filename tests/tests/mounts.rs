//! The root filesystem: readonly root, the mount types clients send (tmpfs
//! with options, bind and rbind, cgroup), masked and readonly paths, /dev,
//! linux.devices, a hostile image's symlinks, rootfsPropagation, sysctls.

use std::process::Command;

use minirun_tests::{both, guard, require_root, text, unique_name, Bundle, Runtime};
use serde_json::json;

#[test]
fn readonly_root() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "touch /x 2>&1; echo rc=$?; touch /dev/ok && echo dev-writable"]);
    bundle.config["root"]["readonly"] = json!(true);
    bundle.save();
    let out = rt.run(&bundle, &unique_name("roroot"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Read-only file system"), "{stdout}");
    assert!(stdout.contains("rc=1"), "{stdout}");
    assert!(stdout.contains("dev-writable"), "mounts on top of a readonly root stay writable: {stdout}");
    assert!(!bundle.rootfs().join("x").exists());
}

#[test]
fn tmpfs_with_size_and_mode() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "stat -c %a /mnt/t; grep ' /mnt/t ' /proc/self/mountinfo; df -k /mnt/t | tail -1"]);
    bundle.add_mount(json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=2m", "mode=1750"]}));
    let out = rt.run(&bundle, &unique_name("tmpfs"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "1750", "{stdout}");
    assert!(lines[1].contains(" - tmpfs "), "{stdout}");
    assert!(lines[1].contains("size=2048k") && lines[1].contains("mode=1750"), "{stdout}");
    assert!(lines[1].split_whitespace().nth(5).unwrap().split(',').any(|o| o == "nosuid"), "{stdout}");
    assert_eq!(lines[2].split_whitespace().nth(1), Some("2048"), "{stdout}");
}

#[test]
fn bind_mount_readonly() {
    require_root!();
    let rt = Runtime::new();
    let host = tempfile::Builder::new().prefix("mrt-bind").tempdir().unwrap();
    std::fs::write(host.path().join("f"), "from-host\n").unwrap();
    let mut bundle = Bundle::busybox(&["sh", "-c", "cat /data/f; touch /data/new 2>&1; echo rc=$?; echo x > /data/f; echo rc=$?"]);
    bundle.add_mount(json!({"destination": "/data", "type": "bind", "source": host.path(), "options": ["bind", "ro"]}));
    let out = rt.run(&bundle, &unique_name("bindro"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("from-host\n"), "{stdout}");
    assert!(stdout.contains("Read-only file system"), "{stdout}");
    assert!(!stdout.contains("rc=0"), "a write went through: {stdout}");
    assert!(!host.path().join("new").exists());
    assert_eq!(std::fs::read_to_string(host.path().join("f")).unwrap(), "from-host\n");
}

#[test]
fn bind_mount_writable_writes_through() {
    require_root!();
    let rt = Runtime::new();
    let host = tempfile::Builder::new().prefix("mrt-bindrw").tempdir().unwrap();
    let mut bundle = Bundle::busybox(&["sh", "-c", "echo hi > /data/new"]);
    bundle.add_mount(json!({"destination": "/data", "type": "bind", "source": host.path(), "options": ["bind", "rw"]}));
    let out = rt.run(&bundle, &unique_name("bindrw"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(std::fs::read_to_string(host.path().join("new")).unwrap(), "hi\n");
}

#[test]
fn rbind_brings_submounts_and_bind_does_not() {
    require_root!();
    let rt = Runtime::new();
    let host = tempfile::Builder::new().prefix("mrt-rbind").tempdir().unwrap();
    let sub = host.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let ok = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "mrt-rbind-sub"]).arg(&sub).status().unwrap();
    assert!(ok.success(), "mount a tmpfs on {}", sub.display());
    let sub_for_guard = sub.clone();
    let _umount = guard(move || {
        let _ = Command::new("umount").arg("-l").arg(&sub_for_guard).status();
    });
    std::fs::write(sub.join("inner"), "submount\n").unwrap();
    let mut bundle = Bundle::busybox(&["sh", "-c", "cat /r/sub/inner; echo --; ls /b/sub"]);
    bundle.add_mount(json!({"destination": "/r", "type": "bind", "source": host.path(), "options": ["rbind", "ro"]}));
    bundle.add_mount(json!({"destination": "/b", "type": "bind", "source": host.path(), "options": ["bind"]}));
    let out = rt.run(&bundle, &unique_name("rbind"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), "submount\n--\n", "rbind shows the submount, bind an empty dir");
}

#[test]
fn masked_and_readonly_paths() {
    require_root!();
    let rt = Runtime::new();
    let host_version = std::fs::read_to_string("/proc/version").unwrap();
    assert!(!host_version.is_empty());
    let mut bundle = Bundle::busybox(&[
        "sh",
        "-c",
        "echo v=$(cat /proc/version | wc -c); echo t=$(cat /proc/timer_list | wc -c); echo f=$(ls -A /sys/firmware | wc -l); \
         echo x > /proc/sys/kernel/domainname; echo rc=$?; echo x > /proc/sysrq-trigger; echo rc=$?",
    ]);
    bundle.config["linux"]["maskedPaths"].as_array_mut().unwrap().push(json!("/proc/version"));
    bundle.config["linux"]["maskedPaths"].as_array_mut().unwrap().push(json!("/proc/mrt-does-not-exist"));
    bundle.save();
    let out = rt.run(&bundle, &unique_name("masked"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("v=0\n"), "/proc/version is not masked: {stdout}");
    assert!(stdout.contains("t=0\n"), "/proc/timer_list is not masked: {stdout}");
    assert!(stdout.contains("f=0\n"), "/sys/firmware is not masked: {stdout}");
    assert!(!stdout.contains("rc=0"), "a readonly path was written: {stdout}");
    assert!(text(&out.stderr).contains("Read-only file system"), "{}", text(&out.stderr));
}

#[test]
fn default_dev_nodes_and_symlinks() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&[
        "sh",
        "-c",
        "for d in null zero full random urandom tty; do stat -c '%n %F %t %T %a' /dev/$d; done; \
         for l in fd stdin stdout stderr ptmx; do echo /dev/$l $(readlink /dev/$l); done; \
         echo zero=$(head -c 4 /dev/zero | wc -c); echo x > /dev/full; echo full=$?; echo gone > /dev/null; echo null=$?",
    ]);
    let out = rt.run(&bundle, &unique_name("dev"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    for (name, major, minor) in [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)] {
        let line = format!("/dev/{name} character special file {major:x} {minor:x} 666");
        assert!(stdout.lines().any(|l| l == line), "missing {line:?} in {stdout}");
    }
    for (link, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")] {
        let line = format!("/dev/{link} {target}");
        assert!(stdout.lines().any(|l| l == line), "missing {line:?} in {stdout}");
    }
    assert!(stdout.contains("zero=4\n") && stdout.contains("null=0\n"), "{stdout}");
    assert!(stdout.contains("full=1\n"), "writing /dev/full must fail: {stdout}");
}

#[test]
fn devices_from_config() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "stat -c '%F %t %T %a %u %g' /dev/mrtnull /dev/sub/mrtzero; head -c 3 /dev/sub/mrtzero | wc -c"]);
    bundle.config["linux"]["devices"] = json!([
        {"path": "/dev/mrtnull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 1001},
        {"path": "/dev/sub/mrtzero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600, "uid": 0, "gid": 0}
    ]);
    bundle.save();
    let out = rt.run(&bundle, &unique_name("devices"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), "character special file 1 3 640 1000 1001\ncharacter special file 1 5 600 0 0\n3\n");
}

/// An image whose symlinks point at host paths: every mount destination is
/// resolved inside the rootfs, so nothing lands on the host.
#[test]
fn hostile_symlinks_cannot_redirect_mounts_to_the_host() {
    require_root!();
    let rt = Runtime::new();
    let host = tempfile::Builder::new().prefix("mrt-hostile").tempdir().unwrap();
    let host_dir = host.path().to_str().unwrap().to_string();
    let mut bundle = Bundle::busybox(&["sh", "-c", "touch /evil/x/marker /evil2/y/marker && echo touched; grep -c 'mrt-hostile' /proc/self/mountinfo"]);
    let rootfs = bundle.rootfs();
    std::os::unix::fs::symlink(&host_dir, rootfs.join("evil")).unwrap();
    std::os::unix::fs::symlink(format!("../../../../../../../..{host_dir}"), rootfs.join("evil2")).unwrap();
    bundle.add_mount(json!({"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    bundle.add_mount(json!({"destination": "/evil2/y", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    let id = unique_name("hostile");
    let created = rt.create(&bundle, &id);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host_mounts.contains(&host_dir), "a mount landed on the host: {host_dir}");
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped");
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0, "the host dir got entries");
    let stdout = bundle.read("stdout");
    assert!(stdout.starts_with("touched\n2\n"), "both mounts are inside the rootfs: {stdout} / {}", bundle.read("stderr"));
    // What the image's links resolve to inside the rootfs was made there.
    assert!(rootfs.join(host_dir.trim_start_matches('/')).join("x").is_dir());
}

#[test]
fn cgroup_mount_is_visible_and_readonly() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&[
        "sh",
        "-c",
        "ls /sys/fs/cgroup; echo --; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /sys/fs/cgroup/pids/pids.max; \
         mkdir /sys/fs/cgroup/memory/mrtx; echo rc=$?; echo 5 > /sys/fs/cgroup/pids/pids.max; echo rc=$?",
    ]);
    bundle.add_mount(json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}));
    bundle.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 77}});
    bundle.save();
    let out = rt.run(&bundle, &unique_name("cgmount"));
    assert!(out.status.success(), "{}", both(&out));
    let stdout = text(&out.stdout);
    let (listing, rest) = stdout.split_once("--\n").unwrap();
    for ctrl in ["memory", "pids", "cpu", "devices", "freezer"] {
        assert!(listing.lines().any(|l| l == ctrl), "{ctrl} missing under /sys/fs/cgroup: {listing}");
    }
    let lines: Vec<&str> = rest.lines().collect();
    assert_eq!(lines[0], "67108864", "the container's own memory cgroup is the one mounted: {stdout}");
    assert_eq!(lines[1], "77", "the container's own pids cgroup is the one mounted: {stdout}");
    assert!(!stdout.contains("rc=0"), "the cgroup mount is writable: {stdout}");
    assert!(text(&out.stderr).contains("Read-only file system"), "{}", text(&out.stderr));
}

fn root_propagation(rt: &Runtime, value: &str) -> String {
    let mut bundle = Bundle::busybox(&["sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo"]);
    bundle.config["linux"]["rootfsPropagation"] = json!(value);
    bundle.save();
    let out = rt.run(&bundle, &unique_name("prop"));
    assert!(out.status.success(), "rootfsPropagation {value}: {}", both(&out));
    text(&out.stdout)
}

#[test]
fn rootfs_propagation() {
    require_root!();
    let rt = Runtime::new();
    let private = root_propagation(&rt, "private");
    assert!(!private.contains("shared:") && !private.contains("master:"), "private root: {private}");
    let shared = root_propagation(&rt, "shared");
    assert!(shared.contains("shared:"), "shared root: {shared}");
    let mut bundle = Bundle::busybox(&["true"]);
    bundle.config["linux"]["rootfsPropagation"] = json!("sideways");
    bundle.save();
    let id = unique_name("badprop");
    let out = rt.create(&bundle, &id);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("sideways"), "{}", text(&out.stderr));
    assert!(!rt.root().join(&id).exists());
}

#[test]
fn sysctl_in_the_containers_namespaces() {
    require_root!();
    let rt = Runtime::new();
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let mut bundle = Bundle::busybox(&["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax"]);
    let forward = if host_forward.trim() == "1" { "0" } else { "1" };
    bundle.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": forward, "kernel.shmmax": "12345678"});
    bundle.save();
    let out = rt.run(&bundle, &unique_name("sysctl"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), format!("{forward}\n12345678\n"));
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(), host_forward, "host value changed");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(), host_shmmax, "host value changed");
}

#[test]
fn relative_root_path_and_missing_rootfs() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["cat", "/etc/mrt-marker"]);
    std::fs::rename(bundle.rootfs(), bundle.path().join("other-root")).unwrap();
    std::fs::write(bundle.path().join("other-root/etc/mrt-marker"), "relative\n").unwrap();
    bundle.config["root"]["path"] = json!("other-root");
    bundle.save();
    let out = rt.run(&bundle, &unique_name("relroot"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(text(&out.stdout), "relative\n");
    bundle.config["root"]["path"] = json!("/nonexistent/mrt-rootfs");
    bundle.save();
    let id = unique_name("noroot");
    let out = rt.create(&bundle, &id);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/nonexistent/mrt-rootfs"), "{}", text(&out.stderr));
    assert!(!rt.root().join(&id).exists());
}
