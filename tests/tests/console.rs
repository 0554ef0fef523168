//! --console-socket: the pty master arrives over the socket (SCM_RIGHTS),
//! for create and for exec --tty; a terminal without a socket is refused.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use minirun_tests::{both, cgroup_dirs_named, require_root, text, unique_name, Bundle, Runtime};
use serde_json::json;

struct ConsoleSocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("mrt-console").tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        ConsoleSocket { _dir: dir, path, listener }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Accepts one connection (within 20 s) and receives the fd it sends.
    fn receive_master(&self) -> OwnedFd {
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("no connection on the console socket: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        recv_fd(&stream)
    }
}

fn recv_fd(stream: &UnixStream) -> OwnedFd {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // Room for one fd's control message, 8-aligned.
    let mut cmsg_buf = [0u64; 8];
    // SAFETY: msghdr is plain data; zeroed is a valid start.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg_buf);
    // SAFETY: every pointer in msg is to a live local buffer of the given size.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    // SAFETY: msg was filled by recvmsg; the CMSG macros walk its control buffer.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null(), "no control message: nothing sent over the console socket");
        assert_eq!((*cmsg).cmsg_level, libc::SOL_SOCKET);
        assert_eq!((*cmsg).cmsg_type, libc::SCM_RIGHTS, "not SCM_RIGHTS");
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const i32);
        OwnedFd::from_raw_fd(fd)
    }
}

/// Reads the pty master until the other side is gone (EIO) or `want` shows
/// up and nothing more comes, within 20 s.
fn read_master(master: &OwnedFd, want: &str) -> String {
    let mut file = std::fs::File::from(master.try_clone().unwrap());
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let mut pfd = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, 200) };
        if rc == 0 {
            if String::from_utf8_lossy(&out).contains(want) {
                break;
            }
            continue;
        }
        let mut buf = [0u8; 1024];
        match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn create_with_console_socket_gives_a_pty() {
    require_root!();
    let rt = Runtime::new();
    let socket = ConsoleSocket::new();
    let mut bundle = Bundle::busybox(&["sh", "-c", "tty; stty size"]);
    bundle.config["process"]["terminal"] = json!(true);
    bundle.config["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    bundle.save();
    let id = unique_name("console");
    rt.track(&id);
    let mut create = rt
        .cmd()
        .args(["create", "--bundle", bundle.path().to_str().unwrap(), "--console-socket", socket.path(), &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(bundle.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let master = socket.receive_master();
    let status = create.wait().unwrap();
    assert!(status.success(), "{}", bundle.read("stderr"));
    rt.ok(&["start", &id]);
    let output = read_master(&master, "111");
    assert!(output.contains("/dev/pts/"), "the container's stdio is not a pty: {output:?}");
    assert!(output.contains("33 111"), "consoleSize not applied: {output:?}");
    rt.wait_status(&id, "stopped");
}

#[test]
fn exec_tty_with_console_socket() {
    require_root!();
    let rt = Runtime::new();
    let bundle = Bundle::busybox(&["sleep", "60"]);
    let id = unique_name("exectty");
    rt.run_detached(&bundle, &id);
    let socket = ConsoleSocket::new();
    let log = std::fs::File::create(bundle.path().join("exec.err")).unwrap();
    let pid_file = bundle.path().join("exec.pid");
    let mut exec = rt
        .cmd()
        .args(["exec", "--tty", "--console-socket", socket.path(), "--detach", "--pid-file", pid_file.to_str().unwrap(), &id, "sh", "-c", "tty; echo done"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let master = socket.receive_master();
    let status = exec.wait().unwrap();
    assert!(status.success(), "{}", bundle.read("exec.err"));
    if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse().ok()) {
        rt.track_pid(pid);
    }
    let output = read_master(&master, "done");
    assert!(output.contains("/dev/pts/"), "exec's stdio is not a pty: {output:?}");
    assert!(output.contains("done"), "{output:?}");
}

#[test]
fn terminal_without_console_socket_is_refused() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["tty"]);
    bundle.config["process"]["terminal"] = json!(true);
    bundle.save();
    let id = unique_name("noconsole");
    let out = rt.create(&bundle, &id);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--console-socket"), "{}", text(&out.stderr));
    assert!(!rt.root().join(&id).exists());
    assert!(cgroup_dirs_named(&id).is_empty());
    let run = rt.run(&bundle, &unique_name("noconsole-run"));
    assert!(!run.status.success());
    assert!(text(&run.stderr).contains("--console-socket"), "{}", both(&run));
}

#[test]
fn unreachable_console_socket_fails_create_cleanly() {
    require_root!();
    let rt = Runtime::new();
    let mut bundle = Bundle::busybox(&["tty"]);
    bundle.config["process"]["terminal"] = json!(true);
    bundle.save();
    let id = unique_name("badsock");
    let out = rt.create_with(&bundle, &id, &["--console-socket", "/nonexistent/mrt.sock"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/nonexistent/mrt.sock"), "{}", text(&out.stderr));
    assert!(!rt.root().join(&id).exists());
    assert!(cgroup_dirs_named(&id).is_empty(), "{:?}", cgroup_dirs_named(&id));
}
