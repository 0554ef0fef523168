//! Image references: never a panic, and the normalised form an image is
//! shown by (Display) parses back to the same reference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minirun_rootfs::image::reference::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(reference) = parse(s) {
        let shown = reference.to_string();
        assert_eq!(parse(&shown), Ok(reference), "{s:?} is shown as {shown:?}");
    }
});
