//! `linux.seccomp` from config.json compiled into a classic BPF program.
//!
//! runc, crun and youki hand the profile to libseccomp; this module
//! generates the filter itself so the runtime needs no C library. The
//! semantics follow runc on top of libseccomp (see `compile.rs` for the
//! details and the few deliberate differences).
//!
//! Compiling and installing are separate steps so that the program can be
//! built (allocating, possibly failing) before the runtime forks or drops
//! privileges, and installed at the last moment before exec.

mod arch;
mod bpf;
mod compile;
mod sysno;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

use oci_spec::runtime::LinuxSeccomp;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: user notification (SCMP_ACT_NOTIFY, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) is not supported")]
    NotifyUnsupported,
    #[error("seccomp: listenerPath {path:?} is set but user notification is not supported")]
    ListenerUnsupported { path: PathBuf },
    #[error("seccomp: filters cannot be built for this host architecture")]
    UnsupportedHostArch,
    #[error("seccomp: syscall entry {names:?} has argument index {index}; syscalls take at most 6 arguments")]
    InvalidArgIndex { names: String, index: usize },
    #[error("seccomp: errno value {value} does not fit the 16-bit SECCOMP_RET_DATA field")]
    InvalidErrno { value: u32 },
    #[error("seccomp: empty syscall name")]
    EmptySyscallName,
    #[error("seccomp: compiled filter needs {len} instructions; the kernel allows 4096")]
    TooLarge { len: usize },
    #[error("seccomp: internal error while generating the filter: {0}")]
    Internal(&'static str),
    #[error("seccomp: loading the filter failed")]
    Install(#[source] io::Error),
    #[error("seccomp: SECCOMP_FILTER_FLAG_TSYNC failed: thread {tid} could not be synchronized")]
    TsyncFailed { tid: libc::c_long },
    #[error(
        "seccomp: the kernel lacks seccomp(2), so the requested filter flags cannot be applied"
    )]
    FlagsUnsupported,
}

/// A compiled filter together with the `seccomp(2)` flags from the config.
#[derive(Clone)]
pub struct SeccompProgram {
    filter: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

impl std::fmt::Debug for SeccompProgram {
    // libc only implements Debug for sock_filter with its extra_traits
    // feature; the length is what matters in logs anyway.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeccompProgram")
            .field("instructions", &self.filter.len())
            .field("flags", &self.flags)
            .finish()
    }
}

/// Compiles `linux.seccomp` into a filter for this host's native ABI plus
/// the listed `architectures`.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<SeccompProgram, SeccompError> {
    let compiled = compile::compile(seccomp)?;
    Ok(SeccompProgram {
        filter: compiled.filter,
        flags: compiled.flags,
    })
}

impl SeccompProgram {
    /// Installs the filter on the calling thread (all threads with
    /// SECCOMP_FILTER_FLAG_TSYNC). Does not set no_new_privs: without it
    /// the caller needs CAP_SYS_ADMIN.
    ///
    /// Does not allocate, so it can run in a child between fork and exec.
    pub fn install(&self) -> Result<(), SeccompError> {
        let len = u16::try_from(self.filter.len()).map_err(|_| SeccompError::TooLarge {
            len: self.filter.len(),
        })?;
        let prog = libc::sock_fprog {
            len,
            // The kernel only reads the program.
            filter: self.filter.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `len` valid instructions that outlive
        // the call; the kernel copies them.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        if rc > 0 {
            // With TSYNC, a positive return is the thread that blocked it.
            return Err(SeccompError::TsyncFailed { tid: rc });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOSYS) {
            return Err(SeccompError::Install(err));
        }
        // Pre-3.17 kernels only have prctl, which takes no flags; silently
        // dropping TSYNC would leave other threads unfiltered.
        if self.flags != 0 {
            return Err(SeccompError::FlagsUnsupported);
        }
        // SAFETY: as above.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
                0,
                0,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(SeccompError::Install(io::Error::last_os_error()))
        }
    }

    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.filter
    }
}
