//! Known container-runtime escapes, replayed against minirun: each test runs
//! the attack as published and checks that it fails.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use minirun_tests::{both, guard, minirun_bin, require_root, text, unique_name, wait_until, Bundle, Runtime};
use serde_json::json;

/// CVE-2019-5736. `exec` of a file starting with `#!/proc/self/exe` makes
/// the kernel run the runtime's own binary inside the container; a process
/// there holds `/proc/<pid>/exe` open until it exits, then writes through
/// it. Here minirun is held inside the container by a full stderr pipe, so
/// the attacker always wins the race it would otherwise have to win.
#[test]
fn cve_2019_5736_runtime_binary_cannot_be_overwritten_from_inside() {
    require_root!();
    // If the attack works it truncates the binary: a copy takes the damage.
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("minirun");
    std::fs::copy(minirun_bin(), &binary).unwrap();
    let original = std::fs::read(&binary).unwrap();
    let id = unique_name("cve5736");
    let rt = Runtime::with_binary(binary.clone());
    // If the copy was destroyed it cannot delete its container: the real one does.
    let _cleanup = guard(|| {
        let _ = std::process::Command::new(minirun_bin()).arg("oci").arg("--root").arg(rt.root()).args(["delete", "--force", &id]).output();
    });

    let attacker = r#"
        while [ ! -e /held ]; do
          for p in /proc/[0-9]*; do
            case "$(readlink $p/exe 2>/dev/null)" in
              ""|/bin/busybox) ;;
              *) exec 3<$p/exe && echo $p > /held && break ;;
            esac
          done
        done
        while [ -e "$(cat /held)/exe" ]; do sleep 0.05; done
        if echo pwned 2>/err >/proc/self/fd/3; then echo overwritten > /result; else echo "refused: $(cat /err)" > /result; fi
        sleep 60
    "#;
    let bundle = Bundle::busybox(&["sh", "-c", attacker]);
    copy_libraries_of(&binary, &bundle.rootfs());
    let victim = bundle.rootfs().join("victim");
    std::fs::write(&victim, "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
    rt.track(&id);
    rt.run_detached(&bundle, &id);

    let (mut full_read, full_write) = full_pipe();
    let mut exec = rt.cmd().args(["exec", &id, "/victim"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(full_write).spawn().unwrap();
    let held = wait_until(20, || bundle.rootfs().join("held").exists());
    // Let the runtime inside the container write its error and exit.
    let drain = std::thread::spawn(move || std::io::copy(&mut full_read, &mut std::io::sink()));
    if !held {
        let _ = exec.kill();
    }
    let _ = exec.wait();
    let _ = drain.join();
    assert!(held, "the attacker never saw minirun inside the container (stderr: {})", bundle.read("stderr"));
    let result = bundle.wait_file("rootfs/result", |r| !r.is_empty());
    assert!(result.starts_with("refused"), "the container wrote to minirun's binary: {result}");
    assert!(std::fs::read(&binary).unwrap() == original, "minirun's binary changed");
}

/// minirun is linked dynamically: without its loader and libraries in the
/// rootfs (a real image has them) the kernel could not start it there.
fn copy_libraries_of(binary: &std::path::Path, rootfs: &std::path::Path) {
    let ldd = std::process::Command::new("ldd").arg(binary).output().unwrap();
    for lib in text(&ldd.stdout).split_whitespace().filter(|w| w.starts_with('/')) {
        let target = rootfs.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(lib, &target).unwrap();
    }
}

/// A pipe whose buffer is full, so the next write to it blocks.
fn full_pipe() -> (std::fs::File, std::fs::File) {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut write = std::fs::File::from(write);
    set_nonblocking(&write, true);
    let chunk = [b'x'; 4096];
    while write.write(&chunk).is_ok() {}
    set_nonblocking(&write, false);
    (std::fs::File::from(read), write)
}

fn set_nonblocking(file: &std::fs::File, on: bool) {
    // SAFETY: F_GETFL/F_SETFL on an fd we own.
    unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        let flags = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
        libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags);
    }
}

/// Climbs from the cwd as far as `..` goes and reports whether it reached
/// the host, where the bundle's config.json is at its full path.
fn escape_check(bundle: &Bundle) -> String {
    format!(
        "cd ../../../../../../../../../../../..; if [ -e .{}/config.json ]; then echo ESCAPED; else echo contained; fi",
        bundle.path().display()
    )
}

/// CVE-2024-21626: the runtime's own fds are open until execve, so a cwd of
/// `/proc/self/fd/N` could start the program in a host directory.
#[test]
fn cve_2024_21626_cwd_cannot_follow_a_runtime_fd_out_of_the_container() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&[]);
    let script = escape_check(&bundle);
    bundle.set_args(&["sh", "-c", &script]);
    let mut refused = 0;
    for fd in 3..=15 {
        bundle.config["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}"));
        bundle.save();
        let out = rt.run(&bundle, &unique_name("cve21626"));
        assert!(!text(&out.stdout).contains("ESCAPED"), "cwd /proc/self/fd/{fd} reached the host");
        assert!(!text(&out.stderr).contains("panicked"), "{}", both(&out));
        if !out.status.success() {
            refused += 1;
        }
    }
    // The check must have met at least one runtime fd (else it proves nothing).
    assert!(refused > 0, "no /proc/self/fd/N cwd was refused");
}

#[test]
fn cve_2024_21626_exec_cwd_cannot_follow_a_runtime_fd_out_of_the_container() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sleep", "60"]);
    let id = unique_name("cve21626x");
    rt.track(&id);
    rt.run_detached(&bundle, &id);
    let script = escape_check(&bundle);
    for fd in 3..=15 {
        let cwd = format!("/proc/self/fd/{fd}");
        let out = rt.output(&["exec", "--cwd", &cwd, &id, "sh", "-c", &script]);
        assert!(!text(&out.stdout).contains("ESCAPED"), "exec --cwd {cwd} reached the host");
        assert!(!text(&out.stderr).contains("panicked"), "{}", both(&out));
    }
}

/// CVE-2021-30465: while the runtime mounts onto a destination, the
/// container (here a thread of the test) swaps that directory with a
/// symlink to a host directory. The mount must land inside the container:
/// at the destination, or where the symlink leads when resolved inside the
/// rootfs (as a symlink that was there all along would), or not at all.
#[test]
fn cve_2021_30465_mount_destination_swapped_for_a_symlink() {
    require_root!();
    let rt = Runtime::new();
    let outside = tempfile::tempdir().unwrap();
    let mut bundle = Bundle::busybox(&["sh", "-c", "grep size=1024k /proc/self/mountinfo | cut -d' ' -f5"]);
    let shared = bundle.rootfs().join("shared");
    std::fs::create_dir_all(shared.join("dst")).unwrap();
    std::os::unix::fs::symlink(outside.path(), shared.join("link")).unwrap();
    bundle.add_mount(json!({"destination": "/shared/dst", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));

    let (mut landed, mut refused) = (0, 0);
    for _ in 0..40 {
        let id = unique_name("cve30465");
        rt.track(&id);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (stop, shared) = (stop.clone(), shared.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    exchange(&shared.join("dst"), &shared.join("link"));
                    swaps += 1;
                }
                // An even count leaves the directory named dst again.
                if swaps % 2 == 1 {
                    exchange(&shared.join("dst"), &shared.join("link"));
                }
            })
        };
        let created = rt.create(&bundle, &id);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none(), "something was written outside the rootfs");
        if !created.status.success() {
            assert!(!text(&created.stderr).contains("panicked"), "{}", both(&created));
            refused += 1;
            continue;
        }
        rt.ok(&["start", &id]);
        let ok = wait_until(20, || rt.status(&id).as_deref() == Some("stopped"));
        assert!(ok, "{id} did not stop");
        let mounted_at = bundle.read("stdout");
        let inside = [String::from("/shared/dst"), outside.path().display().to_string()];
        assert!(inside.contains(&mounted_at.trim().to_string()), "the tmpfs is not inside the container: {mounted_at:?} (stderr: {})", bundle.read("stderr"));
        landed += 1;
        rt.ok(&["delete", &id]);
    }
    eprintln!("{landed} mounts landed inside the container, {refused} creates refused a swapped path");
    assert!(landed > 0, "no run got through at all: {refused} refused");
}

fn exchange(a: &std::path::Path, b: &std::path::Path) {
    let _ = nix::fcntl::renameat2(None, a, None, b, nix::fcntl::RenameFlags::RENAME_EXCHANGE);
}
