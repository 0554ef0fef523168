//! `-p` values: never a panic, and a mapping's Display (documented as what
//! `-p` takes back) parses to that mapping alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minirun_netsetup::ports::parse_port_spec;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mappings) = parse_port_spec(spec) else {
        return;
    };
    // A range maps port by port in step, so its ends stand for the rest
    // (and 1-65535:1-65535 stays one quick iteration).
    for &mapping in mappings.first().into_iter().chain(mappings.last()) {
        let shown = mapping.to_string();
        let again = parse_port_spec(&shown).unwrap_or_else(|e| panic!("{spec:?}: {shown:?}: {e}"));
        assert_eq!(again, [mapping], "{spec:?} is shown as {shown:?}");
    }
});
