//! The `minirun` binary. One binary, two front ends, chosen by one rule:
//!
//! - the runc-compatible OCI command set when invoked as `minirun-runc` (a
//!   symlink `make install` creates; give its path to Podman's `--runtime`
//!   or containerd's `--runc-binary`), or as `minirun oci ...`;
//! - otherwise the Docker-style front end (`minirun run IMAGE CMD`).

use std::ffi::OsString;
use std::path::Path;

use minirun_runtime::process::exe_guard;

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let invoked_as = args.first().and_then(|a| Path::new(a).file_name()).and_then(|n| n.to_str()).unwrap_or("minirun").to_string();
    let oci = invoked_as == "minirun-runc" || args.get(1).is_some_and(|a| a == "oci");
    if exe_guard::needs_guard(&args) {
        if let Err(e) = exe_guard::ensure_read_only_exe(&args) {
            eprintln!("minirun: cannot run from a read-only view of its own binary (CVE-2019-5736): {e}");
            // runc's generic failure, or Docker's "the engine failed".
            std::process::exit(if oci { 1 } else { 125 });
        }
    }
    let code = if !oci {
        minirun_runtime::front::main(args)
    } else {
        if invoked_as != "minirun-runc" {
            args.remove(1);
            args[0] = OsString::from("minirun oci");
        }
        minirun_runtime::oci::main(args)
    };
    std::process::exit(code);
}
