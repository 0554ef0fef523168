//! Choosing one manifest out of a Docker manifest list or an OCI index, with
//! containerd's normalisation of names (`x86_64` is `amd64`, `aarch64` is
//! `arm64`, arm64's variant defaults to `v8`).

use std::fmt;

use super::RegistryError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl PlatformSpec {
    pub fn host() -> Self {
        let (arch, variant) = normalize_arch(host_arch(), None);
        PlatformSpec {
            os: "linux".to_string(),
            architecture: arch,
            variant,
        }
    }

    /// `os/arch[/variant]`, or a bare arch (Linux implied) or a bare `linux`.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let bad = || RegistryError::InvalidPlatform(s.to_string());
        let lower = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        if parts.iter().any(|p| {
            p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        }) {
            return Err(bad());
        }
        let (os, arch, variant) = match parts.as_slice() {
            ["linux"] => ("linux", host_arch(), None),
            [arch] => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => return Err(bad()),
        };
        let (architecture, variant) = normalize_arch(arch, variant);
        Ok(PlatformSpec {
            os: os.to_string(),
            architecture,
            variant,
        })
    }

    /// Normalised copy of an index entry's platform, for comparison.
    pub fn from_entry(os: &str, arch: &str, variant: Option<&str>) -> Self {
        let (architecture, variant) = normalize_arch(&arch.to_ascii_lowercase(), variant);
        PlatformSpec {
            os: os.to_ascii_lowercase(),
            architecture,
            variant,
        }
    }

    /// None: not runnable here; otherwise a rank, lower is better: an exact
    /// variant beats an entry without one, which beats any other variant.
    pub fn rank(&self, candidate: &PlatformSpec) -> Option<u8> {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return None;
        }
        match (&self.variant, &candidate.variant) {
            (a, b) if a == b => Some(0),
            (_, None) => Some(1),
            // We asked for no particular variant (amd64 v2/v3 builds...).
            (None, Some(_)) => Some(2),
            (Some(_), Some(_)) => None,
        }
    }
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let variant = variant.map(str::to_string);
    match arch {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant),
        "i386" | "386" => ("386".into(), None),
        "aarch64" | "arm64" => {
            let v = match variant.as_deref() {
                None | Some("8") | Some("v8") => Some("v8".to_string()),
                _ => variant,
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => {
            let v = match variant.as_deref() {
                None => Some("v7".to_string()),
                Some(v) if !v.starts_with('v') => Some(format!("v{v}")),
                _ => variant,
            };
            ("arm".into(), v)
        }
        other => (other.to_string(), variant),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_rank() {
        let p = PlatformSpec::parse("linux/arm64").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            PlatformSpec::parse("linux/aarch64/8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            PlatformSpec::parse("x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            PlatformSpec::parse("linux/arm/7").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert!(PlatformSpec::parse("linux//amd64").is_err());
        assert!(PlatformSpec::parse("a/b/c/d").is_err());
        assert!(PlatformSpec::parse("").is_err());

        let arm64_plain = PlatformSpec::from_entry("linux", "arm64", None);
        assert_eq!(p.rank(&arm64_plain), Some(0));
        let amd = PlatformSpec::parse("linux/amd64").unwrap();
        assert_eq!(
            amd.rank(&PlatformSpec::from_entry("linux", "amd64", None)),
            Some(0)
        );
        assert_eq!(
            amd.rank(&PlatformSpec::from_entry("linux", "amd64", Some("v3"))),
            Some(2)
        );
        assert_eq!(amd.rank(&arm64_plain), None);
        let v7 = PlatformSpec::parse("linux/arm/v7").unwrap();
        assert_eq!(
            v7.rank(&PlatformSpec::from_entry("linux", "arm", Some("v6"))),
            None
        );
    }
}
