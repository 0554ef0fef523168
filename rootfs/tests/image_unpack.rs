//! Layer unpacking against hostile and broken layers, built byte by byte so
//! that names the tar crate's builder would refuse (`../x`, `/abs`) get in.
//! Root only: owners, device nodes and trusted.* xattrs need it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use minirun_rootfs::image::unpack::{unpack_layer_to_new_dir, UnpackError};
use tar::{EntryType, Header};

fn is_root(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipping {test}: needs root");
    }
    root
}

struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn raw(
        &mut self,
        name: &[u8],
        kind: EntryType,
        link: &[u8],
        data: &[u8],
        mode: u32,
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name);
            gnu.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Regular, b"", data, 0o644)
    }
    fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Directory, b"", b"", 0o755)
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Symlink,
            target.as_bytes(),
            b"",
            0o777,
        )
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Link,
            target.as_bytes(),
            b"",
            0o644,
        )
    }

    /// PAX records for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body_len = 1 + k.len() + 1 + v.len() + 1;
            let mut len = body_len + 1;
            while len != body_len + len.to_string().len() {
                len = body_len + len.to_string().len();
            }
            data.extend(format!("{len} {k}=").as_bytes());
            data.extend(*v);
            data.push(b'\n');
        }
        self.raw(b"PaxHeaders/x", EntryType::XHeader, b"", &data, 0o644)
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A work area with `layer` (the unpack destination) and `sibling`, which
/// must stay empty whatever the layer does.
struct Area {
    _dir: tempfile::TempDir,
    base: std::path::PathBuf,
}

impl Area {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_path_buf();
        fs::create_dir(base.join("sibling")).unwrap();
        fs::write(base.join("secret"), b"host secret").unwrap();
        Self { _dir: dir, base }
    }
    fn layer(&self) -> std::path::PathBuf {
        self.base.join("layer")
    }
    fn unpack(&self, data: &[u8]) -> Result<(), UnpackError> {
        unpack_layer_to_new_dir(data, &self.layer(), None).map(drop)
    }
    fn assert_nothing_escaped(&self) {
        assert_eq!(
            fs::read_dir(self.base.join("sibling")).unwrap().count(),
            0,
            "sibling was written"
        );
        assert_eq!(fs::read(self.base.join("secret")).unwrap(), b"host secret");
        assert_eq!(fs::metadata(self.base.join("secret")).unwrap().nlink(), 1);
        let names: Vec<_> = fs::read_dir(&self.base)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        for n in names {
            assert!(
                ["sibling", "secret", "layer"].contains(&n.as_str()),
                "stray {n}"
            );
        }
    }
}

#[test]
fn dotdot_names_are_refused() {
    if !is_root("dotdot_names_are_refused") {
        return;
    }
    let area = Area::new();
    let mut l = Layer::new();
    l.file("ok", b"x").file("../sibling/evil", b"pwned");
    let err = area.unpack(&l.bytes()).unwrap_err();
    assert!(matches!(err, UnpackError::Refused { .. }), "{err}");
    assert!(!area.layer().exists(), "a refused layer leaves nothing");
    area.assert_nothing_escaped();

    let mut l = Layer::new();
    l.file("a/b/../../../sibling/evil", b"pwned");
    assert!(area.unpack(&l.bytes()).is_err());
    area.assert_nothing_escaped();
}

#[test]
fn absolute_names_stay_inside() {
    if !is_root("absolute_names_stay_inside") {
        return;
    }
    let area = Area::new();
    let outside = area.base.join("sibling/abs");
    let mut l = Layer::new();
    l.file(outside.to_str().unwrap(), b"data");
    area.unpack(&l.bytes()).unwrap();
    let inside = area.layer().join(outside.strip_prefix("/").unwrap());
    assert_eq!(fs::read(inside).unwrap(), b"data");
    area.assert_nothing_escaped();
}

#[test]
fn writes_through_symlinks_cannot_escape() {
    if !is_root("writes_through_symlinks_cannot_escape") {
        return;
    }
    let area = Area::new();
    let sibling = area.base.join("sibling");
    let mut l = Layer::new();
    l.symlink("rel", "../../../../../../../sibling")
        .symlink("abs", sibling.to_str().unwrap())
        .symlink("root", "/")
        .dir("sibling")
        .file("rel/evil1", b"pwned")
        .file("root/sibling/evil2", b"pwned");
    // `abs` points at a path that does not exist inside the layer.
    area.unpack(&l.bytes()).unwrap();
    assert!(
        area.layer().join("sibling/evil1").exists(),
        "neutralised inside the layer"
    );
    assert!(area.layer().join("sibling/evil2").exists());
    area.assert_nothing_escaped();

    fs::remove_dir_all(area.layer()).unwrap();
    let mut l = Layer::new();
    l.symlink("abs", sibling.to_str().unwrap())
        .file("abs/evil", b"pwned");
    let _ = area.unpack(&l.bytes());
    area.assert_nothing_escaped();
}

#[test]
fn a_file_replaces_a_symlink_instead_of_writing_through_it() {
    if !is_root("a_file_replaces_a_symlink_instead_of_writing_through_it") {
        return;
    }
    let area = Area::new();
    let secret = area.base.join("secret");
    let mut l = Layer::new();
    l.symlink("s", secret.to_str().unwrap())
        .file("s", b"overwritten?")
        .symlink("d", "/")
        .dir("d");
    area.unpack(&l.bytes()).unwrap();
    let s = area.layer().join("s");
    assert!(fs::symlink_metadata(&s).unwrap().is_file());
    assert_eq!(fs::read(s).unwrap(), b"overwritten?");
    assert!(fs::symlink_metadata(area.layer().join("d"))
        .unwrap()
        .is_dir());
    area.assert_nothing_escaped();
}

#[test]
fn hardlinks_to_outside_files_are_refused() {
    if !is_root("hardlinks_to_outside_files_are_refused") {
        return;
    }
    let area = Area::new();
    let secret = area.base.join("secret");
    for (setup, target) in [
        (None, "../secret".to_string()),
        (None, secret.to_str().unwrap().to_string()),
        (Some(("up", "/")), format!("up{}", secret.display())),
        (Some(("up", "../..")), "up/secret".to_string()),
    ] {
        let mut l = Layer::new();
        if let Some((name, to)) = setup {
            l.symlink(name, to);
        }
        l.hardlink("h", &target);
        assert!(
            area.unpack(&l.bytes()).is_err(),
            "hardlink to {target} accepted"
        );
        assert!(!area.layer().exists());
        area.assert_nothing_escaped();
    }

    // A hardlink inside the layer is fine.
    let mut l = Layer::new();
    l.file("f", b"same").hardlink("g", "/f");
    area.unpack(&l.bytes()).unwrap();
    let (f, g) = (area.layer().join("f"), area.layer().join("g"));
    assert_eq!(
        fs::metadata(f).unwrap().ino(),
        fs::metadata(g).unwrap().ino()
    );
}

#[test]
fn metadata_whiteouts_and_special_files() {
    if !is_root("metadata_whiteouts_and_special_files") {
        return;
    }
    let area = Area::new();
    let mut l = Layer::new();
    l.dir("opaque/")
        .file("opaque/.wh..wh..opq", b"")
        .file(".wh.gone", b"")
        .file("deep/.wh.gone2", b"")
        .raw(b"fifo", EntryType::Fifo, b"", b"", 0o600)
        .pax(&[
            ("SCHILY.xattr.user.test", b"value"),
            ("SCHILY.xattr.trusted.test", b"t"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            ("uid", b"1234"),
            ("gid", b"4321"),
        ])
        .raw(b"bin/suid", EntryType::Regular, b"", b"#!", 0o4755);
    let mut h = Header::new_gnu();
    h.set_path("dev/null").unwrap();
    h.set_entry_type(EntryType::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    h.set_cksum();
    l.0.append(&h, &b""[..]).unwrap();
    area.unpack(&l.bytes()).unwrap();

    let root = area.layer();
    let wh = fs::symlink_metadata(root.join("gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert!(fs::symlink_metadata(root.join("deep/gone2"))
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(!root.join(".wh.gone").exists());
    assert_eq!(
        xattr(&root.join("opaque"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!root.join("opaque/.wh..wh..opq").exists());
    assert!(fs::symlink_metadata(root.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let null = fs::symlink_metadata(root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    let suid = fs::metadata(root.join("bin/suid")).unwrap();
    assert_eq!((suid.uid(), suid.gid()), (1234, 4321));
    assert_eq!(
        suid.mode() & 0o7777,
        0o4755,
        "set-id bits survive the chown"
    );
    assert_eq!(suid.mtime(), 1_600_000_000);
    assert_eq!(
        xattr(&root.join("bin/suid"), "user.test").as_deref(),
        Some(&b"value"[..])
    );
    assert_eq!(
        xattr(&root.join("bin/suid"), "trusted.test").as_deref(),
        Some(&b"t"[..])
    );
    assert_eq!(
        xattr(&root.join("bin/suid"), "trusted.overlay.redirect"),
        None
    );
    assert_eq!(
        fs::metadata(root.join("opaque")).unwrap().mtime(),
        1_600_000_000
    );
}

#[test]
fn truncated_and_corrupt_layers_fail_and_leave_nothing() {
    if !is_root("truncated_and_corrupt_layers_fail_and_leave_nothing") {
        return;
    }
    let area = Area::new();
    let mut l = Layer::new();
    l.file("a", &[7u8; 5000]).file("b", &[8u8; 5000]);
    let good = l.bytes();

    for cut in [700, 3000, 5632, good.len() - 1024] {
        let err = area.unpack(&good[..cut]).unwrap_err();
        assert!(
            matches!(err, UnpackError::Truncated | UnpackError::Read(_)),
            "cut at {cut}: {err}"
        );
        area.assert_nothing_escaped();
        assert!(!area.layer().exists());
    }

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&good).unwrap();
    let gz = gz.finish().unwrap();
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    assert!(area.unpack(&bad).is_err());
    assert!(area.unpack(&gz[..gz.len() / 2]).is_err());
    area.assert_nothing_escaped();
    assert!(!area.layer().exists());
}

#[test]
fn compression_does_not_change_the_diff_id() {
    if !is_root("compression_does_not_change_the_diff_id") {
        return;
    }
    let mut l = Layer::new();
    l.dir("etc").file("etc/hostname", b"box\n");
    let plain = l.bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(plain.as_slice(), 3).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for (i, data) in [&plain, &gz, &zst].into_iter().enumerate() {
        let dest = dir.path().join(i.to_string());
        let info = unpack_layer_to_new_dir(data.as_slice(), &dest, None).unwrap();
        assert_eq!(fs::read(dest.join("etc/hostname")).unwrap(), b"box\n");
        ids.push(info.diff_id);
    }
    assert!(ids.iter().all(|id| id == &ids[0]));
    let err = unpack_layer_to_new_dir(gz.as_slice(), &dir.path().join("x"), Some("sha256:00"))
        .unwrap_err();
    assert!(matches!(err, UnpackError::DiffIdMismatch { .. }));
    assert!(!dir.path().join("x").exists());
}

fn xattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let k = CString::new(key).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid strings and buffer.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// Found with the layer_unpack fuzz target (seed sparse-hole.tar): the tar
/// crate expands a GNU sparse file's holes into zeros, so this 2.5 KB
/// layer made the unpacker write 4 GiB (base-256 sizes allow exabytes).
#[test]
fn sparse_files_are_refused_before_their_holes_are_written() {
    let octal = |field: &mut [u8], n: u64| {
        let s = format!("{n:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    };
    let hole = 1u64 << 32;
    let mut h = Header::new_gnu();
    h.set_path("sparse").unwrap();
    h.set_entry_type(EntryType::GNUSparse);
    h.set_size(512);
    h.set_mode(0o644);
    {
        let gnu = h.as_gnu_mut().unwrap();
        octal(&mut gnu.sparse[0].offset, hole);
        octal(&mut gnu.sparse[0].numbytes, 512);
        octal(&mut gnu.realsize, hole + 512);
    }
    h.set_cksum();
    let mut l = Layer::new();
    l.0.append(&h, &[b'x'; 512][..]).unwrap();

    let area = Area::new();
    let err = area.unpack(&l.bytes()).unwrap_err();
    assert!(matches!(err, UnpackError::Refused { .. }), "{err}");
    assert!(!area.layer().exists());
    area.assert_nothing_escaped();
}
