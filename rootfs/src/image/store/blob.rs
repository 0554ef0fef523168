//! Blobs: content-addressed files under `blobs/sha256/<hex>`, written
//! through a `.partial` file that becomes visible only once its content
//! hashes to the digest it was announced with.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use super::lock::FileLock;
use super::StoreError;

/// The hex part of a `sha256:<64 lowercase hex>` digest. Nothing else is
/// accepted: the hex becomes a file name, so it must never carry a `/`.
pub fn sha256_hex(digest: &str) -> Result<&str, StoreError> {
    let bad = || StoreError::BadDigest {
        digest: digest.to_string(),
    };
    let hex = digest.strip_prefix("sha256:").ok_or_else(bad)?;
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(hex)
    } else {
        Err(bad())
    }
}

/// Streams one blob into the store. Dropping it without [`commit`] keeps
/// the partial file, so a later writer for the same digest resumes from
/// [`offset`] (an HTTP `Range: bytes=<offset>-` request).
///
/// [`commit`]: BlobWriter::commit
/// [`offset`]: BlobWriter::offset
pub struct BlobWriter {
    file: File,
    hasher: Sha256,
    written: u64,
    digest: String,
    partial: PathBuf,
    dest: PathBuf,
    // Held until commit or drop: one writer per digest, and no garbage
    // collection while a blob is on its way in.
    _lock: FileLock,
    _lease: FileLock,
}

impl BlobWriter {
    pub(super) fn open(
        digest: &str,
        partial: PathBuf,
        dest: PathBuf,
        lock: FileLock,
        lease: FileLock,
    ) -> Result<Self, StoreError> {
        let io_err = |op| {
            let path = partial.clone();
            move |source| StoreError::Io { path, op, source }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial)
            .map_err(io_err("opening the partial blob"))?;
        // Resuming: the digest covers the whole blob, so the bytes already
        // there are hashed again before new ones are appended.
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(io_err("reading the partial blob"))?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
            written += n as u64;
        }
        file.seek(SeekFrom::End(0))
            .map_err(io_err("seeking the partial blob"))?;
        Ok(Self {
            file,
            hasher,
            written,
            digest: digest.to_string(),
            partial,
            dest,
            _lock: lock,
            _lease: lease,
        })
    }

    /// Bytes already held, from an interrupted earlier attempt or this one.
    pub fn offset(&self) -> u64 {
        self.written
    }

    /// Drops what was written so far, for a server that ignored the Range
    /// request and sends the blob from its first byte.
    pub fn restart(&mut self) -> Result<(), StoreError> {
        let io_err = |source| StoreError::Io {
            path: self.partial.clone(),
            op: "truncating the partial blob",
            source,
        };
        self.file.set_len(0).map_err(io_err)?;
        self.file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        self.hasher = Sha256::new();
        self.written = 0;
        Ok(())
    }

    /// Checks the content against the digest and moves it into place, or
    /// deletes it. Returns the blob's path.
    pub fn commit(mut self) -> Result<PathBuf, StoreError> {
        let partial = self.partial.clone();
        let io_err = |op| {
            let path = partial.clone();
            move |source| StoreError::Io { path, op, source }
        };
        self.file.flush().map_err(io_err("writing the blob"))?;
        let actual = format!("sha256:{}", hex::encode(self.hasher.finalize_reset()));
        if actual != self.digest {
            let _ = fs::remove_file(&self.partial);
            return Err(StoreError::DigestMismatch {
                digest: self.digest.clone(),
                actual,
            });
        }
        // The rename publishes the blob; its data must be on disk first or a
        // crash could leave a complete-looking but empty file.
        self.file.sync_all().map_err(io_err("syncing the blob"))?;
        fs::rename(&self.partial, &self.dest).map_err(io_err("moving the blob into place"))?;
        Ok(self.dest.clone())
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// sha256 of everything `reader` yields, as `sha256:<hex>`, and its length.
pub fn digest_of(mut reader: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
        total += n as u64;
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_sha256_digests_pass() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(sha256_hex(&good).unwrap(), "a".repeat(64));
        for bad in [
            "sha256:../../etc/passwd".to_string(),
            format!("sha512:{}", "a".repeat(64)),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            "a".repeat(64),
        ] {
            assert!(sha256_hex(&bad).is_err(), "{bad}");
        }
    }
}
