//! Crash points for tests (cargo feature `fault-injection`): with
//! `MINIRUN_FAULT=<name>` in its environment, minirun dies by SIGKILL when
//! it reaches that point, as it would if killed there. Tests then check that
//! the next command leaves nothing behind. Without the feature, `point` is
//! empty and the environment is never read.

/// Every point, in the order a container's life reaches them.
pub const POINTS: [&str; 11] = [
    "run:recorded",
    "run:rootfs-mounted",
    "run:bundle-written",
    "monitor:spawned",
    "create:cgroup-made",
    "launch:created",
    "launch:attached",
    "launch:started",
    "release:network-released",
    "release:runtime-released",
    "rm:released",
];

#[inline]
pub fn point(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "unknown fault point {name}");
    #[cfg(feature = "fault-injection")]
    if std::env::var_os("MINIRUN_FAULT").is_some_and(|v| v == name) {
        // SAFETY: kill of ourselves; nothing to clean up, on purpose.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
