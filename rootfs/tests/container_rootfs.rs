//! Root-only end-to-end tests: a busybox rootfs is set up, pivoted into and
//! finalised in a forked child with its own mount namespace; the child checks
//! the result from inside, the parent checks that nothing reached the host.

mod common;

use std::os::unix::fs::symlink;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use minirun_rootfs::{finalize_rootfs, pivot_into, prepare_rootfs, RootfsConfig};
use oci_spec::runtime::Spec;

fn config<'a>(spec: &'a Spec, rootfs: &Path) -> RootfsConfig<'a> {
    RootfsConfig {
        spec,
        rootfs: rootfs.to_path_buf(),
        new_user_ns: false,
        new_cgroup_ns: false,
        cgroup_host_paths: Vec::new(),
    }
}

fn setup(spec: &Spec, rootfs: &Path, no_pivot: bool, report: &mut Report) -> bool {
    if !unshare_mount_ns(report) {
        return false;
    }
    let cfg = config(spec, rootfs);
    if let Err(e) = prepare_rootfs(&cfg) {
        report.say(&format!("prepare_rootfs: {e}"));
        return false;
    }
    if let Err(e) = pivot_into(rootfs, no_pivot) {
        report.say(&format!("pivot_into: {e}"));
        return false;
    }
    if let Err(e) = finalize_rootfs(spec) {
        report.say(&format!("finalize_rootfs: {e}"));
        return false;
    }
    true
}

fn char_dev(path: &str, major: u64, minor: u64) -> bool {
    std::fs::metadata(path)
        .map(|m| {
            m.file_type().is_char_device()
                && nix::sys::stat::major(m.rdev()) == major
                && nix::sys::stat::minor(m.rdev()) == minor
        })
        .unwrap_or(false)
}

fn mode_of(path: &str) -> u32 {
    std::fs::symlink_metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0)
}

fn write_fails_read_only(path: &str) -> bool {
    matches!(std::fs::write(path, b"x"), Err(e) if e.raw_os_error() == Some(libc::EROFS))
}

#[test]
fn full_container_rootfs() {
    if !can_run("full_container_rootfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let rootfs = busybox_rootfs(&base);

    // Host-side material.
    let bind_src = base.join("bind-src");
    std::fs::create_dir(&bind_src).unwrap();
    std::fs::write(bind_src.join("hello"), b"hello from the host").unwrap();
    let bind_file = base.join("hostname");
    std::fs::write(&bind_file, b"container-host\n").unwrap();
    // Where a malicious image tries to get its mounts to land.
    let host_target = base.join("host-target");
    std::fs::create_dir(&host_target).unwrap();

    // The malicious image: absolute and relative symlinks pointing at the
    // host directory.
    symlink(&host_target, rootfs.join("evil")).unwrap();
    symlink(
        format!("../../../../../../../../..{}", host_target.display()),
        rootfs.join("evil-rel"),
    )
    .unwrap();
    std::fs::write(rootfs.join("marker"), b"rootfs").unwrap();

    let host_has_kcore = Path::new("/proc/kcore").exists();
    let host_cgroup_v2 = fs_magic("/sys/fs/cgroup") == Some(CGROUP2_MAGIC);
    let spec_json = format!(
        r#"{{
        "ociVersion": "1.0.2",
        "root": {{"path": "{rootfs}", "readonly": true}},
        "mounts": [
            {{"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid","noexec","nodev"]}},
            {{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid","strictatime","mode=755","size=65536k"]}},
            {{"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]}},
            {{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid","noexec","nodev","mode=1777","size=65536k"]}},
            {{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid","noexec","nodev"]}},
            {{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid","noexec","nodev","ro"]}},
            {{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["rprivate","nosuid","noexec","nodev","relatime","ro"]}},
            {{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid","nodev","mode=1777"]}},
            {{"destination": "/rotmp", "type": "tmpfs", "source": "tmpfs", "options": ["ro","size=1m"]}},
            {{"destination": "/rotmp/inner", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}},
            {{"destination": "/mnt/ro", "type": "bind", "source": "{bind_src}", "options": ["rbind","ro","nosuid","rprivate"]}},
            {{"destination": "/etc/hostname", "type": "bind", "source": "{bind_file}", "options": ["bind","rprivate"]}},
            {{"destination": "/evil/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}},
            {{"destination": "/evil-rel/rel", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}},
            {{"destination": "/../../../../..{host_target}/dotdot", "type": "bind", "source": "{bind_src}", "options": ["bind"]}}
        ],
        "linux": {{
            "devices": [
                {{"path": "/dev/myfifo", "type": "p", "fileMode": 384, "uid": 1000, "gid": 1000}},
                {{"path": "/dev/sub/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 416}}
            ],
            "maskedPaths": ["/proc/kcore", "/proc/does-not-exist", "/sys/firmware", "/proc/version", "/proc/version"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger", "/proc/cmdline", "/proc/nope"]
        }}
    }}"#,
        rootfs = rootfs.display(),
        bind_src = bind_src.display(),
        bind_file = bind_file.display(),
        host_target = host_target.display(),
    );
    let spec: Spec = serde_json::from_str(&spec_json).expect("spec JSON");

    let (code, out) = in_child(|r| {
        if !setup(&spec, &rootfs, false, r) {
            return 2;
        }
        // We are in the rootfs.
        r.check(
            std::fs::read("/marker").ok().as_deref() == Some(b"rootfs"),
            "/marker from the rootfs",
        );
        r.check(!bind_src.exists(), "host files not visible after pivot");

        // root.readonly, with writable tmpfs mounts on top.
        r.check(is_read_only("/"), "/ is read-only");
        r.check(
            write_fails_read_only("/newfile"),
            "writing / fails with EROFS",
        );
        r.check(std::fs::write("/tmp/ok", b"x").is_ok(), "/tmp is writable");
        r.check(mode_of("/tmp") == 0o1777, "/tmp has mode 1777");

        // proc, masked and read-only paths.
        r.check(fs_magic("/proc") == Some(PROC_MAGIC), "/proc is procfs");
        if host_has_kcore {
            r.check(
                char_dev("/proc/kcore", 1, 3),
                "/proc/kcore masked with /dev/null",
            );
            r.check(
                std::fs::read("/proc/kcore")
                    .map(|v| v.is_empty())
                    .unwrap_or(false),
                "/proc/kcore reads empty",
            );
        }
        r.check(is_read_only("/proc/sys"), "/proc/sys is read-only");
        r.check(
            flags_of("/proc/sys").contains(nix::sys::statvfs::FsFlags::ST_NOSUID),
            "/proc/sys keeps nosuid",
        );
        r.check(
            char_dev("/proc/version", 1, 3),
            "/proc/version masked with /dev/null",
        );
        r.check(
            std::fs::read("/proc/version")
                .map(|v| v.is_empty())
                .unwrap_or(false),
            "/proc/version reads empty",
        );
        r.check(
            is_read_only("/proc/cmdline"),
            "/proc/cmdline (a file) is read-only",
        );
        if Path::new("/proc/sysrq-trigger").exists() {
            r.check(
                is_read_only("/proc/sysrq-trigger"),
                "/proc/sysrq-trigger is read-only",
            );
        }
        r.check(!is_read_only("/proc"), "/proc itself stays writable");

        // sysfs ro and the masked directory.
        r.check(fs_magic("/sys") == Some(SYSFS_MAGIC), "/sys is sysfs");
        r.check(is_read_only("/sys"), "/sys is read-only");
        if Path::new("/sys/firmware").exists() {
            r.check(
                fs_magic("/sys/firmware") == Some(TMPFS_MAGIC),
                "/sys/firmware masked by tmpfs",
            );
            r.check(
                is_read_only("/sys/firmware"),
                "/sys/firmware mask is read-only",
            );
            r.check(
                dir_is_empty(Path::new("/sys/firmware")),
                "/sys/firmware mask is empty",
            );
        }

        // cgroup
        r.check(
            is_read_only("/sys/fs/cgroup"),
            "/sys/fs/cgroup is read-only",
        );
        if host_cgroup_v2 {
            r.check(
                fs_magic("/sys/fs/cgroup") == Some(CGROUP2_MAGIC),
                "/sys/fs/cgroup is cgroup2",
            );
        } else {
            r.check(
                fs_magic("/sys/fs/cgroup") == Some(TMPFS_MAGIC),
                "/sys/fs/cgroup is a tmpfs",
            );
            let subdirs: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            r.check(!subdirs.is_empty(), "/sys/fs/cgroup has hierarchies");
            for s in &subdirs {
                let p = format!("/sys/fs/cgroup/{s}");
                let magic = fs_magic(&p);
                r.check(
                    magic == Some(CGROUP_MAGIC) || magic == Some(CGROUP2_MAGIC),
                    &format!("{p} is a cgroup fs (magic {magic:x?}, among {subdirs:?})"),
                );
                r.check(is_read_only(&p), &format!("{p} is read-only"));
                r.check(
                    Path::new(&p).join("cgroup.procs").exists(),
                    &format!("{p}/cgroup.procs"),
                );
            }
        }

        // /dev
        r.check(fs_magic("/dev") == Some(TMPFS_MAGIC), "/dev is a tmpfs");
        for (p, maj, min) in [
            ("/dev/null", 1, 3),
            ("/dev/zero", 1, 5),
            ("/dev/full", 1, 7),
            ("/dev/random", 1, 8),
            ("/dev/urandom", 1, 9),
            ("/dev/tty", 5, 0),
        ] {
            r.check(char_dev(p, maj, min), &format!("{p} is char {maj}:{min}"));
            r.check(
                mode_of(p) == 0o666,
                &format!("{p} has mode 0666 (has {:o})", mode_of(p)),
            );
        }
        r.check(
            std::fs::read_link("/dev/ptmx").ok().as_deref() == Some(Path::new("pts/ptmx")),
            "/dev/ptmx -> pts/ptmx",
        );
        r.check(
            fs_magic("/dev/pts") == Some(DEVPTS_MAGIC),
            "/dev/pts is devpts",
        );
        r.check(Path::new("/dev/pts/ptmx").exists(), "/dev/pts/ptmx exists");
        r.check(
            std::fs::read_link("/dev/fd").ok().as_deref() == Some(Path::new("/proc/self/fd")),
            "/dev/fd link",
        );
        for (n, fd) in [("stdin", 0), ("stdout", 1), ("stderr", 2)] {
            let want = format!("/proc/self/fd/{fd}");
            r.check(
                std::fs::read_link(format!("/dev/{n}")).ok().as_deref() == Some(Path::new(&want)),
                &format!("/dev/{n} link"),
            );
        }
        r.check(
            std::fs::symlink_metadata("/dev/core").is_ok() == host_has_kcore,
            "/dev/core exists iff the host has /proc/kcore",
        );
        r.check(
            fs_magic("/dev/shm") == Some(TMPFS_MAGIC),
            "/dev/shm is a tmpfs",
        );
        r.check(mode_of("/dev/shm") == 0o1777, "/dev/shm has mode 1777");
        r.check(
            fs_magic("/dev/mqueue") == Some(MQUEUE_MAGIC),
            "/dev/mqueue is mqueue",
        );
        let fifo = std::fs::symlink_metadata("/dev/myfifo");
        r.check(
            fifo.as_ref()
                .map(|m| m.file_type().is_fifo() && m.uid() == 1000 && m.gid() == 1000)
                .unwrap_or(false),
            "/dev/myfifo is a fifo owned by 1000:1000",
        );
        r.check(mode_of("/dev/myfifo") == 0o600, "/dev/myfifo mode 0600");
        r.check(
            char_dev("/dev/sub/mynull", 1, 3),
            "/dev/sub/mynull is char 1:3",
        );
        r.check(
            mode_of("/dev/sub/mynull") == 0o640,
            "/dev/sub/mynull mode 0640",
        );

        // Delayed read-only tmpfs with a mount point created inside first.
        r.check(is_read_only("/rotmp"), "/rotmp is read-only after finalize");
        r.check(
            fs_magic("/rotmp/inner") == Some(TMPFS_MAGIC),
            "/rotmp/inner mounted",
        );
        r.check(
            std::fs::write("/rotmp/inner/x", b"x").is_ok(),
            "/rotmp/inner is writable",
        );

        // Bind mounts.
        r.check(
            std::fs::read("/mnt/ro/hello").ok().as_deref() == Some(b"hello from the host"),
            "/mnt/ro/hello readable",
        );
        r.check(write_fails_read_only("/mnt/ro/new"), "/mnt/ro is read-only");
        r.check(
            flags_of("/mnt/ro").contains(nix::sys::statvfs::FsFlags::ST_NOSUID),
            "/mnt/ro is nosuid",
        );
        r.check(
            std::fs::read("/etc/hostname").ok().as_deref() == Some(b"container-host\n"),
            "file bind on /etc/hostname",
        );

        // The malicious symlinks were re-rooted into the container.
        let inside = format!("{}", host_target.display());
        r.check(
            fs_magic("/evil/mnt") == Some(TMPFS_MAGIC),
            "/evil/mnt is a tmpfs inside the container",
        );
        r.check(
            fs_magic(&format!("{inside}/mnt")) == Some(TMPFS_MAGIC),
            "re-rooted target holds mnt",
        );
        r.check(
            fs_magic(&format!("{inside}/rel")) == Some(TMPFS_MAGIC),
            "relative escape re-rooted",
        );
        r.check(
            Path::new(&format!("{inside}/dotdot/hello")).exists(),
            "../ destination lands inside the container",
        );

        // And busybox agrees (exec inside the container).
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(
                "set -e; test -c /dev/null; test -L /dev/ptmx; echo hi > /tmp/sh-ok; \
                 test \"$(cat /tmp/sh-ok)\" = hi; if touch /nope 2>/dev/null; then exit 3; fi; \
                 grep -q ' /proc proc ' /proc/mounts; grep -q ' /dev/pts devpts ' /proc/mounts",
            )
            .status();
        r.check(
            matches!(status, Ok(s) if s.success()),
            &format!("busybox sh checks: {status:?}"),
        );
        r.code()
    });
    assert_eq!(code, 0, "child failed:\n{out}");

    // Nothing reached the host.
    assert!(
        dir_is_empty(&host_target),
        "mount leaked into host dir {host_target:?}"
    );
    assert_eq!(
        std::fs::read(bind_src.join("hello")).unwrap(),
        b"hello from the host"
    );
    assert_eq!(std::fs::read_dir(&bind_src).unwrap().count(), 1);
    assert!(
        host_mounts_under(&base).is_empty(),
        "host mounts: {:?}",
        host_mounts_under(&base)
    );
    // The rootfs itself was only modified inside mounts and for mount points.
    assert!(!rootfs.join("newfile").exists());
}

#[test]
fn no_pivot_moves_and_chroots() {
    if !can_run("no_pivot_moves_and_chroots") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let rootfs = busybox_rootfs(&base);
    std::fs::write(rootfs.join("marker"), b"moved").unwrap();
    let spec: Spec = serde_json::from_str(&format!(
        r#"{{"ociVersion":"1.0.2","root":{{"path":"{}"}},
            "mounts":[
              {{"destination":"/proc","type":"proc","source":"proc"}},
              {{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["mode=755"]}}],
            "linux":{{"rootfsPropagation":"rprivate","maskedPaths":["/proc/kcore"]}}}}"#,
        rootfs.display()
    ))
    .unwrap();
    let (code, out) = in_child(|r| {
        if !setup(&spec, &rootfs, true, r) {
            return 2;
        }
        r.check(
            std::fs::read("/marker").ok().as_deref() == Some(b"moved"),
            "/marker visible",
        );
        r.check(fs_magic("/proc") == Some(PROC_MAGIC), "/proc is procfs");
        r.check(char_dev("/dev/null", 1, 3), "/dev/null created");
        r.check(!is_read_only("/"), "/ stays writable without root.readonly");
        // The host's procfs and sysfs were hidden before the move.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let host_proc = mounts
            .lines()
            .filter(|l| l.contains(" - proc ") || l.contains(" - sysfs "))
            .filter(|l| !l.split(' ').nth(4).unwrap_or("").starts_with("/proc"))
            .count();
        r.check(
            host_proc == 0,
            &format!("no host proc/sysfs left:\n{mounts}"),
        );
        r.code()
    });
    assert_eq!(code, 0, "child failed:\n{out}");
    assert!(host_mounts_under(&base).is_empty());
}

/// Each bad config must fail with a message naming the mount, and must not
/// have mounted anything on the host.
#[test]
fn bad_mounts_are_refused_with_clear_errors() {
    if !can_run("bad_mounts_are_refused_with_clear_errors") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let rootfs = busybox_rootfs(&base);
    let host_target = base.join("host-target");
    std::fs::create_dir(&host_target).unwrap();
    symlink(&host_target, rootfs.join("evil")).unwrap();
    // proc on a symlink that points at the host.
    symlink(&host_target, rootfs.join("procfake")).unwrap();

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "proc on a symlink",
            r#"{"destination":"/procfake","type":"proc","source":"proc"}"#.into(),
            "/procfake",
        ),
        (
            "tmpfs over /proc/self",
            r#"{"destination":"/proc","type":"proc","source":"proc"},
               {"destination":"/proc/self/attr","type":"tmpfs","source":"tmpfs"}"#
                .into(),
            "/proc/self/attr",
        ),
        (
            "tmpfs on /proc",
            r#"{"destination":"/proc","type":"tmpfs","source":"tmpfs"}"#.into(),
            "only a procfs",
        ),
        (
            "idmap",
            format!(r#"{{"destination":"/mnt/x","type":"bind","source":"{}","options":["rbind","idmap"]}}"#, base.display()),
            "idmap",
        ),
        (
            "missing bind source",
            r#"{"destination":"/mnt/x","type":"bind","source":"/does/not/exist","options":["rbind"]}"#.into(),
            "/does/not/exist",
        ),
        (
            "mount over /",
            r#"{"destination":"/","type":"tmpfs","source":"tmpfs"}"#.into(),
            "rootfs itself",
        ),
        (
            "no type",
            r#"{"destination":"/x","source":"tmpfs"}"#.into(),
            "no type",
        ),
        (
            "unknown filesystem",
            r#"{"destination":"/evil/x","type":"nosuchfs","source":"x"}"#.into(),
            "nosuchfs",
        ),
    ];
    for (name, mounts, expect) in cases {
        let spec: Spec = serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"{}"}},"mounts":[{mounts}]}}"#,
            rootfs.display()
        ))
        .unwrap_or_else(|e| panic!("{name}: bad test JSON: {e}"));
        let (code, out) = in_child(|r| {
            if !unshare_mount_ns(r) {
                return 2;
            }
            match prepare_rootfs(&config(&spec, &rootfs)) {
                Ok(()) => {
                    r.say("prepare_rootfs unexpectedly succeeded");
                    3
                }
                Err(e) => {
                    r.say(&e.to_string());
                    0
                }
            }
        });
        eprintln!("{name}: {}", out.trim_end());
        assert_eq!(code, 0, "{name}: {out}");
        assert!(
            out.contains(expect),
            "{name}: error should mention {expect:?}: {out}"
        );
        assert!(dir_is_empty(&host_target), "{name}: leaked into the host");
        assert!(
            host_mounts_under(&base).is_empty(),
            "{name}: host mounts changed"
        );
    }
    // The image's /procfake is still the symlink.
    let meta = std::fs::symlink_metadata(rootfs.join("procfake")).unwrap();
    assert!(meta.file_type().is_symlink());
}

/// In a user namespace: default devices are bind-mounted from the host,
/// sysfs falls back to a bind of /sys (no network namespace of our own), and
/// a read-only bind keeps the locked nosuid/nodev/noexec of its source.
#[test]
fn user_namespace_container() {
    if !can_run("user_namespace_container") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let rootfs = busybox_rootfs(&base);
    let locked = base.join("locked-src");
    std::fs::create_dir(&locked).unwrap();
    let spec: Spec = serde_json::from_str(&format!(
        r#"{{"ociVersion":"1.0.2","root":{{"path":"{rootfs}","readonly":true}},
            "mounts":[
              {{"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]}},
              {{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]}},
              {{"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]}},
              {{"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}},
              {{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["rprivate","nosuid","noexec","nodev","relatime","ro"]}},
              {{"destination":"/mnt/locked","type":"bind","source":"{locked}","options":["rbind","ro"]}}],
            "linux":{{"maskedPaths":["/proc/version","/sys/firmware"],"readonlyPaths":["/proc/sys"]}}}}"#,
        rootfs = rootfs.display(),
        locked = locked.display(),
    ))
    .unwrap();
    let (code, out) = in_userns_child(&locked, |r| {
        if !unshare_mount_ns(r) {
            return 2;
        }
        let mut cfg = config(&spec, &rootfs);
        cfg.new_user_ns = true;
        if let Err(e) = prepare_rootfs(&cfg) {
            r.say(&format!("prepare_rootfs: {e}"));
            return 2;
        }
        if let Err(e) = pivot_into(&rootfs, false) {
            r.say(&format!("pivot_into: {e}"));
            return 2;
        }
        if let Err(e) = finalize_rootfs(&spec) {
            r.say(&format!("finalize_rootfs: {e}"));
            return 2;
        }
        r.check(std::process::id() == 1, "pid 1 of a new pid namespace");
        r.check(is_read_only("/"), "/ is read-only");
        for (p, maj, min) in [
            ("/dev/null", 1, 3),
            ("/dev/zero", 1, 5),
            ("/dev/urandom", 1, 9),
            ("/dev/tty", 5, 0),
        ] {
            r.check(char_dev(p, maj, min), &format!("{p} bound from the host"));
        }
        r.check(fs_magic("/sys") == Some(SYSFS_MAGIC), "/sys shows sysfs");
        r.check(is_read_only("/sys"), "/sys is read-only");
        r.check(
            fs_magic("/sys/firmware") == Some(TMPFS_MAGIC),
            "/sys/firmware masked",
        );
        r.check(
            is_read_only("/sys/fs/cgroup"),
            "/sys/fs/cgroup is read-only",
        );
        r.check(char_dev("/proc/version", 1, 3), "/proc/version masked");
        r.check(is_read_only("/proc/sys"), "/proc/sys is read-only");
        let f = flags_of("/mnt/locked");
        use nix::sys::statvfs::FsFlags;
        r.check(
            f.contains(
                FsFlags::ST_RDONLY | FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_NOEXEC,
            ),
            &format!("/mnt/locked is ro and keeps locked nosuid,nodev,noexec ({f:?})"),
        );
        r.check(
            std::fs::read("/mnt/locked/data").ok().as_deref() == Some(b"locked"),
            "/mnt/locked/data",
        );
        r.code()
    });
    assert_eq!(code, 0, "child failed:\n{out}");
    assert!(
        host_mounts_under(&base).is_empty(),
        "host mounts: {:?}",
        host_mounts_under(&base)
    );
    assert!(
        dir_is_empty(&locked),
        "the locked tmpfs stayed in the child's namespace"
    );
}

/// Clearing a flag that the kernel locked is refused with an explanation
/// rather than silently ignored.
#[test]
fn user_namespace_cannot_clear_locked_flags() {
    if !can_run("user_namespace_cannot_clear_locked_flags") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let rootfs = busybox_rootfs(&base);
    let locked = base.join("locked-src");
    std::fs::create_dir(&locked).unwrap();
    let spec: Spec = serde_json::from_str(&format!(
        r#"{{"ociVersion":"1.0.2","root":{{"path":"{}"}},
            "mounts":[{{"destination":"/mnt/x","type":"bind","source":"{}","options":["rbind","suid"]}}]}}"#,
        rootfs.display(),
        locked.display()
    ))
    .unwrap();
    let (code, out) = in_userns_child(&locked, |r| {
        if !unshare_mount_ns(r) {
            return 2;
        }
        let mut cfg = config(&spec, &rootfs);
        cfg.new_user_ns = true;
        match prepare_rootfs(&cfg) {
            Ok(()) => {
                r.say("prepare_rootfs unexpectedly succeeded");
                3
            }
            Err(e) => {
                r.say(&e.to_string());
                0
            }
        }
    });
    eprintln!("{}", out.trim_end());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("/mnt/x") && out.contains("locked") && out.contains("nosuid"),
        "{out}"
    );
}

/// The configs Podman and containerd really send (shared/contract), with the
/// rootfs and bind sources pointed at test files, must set up cleanly.
#[test]
fn contract_configs_from_podman_and_containerd() {
    if !can_run("contract_configs_from_podman_and_containerd") {
        return;
    }
    let contract = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/contract");
    let names = [
        "podman-config-bridge-httpd.json",
        "podman-config-netns-container.json",
        "containerd-config-echo.json",
    ];
    for name in names {
        let Ok(text) = std::fs::read_to_string(contract.join(name)) else {
            eprintln!("skipping {name}: not found under {contract:?}");
            continue;
        };
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let rootfs = busybox_rootfs(&base);
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["root"]["path"] = rootfs.display().to_string().into();
        let mut n = 0;
        for m in json["mounts"].as_array_mut().unwrap() {
            let is_bind = m["type"] == "bind"
                || m["options"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"));
            if !is_bind {
                continue;
            }
            n += 1;
            let dest = m["destination"].as_str().unwrap().to_string();
            let src = base.join(format!("bind-src-{n}"));
            if dest == "/dev/shm" {
                std::fs::create_dir(&src).unwrap();
            } else {
                std::fs::write(&src, format!("contents of {dest}\n")).unwrap();
            }
            m["source"] = src.display().to_string().into();
        }
        let spec: Spec = serde_json::from_value(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let has_sys = spec
            .mounts()
            .iter()
            .flatten()
            .any(|m| m.destination() == Path::new("/sys"));
        let (code, out) = in_child(|r| {
            if !setup(&spec, &rootfs, false, r) {
                return 2;
            }
            r.check(fs_magic("/proc") == Some(PROC_MAGIC), "/proc is procfs");
            r.check(fs_magic("/dev") == Some(TMPFS_MAGIC), "/dev is a tmpfs");
            r.check(char_dev("/dev/null", 1, 3), "/dev/null");
            r.check(fs_magic("/dev/pts") == Some(DEVPTS_MAGIC), "/dev/pts");
            r.check(fs_magic("/dev/mqueue") == Some(MQUEUE_MAGIC), "/dev/mqueue");
            r.check(
                flags_of("/dev/shm").contains(
                    nix::sys::statvfs::FsFlags::ST_NOSUID | nix::sys::statvfs::FsFlags::ST_NOEXEC,
                ),
                "/dev/shm nosuid,noexec",
            );
            if has_sys {
                r.check(is_read_only("/sys"), "/sys read-only");
            }
            for m in spec.mounts().iter().flatten() {
                let dest = m.destination().display().to_string();
                if m.typ().as_deref() == Some("bind") && dest != "/dev/shm" {
                    let want = format!("contents of {dest}\n");
                    r.check(
                        std::fs::read_to_string(&dest).ok().as_deref() == Some(want.as_str()),
                        &format!("{dest} bound from its source"),
                    );
                }
                if m.typ().as_deref() == Some("cgroup") {
                    r.check(is_read_only(&dest), &format!("{dest} read-only"));
                }
            }
            r.check(is_read_only("/proc/sys"), "/proc/sys read-only");
            let status = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg("test -c /dev/null && echo ok >/dev/null")
                .status();
            r.check(matches!(status, Ok(s) if s.success()), "busybox sh runs");
            r.code()
        });
        assert_eq!(code, 0, "{name}: child failed:\n{out}");
        assert!(
            host_mounts_under(&base).is_empty(),
            "{name}: host mounts changed"
        );
    }
}

/// With a cgroup namespace the hierarchies are fresh cgroup mounts rooted at
/// the container's cgroup, not binds of host directories.
#[test]
fn cgroup_namespace_mounts_fresh_hierarchies() {
    if !can_run("cgroup_namespace_mounts_fresh_hierarchies") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let rootfs = busybox_rootfs(&base);
    let spec: Spec = serde_json::from_str(&format!(
        r#"{{"ociVersion":"1.0.2","root":{{"path":"{}"}},
            "mounts":[
              {{"destination":"/proc","type":"proc","source":"proc"}},
              {{"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}},
              {{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}}]}}"#,
        rootfs.display()
    ))
    .unwrap();
    let host_v2 = fs_magic("/sys/fs/cgroup") == Some(CGROUP2_MAGIC);
    let (code, out) = in_child(|r| {
        use nix::sched::{unshare, CloneFlags};
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWCGROUP) {
            r.say(&format!("unshare: {e}"));
            return 2;
        }
        let mut cfg = config(&spec, &rootfs);
        cfg.new_cgroup_ns = true;
        if let Err(e) = prepare_rootfs(&cfg) {
            r.say(&format!("prepare_rootfs: {e}"));
            return 2;
        }
        if let Err(e) = pivot_into(&rootfs, false)
            .map_err(|e| e.to_string())
            .and_then(|_| finalize_rootfs(&spec).map_err(|e| e.to_string()))
        {
            r.say(&e);
            return 2;
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let cgroup_lines: Vec<&str> = mounts
            .lines()
            .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
            .collect();
        r.check(!cgroup_lines.is_empty(), "cgroup filesystems are mounted");
        for l in &cgroup_lines {
            let mut f = l.split(' ');
            let root = f.nth(3).unwrap_or("");
            let opts = f.nth(1).unwrap_or("");
            // In a cgroup namespace a fresh mount's root is the namespace root.
            r.check(
                root == "/",
                &format!("fresh mount rooted at the namespace: {l}"),
            );
            r.check(
                opts.split(',').any(|o| o == "ro"),
                &format!("read-only: {l}"),
            );
        }
        if host_v2 {
            r.check(
                fs_magic("/sys/fs/cgroup") == Some(CGROUP2_MAGIC),
                "/sys/fs/cgroup is cgroup2",
            );
        } else {
            r.check(
                fs_magic("/sys/fs/cgroup") == Some(TMPFS_MAGIC),
                "/sys/fs/cgroup is a tmpfs",
            );
            r.check(
                is_read_only("/sys/fs/cgroup"),
                "/sys/fs/cgroup tmpfs read-only",
            );
        }
        r.code()
    });
    assert_eq!(code, 0, "child failed:\n{out}");
    assert!(host_mounts_under(&base).is_empty());
}
