//! Applying one image layer (a tar, plain or compressed with gzip or zstd)
//! to an empty directory, which then serves as one overlayfs lower layer.
//!
//! Layers come from registries and tarballs nobody vetted, so every name in
//! the archive is treated as hostile:
//!
//! - entry names are cleaned lexically; absolute names are taken relative to
//!   the layer root and a `..` that would climb above it refuses the layer;
//! - every parent directory is opened with `openat2(RESOLVE_IN_ROOT)` from a
//!   descriptor of the layer root, so a symlink planted earlier in the layer
//!   (`evil -> /etc`, `evil -> ../../..`) is resolved as if the layer root
//!   were `/` and can never lead a later write outside it;
//! - the last component is always created or changed with `*at` calls that
//!   do not follow symlinks (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`);
//! - a hardlink's target is found the same way, so it can only name a file
//!   that the layer itself put inside the root.
//!
//! Whiteouts become what overlayfs understands: `.wh.NAME` a 0:0 character
//! device called NAME, `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on
//! its directory.

use std::ffi::{CString, OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use sha2::{Digest as _, Sha256};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Other `.wh..wh.` names are AUFS bookkeeping (e.g. `.wh..wh.plnk`) with no
/// meaning for overlayfs.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("reading the layer: {0}")]
    Read(#[source] io::Error),
    #[error("the layer is compressed with {0}; only gzip, zstd and plain tar are supported")]
    UnsupportedCompression(&'static str),
    #[error("the layer is empty (not even a tar end-of-archive marker)")]
    Empty,
    #[error(
        "the layer ends without a tar end-of-archive marker; the file is truncated or corrupt"
    )]
    Truncated,
    #[error("refusing layer entry {path:?}: {reason}")]
    Refused { path: String, reason: &'static str },
    #[error("layer entry {path:?}: {op}: {source}")]
    Apply {
        path: String,
        op: &'static str,
        source: Errno,
    },
    #[error("layer entry {path:?}: writing its content: {source}")]
    Write { path: String, source: io::Error },
    #[error("{path:?}: {op}: {source}")]
    Target {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("the layer's content has diff id {actual} but the image config says {expected}")]
    DiffIdMismatch { expected: String, actual: String },
}

/// What unpacking learnt about a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// `sha256:<hex>` of the uncompressed tar stream: the id the image config
    /// lists in `rootfs.diff_ids`.
    pub diff_id: String,
    /// Bytes of regular-file content in the layer.
    pub size: u64,
}

/// Unpacks `layer` into `dest`, which must not exist yet, so that `dest`
/// either appears complete or not at all: the work happens in a sibling
/// temporary directory that is renamed into place, and is removed on any
/// error. When `expected_diff_id` is given the uncompressed content must
/// hash to it. If another process finished the same `dest` first, its copy
/// is kept and ours dropped.
pub fn unpack_layer_to_new_dir<R: Read>(
    layer: R,
    dest: &Path,
    expected_diff_id: Option<&str>,
) -> Result<LayerInfo, UnpackError> {
    let tmp = temp_sibling(dest);
    std::fs::create_dir(&tmp).map_err(|source| UnpackError::Target {
        path: tmp.clone(),
        op: "creating the temporary layer directory",
        source,
    })?;
    let result = unpack_layer(layer, &tmp).and_then(|info| match expected_diff_id {
        Some(expected) if expected != info.diff_id => Err(UnpackError::DiffIdMismatch {
            expected: expected.to_string(),
            actual: info.diff_id,
        }),
        _ => Ok(info),
    });
    let info = match result {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    match std::fs::rename(&tmp, dest) {
        Ok(()) => Ok(info),
        // rename(2) onto a non-empty directory fails: another process
        // unpacked the same layer meanwhile, and its copy is as good as ours.
        Err(e)
            if dest.is_dir()
                && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) =>
        {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(info)
        }
        Err(source) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(UnpackError::Target {
                path: dest.to_path_buf(),
                op: "moving the unpacked layer into place",
                source,
            })
        }
    }
}

/// Applies `layer` to the existing directory `target`. Prefer
/// [`unpack_layer_to_new_dir`], which never leaves a half layer behind.
pub fn unpack_layer<R: Read>(layer: R, target: &Path) -> Result<LayerInfo, UnpackError> {
    let root = open_dir(target).map_err(|source| UnpackError::Target {
        path: target.to_path_buf(),
        op: "opening the target directory",
        source,
    })?;
    let stream = HashingReader::new(decompress(layer)?);
    let mut archive = tar::Archive::new(stream);
    let mut unpacker = Unpacker {
        root,
        privileged: nix::unistd::geteuid().is_root(),
        dir_times: Vec::new(),
        size: 0,
    };
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let entry = entry.map_err(UnpackError::Read)?;
        unpacker.apply(entry)?;
    }
    unpacker.finish_dir_times()?;

    let mut stream = archive.into_inner();
    // The diff id covers the whole stream, padding after the end marker too.
    io::copy(&mut stream, &mut io::sink()).map_err(UnpackError::Read)?;
    if stream.total == 0 {
        return Err(UnpackError::Empty);
    }
    // The tar crate takes a clean EOF between entries for the end of the
    // archive; a real end has at least one zero block after the last entry.
    if stream.trailing_zeros < 512 {
        return Err(UnpackError::Truncated);
    }
    Ok(LayerInfo {
        diff_id: format!("sha256:{}", hex::encode(stream.hasher.finalize())),
        size: unpacker.size,
    })
}

/// Compression a layer stream uses, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn detect(magic: &[u8]) -> Result<Self, UnpackError> {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Ok(Self::Gzip)
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Self::Zstd)
        } else if magic.starts_with(b"BZh") {
            Err(UnpackError::UnsupportedCompression("bzip2"))
        } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Err(UnpackError::UnsupportedCompression("xz"))
        } else {
            Ok(Self::None)
        }
    }

    /// The OCI media type of a layer blob compressed this way.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Self::None => "application/vnd.oci.image.layer.v1.tar",
            Self::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Self::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// The uncompressed tar stream of `layer`, whatever its compression, and
/// which compression that was.
pub fn decompress_detect<'a, R: Read + 'a>(
    mut layer: R,
) -> Result<(Box<dyn Read + 'a>, Compression), UnpackError> {
    let mut magic = [0u8; 6];
    let mut got = 0;
    // A network stream may hand out fewer bytes than asked for.
    while got < magic.len() {
        match layer.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(UnpackError::Read(e)),
        }
    }
    let kind = Compression::detect(&magic[..got])?;
    let whole = io::Cursor::new(magic[..got].to_vec()).chain(layer);
    let reader: Box<dyn Read + 'a> = match kind {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(whole).map_err(UnpackError::Read)?)
        }
    };
    Ok((reader, kind))
}

fn decompress<'a, R: Read + 'a>(layer: R) -> Result<Box<dyn Read + 'a>, UnpackError> {
    decompress_detect(layer).map(|(r, _)| r)
}

/// Hashes what the tar reader consumes and remembers how many zero bytes
/// the stream ended with.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    total: u64,
    trailing_zeros: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            total: 0,
            trailing_zeros: 0,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let data = buf.get(..n).unwrap_or_default();
        self.hasher.update(data);
        self.total += n as u64;
        match data.iter().rposition(|&b| b != 0) {
            Some(last) => self.trailing_zeros = (n - last - 1) as u64,
            None => self.trailing_zeros += n as u64,
        }
        Ok(n)
    }
}

/// A cleaned entry name: its components below the layer root.
type Components = Vec<OsString>;

/// Cleans an entry name as if the layer root were `/`. `..` that would
/// climb out of the root is an attack (or a broken layer) and refused.
fn clean_name(raw: &[u8]) -> Result<Components, &'static str> {
    if raw.contains(&0) {
        return Err("the name contains a NUL byte");
    }
    let mut out: Components = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("the name climbs out of the layer with '..'");
                }
            }
            _ => out.push(OsString::from_vec(part.to_vec())),
        }
    }
    Ok(out)
}

fn display(parts: &[OsString]) -> String {
    let joined: PathBuf = parts.iter().collect();
    if joined.as_os_str().is_empty() {
        "/".to_string()
    } else {
        joined.display().to_string()
    }
}

/// Metadata of one entry, with the PAX extensions (long ids, sub-second
/// times, xattrs) folded in.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

struct Unpacker {
    root: OwnedFd,
    privileged: bool,
    /// Directories get their mtime last: creating their children changes it.
    dir_times: Vec<(Components, i64)>,
    size: u64,
}

impl Unpacker {
    fn apply<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw_name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_name).into_owned();
        let refuse = |reason| UnpackError::Refused {
            path: shown.clone(),
            reason,
        };
        let parts = clean_name(&raw_name).map_err(refuse)?;
        let meta = read_meta(&mut entry).map_err(UnpackError::Read)?;
        let kind = entry.header().entry_type();

        let Some((name, parent_parts)) = parts.split_last() else {
            // The layer root itself: only its metadata can change.
            if kind.is_dir() {
                let dir = self.open_dir_in_root(&[], &shown)?;
                self.set_owner_mode_xattrs(&dir, &meta, &shown)?;
                self.dir_times.push((Vec::new(), meta.mtime));
            }
            return Ok(());
        };
        let name_bytes = name.as_bytes();

        if name_bytes == OPAQUE_MARKER {
            let dir = self.open_dir_in_root(parent_parts, &shown)?;
            return set_xattr(&dir, OPAQUE_XATTR, b"y").map_err(|source| UnpackError::Apply {
                path: shown,
                op: "marking the directory opaque",
                source,
            });
        }
        if name_bytes.starts_with(AUFS_META_PREFIX) {
            return Ok(());
        }
        let parent = self.parent_dir(parent_parts, &shown)?;
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(refuse("a whiteout of nothing"));
            }
            let hidden = OsStr::from_bytes(hidden);
            self.remove_existing(&parent, hidden, false, &shown)?;
            return mknod(&parent, hidden, libc::S_IFCHR, 0).map_err(|source| UnpackError::Apply {
                path: shown,
                op: "creating the overlay whiteout",
                source,
            });
        }

        use tar::EntryType as T;
        let err = |op| {
            let shown = shown.clone();
            move |source| UnpackError::Apply {
                path: shown,
                op,
                source,
            }
        };
        match kind {
            T::Directory => {
                self.remove_existing(&parent, name, true, &shown)?;
                match mkdirat(&parent, name, 0o700) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(err("creating the directory")(e)),
                }
                let dir = openat(
                    &parent,
                    name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .map_err(err("opening the directory"))?;
                self.set_owner_mode_xattrs(&dir, &meta, &shown)?;
                self.dir_times.push((parts.clone(), meta.mtime));
            }
            // The tar crate expands a sparse file's holes into zeros that
            // would all be written: a 2 KB entry can claim a hole of
            // terabytes and fill the disk. Go's archive/tar, which writes
            // registry layers (Docker, BuildKit, containerd), never writes
            // sparse entries, so they are refused rather than bounded.
            T::GNUSparse => {
                return Err(refuse(
                    "a GNU sparse file (its holes would be written out as zeros)",
                ))
            }
            T::Regular | T::Continuous => {
                self.remove_existing(&parent, name, false, &shown)?;
                let fd = openat(
                    &parent,
                    name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(err("creating the file"))?;
                let mut file = std::fs::File::from(fd);
                let copied = io::copy(&mut entry, &mut file).map_err(|source| {
                    if source.kind() == io::ErrorKind::UnexpectedEof {
                        UnpackError::Truncated
                    } else {
                        UnpackError::Write {
                            path: shown.clone(),
                            source,
                        }
                    }
                })?;
                file.flush().map_err(|source| UnpackError::Write {
                    path: shown.clone(),
                    source,
                })?;
                self.size += copied;
                let fd = OwnedFd::from(file);
                self.set_owner_mode_xattrs(&fd, &meta, &shown)?;
                futimens(&fd, meta.mtime).map_err(err("setting the mtime"))?;
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse("a symlink without a target"))?
                    .into_owned();
                self.remove_existing(&parent, name, false, &shown)?;
                symlinkat(&target, &parent, name).map_err(err("creating the symlink"))?;
                self.chown_at(&parent, name, &meta, &shown)?;
                utimensat_nofollow(&parent, name, meta.mtime).map_err(err("setting the mtime"))?;
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse("a hardlink without a target"))?
                    .into_owned();
                let target_parts = clean_name(&target).map_err(refuse)?;
                let Some((target_name, target_parent)) = target_parts.split_last() else {
                    return Err(refuse("a hardlink to the layer root"));
                };
                // Resolved inside the root like any other path: the link
                // can only ever share an inode the layer itself created.
                let old_parent = self
                    .lookup_dir(target_parent)
                    .map_err(err("finding the hardlink's target"))?;
                if same_object(&old_parent, target_name, &parent, name) {
                    return Ok(());
                }
                self.remove_existing(&parent, name, false, &shown)?;
                linkat(&old_parent, target_name, &parent, name)
                    .map_err(err("creating the hardlink"))?;
            }
            T::Char | T::Block | T::Fifo => {
                let (type_bits, dev) = match kind {
                    T::Char => (libc::S_IFCHR, device(&entry)),
                    T::Block => (libc::S_IFBLK, device(&entry)),
                    _ => (libc::S_IFIFO, 0),
                };
                self.remove_existing(&parent, name, false, &shown)?;
                match mknod(&parent, name, type_bits | (meta.mode & 0o7777), dev) {
                    Ok(()) => {}
                    // Unprivileged callers cannot make device nodes; the
                    // runtime bind-mounts /dev anyway.
                    Err(Errno::EPERM) if !self.privileged && kind != T::Fifo => return Ok(()),
                    Err(e) => return Err(err("creating the node")(e)),
                }
                self.chown_at(&parent, name, &meta, &shown)?;
                fchmodat_nofollow(&parent, name, meta.mode & 0o7777)
                    .map_err(err("setting the mode"))?;
                utimensat_nofollow(&parent, name, meta.mtime).map_err(err("setting the mtime"))?;
            }
            // PAX and GNU long-name headers are folded in by the tar crate;
            // anything else (sockets, volume labels) has no place in a rootfs.
            _ => {}
        }
        Ok(())
    }

    /// Opens the directory `parts` inside the root, creating missing
    /// directories on the way (layers often omit parent entries).
    fn parent_dir(&self, parts: &[OsString], shown: &str) -> Result<OwnedFd, UnpackError> {
        let mut depth = 0;
        let mut current = self.lookup_dir(&[]).map_err(|source| UnpackError::Apply {
            path: shown.to_string(),
            op: "opening the layer root",
            source,
        })?;
        while let Some(name) = parts.get(depth) {
            depth += 1;
            let prefix = parts.get(..depth).unwrap_or_default();
            current = match self.lookup_dir(prefix) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    match mkdirat(&current, name, 0o755) {
                        // EEXIST here is a dangling symlink; looking it up
                        // again fails and reports it.
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(source) => {
                            return Err(UnpackError::Apply {
                                path: shown.to_string(),
                                op: "creating a parent directory",
                                source,
                            })
                        }
                    }
                    self.lookup_dir(prefix)
                        .map_err(|source| UnpackError::Apply {
                            path: shown.to_string(),
                            op: "opening a parent directory (a dangling symlink?)",
                            source,
                        })?
                }
                Err(source) => {
                    return Err(UnpackError::Apply {
                        path: shown.to_string(),
                        op: "opening a parent directory",
                        source,
                    })
                }
            };
        }
        Ok(current)
    }

    /// An `O_PATH` fd of the directory `parts`, resolved with the root as `/`.
    fn lookup_dir(&self, parts: &[OsString]) -> Result<OwnedFd, Errno> {
        let path: PathBuf = parts.iter().collect();
        openat2_in_root(&self.root, &path, libc::O_PATH | libc::O_DIRECTORY)
    }

    /// A readable fd of directory `parts` (created if missing), for fsetxattr.
    fn open_dir_in_root(&self, parts: &[OsString], shown: &str) -> Result<OwnedFd, UnpackError> {
        self.parent_dir(parts, shown)?;
        let path: PathBuf = parts.iter().collect();
        openat2_in_root(&self.root, &path, libc::O_RDONLY | libc::O_DIRECTORY).map_err(|source| {
            UnpackError::Apply {
                path: shown.to_string(),
                op: "opening the directory",
                source,
            }
        })
    }

    /// Makes room for a new entry. A directory replacing a directory keeps
    /// it (and what is already inside); anything else goes.
    fn remove_existing(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        keep_dir: bool,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let st = match fstatat_nofollow(parent, name) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(()),
            Err(source) => {
                return Err(UnpackError::Apply {
                    path: shown.to_string(),
                    op: "inspecting the existing entry",
                    source,
                })
            }
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if is_dir && keep_dir {
            return Ok(());
        }
        let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
        unlinkat(parent, name, flags).map_err(|source| UnpackError::Apply {
            path: shown.to_string(),
            op: "replacing the existing entry",
            source,
        })
    }

    fn set_owner_mode_xattrs(
        &self,
        fd: &OwnedFd,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let err = |op| {
            move |source| UnpackError::Apply {
                path: shown.to_string(),
                op,
                source,
            }
        };
        // chown clears set-id bits, so the mode comes after it.
        match Errno::result(unsafe { libc::fchown(fd.as_raw_fd(), meta.uid, meta.gid) }) {
            Ok(_) => {}
            Err(Errno::EPERM | Errno::EINVAL) if !self.privileged => {}
            Err(e) => return Err(err("setting the owner")(e)),
        }
        // SAFETY: plain syscall on an fd we own.
        Errno::result(unsafe { libc::fchmod(fd.as_raw_fd(), meta.mode & 0o7777) })
            .map_err(err("setting the mode"))?;
        for (key, value) in &meta.xattrs {
            match set_xattr(fd, key, value) {
                Ok(()) => {}
                Err(Errno::EPERM | Errno::EOPNOTSUPP) if !self.privileged => {}
                Err(e) => return Err(err("setting an xattr")(e)),
            }
        }
        Ok(())
    }

    fn chown_at(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let c = cstr(name.as_bytes()).map_err(|source| UnpackError::Apply {
            path: shown.to_string(),
            op: "setting the owner",
            source,
        })?;
        // SAFETY: valid fd and NUL-terminated name; AT_SYMLINK_NOFOLLOW keeps
        // the call on the entry itself.
        let res = unsafe {
            libc::fchownat(
                parent.as_raw_fd(),
                c.as_ptr(),
                meta.uid,
                meta.gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        match Errno::result(res) {
            Ok(_) => Ok(()),
            Err(Errno::EPERM | Errno::EINVAL) if !self.privileged => Ok(()),
            Err(source) => Err(UnpackError::Apply {
                path: shown.to_string(),
                op: "setting the owner",
                source,
            }),
        }
    }

    fn finish_dir_times(&mut self) -> Result<(), UnpackError> {
        // Deepest (latest) first, so setting a child's time cannot disturb
        // a parent that is already done.
        for (parts, mtime) in self.dir_times.drain(..).rev() {
            let shown = display(&parts);
            let res = match parts.split_last() {
                None => utimensat_nofollow(&self.root, OsStr::new("."), mtime),
                Some((name, parent)) => openat2_in_root(
                    &self.root,
                    &parent.iter().collect::<PathBuf>(),
                    libc::O_PATH | libc::O_DIRECTORY,
                )
                .and_then(|p| utimensat_nofollow(&p, name, mtime)),
            };
            // A later entry may have replaced the directory; that is fine.
            match res {
                Ok(()) | Err(Errno::ENOENT | Errno::ENOTDIR) => {}
                Err(source) => {
                    return Err(UnpackError::Apply {
                        path: shown,
                        op: "setting the directory's mtime",
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let header = entry.header();
    let mut meta = Meta {
        mode: header.mode().unwrap_or(0o644),
        uid: header
            .uid()
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
        gid: header
            .gid()
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0),
        mtime: header
            .mtime()
            .ok()
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(0),
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let (Ok(key), value) = (ext.key(), ext.value_bytes()) else {
                continue;
            };
            let number = || std::str::from_utf8(value).ok();
            match key {
                "uid" => {
                    if let Some(v) = number().and_then(|s| s.parse().ok()) {
                        meta.uid = v;
                    }
                }
                "gid" => {
                    if let Some(v) = number().and_then(|s| s.parse().ok()) {
                        meta.gid = v;
                    }
                }
                "mtime" => {
                    let secs = number()
                        .and_then(|s| s.split('.').next())
                        .and_then(|s| s.parse().ok());
                    if let Some(v) = secs {
                        meta.mtime = v;
                    }
                }
                _ => {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        if xattr_allowed(name) {
                            meta.xattrs.push((name.to_string(), value.to_vec()));
                        }
                    }
                }
            }
        }
    }
    Ok(meta)
}

/// Which xattrs a layer may carry. `trusted.overlay.*` would let a layer
/// forge overlayfs metadata (redirects, metacopy) that only the unpacker
/// should write; security labels other than file capabilities belong to
/// the host's policy, not the image.
fn xattr_allowed(name: &str) -> bool {
    if name.starts_with("trusted.overlay.") {
        return false;
    }
    name.starts_with("user.") || name.starts_with("trusted.") || name == "security.capability"
}

fn device<R: Read>(entry: &tar::Entry<'_, R>) -> libc::dev_t {
    let h = entry.header();
    let major = h.device_major().ok().flatten().unwrap_or(0);
    let minor = h.device_minor().ok().flatten().unwrap_or(0);
    libc::makedev(major, minor)
}

/// True when both names already are the same inode (a tar listing a
/// hardlink to itself, which would otherwise delete the file).
fn same_object(a_dir: &OwnedFd, a: &OsStr, b_dir: &OwnedFd, b: &OsStr) -> bool {
    match (fstatat_nofollow(a_dir, a), fstatat_nofollow(b_dir, b)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

// --- syscall wrappers -------------------------------------------------------
// Raw libc keeps the `*at` calls on owned fds without nix 0.29's
// Option<RawFd> plumbing; each one checks its result with Errno.

fn cstr(bytes: &[u8]) -> Result<CString, Errno> {
    CString::new(bytes).map_err(|_| Errno::EINVAL)
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: NUL-terminated path; the returned fd is owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// `openat2(2)` with `root` acting as `/` for every component, symlinks
/// included. An empty path opens the root itself.
pub(crate) fn openat2_in_root(root: &OwnedFd, path: &Path, flags: i32) -> Result<OwnedFd, Errno> {
    let bytes = path.as_os_str().as_bytes();
    let c = cstr(if bytes.is_empty() { b"." } else { bytes })?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: valid fd, NUL-terminated path, `how` outlives the call
        // and its size is passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match Errno::result(fd) {
            // SAFETY: fresh descriptor from openat2.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            // openat2 asks for a retry when a rename raced the lookup.
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn openat(dir: &OwnedFd, name: &OsStr, flags: i32, mode: u32) -> Result<OwnedFd, Errno> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: valid fd and NUL-terminated name; fd owned below.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    // SAFETY: fresh descriptor from openat.
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mkdirat(dir: &OwnedFd, name: &OsStr, mode: u32) -> Result<(), Errno> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: valid fd and NUL-terminated name.
    Errno::result(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) }).map(drop)
}

fn mknod(dir: &OwnedFd, name: &OsStr, mode: u32, dev: libc::dev_t) -> Result<(), Errno> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: valid fd and NUL-terminated name.
    Errno::result(unsafe { libc::mknodat(dir.as_raw_fd(), c.as_ptr(), mode, dev) }).map(drop)
}

fn symlinkat(target: &[u8], dir: &OwnedFd, name: &OsStr) -> Result<(), Errno> {
    let t = cstr(target)?;
    let c = cstr(name.as_bytes())?;
    // SAFETY: valid fd and NUL-terminated strings.
    Errno::result(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) }).map(drop)
}

fn linkat(old_dir: &OwnedFd, old: &OsStr, new_dir: &OwnedFd, new: &OsStr) -> Result<(), Errno> {
    let o = cstr(old.as_bytes())?;
    let n = cstr(new.as_bytes())?;
    // SAFETY: valid fds and NUL-terminated names; flags 0 links a symlink
    // itself rather than what it points to.
    Errno::result(unsafe {
        libc::linkat(
            old_dir.as_raw_fd(),
            o.as_ptr(),
            new_dir.as_raw_fd(),
            n.as_ptr(),
            0,
        )
    })
    .map(drop)
}

fn unlinkat(dir: &OwnedFd, name: &OsStr, flags: i32) -> Result<(), Errno> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: valid fd and NUL-terminated name.
    Errno::result(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) }).map(drop)
}

fn fstatat_nofollow(dir: &OwnedFd, name: &OsStr) -> Result<libc::stat, Errno> {
    let c = cstr(name.as_bytes())?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: valid fd, NUL-terminated name, `st` is writable stat storage.
    let res = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    Errno::result(res)?;
    // SAFETY: fstatat succeeded and filled the struct.
    Ok(unsafe { st.assume_init() })
}

fn fchmodat_nofollow(dir: &OwnedFd, name: &OsStr, mode: u32) -> Result<(), Errno> {
    // Through an O_PATH fd checked not to be a symlink: fchmodat itself
    // follows symlinks on kernels without fchmodat2.
    let fd = openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: valid fd and stat storage.
    Errno::result(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded.
    if unsafe { st.assume_init() }.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(Errno::ELOOP);
    }
    let proc = cstr(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
    // SAFETY: NUL-terminated path naming our own fd.
    Errno::result(unsafe { libc::chmod(proc.as_ptr(), mode) }).map(drop)
}

fn times(mtime: i64) -> [libc::timespec; 2] {
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    [ts, ts]
}

fn futimens(fd: &OwnedFd, mtime: i64) -> Result<(), Errno> {
    let t = times(mtime);
    // SAFETY: an fd opened for reading or writing, two timespecs.
    Errno::result(unsafe { libc::futimens(fd.as_raw_fd(), t.as_ptr()) }).map(drop)
}

fn utimensat_nofollow(dir: &OwnedFd, name: &OsStr, mtime: i64) -> Result<(), Errno> {
    let c = cstr(name.as_bytes())?;
    let t = times(mtime);
    // SAFETY: valid fd, NUL-terminated name, two timespecs.
    Errno::result(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            t.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

fn set_xattr(fd: &OwnedFd, key: &str, value: &[u8]) -> Result<(), Errno> {
    let k = cstr(key.as_bytes())?;
    // SAFETY: a readable fd, NUL-terminated key, value pointer and length.
    Errno::result(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

fn temp_sibling(dest: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = dest
        .file_name()
        .map(OsStr::to_os_string)
        .unwrap_or_default();
    name.push(format!(".unpacking-{}-{n}", std::process::id()));
    dest.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_escapes_refused() {
        assert_eq!(clean_name(b"/etc/passwd").unwrap(), ["etc", "passwd"]);
        assert_eq!(clean_name(b"./a/./b/../c").unwrap(), ["a", "c"]);
        assert!(clean_name(b"").unwrap().is_empty());
        assert!(clean_name(b"../x").is_err());
        assert!(clean_name(b"a/../../x").is_err());
        assert!(clean_name(b"/../x").is_err());
    }

    #[test]
    fn compression_is_told_by_magic() {
        assert_eq!(
            Compression::detect(&[0x1f, 0x8b, 8]).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]).unwrap(),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"etc/").unwrap(), Compression::None);
        assert!(Compression::detect(b"BZh91").is_err());
    }

    #[test]
    fn overlay_xattrs_from_a_layer_are_dropped() {
        assert!(!xattr_allowed("trusted.overlay.redirect"));
        assert!(xattr_allowed("user.foo"));
        assert!(xattr_allowed("trusted.foo"));
        assert!(!xattr_allowed("security.selinux"));
    }

    #[test]
    fn trailing_zero_count_spans_reads() {
        let mut data = vec![1u8; 10];
        data.extend([0u8; 1024]);
        let mut r = HashingReader::new(io::Cursor::new(data));
        let mut buf = [0u8; 100];
        while r.read(&mut buf).unwrap() > 0 {}
        assert_eq!(r.trailing_zeros, 1024);
        assert_eq!(r.total, 1034);
    }
}
