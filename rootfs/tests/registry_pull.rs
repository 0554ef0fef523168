//! Pulls from the shared loopback registry (127.0.0.1:5000, see
//! ../shared/checks/registry.sh) and the error cases every user meets:
//! registry down, unknown image, unknown tag, malformed reference.

#[path = "registry_support.rs"]
mod support;

use minirun_rootfs::image::reference::{parse, ReferenceError};
use minirun_rootfs::image::registry::{pull, BlobSink, Registry, RegistryError, RegistryOptions};
use support::*;

fn opts() -> RegistryOptions {
    RegistryOptions::default()
}

fn busybox_digest() -> String {
    let resp = ureq::get(format!("http://{LOCAL_REGISTRY}/v2/library/busybox/manifests/latest"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
        .call()
        .unwrap();
    resp.headers()
        .get("docker-content-digest")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn pull_busybox_by_tag_then_nothing_to_do() {
    if !local_registry_up() {
        return;
    }
    let r = parse("127.0.0.1:5000/library/busybox").unwrap();
    assert_eq!(r.to_string(), "127.0.0.1:5000/library/busybox:latest");
    let sink = DirSink::new();
    let res = pull(&r, &opts(), &sink).unwrap();
    assert_eq!(res.manifest_digest, busybox_digest());
    assert_eq!(res.index_digest, None);
    assert!(!res.layers.is_empty());
    assert!(res.layers.iter().all(|l| l.fetched));

    // The manifest is stored as a blob, and last.
    let committed = sink.committed();
    assert_eq!(committed.last(), Some(&res.manifest_digest));
    assert!(committed.contains(&res.config_digest));
    for l in &res.layers {
        let data = sink.read(&l.digest);
        assert_eq!(data.len() as u64, l.size);
        assert_eq!(sha256(&data), l.digest);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&sink.read(&res.manifest_digest)).unwrap();
    assert_eq!(manifest["config"]["digest"], res.config_digest.as_str());
    assert!(sink.files().iter().all(|f| !f.ends_with(".partial")));

    // Everything is there now: the second pull downloads nothing.
    let again = pull(&r, &opts(), &sink).unwrap();
    assert_eq!(again.manifest_digest, res.manifest_digest);
    assert!(again.layers.iter().all(|l| !l.fetched));
    assert_eq!(sink.committed().len(), committed.len());
}

#[test]
fn pull_busybox_by_digest() {
    if !local_registry_up() {
        return;
    }
    let digest = busybox_digest();
    let r = parse(&format!("127.0.0.1:5000/library/busybox@{digest}")).unwrap();
    assert_eq!(r.tag, None);
    let sink = DirSink::new();
    let res = pull(&r, &opts(), &sink).unwrap();
    assert_eq!(res.manifest_digest, digest);
    assert!(sink.has_blob(&digest));

    // With the tag too: the digest decides.
    let r = parse(&format!("127.0.0.1:5000/library/busybox:latest@{digest}")).unwrap();
    let res = pull(&r, &opts(), &DirSink::new()).unwrap();
    assert_eq!(res.manifest_digest, digest);
}

#[test]
fn manifest_and_blob_by_hand() {
    if !local_registry_up() {
        return;
    }
    let r = parse("127.0.0.1:5000/library/debian:bookworm").unwrap();
    let mut reg = Registry::new(&r, &opts()).unwrap();
    let m = reg.fetch_manifest().unwrap();
    assert_eq!(sha256(&m.bytes), m.digest);
    let config = m.manifest.config();
    let mut out = Vec::new();
    reg.fetch_blob(config.digest().as_ref(), Some(config.size()), 0, &mut out)
        .unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(cfg["architecture"], "amd64");

    // Resuming a blob from an offset asks for the rest only.
    let layer = &m.manifest.layers()[0];
    let mut tail = Vec::new();
    let half = layer.size() / 2;
    reg.fetch_blob(layer.digest().as_ref(), Some(layer.size()), half, &mut tail)
        .unwrap();
    assert_eq!(tail.len() as u64, layer.size() - half);

    // A digest that is not the blob's is rejected after streaming.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = reg
        .fetch_blob(&wrong, None, 0, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, RegistryError::BlobNotFound { .. }), "{err}");
}

#[test]
fn unknown_image() {
    if !local_registry_up() {
        return;
    }
    let r = parse("127.0.0.1:5000/library/no-such-image").unwrap();
    let err = pull(&r, &opts(), &DirSink::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "repository 127.0.0.1:5000/library/no-such-image not found"
    );
}

#[test]
fn unknown_tag() {
    if !local_registry_up() {
        return;
    }
    let r = parse("127.0.0.1:5000/library/busybox:no-such-tag").unwrap();
    let err = pull(&r, &opts(), &DirSink::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tag no-such-tag not found in 127.0.0.1:5000/library/busybox"
    );

    let missing = format!("sha256:{}", "1".repeat(64));
    let r = parse(&format!("127.0.0.1:5000/library/busybox@{missing}")).unwrap();
    let err = pull(&r, &opts(), &DirSink::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("manifest {missing} not found in 127.0.0.1:5000/library/busybox")
    );
}

#[test]
fn registry_down() {
    let port = free_port();
    let r = parse(&format!("127.0.0.1:{port}/library/busybox")).unwrap();
    let sink = DirSink::new();
    let err = pull(&r, &opts(), &sink).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot reach registry 127.0.0.1:{port}: connection refused")
    );
    assert!(sink.files().is_empty());
}

#[test]
fn localhost_is_plain_http() {
    let image = TestImage::new("amd64", vec![bytes(1, 100)]);
    let server = FakeServer::start(serve_image("library/x", "latest", &image));
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    // "localhost" is loopback too: plain HTTP.
    let r = parse(&format!("localhost:{port}/library/x")).unwrap();
    let res = pull(&r, &opts(), &DirSink::new()).unwrap();
    assert_eq!(res.manifest_digest, image.manifest_digest());
}

#[test]
fn malformed_references() {
    let cases = [
        ("", ReferenceError::Empty),
        ("Busybox", ReferenceError::Uppercase("Busybox".into())),
        ("busybox:", ReferenceError::EmptyTag("busybox:".into())),
        (
            "busybox@sha256:1234",
            ReferenceError::BadDigest("sha256:1234".into()),
        ),
    ];
    for (input, want) in cases {
        let err = parse(input).unwrap_err();
        assert_eq!(err, want, "{input:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("invalid reference format"), "{msg}");
        assert!(!msg.contains('\n'));
    }
    let long = format!("{}/x", "a".repeat(300));
    assert!(matches!(parse(&long), Err(ReferenceError::NameTooLong(_))));
    assert_eq!(
        parse("Busybox").unwrap_err().to_string(),
        "invalid reference format: repository name (Busybox) must be lowercase"
    );
}

#[test]
fn pull_into_the_image_store() {
    use minirun_rootfs::image::store::ImageStore;
    if !local_registry_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let r = parse("127.0.0.1:5000/library/busybox").unwrap();
    let res = pull(&r, &opts(), &store).unwrap();
    assert!(store.has_blob(&res.manifest_digest));
    assert!(store.has_blob(&res.config_digest));
    let image = store
        .add_image(&r.to_string(), &res.manifest_digest)
        .unwrap();
    assert_eq!(image.id, res.config_digest);
    let dirs = store.layer_dirs(&image).unwrap();
    assert_eq!(dirs.len(), res.layers.len());
    assert!(dirs[0].join("bin/busybox").exists());

    // Pulled again: nothing to download.
    let again = pull(&r, &opts(), &store).unwrap();
    assert!(again.layers.iter().all(|l| !l.fetched));
}

#[test]
fn progress_lines_only_on_a_terminal() {
    // Under `cargo test` stderr is no terminal: this must stay quiet. Run
    // with `script -qc 'cargo test ... -- --nocapture'` to see the lines.
    let image = TestImage::new("amd64", (70..74).map(|s| bytes(s, 300_000)).collect());
    let server = FakeServer::start(serve_image("library/app", "latest", &image));
    let r = parse(&format!("{}/library/app", server.addr)).unwrap();
    let o = RegistryOptions {
        progress: true,
        ..Default::default()
    };
    let res = pull(&r, &o, &DirSink::new()).unwrap();
    assert_eq!(res.layers.len(), 4);
}
