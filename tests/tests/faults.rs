//! minirun killed (SIGKILL) at each named point of a container's life, then
//! the next commands: nothing may be left behind, not a container dir, a
//! mount, a cgroup, a veth, a lease, a rule or a process. Uses the build
//! with the `fault-injection` feature (`make integration-test` makes it;
//! its path is in $MINIRUN_FAULTS); the same after `kill -9` at random
//! instants, with the normal build.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use minirun_tests::front::{sh, Front};
use minirun_tests::{both, cgroup_dirs_named, require_root, text};

use minirun_runtime::fault::POINTS;

fn faulty_binary() -> Option<PathBuf> {
    std::env::var_os("MINIRUN_FAULTS").map(PathBuf::from).filter(|p| p.exists())
}

/// The next commands after a crash: `ps` (which cleans up after dead
/// supervisors), then `rm -f` of whatever is listed.
fn recover(f: &Front) -> Vec<String> {
    let ids: Vec<String> = f.ok(&["ps", "-aq", "--no-trunc"]).lines().map(String::from).collect();
    for id in &ids {
        f.ok(&["rm", "-f", id]);
    }
    ids
}

fn assert_all_gone(f: &Front, ids: &[String], what: &str) {
    eprintln!("checking after: {what}");
    f.assert_nothing_left();
    for id in ids {
        assert!(cgroup_dirs_named(id).is_empty(), "{what}: cgroup of {id} left");
    }
    let rules = sh("nft list ruleset 2>/dev/null; iptables-save 2>/dev/null || true");
    assert!(!rules.contains("18095"), "{what}: the port's rule is left: {rules}");
}

#[test]
fn killed_at_every_point() {
    require_root!();
    let Some(binary) = faulty_binary() else {
        eprintln!("skipped: no fault-injection build (set MINIRUN_FAULTS; make integration-test does)");
        return;
    };
    let f = Front::with_binary(binary);
    for point in POINTS {
        let mut cmd = f.cmd();
        cmd.env("MINIRUN_FAULT", point).args(["run", "-d", "--name", "victim", "-p", "18095:80", "busybox", "sleep", "30"]);
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        // Points on the way down are reached by the monitor (which has the
        // variable too) when the container stops, or by `rm`.
        if out.status.success() {
            let mut rm = f.cmd();
            rm.env("MINIRUN_FAULT", point).args(["rm", "-f", "victim"]);
            let _ = rm.stdin(Stdio::null()).output().unwrap();
        }
        let ids = recover(&f);
        assert_all_gone(&f, &ids, point);
        // And the next container works, on the same port.
        let next = f.out(&["run", "--rm", "-p", "18095:80", "busybox", "true"]);
        assert!(next.status.success(), "{point}: the next run: {}", both(&next));
    }
}

#[test]
fn kill_9_at_random_instants() {
    require_root!();
    let f = Front::new();
    // A cheap pseudo-random sequence: the instants only need to vary.
    let mut seed = std::process::id() as u64;
    for _ in 0..12 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_micros(seed >> 33 & 0xffff);
        let mut child = f.cmd().args(["run", "--rm", "-p", "18095:80", "busybox", "true"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        // SAFETY: the pid of a child we just spawned and have not waited for.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        let ids = recover(&f);
        assert_all_gone(&f, &ids, &format!("kill -9 after {delay:?}"));
    }
    let _ = Command::new("true").status();
    assert!(text(&f.out(&["ps", "-aq"]).stdout).is_empty());
}
