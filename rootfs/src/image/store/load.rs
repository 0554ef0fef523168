//! Getting images in from files: `docker save` archives, OCI image layouts
//! and plain rootfs tarballs (`import`).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use oci_spec::image::{ImageConfiguration, ImageIndex};
use serde::Deserialize;
use serde_json::json;

use super::blob::{digest_of, sha256_hex};
use super::{io_err, ImageRecord, ImageStore, StoreError};
use crate::image::config::host_platform;
use crate::image::unpack::{decompress_detect, openat2_in_root, unpack_layer};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// One image of a `docker save` manifest.json.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

pub(super) fn load(store: &ImageStore, path: &Path) -> Result<Vec<String>, StoreError> {
    let _lease = store.lease()?;
    let meta = fs::metadata(path).map_err(io_err(path, "opening"))?;
    if meta.is_dir() {
        return load_dir(store, path, path);
    }
    // An archive is unpacked with the layer unpacker, whose confinement
    // holds for hostile archives too, and then read as a directory.
    let tmp = temp_dir(store, "load")?;
    let result = File::open(path)
        .map_err(io_err(path, "opening"))
        .and_then(|f| {
            unpack_layer(BufReader::new(f), &tmp).map_err(|e| StoreError::BadArchive {
                path: path.to_path_buf(),
                reason: format!("not a readable image archive: {e}"),
            })
        })
        .and_then(|_| load_dir(store, &tmp, path));
    let _ = fs::remove_dir_all(&tmp);
    result
}

fn load_dir(store: &ImageStore, dir: &Path, shown: &Path) -> Result<Vec<String>, StoreError> {
    let root = Root::new(dir, shown)?;
    // Docker 25+ archives carry both; manifest.json has the names Docker
    // users expect, as `docker load` itself prefers it.
    if root.exists("manifest.json") {
        load_docker(store, &root)
    } else if root.exists("index.json") {
        load_oci(store, &root)
    } else {
        Err(root
            .bad("neither a docker save archive (manifest.json) nor an OCI layout (index.json)"))
    }
}

fn load_docker(store: &ImageStore, root: &Root) -> Result<Vec<String>, StoreError> {
    let entries: Vec<SaveEntry> = root.json("manifest.json")?;
    let mut loaded = Vec::new();
    for entry in entries {
        let config_bytes = root.read(&entry.config)?;
        let (config_digest, config_size) =
            digest_of(config_bytes.as_slice()).map_err(io_err(&root.shown, "hashing"))?;
        store.put_blob(&config_digest, config_bytes.as_slice())?;
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let (digest, size) =
                digest_of(root.open(layer)?).map_err(io_err(&root.shown, "hashing a layer"))?;
            let (_, kind) =
                decompress_detect(root.open(layer)?).map_err(|e| root.bad(&e.to_string()))?;
            store.put_blob(&digest, root.open(layer)?)?;
            layers.push(
                json!({"mediaType": kind.layer_media_type(), "digest": digest, "size": size}),
            );
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": layers,
        });
        let manifest_digest = put_json(store, &manifest)?;
        let names: Vec<String> = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .filter_map(|t| normalize_name(t))
            .collect();
        let image = store.add_image_named(&names, &manifest_digest)?;
        loaded.extend(if names.is_empty() {
            vec![image.id]
        } else {
            names
        });
    }
    Ok(loaded)
}

fn load_oci(store: &ImageStore, root: &Root) -> Result<Vec<String>, StoreError> {
    if !root.exists("oci-layout") {
        return Err(root.bad("index.json without an oci-layout file"));
    }
    let index: ImageIndex = root.json("index.json")?;
    let mut loaded = Vec::new();
    for desc in index.manifests() {
        let annotations = desc.annotations().clone().unwrap_or_default();
        let mut digest = desc.digest().to_string();
        let media = desc.media_type().to_string();
        if media == OCI_INDEX || media == DOCKER_LIST {
            digest = pick_platform(root, &digest)?;
        }
        let manifest_bytes = root.blob(&digest)?;
        let manifest: oci_spec::image::ImageManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| root.bad(&format!("manifest {digest}: {e}")))?;
        for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
            let d = blob.digest().to_string();
            if !store.has_blob(&d) {
                store.put_blob(&d, root.open(&blob_rel(&d)?)?)?;
            }
        }
        store.put_blob(&digest, manifest_bytes.as_slice())?;
        let names: Vec<String> = image_name(&annotations).into_iter().collect();
        let image = store.add_image_named(&names, &digest)?;
        loaded.extend(if names.is_empty() {
            vec![image.id]
        } else {
            names
        });
    }
    Ok(loaded)
}

/// The name an OCI layout gives an image. `ref.name` is often just a tag
/// (skopeo's `oci:dir:latest`), which names no repository; such images
/// load without a name, as their id.
fn image_name(annotations: &HashMap<String, String>) -> Option<String> {
    if let Some(name) = annotations.get("io.containerd.image.name") {
        return normalize_name(name);
    }
    let r = annotations.get("org.opencontainers.image.ref.name")?;
    if r.contains('/') || r.contains(':') || r.contains('@') {
        normalize_name(r)
    } else {
        None
    }
}

fn pick_platform(root: &Root, index_digest: &str) -> Result<String, StoreError> {
    let index: ImageIndex = serde_json::from_slice(&root.blob(index_digest)?)
        .map_err(|e| root.bad(&format!("index {index_digest}: {e}")))?;
    let (os, arch) = host_platform();
    let manifests = index.manifests();
    manifests
        .iter()
        .find(|m| {
            m.platform()
                .as_ref()
                .is_some_and(|p| p.os().to_string() == os && p.architecture().to_string() == arch)
        })
        .or_else(|| {
            if manifests.len() == 1 {
                manifests.first()
            } else {
                None
            }
        })
        .map(|m| m.digest().to_string())
        .ok_or_else(|| {
            root.bad(&format!(
                "index {index_digest} has no manifest for {os}/{arch}"
            ))
        })
}

fn blob_rel(digest: &str) -> Result<String, StoreError> {
    Ok(format!("blobs/sha256/{}", sha256_hex(digest)?))
}

pub(super) fn import(
    store: &ImageStore,
    tarball: &Path,
    name: &str,
) -> Result<ImageRecord, StoreError> {
    let _lease = store.lease()?;
    let open = || {
        File::open(tarball)
            .map(BufReader::new)
            .map_err(io_err(tarball, "opening"))
    };
    let (digest, size) = digest_of(open()?).map_err(io_err(tarball, "reading"))?;
    let bad = |e: &dyn std::fmt::Display| StoreError::BadArchive {
        path: tarball.to_path_buf(),
        reason: e.to_string(),
    };
    let (tar, kind) = decompress_detect(open()?).map_err(|e| bad(&e))?;
    let (diff_id, _) = digest_of(tar).map_err(|e| bad(&e))?;
    store.put_blob(&digest, open()?)?;

    let now = rfc3339(SystemTime::now());
    let (os, arch) = host_platform();
    let config = json!({
        "created": now,
        "architecture": arch,
        "os": os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": now, "comment": format!("Imported from {}", tarball.display())}],
    });
    // Parsing it back guarantees the config is one every reader accepts.
    let _: ImageConfiguration = serde_json::from_value(config.clone()).map_err(|e| bad(&e))?;
    let config_bytes = serde_json::to_vec(&config).map_err(|e| bad(&e))?;
    let (config_digest, config_size) =
        digest_of(config_bytes.as_slice()).map_err(io_err(tarball, "hashing"))?;
    store.put_blob(&config_digest, config_bytes.as_slice())?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": kind.layer_media_type(), "digest": digest, "size": size}],
    });
    let manifest_digest = put_json(store, &manifest)?;
    store.add_image(name, &manifest_digest)
}

fn put_json(store: &ImageStore, value: &serde_json::Value) -> Result<String, StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StoreError::BadArchive {
        path: store.root().to_path_buf(),
        reason: e.to_string(),
    })?;
    let (digest, _) = digest_of(bytes.as_slice()).map_err(io_err(store.root(), "hashing"))?;
    store.put_blob(&digest, bytes.as_slice())?;
    Ok(digest)
}

/// A directory whose own symlinks may point anywhere: every file is opened
/// with the directory as `/`.
struct Root {
    fd: OwnedFd,
    shown: PathBuf,
}

impl Root {
    fn new(dir: &Path, shown: &Path) -> Result<Self, StoreError> {
        let fd = File::open(dir).map_err(io_err(dir, "opening"))?;
        Ok(Self {
            fd: fd.into(),
            shown: shown.to_path_buf(),
        })
    }

    fn bad(&self, reason: &str) -> StoreError {
        StoreError::BadArchive {
            path: self.shown.clone(),
            reason: reason.to_string(),
        }
    }

    fn exists(&self, rel: &str) -> bool {
        self.open(rel).is_ok()
    }

    fn open(&self, rel: &str) -> Result<BufReader<File>, StoreError> {
        openat2_in_root(&self.fd, Path::new(rel), libc::O_RDONLY)
            .map(|fd| BufReader::new(File::from(fd)))
            .map_err(|e| self.bad(&format!("{rel}: {e}")))
    }

    fn read(&self, rel: &str) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        self.open(rel)?
            .read_to_end(&mut out)
            .map_err(|e| self.bad(&format!("{rel}: {e}")))?;
        Ok(out)
    }

    fn blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let bytes = self.read(&blob_rel(digest)?)?;
        let (actual, _) = digest_of(bytes.as_slice()).map_err(io_err(&self.shown, "hashing"))?;
        if actual != digest {
            return Err(StoreError::DigestMismatch {
                digest: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, rel: &str) -> Result<T, StoreError> {
        serde_json::from_slice(&self.read(rel)?).map_err(|e| self.bad(&format!("{rel}: {e}")))
    }
}

fn temp_dir(store: &ImageStore, what: &str) -> Result<PathBuf, StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = store
        .root()
        .join("tmp")
        .join(format!("{what}-{}-{n}", std::process::id()));
    fs::create_dir(&path).map_err(io_err(&path, "creating"))?;
    Ok(path)
}

/// Docker's normalisation of the short names `docker save` writes
/// (`busybox:latest` → `docker.io/library/busybox:latest`).
// TODO: use the reference module's parser once it lands.
pub(crate) fn normalize_name(name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (domain, rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_string())
        }
        _ => ("docker.io", name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let rest = if domain == "docker.io" && !rest.contains('/') {
        format!("library/{rest}")
    } else {
        rest
    };
    let last = rest.rsplit('/').next().unwrap_or_default();
    let tagged = last.contains(':') || rest.contains('@');
    Some(format!(
        "{domain}/{rest}{}",
        if tagged { "" } else { ":latest" }
    ))
}

/// RFC 3339 in UTC, as image configs spell `created`.
fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn short_names_are_normalised_like_docker() {
        assert_eq!(
            normalize_name("busybox:latest").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize_name("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize_name("me/app:1").unwrap(), "docker.io/me/app:1");
        assert_eq!(
            normalize_name("localhost:5000/app").unwrap(),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalize_name("quay.io/a/b@sha256:00").unwrap(),
            "quay.io/a/b@sha256:00"
        );
        assert!(normalize_name(" ").is_none());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        use std::time::UNIX_EPOCH;
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn bare_tags_name_no_image() {
        let mut a = HashMap::new();
        a.insert(
            "org.opencontainers.image.ref.name".to_string(),
            "latest".to_string(),
        );
        assert_eq!(image_name(&a), None);
        a.insert(
            "io.containerd.image.name".to_string(),
            "docker.io/library/busybox:1".to_string(),
        );
        assert_eq!(image_name(&a).unwrap(), "docker.io/library/busybox:1");
    }
}
