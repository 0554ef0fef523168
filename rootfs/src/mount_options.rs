//! Parsing of OCI mount options (fstab style) into mount(2) arguments, with
//! runc's semantics: known flag names set or clear MS_* flags, propagation
//! names are applied as separate calls after the mount, the recursive `r*`
//! forms go through mount_setattr(2), and anything else is filesystem data.

use nix::mount::MsFlags;

use crate::propagation::parse_propagation;
use crate::sys::MS_NOSYMFOLLOW;

// MOUNT_ATTR_* from <linux/mount.h>.
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR__ATIME: u64 = 0x70;
const MOUNT_ATTR_RELATIME: u64 = 0x0;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

#[derive(Debug, thiserror::Error)]
pub enum MountOptionError {
    #[error(
        "mount option {option:?} (idmapped mount) is not supported by minirun; \
         use a user namespace with uid/gid mappings instead"
    )]
    IdMap { option: String },
    #[error("mount option {option:?} contains a NUL byte")]
    NulByte { option: String },
}

/// A mount's options split the way mount(2) wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags to set.
    pub flags: MsFlags,
    /// Flags explicitly turned off (`rw`, `suid`, `dev`, ...). They matter
    /// for bind remounts, where a flag that is neither set nor cleared would
    /// otherwise be inherited from the source.
    pub cleared: MsFlags,
    /// Propagation changes in the order given; each needs its own call.
    pub propagation: Vec<MsFlags>,
    /// `MOUNT_ATTR_*` to set / clear recursively (`rro`, `rnosuid`, ...).
    pub rec_attr_set: u64,
    pub rec_attr_clear: u64,
    /// Filesystem-specific options (`mode=755`, `size=65536k`, `newinstance`).
    pub data: Vec<String>,
    /// Podman's `tmpcopyup`: accepted and ignored (the tmpfs starts empty).
    pub tmpcopyup: bool,
}

enum Flag {
    Set(MsFlags),
    Clear(MsFlags),
}

fn flag(option: &str) -> Option<Flag> {
    use Flag::{Clear, Set};
    Some(match option {
        "async" => Clear(MsFlags::MS_SYNCHRONOUS),
        "atime" => Clear(MsFlags::MS_NOATIME),
        "bind" => Set(MsFlags::MS_BIND),
        "dev" => Clear(MsFlags::MS_NODEV),
        "diratime" => Clear(MsFlags::MS_NODIRATIME),
        "dirsync" => Set(MsFlags::MS_DIRSYNC),
        "exec" => Clear(MsFlags::MS_NOEXEC),
        "iversion" => Set(MsFlags::MS_I_VERSION),
        "lazytime" => Set(MsFlags::MS_LAZYTIME),
        "loud" => Clear(MsFlags::MS_SILENT),
        "mand" => Set(MsFlags::MS_MANDLOCK),
        "noatime" => Set(MsFlags::MS_NOATIME),
        "nodev" => Set(MsFlags::MS_NODEV),
        "nodiratime" => Set(MsFlags::MS_NODIRATIME),
        "noexec" => Set(MsFlags::MS_NOEXEC),
        "noiversion" => Clear(MsFlags::MS_I_VERSION),
        "nolazytime" => Clear(MsFlags::MS_LAZYTIME),
        "nomand" => Clear(MsFlags::MS_MANDLOCK),
        "norelatime" => Clear(MsFlags::MS_RELATIME),
        "nostrictatime" => Clear(MsFlags::MS_STRICTATIME),
        "nosuid" => Set(MsFlags::MS_NOSUID),
        "nosymfollow" => Set(MS_NOSYMFOLLOW),
        "rbind" => Set(MsFlags::MS_BIND | MsFlags::MS_REC),
        "relatime" => Set(MsFlags::MS_RELATIME),
        "remount" => Set(MsFlags::MS_REMOUNT),
        "ro" => Set(MsFlags::MS_RDONLY),
        "rw" => Clear(MsFlags::MS_RDONLY),
        "silent" => Set(MsFlags::MS_SILENT),
        "strictatime" => Set(MsFlags::MS_STRICTATIME),
        "suid" => Clear(MsFlags::MS_NOSUID),
        "sync" => Set(MsFlags::MS_SYNCHRONOUS),
        "symfollow" => Clear(MS_NOSYMFOLLOW),
        _ => return None,
    })
}

/// (set?, attribute) of the recursive mount_setattr options.
fn rec_attr(option: &str) -> Option<(bool, u64)> {
    Some(match option {
        "rro" => (true, MOUNT_ATTR_RDONLY),
        "rrw" => (false, MOUNT_ATTR_RDONLY),
        "rnosuid" => (true, MOUNT_ATTR_NOSUID),
        "rsuid" => (false, MOUNT_ATTR_NOSUID),
        "rnodev" => (true, MOUNT_ATTR_NODEV),
        "rdev" => (false, MOUNT_ATTR_NODEV),
        "rnoexec" => (true, MOUNT_ATTR_NOEXEC),
        "rexec" => (false, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (true, MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (false, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (true, MOUNT_ATTR_RELATIME),
        "rnorelatime" => (false, MOUNT_ATTR_RELATIME),
        "rnoatime" => (true, MOUNT_ATTR_NOATIME),
        "ratime" => (false, MOUNT_ATTR_NOATIME),
        "rstrictatime" => (true, MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => (false, MOUNT_ATTR_STRICTATIME),
        "rnosymfollow" => (true, MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (false, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            rec_attr_set: 0,
            rec_attr_clear: 0,
            data: Vec::new(),
            tmpcopyup: false,
        }
    }
}

impl MountOptions {
    pub fn parse<S: AsRef<str>>(options: &[S]) -> Result<Self, MountOptionError> {
        let mut out = MountOptions::default();
        for option in options {
            let option = option.as_ref();
            if option.contains('\0') {
                return Err(MountOptionError::NulByte {
                    option: option.to_string(),
                });
            }
            match option {
                "" | "defaults" => {}
                "idmap" | "ridmap" => {
                    return Err(MountOptionError::IdMap {
                        option: option.to_string(),
                    })
                }
                "tmpcopyup" | "notmpcopyup" => out.tmpcopyup = option == "tmpcopyup",
                _ => {
                    if let Some(f) = flag(option) {
                        match f {
                            Flag::Set(f) => {
                                out.flags |= f;
                                out.cleared &= !f;
                            }
                            Flag::Clear(f) => {
                                out.flags &= !f;
                                out.cleared |= f;
                            }
                        }
                    } else if let Some(p) = parse_propagation(option) {
                        out.propagation.push(p);
                    } else if let Some((set, attr)) = rec_attr(option) {
                        out.add_rec_attr(set, attr);
                    } else {
                        out.data.push(option.to_string());
                    }
                }
            }
        }
        Ok(out)
    }

    fn add_rec_attr(&mut self, set: bool, attr: u64) {
        let is_atime = attr & MOUNT_ATTR__ATIME == attr;
        if set {
            self.rec_attr_set |= attr;
            self.rec_attr_clear &= !attr;
        } else {
            self.rec_attr_clear |= attr;
            self.rec_attr_set &= !attr;
        }
        // mount_setattr(2): an atime mode can only be set together with
        // clearing the whole atime field.
        if is_atime {
            self.rec_attr_clear |= MOUNT_ATTR__ATIME;
        }
    }

    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    pub fn is_recursive(&self) -> bool {
        self.flags.contains(MsFlags::MS_REC)
    }

    pub fn data_string(&self) -> String {
        self.data.join(",")
    }

    /// A bind mount ignores flags, so a second MS_REMOUNT|MS_BIND is needed
    /// whenever the user asked for any flag or cleared one; with no flags
    /// at all, the source's flags are kept as they are.
    pub fn needs_bind_remount(&self) -> bool {
        let extra = self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        !extra.is_empty() || !self.cleared.is_empty()
    }

    pub fn has_recursive_attrs(&self) -> bool {
        self.rec_attr_set != 0 || self.rec_attr_clear != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(opts: &[&str]) -> MountOptions {
        MountOptions::parse(opts).unwrap()
    }

    #[test]
    fn podman_proc() {
        let o = parse(&["nosuid", "noexec", "nodev"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
        );
        assert!(o.data.is_empty() && o.propagation.is_empty() && !o.is_bind());
    }

    #[test]
    fn tmpfs_data_options() {
        let o = parse(&["nosuid", "noexec", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_STRICTATIME
        );
        assert_eq!(o.data_string(), "mode=755,size=65536k");
    }

    #[test]
    fn devpts_data_options() {
        let o = parse(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]);
        assert_eq!(o.data_string(), "newinstance,ptmxmode=0666,mode=0620,gid=5");
    }

    #[test]
    fn bind_with_propagation_and_flags() {
        let o = parse(&["bind", "rprivate", "nosuid", "noexec", "nodev"]);
        assert!(o.is_bind() && !o.is_recursive());
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert!(o.needs_bind_remount());

        let plain = parse(&["rbind", "rprivate"]);
        assert!(plain.is_bind() && plain.is_recursive());
        assert!(!plain.needs_bind_remount());
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let o = parse(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert_eq!(o.cleared, MsFlags::MS_RDONLY);
        assert!(o.needs_bind_remount());
        let o = parse(&["rw", "ro"]);
        assert!(o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.is_empty());
        let o = parse(&["nosuid", "suid", "nodev", "dev", "noexec", "exec"]);
        assert!(o.flags.is_empty());
        assert_eq!(
            o.cleared,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
        );
    }

    #[test]
    fn atime_options() {
        assert_eq!(parse(&["relatime"]).flags, MsFlags::MS_RELATIME);
        assert_eq!(parse(&["norelatime"]).cleared, MsFlags::MS_RELATIME);
        assert_eq!(parse(&["noatime"]).flags, MsFlags::MS_NOATIME);
        assert_eq!(parse(&["strictatime"]).flags, MsFlags::MS_STRICTATIME);
    }

    #[test]
    fn every_propagation_option() {
        let o = parse(&[
            "private",
            "rprivate",
            "shared",
            "rshared",
            "slave",
            "rslave",
            "unbindable",
            "runbindable",
        ]);
        assert_eq!(o.propagation.len(), 8);
        assert!(o.flags.is_empty() && o.data.is_empty());
    }

    #[test]
    fn idmap_is_a_clear_error() {
        for opt in ["idmap", "ridmap"] {
            let err = MountOptions::parse(&["rbind", opt]).unwrap_err();
            assert!(err.to_string().contains(opt), "{err}");
            assert!(err.to_string().contains("not supported"), "{err}");
        }
    }

    #[test]
    fn tmpcopyup_is_accepted() {
        let o = parse(&["tmpcopyup", "mode=1777"]);
        assert!(o.tmpcopyup);
        assert_eq!(o.data, vec!["mode=1777"]);
    }

    #[test]
    fn unknown_options_are_data_and_defaults_is_nothing() {
        let o = parse(&["defaults", "", "lowerdir=/a:/b", "upperdir=/u", "acl"]);
        assert!(o.flags.is_empty());
        assert_eq!(o.data_string(), "lowerdir=/a:/b,upperdir=/u,acl");
    }

    #[test]
    fn recursive_attributes() {
        let o = parse(&["rbind", "rro", "rnosuid", "rnoatime"]);
        assert_eq!(
            o.rec_attr_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.rec_attr_clear, MOUNT_ATTR__ATIME);
        assert!(o.has_recursive_attrs());
        assert!(!o.needs_bind_remount());
    }

    #[test]
    fn nul_bytes_are_rejected() {
        assert!(matches!(
            MountOptions::parse(&["mode=7\u{0}55"]),
            Err(MountOptionError::NulByte { .. })
        ));
    }
}
