//! Image references as Docker parses them
//! (`[registry[:port]/]path[:tag][@sha256:hex]`), normalised the way
//! `docker pull` does: no registry means Docker Hub, a single-component
//! Hub name lives under `library/`, no tag and no digest means `latest`.

use std::fmt;

pub const DEFAULT_REGISTRY: &str = "docker.io";
/// `docker.io` is a name, not a host: the API lives here.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";
pub const DEFAULT_TAG: &str = "latest";
/// Docker's limit on the whole name (registry and path), not counting the tag.
pub const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format: empty reference")]
    Empty,
    #[error("invalid reference format: {0:?} contains whitespace or control characters")]
    Whitespace(String),
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("invalid reference format: repository name {0:?} is more than {NAME_MAX} characters")]
    NameTooLong(String),
    #[error("invalid reference format: empty path component in {0:?}")]
    EmptyComponent(String),
    #[error("invalid reference format: path component {0:?} must be lowercase letters and digits separated by '.', '_', '__' or '-'")]
    BadComponent(String),
    #[error("invalid reference format: registry {0:?} is not a valid host[:port]")]
    BadRegistry(String),
    #[error("invalid reference format: empty tag after ':' in {0:?}")]
    EmptyTag(String),
    #[error("invalid reference format: tag {0:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")]
    BadTag(String),
    #[error("invalid reference format: empty digest after '@' in {0:?}")]
    EmptyDigest(String),
    #[error("invalid reference format: digest {0:?} must be sha256: followed by 64 lowercase hex digits")]
    BadDigest(String),
    #[error("invalid reference format: {0:?} has no repository name")]
    NoRepository(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// As written (`docker.io` for Docker Hub); see [`Reference::registry_host`].
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// The host[:port] to talk to.
    pub fn registry_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DOCKER_HUB_HOST
        } else {
            &self.registry
        }
    }

    /// What goes after `/manifests/`: the digest wins over the tag, as in
    /// Docker, because it pins the content.
    pub fn manifest_reference(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d,
            (None, Some(t)) => t,
            (None, None) => DEFAULT_TAG,
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ReferenceError::Whitespace(s.to_string()));
    }

    let (rest, digest) = match s.split_once('@') {
        Some((_, "")) => return Err(ReferenceError::EmptyDigest(s.to_string())),
        Some((rest, d)) => {
            validate_digest(d)?;
            (rest, Some(d.to_string()))
        }
        None => (s, None),
    };

    // A ':' after the last '/' starts the tag; one before it is a port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let colon = last_slash + i;
            let tag = &rest[colon + 1..];
            if tag.is_empty() {
                return Err(ReferenceError::EmptyTag(s.to_string()));
            }
            validate_tag(tag)?;
            (&rest[..colon], Some(tag.to_string()))
        }
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(ReferenceError::NoRepository(s.to_string()));
    }
    if name.len() > NAME_MAX {
        return Err(ReferenceError::NameTooLong(truncated(name)));
    }

    let (registry, path) = match name.split_once('/') {
        Some((first, path)) if is_registry_like(first) => {
            validate_registry(first)?;
            if path.is_empty() {
                return Err(ReferenceError::NoRepository(s.to_string()));
            }
            (first.to_string(), path)
        }
        _ => (DEFAULT_REGISTRY.to_string(), name),
    };
    for component in path.split('/') {
        validate_component(component, path)?;
    }

    let registry = if registry == "index.docker.io" {
        DEFAULT_REGISTRY.to_string()
    } else {
        registry
    };
    let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    if registry.len() + 1 + repository.len() > NAME_MAX {
        return Err(ReferenceError::NameTooLong(truncated(name)));
    }
    let tag = match (&tag, &digest) {
        (None, None) => Some(DEFAULT_TAG.to_string()),
        _ => tag,
    };
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Keeps error messages one readable line for absurdly long input.
fn truncated(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Docker's rule: only these make the first component a host, so that
/// `user/repo` stays a Docker Hub path.
fn is_registry_like(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn validate_registry(host: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::BadRegistry(host.to_string());
    let (hostname, port) = if let Some(inner) = host.strip_prefix('[') {
        // Bracketed IPv6 literal, optionally with a port.
        let (addr, after) = inner.split_once(']').ok_or_else(bad)?;
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(bad());
        }
        match after {
            "" => return Ok(()),
            p => (None, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match host.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    if let Some(h) = hostname {
        if h.is_empty() {
            return Err(bad());
        }
        for label in h.split('.') {
            let b = label.as_bytes();
            let ok = !b.is_empty()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-';
            if !ok {
                return Err(bad());
            }
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn validate_component(c: &str, path: &str) -> Result<(), ReferenceError> {
    if c.is_empty() {
        return Err(ReferenceError::EmptyComponent(path.to_string()));
    }
    if c.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase(path.to_string()));
    }
    let bad = || ReferenceError::BadComponent(c.to_string());
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err(bad());
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

fn validate_tag(t: &str) -> Result<(), ReferenceError> {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    let ok =
        b.len() <= TAG_MAX && word(b[0]) && b.iter().all(|&x| word(x) || x == b'.' || x == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::BadTag(truncated(t)))
    }
}

/// Only sha256: it is what registries use and what the store verifies.
pub fn validate_digest(d: &str) -> Result<(), ReferenceError> {
    let ok = d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::BadDigest(truncated(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:cd2a4fb22903b4f560608062afada755be92b6e0d83a6f409354e6c93d805a28";

    #[test]
    fn table() {
        let long_component = "a".repeat(NAME_MAX + 1);
        let long_tag = format!("alpine:{}", "t".repeat(129));
        let max_tag = format!("alpine:{}", "t".repeat(128));
        let with_digest = |s: &str| format!("{s}@{D}");
        // (input, Ok(normalised Display) or Err(expected variant name))
        let cases: Vec<(String, Result<String, &str>)> = vec![
            (
                "alpine".into(),
                Ok("docker.io/library/alpine:latest".into()),
            ),
            (
                "alpine:3.19".into(),
                Ok("docker.io/library/alpine:3.19".into()),
            ),
            (
                "library/alpine".into(),
                Ok("docker.io/library/alpine:latest".into()),
            ),
            (
                "docker.io/alpine".into(),
                Ok("docker.io/library/alpine:latest".into()),
            ),
            (
                "index.docker.io/alpine".into(),
                Ok("docker.io/library/alpine:latest".into()),
            ),
            (
                "docker.io/library/alpine:edge".into(),
                Ok("docker.io/library/alpine:edge".into()),
            ),
            ("user/repo".into(), Ok("docker.io/user/repo:latest".into())),
            ("user/repo:v1".into(), Ok("docker.io/user/repo:v1".into())),
            ("a/b/c/d".into(), Ok("docker.io/a/b/c/d:latest".into())),
            ("localhost/repo".into(), Ok("localhost/repo:latest".into())),
            (
                "localhost:5000/repo".into(),
                Ok("localhost:5000/repo:latest".into()),
            ),
            (
                "127.0.0.1:5000/library/busybox".into(),
                Ok("127.0.0.1:5000/library/busybox:latest".into()),
            ),
            (
                "127.0.0.1:5000/busybox:1.36".into(),
                Ok("127.0.0.1:5000/busybox:1.36".into()),
            ),
            (
                "quay.io/coreos/etcd:v3.5".into(),
                Ok("quay.io/coreos/etcd:v3.5".into()),
            ),
            (
                "ghcr.io/a-b/c_d.e:x".into(),
                Ok("ghcr.io/a-b/c_d.e:x".into()),
            ),
            (
                "my-registry.example.com:443/x/y:z".into(),
                Ok("my-registry.example.com:443/x/y:z".into()),
            ),
            (
                "[::1]:5000/repo".into(),
                Ok("[::1]:5000/repo:latest".into()),
            ),
            ("[::1]/repo".into(), Ok("[::1]/repo:latest".into())),
            (
                with_digest("busybox"),
                Ok(format!("docker.io/library/busybox@{D}")),
            ),
            (
                with_digest("busybox:1.36"),
                Ok(format!("docker.io/library/busybox:1.36@{D}")),
            ),
            (
                with_digest("127.0.0.1:5000/library/busybox"),
                Ok(format!("127.0.0.1:5000/library/busybox@{D}")),
            ),
            (
                "foo__bar".into(),
                Ok("docker.io/library/foo__bar:latest".into()),
            ),
            (
                "foo---bar".into(),
                Ok("docker.io/library/foo---bar:latest".into()),
            ),
            ("foo.bar/baz".into(), Ok("foo.bar/baz:latest".into())),
            ("a1/b2:_tag".into(), Ok("docker.io/a1/b2:_tag".into())),
            (
                "x:UPPER.case-tag_1".into(),
                Ok("docker.io/library/x:UPPER.case-tag_1".into()),
            ),
            (
                max_tag.clone(),
                Ok(format!("docker.io/library/{}", max_tag)),
            ),
            ("".into(), Err("Empty")),
            ("Alpine".into(), Err("Uppercase")),
            ("user/Repo".into(), Err("Uppercase")),
            ("alpine:".into(), Err("EmptyTag")),
            ("127.0.0.1:5000/repo:".into(), Err("EmptyTag")),
            ("alpine@".into(), Err("EmptyDigest")),
            ("alpine@sha256:abc".into(), Err("BadDigest")),
            (
                format!("alpine@{}", D.to_uppercase().replace("SHA256", "sha256")),
                Err("BadDigest"),
            ),
            (format!("alpine@md5:{}", &D[7..]), Err("BadDigest")),
            (format!("alpine@{D}@{D}"), Err("BadDigest")),
            ("alpine:-tag".into(), Err("BadTag")),
            ("alpine:.tag".into(), Err("BadTag")),
            ("alpine:ta g".into(), Err("Whitespace")),
            ("alpine:ta/g".into(), Err("BadRegistry")),
            (long_tag, Err("BadTag")),
            (long_component, Err("NameTooLong")),
            ("alpine:tag:more".into(), Err("BadComponent")),
            ("user//repo".into(), Err("EmptyComponent")),
            ("/repo".into(), Err("EmptyComponent")),
            ("repo/".into(), Err("EmptyComponent")),
            ("-repo".into(), Err("BadComponent")),
            ("repo-".into(), Err("BadComponent")),
            ("re..po".into(), Err("BadComponent")),
            ("re___po".into(), Err("BadComponent")),
            ("re._po".into(), Err("BadComponent")),
            ("repo!".into(), Err("BadComponent")),
            ("127.0.0.1:5000/".into(), Err("NoRepository")),
            (":tag".into(), Err("NoRepository")),
            ("host:port/repo".into(), Err("BadRegistry")),
            ("-bad.host/repo".into(), Err("BadRegistry")),
            ("bad_host.io/repo".into(), Err("BadRegistry")),
            ("[::1/repo".into(), Err("BadRegistry")),
            ("héllo".into(), Err("BadComponent")),
            (" alpine".into(), Err("Whitespace")),
            ("alpine\n".into(), Err("Whitespace")),
        ];
        assert!(cases.len() >= 40);
        for (input, want) in &cases {
            let got = parse(input);
            match (want, &got) {
                (Ok(s), Ok(r)) => assert_eq!(&r.to_string(), s, "input {input:?}"),
                (Err(variant), Err(e)) => {
                    let name = format!("{e:?}");
                    assert!(
                        name.starts_with(variant),
                        "input {input:?}: got {name}, want {variant}"
                    );
                    let msg = e.to_string();
                    assert!(
                        !msg.contains('\n') && msg.starts_with("invalid reference format"),
                        "{msg}"
                    );
                }
                _ => panic!("input {input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn fields_and_host() {
        let r = parse("alpine").unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/alpine");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.digest, None);
        assert_eq!(r.registry_host(), "registry-1.docker.io");
        assert_eq!(r.manifest_reference(), "latest");

        let r = parse(&format!("127.0.0.1:5000/library/busybox:1@{D}")).unwrap();
        assert_eq!(r.registry_host(), "127.0.0.1:5000");
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.name(), "127.0.0.1:5000/library/busybox");
        // Display output parses back to itself.
        assert_eq!(parse(&r.to_string()).unwrap(), r);
    }
}
