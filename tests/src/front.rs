//! The Docker-style front end driven as a user would, in a network
//! namespace of the test thread's own (so bridges, veths and firewall rules
//! are made in a throwaway "host"), with state roots of its own and a
//! busybox image imported from busybox-static.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::{both, text, Bundle};

pub fn enter_throwaway_netns() {
    // SAFETY: unshare affects only the calling thread's namespaces.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET)");
    sh("ip link set lo up");
}

pub fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{script}: {}", both(&out));
    text(&out.stdout)
}

/// State roots of our own and a busybox image in them. On drop every
/// container still there is removed with `rm -f`.
pub struct Front {
    root: tempfile::TempDir,
    binary: PathBuf,
}

impl Default for Front {
    fn default() -> Self {
        Self::new()
    }
}

impl Front {
    pub fn new() -> Self {
        Self::with_binary(crate::minirun_bin())
    }

    /// The same with another build of minirun (the fault-injection one).
    pub fn with_binary(binary: PathBuf) -> Self {
        enter_throwaway_netns();
        let front = Front { root: tempfile::Builder::new().prefix("minirun-test-front").tempdir().unwrap(), binary };
        let bundle = Bundle::busybox(&["true"]);
        let tar = front.root.path().join("busybox.tar");
        sh(&format!("tar -C {} -cf {} .", bundle.rootfs().display(), tar.display()));
        front.ok(&["import", tar.to_str().unwrap(), "busybox:latest"]);
        front
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(self.dir("containers")).arg("--image-root").arg(self.dir("images")).arg("--network-root").arg(self.dir("network"));
        cmd
    }

    pub fn out(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.out(args);
        assert!(out.status.success(), "minirun {args:?}: {}", both(&out));
        text(&out.stdout)
    }

    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let all: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        all[0].clone()
    }

    /// Everything minirun made is gone: containers, mounts, cgroups,
    /// veths, leases.
    pub fn assert_nothing_left(&self) {
        let containers = self.dir("containers");
        let left: Vec<String> = std::fs::read_dir(&containers).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n != ".runtime" && n != ".lock").collect();
        assert!(left.is_empty(), "container dirs left: {left:?}");
        let runtime_left: Vec<_> = std::fs::read_dir(containers.join(".runtime")).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(runtime_left.is_empty(), "runtime state left: {runtime_left:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(containers.to_str().unwrap()), "mounts left under {}", containers.display());
        let links = sh("ip -o link show");
        assert!(!links.contains(": mr"), "veths left: {links}");
        let leases = sh(&format!("cat {}/leases/* 2>/dev/null || true", self.dir("network").display()));
        assert!(!leases.contains("container_id"), "leases left: {leases}");
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let ids = self.out(&["ps", "-aq", "--no-trunc"]);
        for id in text(&ids.stdout).lines() {
            let _ = self.out(&["rm", "-f", id]);
        }
        let _ = self.out(&["network", "rm", "bridge"]);
    }
}

