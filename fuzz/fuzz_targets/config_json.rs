//! config.json as `create` reads it: whatever the bytes, an error and never
//! a panic, and the same for what create does next with a config that
//! passed (seccomp, mount options, rootfs propagation).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use minirun_rootfs::{parse_propagation, MountOptions};
use minirun_runtime::oci::parse_config;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = parse_config(data, Path::new("config.json")) else {
        return;
    };
    for mount in spec.mounts().iter().flatten() {
        let _ = MountOptions::parse(mount.options().as_deref().unwrap_or_default());
    }
    if let Some(linux) = spec.linux() {
        if let Some(seccomp) = linux.seccomp() {
            let _ = minirun_runtime::seccomp::compile(seccomp);
        }
        if let Some(propagation) = linux.rootfs_propagation() {
            let _ = parse_propagation(propagation);
        }
    }
});
