//! Layers nobody vetted, unpacked as root (so permissions stop nothing):
//! whatever the archive says, nothing may be written outside the target.
//!
//! The target is `<sandbox>/t/root`; next to `t` is a sentinel file. After
//! each unpack `<sandbox>` must hold exactly `sentinel` (same inode, same
//! content) and `t`, and `t` exactly the directory `root`. A plain tar that
//! unpacks also goes through again gzip-compressed, and must give the same
//! diff id: it names the uncompressed stream.
#![no_main]

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use flate2::write::GzEncoder;
use libfuzzer_sys::fuzz_target;
use minirun_rootfs::image::unpack::{unpack_layer, Compression};

const SENTINEL: &[u8] = b"nothing may write here\n";

struct Sandbox {
    dir: PathBuf,
    sentinel_inode: u64,
}

/// One per fuzzing process, under TMPDIR (scripts/fuzz.sh points it at a
/// directory of its own and removes it afterwards).
fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("minirun-fuzz-unpack-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the sandbox");
        let sentinel = dir.join("sentinel");
        fs::write(&sentinel, SENTINEL).expect("write the sentinel");
        let sentinel_inode = fs::symlink_metadata(&sentinel).expect("stat the sentinel").ino();
        Sandbox { dir, sentinel_inode }
    })
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("read a directory entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn assert_confined(sandbox: &Sandbox) {
    let t = sandbox.dir.join("t");
    assert_eq!(names(&sandbox.dir), BTreeSet::from(["sentinel".to_string(), "t".to_string()]), "written next to the target's parent");
    assert_eq!(names(&t), BTreeSet::from(["root".to_string()]), "written next to the target");
    let sentinel = sandbox.dir.join("sentinel");
    let meta = fs::symlink_metadata(&sentinel).expect("stat the sentinel");
    assert!(meta.is_file() && meta.ino() == sandbox.sentinel_inode, "the sentinel was replaced");
    assert_eq!(fs::read(&sentinel).expect("read the sentinel"), SENTINEL, "the sentinel was written to");
    for dir in [&t, &t.join("root")] {
        assert!(fs::symlink_metadata(dir).expect("stat the target").is_dir(), "{} is no longer a directory", dir.display());
    }
}

/// Unpacks into a fresh target, checks confinement, removes the target.
fn unpack(layer: &[u8]) -> Option<String> {
    let sandbox = sandbox();
    let t = sandbox.dir.join("t");
    let root = t.join("root");
    fs::create_dir_all(&root).expect("create the target");
    let result = unpack_layer(layer, &root);
    assert_confined(sandbox);
    fs::remove_dir_all(&t).expect("remove the target");
    result.ok().map(|info| info.diff_id)
}

fuzz_target!(|data: &[u8]| {
    let Some(diff_id) = unpack(data) else {
        return;
    };
    // Compressing what already was compressed would hide the tar.
    if !matches!(Compression::detect(data), Ok(Compression::None)) {
        return;
    }
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("compress in memory");
    let compressed = gz.finish().expect("compress in memory");
    assert_eq!(unpack(&compressed), Some(diff_id), "the gzip-compressed layer unpacks differently");
});
