//! The image store end to end: import, load, overlay rootfs, whiteouts,
//! rmi/prune and concurrent imports. Root only (chown, mknod, mounts).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use minirun_rootfs::image::overlay::{mount_rootfs, unmount_rootfs, RootfsKind};
use minirun_rootfs::image::store::{ImageStore, StoreError};
use serde_json::json;
use sha2::{Digest, Sha256};

const BUSYBOX: &str = "/bin/busybox";
const DOCKER_TAR: &str = "/var/tmp/cli-images/busybox-docker.tar";
const OCI_DIR: &str = "/var/tmp/cli-images/busybox-oci";

fn can_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: needs root");
        return false;
    }
    true
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A gzipped rootfs tarball with busybox and a few applet links.
fn busybox_tarball(dir: &Path) -> Option<PathBuf> {
    if !Path::new(BUSYBOX).exists() {
        eprintln!("{BUSYBOX} missing");
        return None;
    }
    let path = dir.join("rootfs.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut b = tar::Builder::new(gz);
    for d in ["bin", "etc", "tmp"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, d, &b""[..]).unwrap();
    }
    b.append_path_with_name(BUSYBOX, "bin/busybox").unwrap();
    for applet in ["sh", "ls", "cat"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
    Some(path)
}

fn mounted(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_str().unwrap();
    info.lines().any(|l| l.contains(p))
}

fn layer_count(store_root: &Path) -> usize {
    fs::read_dir(store_root.join("layers")).unwrap().count()
}

#[test]
fn import_mount_write_unmount() {
    if !can_run("import_mount_write_unmount") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(tarball) = busybox_tarball(dir.path()) else {
        return;
    };
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let image = store
        .import(&tarball, "docker.io/library/bb:imported")
        .unwrap();
    assert_eq!(image.names, ["docker.io/library/bb:imported"]);
    assert_eq!(image.config.rootfs().diff_ids().len(), 1);
    assert_eq!(store.resolve(&image.id[7..19]).unwrap().id, image.id);
    assert_eq!(store.list().unwrap().len(), 1);
    // As `docker images` counts it: the unpacked files (busybox alone here),
    // not the gzip'ed layer.
    assert_eq!(image.size, fs::metadata(BUSYBOX).unwrap().len());
    assert_eq!(store.list().unwrap()[0].size, image.size);

    let layers = store.layer_dirs(&image).unwrap();
    let ctr = dir.path().join("ctr");
    let m = mount_rootfs(&layers, &ctr).unwrap();
    assert_eq!(m.kind, RootfsKind::Overlay);
    assert!(m.path.join("bin/busybox").is_file());
    fs::write(m.path.join("etc/written"), b"hi").unwrap();
    assert!(
        ctr.join("upper/etc/written").is_file(),
        "writes go to upper"
    );
    assert!(
        !layers[0].join("etc/written").exists(),
        "layers stay unchanged"
    );
    assert!(mounted(&ctr.join("rootfs")));

    // Mounting is the only work at start: the rootfs is not a copy.
    assert!(!ctr.join("upper/bin").exists());

    unmount_rootfs(&ctr).unwrap();
    assert!(!mounted(&ctr));
    assert!(!ctr.join("upper").exists() && !ctr.join("rootfs").exists());
    unmount_rootfs(&ctr).unwrap();
}

#[test]
fn load_docker_save_and_oci_layout() {
    if !can_run("load_docker_save_and_oci_layout") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    if Path::new(DOCKER_TAR).exists() {
        let names = store.load(Path::new(DOCKER_TAR)).unwrap();
        assert_eq!(names.len(), 1);
        assert!(names[0].ends_with("/busybox:latest"), "{names:?}");
        let image = store.resolve(&names[0]).unwrap();
        let ctr = dir.path().join("ctr1");
        let m = mount_rootfs(&store.layer_dirs(&image).unwrap(), &ctr).unwrap();
        assert!(m.path.join("bin/busybox").exists());
        unmount_rootfs(&ctr).unwrap();
        assert!(
            fs::read_dir(dir.path().join("store/tmp"))
                .unwrap()
                .next()
                .is_none(),
            "temp files left"
        );
    } else {
        eprintln!("{DOCKER_TAR} missing; skipped");
    }
    if Path::new(OCI_DIR).exists() {
        let names = store.load(Path::new(OCI_DIR)).unwrap();
        assert_eq!(names.len(), 1);
        let image = store.resolve(&names[0]).unwrap();
        let ctr = dir.path().join("ctr2");
        let m = mount_rootfs(&store.layer_dirs(&image).unwrap(), &ctr).unwrap();
        assert!(m.path.join("bin/busybox").exists());
        unmount_rootfs(&ctr).unwrap();
    } else {
        eprintln!("{OCI_DIR} missing; skipped");
    }
    assert!(!mounted(dir.path()));
}

struct Built {
    blob: Vec<u8>,
    diff_id: String,
}

fn layer(entries: &[(&str, Option<&[u8]>)]) -> Built {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        match data {
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
                b.append_data(&mut h, name, *d).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, name, &b""[..]).unwrap();
            }
        }
    }
    let tar = b.into_inner().unwrap();
    let diff_id = sha(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    Built {
        blob: gz.finish().unwrap(),
        diff_id,
    }
}

/// Writes an OCI layout with one image per (name, layers) pair.
fn oci_layout(dir: &Path, images: &[(&str, &[&Built])]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = sha(data);
        fs::write(blobs.join(&d[7..]), data).unwrap();
        json!({"digest": d, "size": data.len()})
    };
    let mut manifests = Vec::new();
    for (name, layers) in images {
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        }))
        .unwrap();
        let mut cd = put(&config);
        cd["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
        let lds: Vec<_> = layers
            .iter()
            .map(|l| {
                let mut d = put(&l.blob);
                d["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+gzip");
                d
            })
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cd, "layers": lds,
        }))
        .unwrap();
        let mut md = put(&manifest);
        md["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
        md["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        manifests.push(md);
    }
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": manifests})).unwrap(),
    )
    .unwrap();
}

#[test]
fn whiteouts_rmi_and_prune() {
    if !can_run("whiteouts_rmi_and_prune") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = layer(&[
        ("keep.txt", Some(b"keep")),
        ("gone.txt", Some(b"gone")),
        ("dir", None),
        ("dir/a", Some(b"a")),
    ]);
    let top = layer(&[
        (".wh.gone.txt", Some(b"")),
        ("dir", None),
        ("dir/.wh..wh..opq", Some(b"")),
        ("dir/b", Some(b"b")),
    ]);
    let layout = dir.path().join("layout");
    oci_layout(
        &layout,
        &[
            ("example.com/base:1", &[&base]),
            ("example.com/top:1", &[&base, &top]),
        ],
    );
    let store_root = dir.path().join("store");
    let store = ImageStore::open(&store_root).unwrap();
    let mut names = store.load(&layout).unwrap();
    names.sort();
    assert_eq!(names, ["example.com/base:1", "example.com/top:1"]);
    assert_eq!(layer_count(&store_root), 2, "the base layer is shared");

    let top_image = store.resolve("example.com/top:1").unwrap();
    let ctr = dir.path().join("ctr");
    let m = mount_rootfs(&store.layer_dirs(&top_image).unwrap(), &ctr).unwrap();
    assert!(m.path.join("keep.txt").exists());
    assert!(!m.path.join("gone.txt").exists(), "whiteout honoured");
    assert!(
        !m.path.join("dir/a").exists(),
        "opaque dir hides the lower one"
    );
    assert!(m.path.join("dir/b").exists());
    unmount_rootfs(&ctr).unwrap();

    // In use: refused.
    let err = store
        .remove("example.com/top:1", std::slice::from_ref(&top_image.id))
        .unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");

    let blobs_before = fs::read_dir(store_root.join("blobs/sha256"))
        .unwrap()
        .count();
    let removed = store.remove("example.com/top:1", &[]).unwrap();
    assert!(
        removed.contains(&"Untagged: example.com/top:1".to_string()),
        "{removed:?}"
    );
    assert!(removed.contains(&format!("Deleted: {}", top_image.id)));
    assert_eq!(
        layer_count(&store_root),
        1,
        "the top layer went, the shared one stayed"
    );
    let blobs_after = fs::read_dir(store_root.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(
        blobs_before - blobs_after,
        3,
        "top's manifest, config and own layer"
    );
    let base_image = store.resolve("example.com/base:1").unwrap();
    assert!(store.layer_dirs(&base_image).is_ok());

    // A leftover partial download and an unreferenced blob go with prune.
    fs::write(store_root.join("tmp/deadbeef.partial"), vec![1u8; 100]).unwrap();
    store.put_blob(&sha(b"orphan"), &b"orphan"[..]).unwrap();
    let freed = store.prune(&[]).unwrap();
    assert!(freed >= 106, "freed {freed}");
    assert!(
        store.resolve("example.com/base:1").is_ok(),
        "named images survive prune"
    );

    let removed = store.remove(&base_image.id, &[]).unwrap();
    assert!(removed.iter().any(|l| l.starts_with("Deleted: sha256:")));
    assert_eq!(layer_count(&store_root), 0);
    assert_eq!(
        fs::read_dir(store_root.join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert!(matches!(
        store.resolve("example.com/base:1"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn concurrent_imports_do_the_work_once() {
    if !can_run("concurrent_imports_do_the_work_once") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(tarball) = busybox_tarball(dir.path()) else {
        return;
    };
    let store_root = dir.path().join("store");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (root, tarball) = (store_root.clone(), tarball.clone());
                s.spawn(move || {
                    let store = ImageStore::open(&root).unwrap();
                    store.import(&tarball, "docker.io/library/same:1").unwrap()
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    assert_eq!(layer_count(&store_root), 1);
    let store = ImageStore::open(&store_root).unwrap();
    let image = store.resolve("docker.io/library/same:1").unwrap();
    assert!(store.layer_dirs(&image).unwrap()[0]
        .join("bin/busybox")
        .is_file());
}

#[test]
fn many_layers_mount_and_copy_fallback() {
    if !can_run("many_layers_mount_and_copy_fallback") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Long names push the option string past one page.
    let long = "l".repeat(100);
    let layers: Vec<PathBuf> = (0..60)
        .map(|i| {
            let d = dir.path().join(format!("{long}-{i:03}"));
            fs::create_dir(&d).unwrap();
            fs::write(d.join(format!("f{i}")), i.to_string()).unwrap();
            fs::write(d.join("top"), i.to_string()).unwrap();
            d
        })
        .collect();
    let ctr = dir.path().join("ctr");
    let m = mount_rootfs(&layers, &ctr).unwrap();
    assert_eq!(m.kind, RootfsKind::Overlay);
    assert!(m.path.join("f0").exists() && m.path.join("f59").exists());
    assert_eq!(
        fs::read_to_string(m.path.join("top")).unwrap(),
        "59",
        "last layer on top"
    );

    // overlayfs refuses an upper directory on overlayfs: a container dir
    // inside this mount takes the copy path.
    let nested = m.path.join("nested-ctr");
    let c = mount_rootfs(&layers[..3], &nested).unwrap();
    assert_eq!(c.kind, RootfsKind::Copy);
    assert!(c
        .warning
        .as_deref()
        .unwrap_or_default()
        .contains("overlayfs"));
    assert_eq!(fs::read_to_string(c.path.join("top")).unwrap(), "2");
    assert!(c.path.join("f0").exists());
    unmount_rootfs(&nested).unwrap();
    assert!(!nested.join("rootfs").exists());

    unmount_rootfs(&ctr).unwrap();
    assert!(!mounted(&ctr));
}
