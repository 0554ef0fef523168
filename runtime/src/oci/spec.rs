use std::path::PathBuf;

use super::OciError;

#[derive(Debug, clap::Args)]
pub struct SpecArgs {
    /// Where to write config.json.
    #[arg(long, short, default_value = ".")]
    pub bundle: PathBuf,
    /// Accepted for runc compatibility; the same spec is written.
    #[arg(long)]
    pub rootless: bool,
}

/// runc's default spec: `sh` on a terminal in ./rootfs, with the usual
/// mounts, masked paths and namespaces.
const DEFAULT_SPEC: &str = include_str!("default-config.json");

pub fn spec(args: &SpecArgs) -> Result<(), OciError> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        return Err(OciError::Config(format!("{} exists; remove it first", path.display())));
    }
    std::fs::write(&path, DEFAULT_SPEC).map_err(OciError::io(format!("write {}", path.display())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_spec_parses() {
        let spec: oci_spec::runtime::Spec = serde_json::from_str(super::DEFAULT_SPEC).unwrap();
        assert_eq!(spec.process().as_ref().unwrap().args().as_ref().unwrap(), &["sh"]);
    }
}
