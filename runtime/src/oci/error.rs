use thiserror::Error;

use crate::cgroups::CgroupError;
use crate::container::StateError;
use crate::hooks::HookError;
use crate::namespaces::NamespaceError;
use crate::process::channel::ChannelError;
use crate::process::spawn::SpawnError;
use crate::seccomp::SeccompError;

/// Every way an OCI command can fail; the message is what the client shows.
#[derive(Debug, Error)]
pub enum OciError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] SeccompError),
    #[error("{0}")]
    Config(String),
    #[error("container {id} is {status}: {action}")]
    WrongStatus { id: String, status: crate::container::Status, action: &'static str },
    #[error("{action}: {source}")]
    Io { action: String, source: std::io::Error },
    #[error("{0}")]
    Container(String),
    /// The container's process could not be set up or executed; the exit
    /// code is what a shell would report (126, 127, or 1).
    #[error("{message}")]
    Process { message: String, exit_code: i32 },
}

impl OciError {
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> OciError {
        let action = action.into();
        move |source| OciError::Io { action, source }
    }
}
