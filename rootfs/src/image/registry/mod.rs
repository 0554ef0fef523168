//! A client for the OCI distribution API (v2), enough to pull an image:
//! manifests (Docker schema 2 and OCI, lists and indexes resolved to one
//! platform), blobs streamed with sha256 verification and resumed with Range,
//! anonymous and credentialed bearer tokens, and Basic auth.
//!
//! Synchronous on purpose: the callers fork and clone afterwards, so
//! [`pull`] joins every thread it starts before it returns.

mod auth;
mod client;
pub mod manifest;
mod platform;
mod pull;
mod store_sink;

use std::path::PathBuf;

pub use client::{FetchedManifest, Registry};
pub use platform::PlatformSpec;
pub use pull::{pull, BlobSink, PullResult, PulledLayer};

use super::reference::ReferenceError;

#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Hosts (`host` or `host:port`) where plain HTTP is allowed.
    pub insecure: Vec<String>,
    /// A Docker `config.json` with `"auths": {host: {"auth": base64(user:pass)}}`.
    pub credentials: Option<PathBuf>,
    /// `os/arch[/variant]` such as `linux/arm64/v8`; the host's by default.
    pub platform: Option<String>,
    /// Per-layer progress lines like `docker pull`, only when stderr is a terminal.
    pub progress: bool,
}

/// Every message is one line, meant to follow "minirun: " on stderr.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error("repository {0} not found")]
    RepositoryNotFound(String),
    #[error("tag {tag} not found in {repository}")]
    TagNotFound { tag: String, repository: String },
    #[error("manifest {digest} not found in {repository}")]
    ManifestNotFound { digest: String, repository: String },
    #[error("blob {digest} not found in {repository}")]
    BlobNotFound { digest: String, repository: String },
    #[error("authentication to {registry} failed: {reason}")]
    Unauthorized { registry: String, reason: String },
    #[error("pull access denied for {repository}: {reason}")]
    Denied { repository: String, reason: String },
    #[error("credentials file {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("no image for {wanted} in {repository}; available: {available}")]
    NoMatchingPlatform {
        wanted: String,
        repository: String,
        available: String,
    },
    #[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/arm64/v8")]
    InvalidPlatform(String),
    #[error("unsupported manifest for {reference}: {reason}")]
    UnsupportedManifest { reference: String, reason: String },
    #[error("invalid response from {url}: {reason}")]
    Protocol { url: String, reason: String },
    #[error("registry answered {status} for {url}{detail}")]
    Http {
        status: u16,
        url: String,
        /// Empty or ": " followed by the registry's error message.
        detail: String,
    },
    #[error("download of {digest} interrupted after {received} bytes: {reason} (run the pull again to resume)")]
    Interrupted {
        digest: String,
        received: u64,
        reason: String,
    },
    #[error("download of {0} cancelled")]
    Cancelled(String),
    #[error("writing {what}: {source}")]
    Write {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Errors of the blob store behind a [`BlobSink`].
    #[error("{0}")]
    Sink(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("pull thread for {0} panicked")]
    ThreadPanicked(String),
}
