//! What a registry's manifest bytes are and what they say, without any I/O:
//! an image manifest or a list/index, the index entry for a platform, and
//! an image manifest whose digests are safe to use as store file names.

use oci_spec::image::ImageManifest;
use serde::Deserialize;

use super::platform::PlatformSpec;
use super::RegistryError;
use crate::image::reference::validate_digest;

pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An image manifest, with its media type.
    Manifest(String),
    /// A Docker manifest list or an OCI index.
    Index,
}

#[derive(Debug, Deserialize)]
struct IndexDoc {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IndexEntry {
    #[serde(rename = "mediaType")]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: Option<u64>,
    platform: Option<EntryPlatform>,
}

#[derive(Debug, Clone, Deserialize)]
struct EntryPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    variant: Option<String>,
}

/// Tells a manifest from an index by the body's mediaType, then the
/// Content-Type header, then the shape. `reference` names it in messages.
pub fn classify(
    bytes: &[u8],
    header_type: Option<&str>,
    reference: &str,
) -> Result<Kind, RegistryError> {
    let unsupported = |reason: String| RegistryError::UnsupportedManifest {
        reference: reference.to_string(),
        reason,
    };
    let json: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| unsupported(format!("manifest is not JSON: {e}")))?;
    let body_type = json.get("mediaType").and_then(|m| m.as_str());
    let media_type = body_type.or(header_type).unwrap_or_default().to_string();
    if json.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1)
        || media_type.starts_with(MEDIA_SCHEMA1)
    {
        return Err(unsupported(
            "Docker image manifest schema 1 is deprecated and not supported; push the image again with a current tool".into(),
        ));
    }
    match media_type.as_str() {
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => Ok(Kind::Index),
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => Ok(Kind::Manifest(media_type)),
        // OCI allows omitting mediaType; the shape tells.
        _ if json.get("manifests").is_some_and(|m| m.is_array()) => Ok(Kind::Index),
        _ if json.get("config").is_some() && json.get("layers").is_some() => {
            Ok(Kind::Manifest(if media_type.is_empty() {
                MEDIA_OCI_MANIFEST.to_string()
            } else {
                media_type
            }))
        }
        other => Err(unsupported(format!("media type {other:?}"))),
    }
}

/// The index entry that best fits `platform`, whose digest is well formed.
pub fn choose_platform(
    bytes: &[u8],
    digest: &str,
    platform: &PlatformSpec,
    reference: &str,
) -> Result<IndexEntry, RegistryError> {
    let index: IndexDoc =
        serde_json::from_slice(bytes).map_err(|e| RegistryError::UnsupportedManifest {
            reference: reference.to_string(),
            reason: format!("index {digest}: {e}"),
        })?;
    let mut available: Vec<String> = Vec::new();
    let mut best: Option<(u8, IndexEntry)> = None;
    for entry in index.manifests {
        let Some(p) = &entry.platform else { continue };
        // Buildkit's attestation manifests are not images.
        if p.os == "unknown" || p.architecture == "unknown" {
            continue;
        }
        let candidate = PlatformSpec::from_entry(&p.os, &p.architecture, p.variant.as_deref());
        let name = candidate.to_string();
        if !available.contains(&name) {
            available.push(name);
        }
        if let Some(rank) = platform.rank(&candidate) {
            if !matches!(&best, Some((r, _)) if *r <= rank) {
                best = Some((rank, entry));
            }
        }
    }
    let (_, entry) = best.ok_or_else(|| RegistryError::NoMatchingPlatform {
        wanted: platform.to_string(),
        repository: reference.to_string(),
        available: if available.is_empty() {
            "none".to_string()
        } else {
            available.join(", ")
        },
    })?;
    validate_digest(&entry.digest)?;
    Ok(entry)
}

/// An image manifest whose config and layer digests are all sha256 ones:
/// they become file names in the store.
pub fn parse_manifest(bytes: &[u8], digest: &str) -> Result<ImageManifest, RegistryError> {
    let manifest =
        ImageManifest::from_reader(bytes).map_err(|e| RegistryError::UnsupportedManifest {
            reference: digest.to_string(),
            reason: format!("cannot parse image manifest: {e}"),
        })?;
    for d in std::iter::once(manifest.config()).chain(manifest.layers()) {
        validate_digest(d.digest().as_ref())?;
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn manifest(layer_digest: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_OCI_MANIFEST}",
                "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},
                "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":3}}]}}"#,
            digest('a')
        )
    }

    #[test]
    fn kinds_by_media_type_header_and_shape() {
        let m = manifest(&digest('b'));
        assert_eq!(
            classify(m.as_bytes(), None, "r").unwrap(),
            Kind::Manifest(MEDIA_OCI_MANIFEST.into())
        );
        assert_eq!(
            classify(br#"{"manifests":[]}"#, None, "r").unwrap(),
            Kind::Index
        );
        assert_eq!(
            classify(b"{}", Some(MEDIA_DOCKER_LIST), "r").unwrap(),
            Kind::Index
        );
        assert!(classify(br#"{"schemaVersion":1}"#, None, "r").is_err());
        assert!(classify(b"{}", None, "r").is_err());
    }

    #[test]
    fn only_sha256_digests_make_a_manifest() {
        assert!(parse_manifest(manifest(&digest('b')).as_bytes(), "d").is_ok());
        let other = format!("sha512:{}", "b".repeat(128));
        assert!(parse_manifest(manifest(&other).as_bytes(), "d").is_err());
    }

    #[test]
    fn the_best_platform_wins_and_attestations_do_not_count() {
        let index = format!(
            r#"{{"manifests":[
                {{"digest":"{}","platform":{{"os":"unknown","architecture":"unknown"}}}},
                {{"digest":"{}","platform":{{"os":"linux","architecture":"arm64"}}}},
                {{"digest":"{}","platform":{{"os":"linux","architecture":"aarch64","variant":"v8"}}}}]}}"#,
            digest('a'),
            digest('b'),
            digest('c')
        );
        let arm = PlatformSpec::parse("linux/arm64/v8").unwrap();
        let entry = choose_platform(index.as_bytes(), "i", &arm, "r").unwrap();
        assert_eq!(entry.digest, digest('b'));
        let riscv = PlatformSpec::parse("linux/riscv64").unwrap();
        let err = choose_platform(index.as_bytes(), "i", &riscv, "r").unwrap_err();
        assert!(err.to_string().contains("linux/arm64/v8"), "{err}");
    }
}
