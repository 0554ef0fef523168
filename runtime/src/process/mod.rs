//! Making processes inside a container: the init of a new container
//! (`init`, driven by `spawn` in the runtime) and a process joining a running
//! one (`join`). Both end in `user_process`, the last steps before execve.

pub mod channel;
pub mod exe_guard;
pub mod init;
pub mod join;
pub mod spawn;
pub mod user_process;
pub mod wait;

/// Exit codes of a process that failed before its execve, as a shell would
/// report them (the Docker front end maps them the same way).
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;
