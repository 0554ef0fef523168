//! Docker parity: the same busybox image run under a private Docker 20.10
//! daemon and under minirun with the same flags, what the container sees
//! compared fact by fact (scripts/parity/compare.py; docs/docker-parity.md).
//! Any difference not listed as intended there fails the test.
//!
//! Skipped, with the reason printed, when MINIRUN_SKIP_PARITY=1, when no
//! dockerd can be started here (compare.py exits 77), or when the minirun
//! under test has no Docker-style `run` yet (exit 78).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use minirun_tests::{minirun_bin, require_root, text};

/// compare.py takes well under a minute here; past this it is stopped with
/// SIGTERM, on which it still removes its daemon, bridge and containers.
const DEADLINE: Duration = Duration::from_secs(240);

#[test]
fn docker_parity() {
    require_root!();
    if std::env::var("MINIRUN_SKIP_PARITY").as_deref() == Ok("1") {
        eprintln!("skipped: MINIRUN_SKIP_PARITY=1");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/parity/compare.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg("--minirun")
        .arg(minirun_bin())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let mut termed = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if !termed && start.elapsed() > DEADLINE {
            // SAFETY: kill on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            termed = true;
        } else if start.elapsed() > DEADLINE + Duration::from_secs(120) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (text(&out_t.join().unwrap()), text(&err_t.join().unwrap()));
    match status.code() {
        Some(0) => eprintln!("{out}"),
        Some(77) | Some(78) => {
            let reason = out.lines().chain(err.lines()).find(|l| l.starts_with("SKIP:")).unwrap_or("SKIP: (no reason given)");
            eprintln!("skipped: {reason}");
        }
        _ => panic!("Docker parity failed ({status}{}):\n{out}\n{err}", if termed { ", stopped at the deadline" } else { "" }),
    }
}
