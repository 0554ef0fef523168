//! The image store: content-addressed blobs, unpacked layers shared between
//! images, and the names that point at images.
//!
//! ```text
//! <root>/blobs/sha256/<hex>     manifests, configs, layer tarballs
//! <root>/layers/<diff-id hex>/  one unpacked layer, an overlayfs lower dir
//! <root>/repositories.json      image id -> manifest digest and names
//! <root>/tmp/<hex>.partial      blobs being written (resumable)
//! <root>/locks/                 flock files
//! ```
//!
//! Everything becomes visible by a rename, so a crash never leaves a half
//! blob, half layer or half-written names file. Locks only avoid doing work
//! twice: two processes that unpack the same layer both rename into place,
//! and the second one simply finds the first one's copy.
//!
//! Garbage collection needs to know that nothing is half-way through adding
//! an image: writers hold a shared "lease" lock and collection only runs
//! when it can take that lock exclusively.

mod blob;
mod load;
mod lock;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde::{Deserialize, Serialize};

use super::unpack::{unpack_layer_to_new_dir, UnpackError};
pub use blob::{sha256_hex, BlobWriter};
use lock::{FileLock, Mode};

pub const DEFAULT_ROOT: &str = "/var/lib/minirun/images";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path:?}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("{digest:?} is not a sha256 digest (sha256:<64 lowercase hex digits>)")]
    BadDigest { digest: String },
    #[error("blob {digest} does not match its digest (the content hashes to {actual})")]
    DigestMismatch { digest: String, actual: String },
    /// Another writer stored the blob first; there is nothing left to write.
    #[error("blob {digest} is already in the store")]
    BlobPresent { digest: String },
    #[error("blob {digest} is not in the store")]
    MissingBlob { digest: String },
    #[error("blob {digest}: not a valid {what}: {reason}")]
    BadJson {
        digest: String,
        what: &'static str,
        reason: String,
    },
    #[error("image {id}: the manifest lists {layers} layers but the config {diff_ids} diff ids")]
    LayerCountMismatch {
        id: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("layer {digest}: {source}")]
    Unpack { digest: String, source: UnpackError },
    #[error("layer {diff_id} of image {id} is not unpacked in the store")]
    MissingLayer { id: String, diff_id: String },
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("{prefix} matches more than one image id; give more of it")]
    Ambiguous { prefix: String },
    #[error("invalid image name {0:?}")]
    BadName(String),
    #[error("image {id} ({name}) is used by a container; remove the container first")]
    InUse { id: String, name: String },
    #[error("another process is adding images; try the prune again when it is done")]
    Busy,
    #[error("{path:?}: {reason}")]
    BadArchive { path: PathBuf, reason: String },
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, op, source }
}

/// One image as the front end sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// The config digest, as Docker names images.
    pub id: String,
    /// Normalised references; empty for a dangling image.
    pub names: Vec<String>,
    pub manifest_digest: String,
    /// From the config, RFC 3339, when the image says.
    pub created: Option<String>,
    /// Bytes of the image's unpacked files, as `docker images` counts them
    /// (for images added before minirun kept it: the compressed blobs).
    pub size: u64,
    pub config: ImageConfiguration,
}

/// What `repositories.json` holds about one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    manifest: String,
    names: Vec<String>,
    /// Bytes of the unpacked layers' files, measured when the image was
    /// added; absent in stores written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unpacked_size: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Repositories {
    /// Keyed by image id.
    images: BTreeMap<String, Entry>,
}

/// Holds off garbage collection while alive (see [`ImageStore::lease`]).
pub struct Lease {
    _lock: FileLock,
}

pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// Opens the store at `root`, creating its directories.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for dir in ["blobs/sha256", "layers", "tmp", "locks"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_err(&path, "creating the store directory"))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Keeps garbage collection from deleting blobs that are stored but not
    /// yet part of an image. A pull holds one from its first blob until
    /// `add_image` returns. (Collection in the same process is held off
    /// too: do not call `remove` or `prune` while holding one.)
    pub fn lease(&self) -> Result<Lease, StoreError> {
        let path = self.root.join("locks/gc");
        let lock = FileLock::acquire(&path, Mode::Shared).map_err(io_err(&path, "locking"))?;
        Ok(Lease { _lock: lock })
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        match sha256_hex(digest) {
            Ok(hex) => self.root.join("blobs/sha256").join(hex),
            // An invalid digest names nothing; a path that cannot exist
            // keeps the signature simple and every caller safe.
            Err(_) => self.root.join("blobs/invalid-digest"),
        }
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        sha256_hex(digest).is_ok() && self.blob_path(digest).is_file()
    }

    /// A writer for the blob `digest`, resuming a partial one if there is.
    /// Waits while another writer has the same blob; if that one stored it,
    /// returns [`StoreError::BlobPresent`].
    pub fn blob_writer(&self, digest: &str) -> Result<BlobWriter, StoreError> {
        let hex = sha256_hex(digest)?;
        let lease = self.lease()?._lock;
        let lock_path = self.root.join("locks").join(format!("blob-{hex}"));
        let lock = FileLock::acquire(&lock_path, Mode::Exclusive)
            .map_err(io_err(&lock_path, "locking"))?;
        if self.has_blob(digest) {
            return Err(StoreError::BlobPresent {
                digest: digest.to_string(),
            });
        }
        let partial = self.root.join("tmp").join(format!("{hex}.partial"));
        BlobWriter::open(digest, partial, self.blob_path(digest), lock, lease)
    }

    /// Stores everything `reader` yields as blob `digest`, unless present.
    pub fn put_blob(&self, digest: &str, mut reader: impl io::Read) -> Result<(), StoreError> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let mut writer = match self.blob_writer(digest) {
            Ok(w) => w,
            Err(StoreError::BlobPresent { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        // A copy from the start, not a resume.
        writer.restart()?;
        let partial = self.root.join("tmp");
        io::copy(&mut reader, &mut writer).map_err(io_err(&partial, "writing a blob"))?;
        writer.commit().map(drop)
    }

    fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        sha256_hex(digest)?;
        let path = self.blob_path(digest);
        fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob {
                digest: digest.to_string(),
            },
            _ => StoreError::Io {
                path,
                op: "reading the blob",
                source: e,
            },
        })
    }

    fn read_manifest(&self, digest: &str) -> Result<ImageManifest, StoreError> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::BadJson {
            digest: digest.to_string(),
            what: "image manifest (an index must be resolved to one platform's manifest first)",
            reason: e.to_string(),
        })
    }

    fn read_config(&self, digest: &str) -> Result<ImageConfiguration, StoreError> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::BadJson {
            digest: digest.to_string(),
            what: "image config",
            reason: e.to_string(),
        })
    }

    /// Records an image whose manifest and config blobs (and layer blobs,
    /// unless their layers are already unpacked) are stored: unpacks the
    /// missing layers, then points `name` at it, taking the name from any
    /// image that had it. Returns the image.
    pub fn add_image(&self, name: &str, manifest_digest: &str) -> Result<ImageRecord, StoreError> {
        check_name(name)?;
        self.add_image_named(&[name.to_string()], manifest_digest)
    }

    fn add_image_named(
        &self,
        names: &[String],
        manifest_digest: &str,
    ) -> Result<ImageRecord, StoreError> {
        let _lease = self.lease()?;
        let manifest = self.read_manifest(manifest_digest)?;
        let id = manifest.config().digest().to_string();
        let config = self.read_config(&id)?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(StoreError::LayerCountMismatch {
                id,
                layers: manifest.layers().len(),
                diff_ids: diff_ids.len(),
            });
        }
        let mut unpacked_size = 0;
        for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
            unpacked_size += self.unpack_layer(layer.digest().as_ref(), diff_id)?;
        }
        self.update_repositories(|repos| {
            for entry in repos.images.values_mut() {
                entry.names.retain(|n| !names.contains(n));
            }
            let entry = repos.images.entry(id.clone()).or_insert_with(|| Entry {
                manifest: manifest_digest.to_string(),
                names: Vec::new(),
                unpacked_size: None,
            });
            entry.manifest = manifest_digest.to_string();
            entry.unpacked_size = Some(unpacked_size);
            for n in names {
                if !entry.names.contains(n) {
                    entry.names.push(n.clone());
                }
            }
            Ok(())
        })?;
        self.record(&id)
    }

    /// Unpacks a layer unless it already is; returns the bytes of its files.
    fn unpack_layer(&self, blob_digest: &str, diff_id: &str) -> Result<u64, StoreError> {
        let hex = sha256_hex(diff_id)?;
        let dest = self.root.join("layers").join(hex);
        if dest.is_dir() {
            return Ok(tree_size(&dest));
        }
        let lock_path = self.root.join("locks").join(format!("layer-{hex}"));
        let _lock = FileLock::acquire(&lock_path, Mode::Exclusive)
            .map_err(io_err(&lock_path, "locking"))?;
        if dest.is_dir() {
            return Ok(tree_size(&dest));
        }
        let path = self.blob_path(blob_digest);
        let file = fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob {
                digest: blob_digest.to_string(),
            },
            _ => StoreError::Io {
                path: path.clone(),
                op: "opening the layer",
                source: e,
            },
        })?;
        unpack_layer_to_new_dir(io::BufReader::new(file), &dest, Some(diff_id))
            .map_err(|source| StoreError::Unpack {
                digest: blob_digest.to_string(),
                source,
            })?;
        // Measured on disk, as for a layer unpacked before: hardlinks count once.
        Ok(tree_size(&dest))
    }

    /// Finds an image by name (exactly as stored, normalised), or by its id
    /// in full or by a unique prefix, with or without `sha256:`.
    pub fn resolve(&self, name_or_id: &str) -> Result<ImageRecord, StoreError> {
        let id = find_id(&self.read_repositories()?, name_or_id)?;
        self.record(&id)
    }

    /// Every image, sorted by first name (dangling images last, by id).
    pub fn list(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let repos = self.read_repositories()?;
        let mut out = Vec::new();
        for id in repos.images.keys() {
            out.push(self.record_from(id, &repos)?);
        }
        out.sort_by(|a, b| match (a.names.first(), b.names.first()) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.id.cmp(&b.id),
        });
        Ok(out)
    }

    /// The unpacked layer directories of `image`, lowest first.
    pub fn layer_dirs(&self, image: &ImageRecord) -> Result<Vec<PathBuf>, StoreError> {
        image
            .config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|diff_id| {
                let dir = self.root.join("layers").join(sha256_hex(diff_id)?);
                if dir.is_dir() {
                    Ok(dir)
                } else {
                    Err(StoreError::MissingLayer {
                        id: image.id.clone(),
                        diff_id: diff_id.clone(),
                    })
                }
            })
            .collect()
    }

    /// `rmi`: a name loses its image (and the image goes when that was its
    /// last name); an id removes every name and the image. Images in
    /// `in_use` (ids of images containers use) are refused. Blobs and
    /// layers nothing references any more are deleted. Returns Docker-style
    /// lines: `Untagged: NAME`, `Deleted: ID`.
    pub fn remove(&self, name_or_id: &str, in_use: &[String]) -> Result<Vec<String>, StoreError> {
        let mut removed = Vec::new();
        self.update_repositories(|repos| {
            let id = find_id(repos, name_or_id)?;
            let Some(entry) = repos.images.get_mut(&id) else {
                return Err(StoreError::NotFound(name_or_id.to_string()));
            };
            let by_name = entry.names.iter().any(|n| n == name_or_id);
            let last_name = !by_name || entry.names.len() <= 1;
            if last_name && is_in_use(&id, in_use) {
                return Err(StoreError::InUse {
                    id: id.clone(),
                    name: name_or_id.to_string(),
                });
            }
            if by_name {
                entry.names.retain(|n| n != name_or_id);
                removed.push(format!("Untagged: {name_or_id}"));
            } else {
                removed.extend(entry.names.drain(..).map(|n| format!("Untagged: {n}")));
            }
            if entry.names.is_empty() {
                repos.images.remove(&id);
                removed.push(format!("Deleted: {id}"));
            }
            Ok(())
        })?;
        // Skipped while a pull is under way; the next prune catches up.
        if let Some(freed) = self.collect_garbage(false)? {
            removed.extend(freed.layers.into_iter().map(|d| format!("Deleted: {d}")));
        }
        Ok(removed)
    }

    /// Removes dangling images (no names) that no container uses, then
    /// every blob and layer no image references, stale partial downloads
    /// included. Returns the bytes freed.
    pub fn prune(&self, in_use: &[String]) -> Result<u64, StoreError> {
        self.update_repositories(|repos| {
            repos
                .images
                .retain(|id, entry| !entry.names.is_empty() || is_in_use(id, in_use));
            Ok(())
        })?;
        // Wait a while for in-flight pulls rather than fail at once.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(freed) = self.collect_garbage(true)? {
                return Ok(freed.bytes);
            }
            if Instant::now() > deadline {
                return Err(StoreError::Busy);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Deletes unreferenced blobs and layers; `None` when a lease is held.
    fn collect_garbage(&self, with_partials: bool) -> Result<Option<Freed>, StoreError> {
        let gc_path = self.root.join("locks/gc");
        let Some(_gc) = FileLock::try_acquire(&gc_path, Mode::Exclusive)
            .map_err(io_err(&gc_path, "locking"))?
        else {
            return Ok(None);
        };
        let repos = self.read_repositories()?;
        let mut blobs = BTreeSet::new();
        let mut layers = BTreeSet::new();
        for (id, entry) in &repos.images {
            blobs.insert(entry.manifest.clone());
            blobs.insert(id.clone());
            // An image whose manifest cannot be read keeps what it can
            // name; its layers are kept through the config below.
            if let Ok(manifest) = self.read_manifest(&entry.manifest) {
                blobs.extend(manifest.layers().iter().map(|l| l.digest().to_string()));
            }
            match self.read_config(id) {
                Ok(config) => layers.extend(config.rootfs().diff_ids().iter().cloned()),
                // Without the config we cannot tell its layers apart from
                // garbage; keep them all rather than break the image.
                Err(_) => return Ok(Some(Freed::default())),
            }
        }
        let mut freed = Freed::default();
        let blob_dir = self.root.join("blobs/sha256");
        for (name, meta) in dir_entries(&blob_dir)? {
            if !blobs.contains(&format!("sha256:{name}")) {
                remove_path(&blob_dir.join(&name), &meta)?;
                freed.bytes += meta.len();
            }
        }
        let layer_dir = self.root.join("layers");
        for (name, meta) in dir_entries(&layer_dir)? {
            let diff_id = format!("sha256:{name}");
            if !layers.contains(&diff_id) {
                let path = layer_dir.join(&name);
                freed.bytes += tree_size(&path);
                remove_path(&path, &meta)?;
                // Only finished layers are worth reporting; the rest are
                // leftovers of interrupted unpacks.
                if sha256_hex(&diff_id).is_ok() {
                    freed.layers.push(diff_id);
                }
            }
        }
        if with_partials {
            let tmp = self.root.join("tmp");
            for (name, meta) in dir_entries(&tmp)? {
                remove_path(&tmp.join(&name), &meta)?;
                freed.bytes += tree_size(&tmp.join(&name)).max(meta.len());
            }
        }
        Ok(Some(freed))
    }

    /// `minirun load -i FILE`: a `docker save` archive or an OCI image
    /// layout (a directory, or a tar of one, maybe compressed). Returns the
    /// names loaded, or `sha256:<id>` for an image without a name.
    pub fn load(&self, path: &Path) -> Result<Vec<String>, StoreError> {
        load::load(self, path)
    }

    /// `minirun import ROOTFS.tar[.gz|.zst] NAME`: a one-layer image of the
    /// tarball, with a minimal config for this host's platform.
    pub fn import(&self, tarball: &Path, name: &str) -> Result<ImageRecord, StoreError> {
        check_name(name)?;
        load::import(self, tarball, name)
    }

    fn record(&self, id: &str) -> Result<ImageRecord, StoreError> {
        self.record_from(id, &self.read_repositories()?)
    }

    fn record_from(&self, id: &str, repos: &Repositories) -> Result<ImageRecord, StoreError> {
        let entry = repos
            .images
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let manifest = self.read_manifest(&entry.manifest)?;
        let config = self.read_config(id)?;
        let size = entry.unpacked_size.unwrap_or_else(|| {
            manifest.config().size() + manifest.layers().iter().map(|l| l.size()).sum::<u64>()
        });
        Ok(ImageRecord {
            id: id.to_string(),
            names: entry.names.clone(),
            manifest_digest: entry.manifest.clone(),
            created: config.created().clone(),
            size,
            config,
        })
    }

    fn repositories_path(&self) -> PathBuf {
        self.root.join("repositories.json")
    }

    /// Readers need no lock: the file is only ever replaced by a rename.
    fn read_repositories(&self) -> Result<Repositories, StoreError> {
        let path = self.repositories_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::BadArchive {
                path,
                reason: format!("the store's names file is corrupt: {e}"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Repositories::default()),
            Err(e) => Err(StoreError::Io {
                path,
                op: "reading",
                source: e,
            }),
        }
    }

    /// Read-modify-write of the names file under the store lock, so that
    /// concurrent commands never lose each other's changes.
    fn update_repositories<T>(
        &self,
        change: impl FnOnce(&mut Repositories) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let lock_path = self.root.join("locks/repositories");
        let _lock = FileLock::acquire(&lock_path, Mode::Exclusive)
            .map_err(io_err(&lock_path, "locking"))?;
        let mut repos = self.read_repositories()?;
        let out = change(&mut repos)?;
        let path = self.repositories_path();
        // Beside the file, not in tmp/, which prune empties.
        let tmp = self.root.join("repositories.json.new");
        let bytes = serde_json::to_vec_pretty(&repos).map_err(|e| StoreError::BadArchive {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_synced(&tmp, &bytes)?;
        fs::rename(&tmp, &path).map_err(io_err(&path, "replacing"))?;
        Ok(out)
    }
}

#[derive(Default)]
struct Freed {
    bytes: u64,
    layers: Vec<String>,
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(io_err(path, "creating"))?;
    f.write_all(bytes).map_err(io_err(path, "writing"))?;
    f.sync_all().map_err(io_err(path, "syncing"))
}

fn is_in_use(id: &str, in_use: &[String]) -> bool {
    let bare = id.strip_prefix("sha256:").unwrap_or(id);
    in_use
        .iter()
        .any(|u| u.strip_prefix("sha256:").unwrap_or(u) == bare)
}

fn find_id(repos: &Repositories, name_or_id: &str) -> Result<String, StoreError> {
    if let Some((id, _)) = repos
        .images
        .iter()
        .find(|(_, e)| e.names.iter().any(|n| n == name_or_id))
    {
        return Ok(id.clone());
    }
    let prefix = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::NotFound(name_or_id.to_string()));
    }
    let prefix = prefix.to_ascii_lowercase();
    let mut matches = repos.images.keys().filter(|id| {
        id.strip_prefix("sha256:")
            .is_some_and(|h| h.starts_with(&prefix))
    });
    match (matches.next(), matches.next()) {
        (Some(id), None) => Ok(id.clone()),
        (Some(_), Some(_)) => Err(StoreError::Ambiguous {
            prefix: name_or_id.to_string(),
        }),
        _ => Err(StoreError::NotFound(name_or_id.to_string())),
    }
}

/// Names are normalised by the caller; this only keeps out what would
/// break the names file or the output.
fn check_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty()
        || name.len() > 512
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(StoreError::BadName(name.to_string()));
    }
    Ok(())
}

fn dir_entries(dir: &Path) -> Result<Vec<(String, fs::Metadata)>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir, "listing"))? {
        let entry = entry.map_err(io_err(dir, "listing"))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let meta =
            fs::symlink_metadata(entry.path()).map_err(io_err(&entry.path(), "inspecting"))?;
        out.push((name, meta));
    }
    Ok(out)
}

fn remove_path(path: &Path, meta: &fs::Metadata) -> Result<(), StoreError> {
    let res = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Io {
            path: path.to_path_buf(),
            op: "removing",
            source: e,
        }),
    }
}

/// Bytes of regular files below `path`, each inode counted once.
fn tree_size(path: &Path) -> u64 {
    let mut seen = BTreeSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
            total += meta.len();
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn digest(data: &[u8]) -> String {
        blob::digest_of(data).unwrap().0
    }

    #[test]
    fn a_blob_is_visible_only_after_a_verified_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let d = digest(b"hello world");
        let mut w = store.blob_writer(&d).unwrap();
        w.write_all(b"hello ").unwrap();
        assert!(!store.has_blob(&d));
        drop(w);
        // Resumes where the interrupted writer stopped.
        let mut w = store.blob_writer(&d).unwrap();
        assert_eq!(w.offset(), 6);
        w.write_all(b"world").unwrap();
        let path = w.commit().unwrap();
        assert_eq!(fs::read(path).unwrap(), b"hello world");
        assert!(store.has_blob(&d));
        assert!(matches!(
            store.blob_writer(&d),
            Err(StoreError::BlobPresent { .. })
        ));
    }

    #[test]
    fn a_blob_that_does_not_match_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let d = digest(b"expected");
        let mut w = store.blob_writer(&d).unwrap();
        w.write_all(b"something else").unwrap();
        let err = w.commit().unwrap_err().to_string();
        assert!(
            err.contains(&format!("blob {d} does not match its digest")),
            "{err}"
        );
        assert!(!store.has_blob(&d));
        assert_eq!(store.blob_writer(&d).unwrap().offset(), 0);
    }

    #[test]
    fn ids_resolve_by_unique_prefix() {
        let mut repos = Repositories::default();
        let entry = |n: &str| Entry {
            manifest: String::new(),
            names: vec![n.to_string()],
            unpacked_size: None,
        };
        repos
            .images
            .insert(format!("sha256:ab{}", "0".repeat(62)), entry("a"));
        repos
            .images
            .insert(format!("sha256:ac{}", "0".repeat(62)), entry("b"));
        assert!(find_id(&repos, "ab").unwrap().starts_with("sha256:ab"));
        assert!(find_id(&repos, "sha256:ac")
            .unwrap()
            .starts_with("sha256:ac"));
        assert!(find_id(&repos, "b").unwrap().starts_with("sha256:ac"));
        assert!(matches!(
            find_id(&repos, "a0"),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            find_id(&repos, "sha256:a"),
            Err(StoreError::Ambiguous { .. })
        ));
        assert!(matches!(
            find_id(&repos, "zz"),
            Err(StoreError::NotFound(_))
        ));
    }
}
