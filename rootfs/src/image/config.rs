//! What the Docker-style front end takes from an image's config when it
//! builds a container's OCI spec, and the host's platform in OCI spelling.

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;

/// The image's defaults for a container; `docker run` flags override them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` strings, in image order.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`, as the image wrote it.
    pub user: Option<String>,
    /// `port/proto` strings such as `80/tcp`, sorted for stable output.
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl RunDefaults {
    pub fn from_image(image: &ImageConfiguration) -> Self {
        let Some(c) = image.config() else {
            return Self::default();
        };
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let mut exposed_ports = c.exposed_ports().clone().unwrap_or_default();
        // The config stores ports as JSON object keys, whose order the
        // parser does not keep.
        exposed_ports.sort();
        Self {
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: non_empty(c.working_dir()),
            user: non_empty(c.user()),
            exposed_ports,
            stop_signal: non_empty(c.stop_signal()),
            labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
        }
    }

    /// The process argv: entrypoint followed by cmd, as Docker joins them.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// The host's `(os, architecture)` as OCI images name them (Go's GOOS and
/// GOARCH), for picking a manifest out of an index and for `import`.
pub fn host_platform() -> (&'static str, &'static str) {
    (std::env::consts::OS, oci_arch(std::env::consts::ARCH))
}

/// Rust's architecture names differ from Go's, which OCI uses.
pub fn oci_arch(rust_arch: &str) -> &'static str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "loongarch64" => "loong64",
        "mips64" => "mips64le",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_config() {
        let json = r#"{
            "architecture": "amd64", "os": "linux",
            "config": {
                "Entrypoint": ["/entry"], "Cmd": ["sh", "-c", "x"],
                "Env": ["PATH=/bin", "A=b"], "WorkingDir": "/srv", "User": "1000:1000",
                "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
                "StopSignal": "SIGQUIT", "Labels": {"k": "v"}
            },
            "rootfs": {"type": "layers", "diff_ids": []}
        }"#;
        let image: ImageConfiguration = serde_json::from_str(json).unwrap();
        let d = RunDefaults::from_image(&image);
        assert_eq!(d.argv(), ["/entry", "sh", "-c", "x"]);
        assert_eq!(d.env, ["PATH=/bin", "A=b"]);
        assert_eq!(d.working_dir.as_deref(), Some("/srv"));
        assert_eq!(d.user.as_deref(), Some("1000:1000"));
        assert_eq!(d.exposed_ports, ["53/udp", "8080/tcp"]);
        assert_eq!(d.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(d.labels.get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn a_config_without_config_has_empty_defaults() {
        let json =
            r#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let image: ImageConfiguration = serde_json::from_str(json).unwrap();
        assert_eq!(RunDefaults::from_image(&image), RunDefaults::default());
    }

    #[test]
    fn architectures_use_go_names() {
        assert_eq!(oci_arch("x86_64"), "amd64");
        assert_eq!(oci_arch("aarch64"), "arm64");
        let (os, arch) = host_platform();
        assert_eq!(os, "linux");
        assert_ne!(arch, "unknown");
    }
}
