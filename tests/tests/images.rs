//! The image commands as a user types them: import, load, pull (from the
//! loopback registry when it runs), images, image inspect, rmi, prune, and
//! their errors. Each test has its own --image-root.

use std::process::{Command, Output};

use minirun_tests::{both, require_root, text, unique_name};

struct Images {
    root: tempfile::TempDir,
}

impl Images {
    fn new() -> Self {
        Images { root: tempfile::Builder::new().prefix("minirun-test-images").tempdir().unwrap() }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new(minirun_tests::minirun_bin()).arg("--image-root").arg(self.root.path()).args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(out.status.success(), "minirun {args:?}: {}", both(&out));
        text(&out.stdout)
    }
}

/// A root filesystem tarball with busybox, as `docker import` takes.
fn busybox_tarball(dir: &std::path::Path) -> std::path::PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    let tarball = dir.join("rootfs.tar");
    let st = Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tarball).arg(".").status().unwrap();
    assert!(st.success());
    tarball
}

#[test]
fn import_list_inspect_and_remove() {
    require_root!();
    let images = Images::new();
    let work = tempfile::tempdir().unwrap();
    let tarball = busybox_tarball(work.path());
    let name = format!("{}:v1", unique_name("imp"));
    let id = images.ok(&["import", tarball.to_str().unwrap(), &name]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let listed = images.ok(&["images"]);
    let repo = name.split(':').next().unwrap();
    assert!(listed.contains(&format!("docker.io/library/{repo}")) && listed.contains("v1"), "{listed}");
    let inspect: serde_json::Value = serde_json::from_str(&images.ok(&["image", "inspect", &name])).unwrap();
    assert_eq!(inspect["Id"].as_str().unwrap(), id.trim());
    let layers = inspect["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert!(std::path::Path::new(layers[0].as_str().unwrap()).join("bin/busybox").exists());
    let removed = images.ok(&["rmi", &name]);
    assert!(removed.contains("Untagged") && removed.contains("Deleted"), "{removed}");
    assert!(!images.ok(&["images", "-q"]).contains(&id.trim()[7..19]));
    // Nothing of the image is left in the store.
    let layers_left = std::fs::read_dir(images.root.path().join("layers")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(layers_left, 0);
}

#[test]
fn load_a_docker_save_tar_when_available() {
    require_root!();
    let tar = std::path::Path::new("/var/tmp/cli-images/busybox-docker.tar");
    if !tar.exists() {
        eprintln!("skipped: {} not there (../shared/checks/registry.sh makes it)", tar.display());
        return;
    }
    let images = Images::new();
    let loaded = images.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: 127.0.0.1:5000/library/busybox:latest"), "{loaded}");
    assert!(images.ok(&["images"]).contains("127.0.0.1:5000/library/busybox"));
}

#[test]
fn pull_from_the_loopback_registry_when_it_runs() {
    require_root!();
    if std::net::TcpStream::connect("127.0.0.1:5000").is_err() {
        eprintln!("skipped: no registry on 127.0.0.1:5000 (../shared/checks/registry.sh starts one)");
        return;
    }
    let images = Images::new();
    let id = images.ok(&["pull", "-q", "127.0.0.1:5000/library/busybox:latest"]);
    assert!(id.trim().starts_with("sha256:"));
    // A second pull fetches nothing new and gives the same image.
    assert_eq!(images.ok(&["pull", "-q", "127.0.0.1:5000/library/busybox:latest"]), id);
    let missing = images.cmd(&["pull", "-q", "127.0.0.1:5000/library/no-such-image:latest"]);
    assert_eq!(missing.status.code(), Some(125));
    assert!(text(&missing.stderr).contains("not found"), "{}", both(&missing));
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_125() {
    require_root!();
    let images = Images::new();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("truncated.tar"), b"not a tar at all, just bytes").unwrap();
    let truncated = work.path().join("truncated.tar");
    for args in [
        vec!["pull", "Upper/Case"],
        vec!["pull", "127.0.0.1:1/x:latest"],
        vec!["image", "inspect", "no-such-image"],
        vec!["rmi", "no-such-image"],
        vec!["import", truncated.to_str().unwrap(), "x:1"],
        vec!["load", "-i", "/nonexistent/file.tar"],
    ] {
        let out = images.cmd(&args);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", both(&out));
        let stderr = text(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}");
    }
    assert!(images.ok(&["images", "-q"]).trim().is_empty(), "a failed import stores nothing");
}
