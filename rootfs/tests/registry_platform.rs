//! Multi-platform images on a docker-registry of our own: busybox (amd64,
//! copied from 127.0.0.1:5000) and a fake arm64 image behind one OCI index
//! and one Docker manifest list, pushed through the HTTP API.

#[path = "registry_support.rs"]
mod support;

use minirun_rootfs::image::reference::parse;
use minirun_rootfs::image::registry::{pull, BlobSink, Registry, RegistryError, RegistryOptions};
use support::*;

const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

struct Multi {
    reg: OwnRegistry,
    amd64: String,
    arm64: String,
    arm64_image: TestImage,
    index_digest: String,
}

fn setup() -> Option<Multi> {
    if !local_registry_up() {
        return None;
    }
    let reg = OwnRegistry::start(&docker_registry_bin()?, None);
    let repo = "library/multi";

    let (manifest, ct) = local_get(
        "/v2/library/busybox/manifests/latest",
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
    );
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let mut digests = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        digests.push(l["digest"].as_str().unwrap().to_string());
    }
    for d in digests {
        let (blob, _) = local_get(&format!("/v2/library/busybox/blobs/{d}"), "*/*");
        reg.push_blob(repo, &blob);
    }
    let amd64 = sha256(&manifest);
    reg.push_manifest(repo, &amd64, &ct, &manifest);

    let arm64_image = TestImage::new("arm64", vec![bytes(7, 3000), bytes(8, 5000)]);
    for data in arm64_image.blobs().values() {
        reg.push_blob(repo, data);
    }
    let arm64 = arm64_image.manifest_digest();
    reg.push_manifest(repo, &arm64, OCI_MANIFEST, &arm64_image.manifest);

    let entries = |media: &str| {
        format!(
            r#"[{{"mediaType":"{media}","digest":"{amd64}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{arm64}","size":{},"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]"#,
            manifest.len(),
            arm64_image.manifest.len()
        )
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":{}}}"#,
        entries(&ct)
    );
    reg.push_manifest(repo, "latest", OCI_INDEX, index.as_bytes());
    let list = format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":{}}}"#,
        entries(&ct)
    );
    reg.push_manifest(repo, "list", DOCKER_LIST, list.as_bytes());
    Some(Multi {
        reg,
        amd64,
        arm64,
        arm64_image,
        index_digest: sha256(index.as_bytes()),
    })
}

fn with_platform(p: Option<&str>) -> RegistryOptions {
    RegistryOptions {
        platform: p.map(str::to_string),
        ..Default::default()
    }
}

#[test]
fn index_resolves_to_platform() {
    let Some(m) = setup() else { return };
    let name = format!("{}/library/multi", m.reg.addr);
    let host_is_arm64 = std::env::consts::ARCH == "aarch64";
    let host_digest = if host_is_arm64 { &m.arm64 } else { &m.amd64 };

    // Host platform by default, from both an OCI index and a Docker list.
    for tag in ["latest", "list"] {
        let r = parse(&format!("{name}:{tag}")).unwrap();
        let mut reg = Registry::new(&r, &with_platform(None)).unwrap();
        let fetched = reg.fetch_manifest().unwrap();
        assert_eq!(&fetched.digest, host_digest, "{tag}");
        assert_eq!(sha256(&fetched.bytes), fetched.digest);
        assert!(fetched.index.is_some());
    }

    // --platform linux/arm64 gets the other one, pulled completely.
    let r = parse(&format!("{name}:latest")).unwrap();
    let sink = DirSink::new();
    let res = pull(&r, &with_platform(Some("linux/arm64")), &sink).unwrap();
    assert_eq!(res.manifest_digest, m.arm64);
    assert_eq!(res.index_digest.as_deref(), Some(m.index_digest.as_str()));
    for data in m.arm64_image.blobs().values() {
        assert_eq!(&sink.read(&sha256(data)), data);
    }
    assert!(sink.has_blob(&m.arm64));

    // Explicit amd64 and the aliases containerd accepts.
    for p in ["linux/amd64", "x86_64", "linux/x86_64"] {
        let mut reg = Registry::new(&r, &with_platform(Some(p))).unwrap();
        assert_eq!(reg.fetch_manifest().unwrap().digest, m.amd64, "{p}");
    }
    for p in ["linux/aarch64", "linux/arm64/v8", "arm64"] {
        let mut reg = Registry::new(&r, &with_platform(Some(p))).unwrap();
        assert_eq!(reg.fetch_manifest().unwrap().digest, m.arm64, "{p}");
    }

    // Pinned by the index digest: verified, then resolved.
    let r = parse(&format!("{name}@{}", m.index_digest)).unwrap();
    let mut reg = Registry::new(&r, &with_platform(Some("linux/arm64"))).unwrap();
    assert_eq!(reg.fetch_manifest().unwrap().digest, m.arm64);
}

#[test]
fn platform_not_in_index() {
    let Some(m) = setup() else { return };
    let r = parse(&format!("{}/library/multi", m.reg.addr)).unwrap();
    let sink = DirSink::new();
    let err = pull(&r, &with_platform(Some("linux/s390x")), &sink).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no image for linux/s390x in {}/library/multi:latest; available: linux/amd64, linux/arm64/v8",
            m.reg.addr
        )
    );
    assert!(sink.files().is_empty());

    let err = pull(&r, &with_platform(Some("linux/arm/v7")), &sink).unwrap_err();
    assert!(
        matches!(err, RegistryError::NoMatchingPlatform { .. }),
        "{err}"
    );

    let err = Registry::new(&r, &with_platform(Some("linux//"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid platform \"linux//\": expected os/arch[/variant], e.g. linux/arm64/v8"
    );
}
