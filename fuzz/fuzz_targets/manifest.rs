//! Manifest bytes as a registry or the store hands them over: telling a
//! manifest from an index, choosing a platform's entry, checking a
//! manifest's digests, and the run defaults taken from an image config.
//! Every reader sees every input: the same JSON reaches all of them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minirun_rootfs::image::config::RunDefaults;
use minirun_rootfs::image::registry::manifest::{choose_platform, classify, parse_manifest};
use minirun_rootfs::image::registry::PlatformSpec;
use oci_spec::image::ImageConfiguration;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data, None, "fuzz");
    let _ = classify(data, Some("application/vnd.oci.image.index.v1+json"), "fuzz");
    let _ = parse_manifest(data, "fuzz");
    // The host's platform and one with a variant take different ranking paths.
    for platform in [PlatformSpec::host(), PlatformSpec::parse("linux/arm/v7").expect("a valid platform")] {
        let _ = choose_platform(data, "fuzz", &platform, "fuzz");
    }
    if let Ok(config) = serde_json::from_slice::<ImageConfiguration>(data) {
        let _ = RunDefaults::from_image(&config).argv();
    }
});
