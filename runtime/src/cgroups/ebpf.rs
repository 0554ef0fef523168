//! Loading and attaching the device filter with the raw bpf(2) syscall.
//!
//! The attr structs below are the prefixes of `union bpf_attr` each command
//! reads. The kernel accepts a shorter attr than its own (it zero-fills the
//! rest), so only the fields used are declared; all padding is explicit so
//! no uninitialised bytes reach the kernel.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::devices::BpfInsn;
use super::CgroupError;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
const BPF_F_REPLACE: u32 = 1 << 2;

/// Programs are recognised as minirun's by name, so an update replaces
/// ours and leaves anything another tool attached alone.
const PROG_NAME: &[u8] = b"minirun_devices";
const LICENSE: &[u8] = b"Apache-2.0\0";

const LOG_SIZE_START: usize = 64 * 1024;
const LOG_SIZE_MAX: usize = 16 * 1024 * 1024;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoByFdAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of struct bpf_prog_info, up to and including the name.
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised #[repr(C)] struct whose
    // layout is a prefix of the kernel's union bpf_attr for `cmd`, and its
    // exact size is passed, so the kernel reads and writes only within it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: on success these commands return a new file descriptor that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn err(op: &'static str, source: io::Error) -> CgroupError {
    CgroupError::Bpf {
        op,
        source,
        log: String::new(),
    }
}

/// Loads `insns` and attaches them to the cgroup2 directory `dir`, then
/// detaches the filter minirun attached there before. The new program goes
/// in first, so there is no moment without a filter.
pub(super) fn install_device_filter(dir: &Path, insns: &[BpfInsn]) -> Result<(), CgroupError> {
    let prog = load(insns)?;
    let cgroup: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(|source| CgroupError::Read {
            path: dir.to_owned(),
            source,
        })?;
    let cgroup_fd = cgroup.as_raw_fd();
    let ours = attached_programs(cgroup_fd)?
        .into_iter()
        .filter_map(|id| open_ours(id).transpose())
        .collect::<Result<Vec<_>, _>>()?;

    // Atomic swap where the kernel supports it (5.6+); EINVAL means it
    // does not, and the attach-then-detach path below is nearly as good.
    if let [old] = ours.as_slice() {
        match attach(cgroup_fd, &prog, Some(old)) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(err("BPF_PROG_ATTACH", e)),
        }
    }
    attach(cgroup_fd, &prog, None).map_err(|e| err("BPF_PROG_ATTACH", e))?;
    for old in &ours {
        let mut attr = AttachAttr {
            target_fd: cgroup_fd as u32,
            attach_bpf_fd: old.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        match bpf(BPF_PROG_DETACH, &mut attr) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(err("BPF_PROG_DETACH", e)),
        }
    }
    Ok(())
}

fn attach(cgroup_fd: RawFd, prog: &OwnedFd, replace: Option<&OwnedFd>) -> io::Result<()> {
    // ALLOW_MULTI so filters of ancestors (e.g. systemd's) keep applying
    // and a later filter on a sub-cgroup can only restrict further.
    let mut attr = AttachAttr {
        target_fd: cgroup_fd as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    if let Some(old) = replace {
        attr.attach_flags |= BPF_F_REPLACE;
        attr.replace_bpf_fd = old.as_raw_fd() as u32;
    }
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

fn load(insns: &[BpfInsn]) -> Result<OwnedFd, CgroupError> {
    let mut name = [0u8; 16];
    name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len()).unwrap_or(u32::MAX),
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    let first = match bpf_fd(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    // Before 5.11 programs were charged to RLIMIT_MEMLOCK, whose default is
    // tiny; lift it for the load only so the container does not inherit it.
    if first.raw_os_error() == Some(libc::EPERM) {
        if let Some(fd) = with_memlock_lifted(|| bpf_fd(BPF_PROG_LOAD, &mut attr).ok()) {
            return Ok(fd);
        }
    }
    // Load again with the verifier log so the error says what is wrong.
    let mut size = LOG_SIZE_START;
    loop {
        let mut log = vec![0u8; size];
        attr.log_level = 1;
        attr.log_size = size as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
        match bpf_fd(BPF_PROG_LOAD, &mut attr) {
            // Loading with a log can only succeed where it failed before if
            // the failure was transient; take it.
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size < LOG_SIZE_MAX => size *= 2,
            Err(e) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                return Err(CgroupError::Bpf {
                    op: "BPF_PROG_LOAD",
                    source: e,
                    log: String::from_utf8_lossy(&log[..end]).trim_end().to_owned(),
                });
            }
        }
    }
}

fn with_memlock_lifted<T>(f: impl FnOnce() -> Option<T>) -> Option<T> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut old) } != 0 {
        return None;
    }
    let lifted = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lifted) } != 0 {
        return None;
    }
    let out = f();
    // SAFETY: as above; restoring is best effort.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &old) };
    out
}

/// Ids of the device programs attached directly to the cgroup.
fn attached_programs(cgroup_fd: RawFd) -> Result<Vec<u32>, CgroupError> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = QueryAttr {
            target_fd: cgroup_fd as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            // prog_cnt now holds the real count.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && (attr.prog_cnt as usize) > ids.len() => {
                ids = vec![0u32; attr.prog_cnt as usize];
            }
            Err(e) => return Err(err("BPF_PROG_QUERY", e)),
        }
    }
}

/// An fd for program `id` if it is one of ours; `None` if it is someone
/// else's or went away meanwhile.
fn open_ours(id: u32) -> Result<Option<OwnedFd>, CgroupError> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        ..Default::default()
    };
    let fd = match bpf_fd(BPF_PROG_GET_FD_BY_ID, &mut attr) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(err("BPF_PROG_GET_FD_BY_ID", e)),
    };
    let mut info = ProgInfo::default();
    let mut attr = InfoByFdAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map_err(|e| err("BPF_OBJ_GET_INFO_BY_FD", e))?;
    let name_len = info.name.iter().position(|&b| b == 0).unwrap_or(info.name.len());
    Ok((&info.name[..name_len] == PROG_NAME).then_some(fd))
}

/// How many of minirun's filters are attached to `dir`.
#[cfg(test)]
pub(super) fn our_program_count(dir: &Path) -> Result<usize, CgroupError> {
    let cgroup = File::open(dir).map_err(|source| CgroupError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut count = 0;
    for id in attached_programs(cgroup.as_raw_fd())? {
        count += usize::from(open_ours(id)?.is_some());
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_the_kernel() {
        assert_eq!(size_of::<BpfInsn>(), 8);
        assert_eq!(size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(size_of::<AttachAttr>(), 20);
        assert_eq!(size_of::<QueryAttr>(), 32);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_ids), 16);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_cnt), 24);
        assert_eq!(size_of::<InfoByFdAttr>(), 16);
        assert_eq!(std::mem::offset_of!(ProgInfo, name), 64);
        assert_eq!(size_of::<ProgInfo>(), 80);
        assert!(PROG_NAME.len() < 16);
    }
}
