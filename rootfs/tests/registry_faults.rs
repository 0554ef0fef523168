//! What goes wrong on the wire, against fake registries on loopback:
//! corrupted and truncated blobs, dropped connections resumed with Range,
//! registries that ignore Range, lying manifests, schema 1, and the limit of
//! three layers downloading at once.

#[path = "registry_support.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use minirun_rootfs::image::reference::parse;
use minirun_rootfs::image::registry::{pull, BlobSink, RegistryError, RegistryOptions};
use support::*;

fn opts() -> RegistryOptions {
    RegistryOptions::default()
}

fn blob_requests(server: &FakeServer, digest: &str) -> Vec<Request> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path_only().ends_with(&format!("/blobs/{digest}")))
        .collect()
}

#[test]
fn corrupted_blob_is_rejected_and_nothing_committed() {
    let image = TestImage::new("amd64", vec![bytes(1, 10_000), bytes(2, 30_000)]);
    let bad = sha256(&image.layers[1]);
    let serve = serve_image("library/app", "latest", &image);
    let bad_path = format!("/v2/library/app/blobs/{bad}");
    let server = FakeServer::start(move |req| {
        if req.path_only() == bad_path {
            // Same length, one byte flipped.
            let mut data = bytes(2, 30_000);
            data[12_345] ^= 0xff;
            return Reply::new(200, data);
        }
        serve(req)
    });
    let r = parse(&format!("{}/library/app", server.addr)).unwrap();
    let sink = DirSink::new();
    let err = pull(&r, &opts(), &sink).unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "digest mismatch for blob {bad}: expected {bad}, got sha256:"
        )),
        "{msg}"
    );
    assert!(!sink.has_blob(&bad));
    assert!(!sink.has_blob(&image.manifest_digest()));
    assert!(!sink.committed().contains(&bad));
    // The corrupt partial data is gone too, so the next pull starts clean.
    assert!(!sink.partial_path(&bad).exists());
}

#[test]
fn longer_blob_is_rejected() {
    let image = TestImage::new("amd64", vec![bytes(1, 1_000)]);
    let layer = sha256(&image.layers[0]);
    let serve = serve_image("library/app", "latest", &image);
    let path = format!("/v2/library/app/blobs/{layer}");
    let server = FakeServer::start(move |req| {
        if req.path_only() == path {
            let mut data = bytes(1, 1_000);
            data.extend_from_slice(b"trailing junk");
            return Reply::new(200, data);
        }
        serve(req)
    });
    let r = parse(&format!("{}/library/app", server.addr)).unwrap();
    let sink = DirSink::new();
    let err = pull(&r, &opts(), &sink).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("size mismatch for blob {layer}: expected 1000 bytes, got 1013")
    );
    assert!(!sink.has_blob(&layer));
}

/// Serves `image`; the big layer's first `cuts` answers close the
/// connection after `cut` bytes. `honour_range` false: Range is ignored.
fn flaky(image: &TestImage, cuts: Arc<AtomicUsize>, cut: usize, honour_range: bool) -> FakeServer {
    let big = image.layers[0].clone();
    let big_path = format!("/v2/library/app/blobs/{}", sha256(&big));
    let serve = serve_image("library/app", "latest", image);
    FakeServer::start(move |req| {
        if req.path_only() != big_path {
            return serve(req);
        }
        let mut reply = if honour_range {
            blob_reply(req, &big)
        } else {
            Reply::new(200, big.clone())
        };
        let left = cuts.load(Ordering::SeqCst);
        if left > 0 {
            cuts.store(left - 1, Ordering::SeqCst);
            reply.cut_after = Some(cut);
        }
        reply
    })
}

#[test]
fn dropped_connection_resumes_with_range() {
    let image = TestImage::new("amd64", vec![bytes(9, 200_000), bytes(10, 500)]);
    let big = sha256(&image.layers[0]);
    let server = flaky(&image, Arc::new(AtomicUsize::new(1)), 50_000, true);
    let r = parse(&format!("{}/library/app", server.addr)).unwrap();
    let sink = DirSink::new();
    let res = pull(&r, &opts(), &sink).unwrap();
    assert_eq!(res.manifest_digest, image.manifest_digest());
    assert_eq!(sink.read(&big), image.layers[0]);
    let reqs = blob_requests(&server, &big);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("Range"), None);
    assert_eq!(reqs[1].header("Range"), Some("bytes=50000-"));
}

#[test]
fn interrupted_pull_resumes_on_the_next_pull() {
    let image = TestImage::new("amd64", vec![bytes(11, 100_000)]);
    let big = sha256(&image.layers[0]);
    // Every attempt of the first pull is cut after 10000 bytes.
    let cuts = Arc::new(AtomicUsize::new(3));
    let server = flaky(&image, cuts.clone(), 10_000, true);
    let r = parse(&format!("{}/library/app", server.addr)).unwrap();
    let sink = DirSink::new();
    let err = pull(&r, &opts(), &sink).unwrap_err();
    assert!(matches!(err, RegistryError::Interrupted { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("download of {big} interrupted after 30000 bytes: connection closed early (run the pull again to resume)")
    );
    assert_eq!(
        std::fs::metadata(sink.partial_path(&big)).unwrap().len(),
        30_000
    );
    assert!(!sink.has_blob(&big));
    assert!(!sink.has_blob(&image.manifest_digest()));
    let first = blob_requests(&server, &big);
    let ranges: Vec<_> = first
        .iter()
        .map(|q| q.header("Range").map(str::to_string))
        .collect();
    assert_eq!(
        ranges,
        [
            None,
            Some("bytes=10000-".into()),
            Some("bytes=20000-".into())
        ]
    );

    // The registry is fine again: the next pull asks only for the rest.
    assert_eq!(cuts.load(Ordering::SeqCst), 0);
    let res = pull(&r, &opts(), &sink).unwrap();
    assert_eq!(res.manifest_digest, image.manifest_digest());
    assert_eq!(sink.read(&big), image.layers[0]);
    let all = blob_requests(&server, &big);
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].header("Range"), Some("bytes=30000-"));
    assert!(!sink.partial_path(&big).exists());
}

#[test]
fn registry_ignoring_range_still_verifies_everything() {
    let image = TestImage::new("amd64", vec![bytes(12, 80_000)]);
    let big = sha256(&image.layers[0]);
    let server = flaky(&image, Arc::new(AtomicUsize::new(1)), 30_000, false);
    let r = parse(&format!("{}/library/app", server.addr)).unwrap();
    let sink = DirSink::new();
    pull(&r, &opts(), &sink).unwrap();
    assert_eq!(sink.read(&big), image.layers[0]);
    let reqs = blob_requests(&server, &big);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].header("Range"), Some("bytes=30000-"));
}

#[test]
fn corrupt_partial_file_is_caught_at_commit_and_dropped() {
    let image = TestImage::new("amd64", vec![bytes(13, 20_000)]);
    let big = sha256(&image.layers[0]);
    let server = FakeServer::start(serve_image("library/app", "latest", &image));
    let r = parse(&format!("{}/library/app", server.addr)).unwrap();
    let sink = DirSink::new();
    // A leftover partial whose bytes are not the blob's.
    std::fs::write(sink.partial_path(&big), vec![0u8; 5_000]).unwrap();
    let err = pull(&r, &opts(), &sink).unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(!sink.partial_path(&big).exists());
    // ...so the pull after that starts over and succeeds.
    pull(&r, &opts(), &sink).unwrap();
    assert_eq!(sink.read(&big), image.layers[0]);
}

#[test]
fn at_most_three_layers_at_once() {
    let layers: Vec<Vec<u8>> = (20..27).map(|s| bytes(s, 4_000)).collect();
    let image = TestImage::new("amd64", layers);
    let serve = serve_image("library/app", "latest", &image);
    let config = sha256(&image.config);
    let server = FakeServer::start(move |req| {
        let mut reply = serve(req);
        if req.path_only().contains("/blobs/") && !req.path_only().ends_with(&config) {
            reply.delay = Some(Duration::from_millis(150));
        }
        reply
    });
    let r = parse(&format!("{}/library/app", server.addr)).unwrap();
    let sink = DirSink::new();
    let res = pull(&r, &opts(), &sink).unwrap();
    assert_eq!(res.layers.len(), 7);
    let max = server.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=3).contains(&max), "max concurrent downloads {max}");
    for (d, data) in image.blobs() {
        assert_eq!(sink.read(&d), data);
    }
}

#[test]
fn first_failure_stops_the_other_layers() {
    let layers: Vec<Vec<u8>> = (30..36).map(|s| bytes(s, 2_000)).collect();
    let image = TestImage::new("amd64", layers);
    let missing = sha256(&image.layers[0]);
    let serve = serve_image("library/app", "latest", &image);
    let path = format!("/v2/library/app/blobs/{missing}");
    let server = FakeServer::start(move |req| {
        if req.path_only() == path {
            return Reply::json_error(404, "BLOB_UNKNOWN", "blob unknown to registry");
        }
        let mut reply = serve(req);
        reply.delay = Some(Duration::from_millis(100));
        reply
    });
    let r = parse(&format!("{}/library/app", server.addr)).unwrap();
    let sink = DirSink::new();
    let err = pull(&r, &opts(), &sink).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("blob {missing} not found in {}/library/app", server.addr)
    );
    // Layers after the failure were not started.
    let started = server
        .requests()
        .iter()
        .filter(|q| q.path_only().contains("/blobs/"))
        .count();
    assert!(started < 1 + 6, "{started} blob requests");
}

#[test]
fn lying_manifests() {
    let image = TestImage::new("amd64", vec![bytes(40, 100)]);
    let server = FakeServer::start(serve_image("library/app", "latest", &image));
    // Asked by a digest the content does not have.
    let other = format!("sha256:{}", "a".repeat(64));
    let lying = FakeServer::start({
        let m = image.manifest.clone();
        move |_| Reply::new(200, m.clone()).header("Content-Type", OCI_MANIFEST)
    });
    let r = parse(&format!("{}/library/app@{other}", lying.addr)).unwrap();
    let err = pull(&r, &opts(), &DirSink::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "digest mismatch for manifest {}/library/app@{other}: expected {other}, got {}",
            lying.addr,
            image.manifest_digest()
        )
    );

    // By tag, with a Docker-Content-Digest header that does not match.
    let wrong_header = FakeServer::start({
        let m = image.manifest.clone();
        let other = other.clone();
        move |_| {
            Reply::new(200, m.clone())
                .header("Content-Type", OCI_MANIFEST)
                .header("Docker-Content-Digest", &other)
        }
    });
    let r = parse(&format!("{}/library/app", wrong_header.addr)).unwrap();
    let err = pull(&r, &opts(), &DirSink::new()).unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");

    // The honest server works by digest.
    let r = parse(&format!(
        "{}/library/app@{}",
        server.addr,
        image.manifest_digest()
    ))
    .unwrap();
    pull(&r, &opts(), &DirSink::new()).unwrap();
}

#[test]
fn schema1_and_hostile_manifests() {
    let schema1 = br#"{"schemaVersion":1,"name":"library/old","tag":"latest","architecture":"amd64","fsLayers":[],"history":[]}"#;
    let server = FakeServer::start(move |_| {
        Reply::new(200, schema1.to_vec()).header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        )
    });
    let r = parse(&format!("{}/library/old", server.addr)).unwrap();
    let err = pull(&r, &opts(), &DirSink::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unsupported manifest for {}/library/old:latest: Docker image manifest schema 1 is deprecated and not supported; push the image again with a current tool",
            server.addr
        )
    );

    // Layer "digests" that would be paths in a store never reach the sink.
    let evil = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:../../../etc/passwd","size":1}}]}}"#,
        "0".repeat(64)
    );
    let server = FakeServer::start(move |req| {
        if req.path_only().contains("/manifests/") {
            Reply::new(200, evil.clone()).header("Content-Type", OCI_MANIFEST)
        } else {
            Reply::new(200, "{}")
        }
    });
    let r = parse(&format!("{}/library/evil", server.addr)).unwrap();
    let sink = DirSink::new();
    assert!(pull(&r, &opts(), &sink).is_err());
    assert!(sink.files().is_empty());

    // Garbage instead of JSON.
    let server = FakeServer::start(|_| {
        Reply::new(200, "<html>hi</html>").header("Content-Type", "text/html")
    });
    let r = parse(&format!("{}/library/html", server.addr)).unwrap();
    let err = pull(&r, &opts(), &DirSink::new()).unwrap_err();
    assert!(
        matches!(err, RegistryError::UnsupportedManifest { .. }),
        "{err}"
    );
}

#[test]
fn registry_errors_are_one_line() {
    let server = FakeServer::start(|req| {
        if req.path_only().contains("/nothere/") {
            Reply::json_error(404, "NAME_UNKNOWN", "repository name not known to registry")
        } else {
            Reply::json_error(500, "UNKNOWN", "storage\\nbackend exploded")
        }
    });
    let r = parse(&format!("{}/library/nothere", server.addr)).unwrap();
    let err = pull(&r, &opts(), &DirSink::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("repository {}/library/nothere not found", server.addr)
    );

    let r = parse(&format!("{}/library/broken:v1", server.addr)).unwrap();
    let err = pull(&r, &opts(), &DirSink::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "registry answered 500 for http://{}/v2/library/broken/manifests/v1: storage backend exploded",
            server.addr
        )
    );
}

#[test]
fn no_thread_outlives_pull() {
    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task").unwrap().count()
    }
    let image = TestImage::new("amd64", (50..56).map(|s| bytes(s, 3_000)).collect());
    let server = FakeServer::start(serve_image("library/app", "latest", &image));
    let r = parse(&format!("{}/library/app", server.addr)).unwrap();
    // The server's own connection threads come and go; wait for them.
    std::thread::sleep(Duration::from_millis(50));
    let before = threads();
    pull(&r, &opts(), &DirSink::new()).unwrap();
    let mut after = threads();
    for _ in 0..40 {
        if after <= before {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
        after = threads();
    }
    assert!(after <= before, "threads before {before}, after {after}");
}

#[test]
fn image_store_resumes_and_rejects() {
    use minirun_rootfs::image::store::ImageStore;
    let image = TestImage::new("amd64", vec![bytes(60, 120_000)]);
    let big = sha256(&image.layers[0]);
    let cuts = Arc::new(AtomicUsize::new(3));
    let server = flaky(&image, cuts, 40_000, true);
    let r = parse(&format!("{}/library/app", server.addr)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    // Each attempt is cut after 40000 bytes; the third one gets the last
    // 40000 in full. The store hashes the resumed partial file at commit.
    pull(&r, &opts(), &store).unwrap();
    assert!(store.has_blob(&big));
    let ranges: Vec<_> = blob_requests(&server, &big)
        .iter()
        .map(|q| q.header("Range").map(str::to_string))
        .collect();
    assert_eq!(
        ranges,
        [
            None,
            Some("bytes=40000-".into()),
            Some("bytes=80000-".into())
        ]
    );

    // A corrupt blob leaves nothing behind in the store.
    let image = TestImage::new("amd64", vec![bytes(61, 10_000)]);
    let bad = sha256(&image.layers[0]);
    let serve = serve_image("library/app", "latest", &image);
    let path = format!("/v2/library/app/blobs/{bad}");
    let server = FakeServer::start(move |req| {
        if req.path_only() == path {
            return Reply::new(200, bytes(62, 10_000));
        }
        serve(req)
    });
    let r = parse(&format!("{}/library/app", server.addr)).unwrap();
    let err = pull(&r, &opts(), &store).unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&bad));
    assert!(!store.has_blob(&image.manifest_digest()));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
