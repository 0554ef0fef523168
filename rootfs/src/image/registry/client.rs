//! The HTTP side: one [`Registry`] per reference, with its scheme, its
//! credentials, the chosen platform and the tokens it has been given.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_spec::image::ImageManifest;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use ureq::http::Response;
use ureq::Body;

use super::auth::{self, Challenge, Credentials};
use super::manifest::{
    choose_platform, classify, parse_manifest, Kind, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST,
};
use super::platform::PlatformSpec;
use super::{RegistryError, RegistryOptions};
use crate::image::reference::{validate_digest, Reference};

/// Manifests are small; a bigger answer is a broken or hostile registry.
const MANIFEST_LIMIT: u64 = 8 << 20;
/// Error bodies are only read for their message.
const ERROR_BODY_LIMIT: u64 = 64 << 10;
const MAX_REDIRECTS: usize = 10;

#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// sha256 of `bytes`, the image manifest itself (not the index).
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub manifest: ImageManifest,
    /// The list or index the manifest was chosen from: (digest, bytes).
    pub index: Option<(String, Vec<u8>)>,
}

/// HTTPS by default; plain HTTP for registries listed insecure and, as
/// Docker, for any registry on 127.0.0.0/8 or localhost.
///
/// Clones share the token cache, so parallel layer downloads authenticate once.
#[derive(Debug, Clone)]
pub struct Registry {
    agent: ureq::Agent,
    reference: Reference,
    /// host[:port] requests go to.
    host: String,
    /// scheme://host[:port]
    base: String,
    credentials: Option<Credentials>,
    platform: PlatformSpec,
    scope: String,
    /// scope → Authorization value, for this Registry's lifetime.
    auth_cache: Arc<Mutex<HashMap<String, String>>>,
}

enum Target<'a> {
    Manifest(&'a str),
    Blob(&'a str),
}

impl Registry {
    pub fn new(reference: &Reference, opts: &RegistryOptions) -> Result<Self, RegistryError> {
        let host = reference.registry_host().to_string();
        let scheme = if is_plain_http(&host, &opts.insecure) {
            "http"
        } else {
            "https"
        };
        let credentials = match &opts.credentials {
            Some(path) => auth::load_credentials(path, &reference.registry)?,
            None => None,
        };
        let platform = match &opts.platform {
            Some(p) => PlatformSpec::parse(p)?,
            None => PlatformSpec::host(),
        };
        let config = ureq::Agent::config_builder()
            // Error statuses carry the registry's error codes; we read them.
            .http_status_as_error(false)
            // Redirects are followed by hand so Authorization never leaks
            // to the storage host a registry redirects blobs to.
            .max_redirects(0)
            // Blobs must arrive byte for byte as hashed, never decoded.
            .accept_encoding(ureq::config::AutoHeaderValue::None)
            .user_agent(concat!("minirun/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .build();
        Ok(Registry {
            agent: config.new_agent(),
            reference: reference.clone(),
            base: format!("{scheme}://{host}"),
            host,
            credentials,
            platform,
            scope: format!("repository:{}:pull", reference.repository),
            auth_cache: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    pub fn platform(&self) -> &PlatformSpec {
        &self.platform
    }

    /// GET the manifest by tag or digest; a list or index is resolved to the
    /// wanted platform's manifest, fetched by digest and verified.
    pub fn fetch_manifest(&mut self) -> Result<FetchedManifest, RegistryError> {
        let wanted = self.reference.manifest_reference().to_string();
        let by_digest = self.reference.digest.is_some();
        let RawManifest {
            bytes,
            content_type: header_type,
            header_digest,
        } = match self.get_manifest(&wanted) {
            // distribution answers MANIFEST_UNKNOWN for a missing repository
            // too; its tag list tells the two apart.
            Err(
                e @ (RegistryError::TagNotFound { .. } | RegistryError::ManifestNotFound { .. }),
            ) => {
                return Err(if self.repository_missing() {
                    RegistryError::RepositoryNotFound(self.reference.name())
                } else {
                    e
                });
            }
            r => r?,
        };
        // By tag, the registry's Docker-Content-Digest is still worth
        // checking: it catches a proxy or cache serving other bytes.
        let expected = if by_digest {
            Some(wanted.as_str())
        } else {
            header_digest.as_deref()
        };
        let digest = verify_manifest_digest(&bytes, expected, &self.reference.to_string())?;
        match classify(&bytes, header_type.as_deref(), &self.reference.to_string())? {
            Kind::Manifest(media_type) => {
                let manifest = parse_manifest(&bytes, &digest)?;
                Ok(FetchedManifest {
                    digest,
                    media_type,
                    bytes,
                    manifest,
                    index: None,
                })
            }
            Kind::Index => {
                let entry =
                    choose_platform(&bytes, &digest, &self.platform, &self.reference.to_string())?;
                let RawManifest {
                    bytes: mbytes,
                    content_type: mtype,
                    ..
                } = self.get_manifest(&entry.digest)?;
                let mdigest = verify_manifest_digest(&mbytes, Some(&entry.digest), &entry.digest)?;
                if let Some(size) = entry.size {
                    if size != mbytes.len() as u64 {
                        return Err(RegistryError::SizeMismatch {
                            what: format!("manifest {}", entry.digest),
                            expected: size,
                            actual: mbytes.len() as u64,
                        });
                    }
                }
                match classify(
                    &mbytes,
                    mtype.as_deref().or(entry.media_type.as_deref()),
                    &self.reference.to_string(),
                )? {
                    Kind::Manifest(media_type) => Ok(FetchedManifest {
                        manifest: parse_manifest(&mbytes, &mdigest)?,
                        digest: mdigest,
                        media_type,
                        bytes: mbytes,
                        index: Some((digest, bytes)),
                    }),
                    Kind::Index => Err(RegistryError::UnsupportedManifest {
                        reference: self.reference.to_string(),
                        reason: format!("{} is an index inside an index", entry.digest),
                    }),
                }
            }
        }
    }

    /// Streams a blob into `out`, checking its sha256 as it arrives. With
    /// `offset` > 0, `out` already holds that many bytes: a Range request
    /// asks for the rest; when the registry answers 206 only the length can
    /// be checked here (the prefix is not ours to read), so the digest of
    /// the whole file is the sink's to verify; when it ignores Range (200)
    /// the first `offset` bytes are hashed and skipped, so the whole stream
    /// is still verified.
    pub fn fetch_blob(
        &mut self,
        digest: &str,
        size: Option<u64>,
        offset: u64,
        out: &mut dyn Write,
    ) -> Result<(), RegistryError> {
        self.fetch_blob_with(digest, size, offset, out, &mut |_| {}, None)
    }

    pub(crate) fn fetch_blob_with(
        &self,
        digest: &str,
        size: Option<u64>,
        offset: u64,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
        cancel: Option<&AtomicBool>,
    ) -> Result<(), RegistryError> {
        validate_digest(digest)?;
        if size.is_some_and(|s| offset >= s) {
            // Nothing left to fetch (or a partial file longer than the blob):
            // the sink's digest check on commit decides.
            return Ok(());
        }
        let url = format!(
            "{}/v2/{}/blobs/{}",
            self.base, self.reference.repository, digest
        );
        let mut headers = vec![("Accept", "*/*".to_string())];
        if offset > 0 {
            headers.push(("Range", format!("bytes={offset}-")));
        }
        let resp = self.get(&url, &headers)?;
        let status = resp.status().as_u16();
        let (mut position, mut skip, mut hasher) = match status {
            206 if offset > 0 => {
                let start = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                if start != Some(offset) {
                    return Err(RegistryError::Protocol {
                        url,
                        reason: format!(
                            "asked for bytes from {offset}, got Content-Range {start:?}"
                        ),
                    });
                }
                (offset, 0, None)
            }
            200 => (0, offset, Some(Sha256::new())),
            416 if offset > 0 => return Ok(()),
            _ => return Err(self.status_error(resp, &url, Target::Blob(digest))),
        };
        let mut reader = resp.into_body().into_with_config().limit(u64::MAX).reader();
        let mut buf = vec![0u8; 64 << 10];
        progress(position.max(offset));
        loop {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(RegistryError::Cancelled(digest.to_string()));
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(RegistryError::Interrupted {
                        digest: digest.to_string(),
                        received: position.max(offset),
                        reason: io_reason(&e),
                    })
                }
            };
            let chunk = &buf[..n];
            if let Some(h) = hasher.as_mut() {
                h.update(chunk);
            }
            position += n as u64;
            if let Some(s) = size {
                if position > s {
                    return Err(RegistryError::SizeMismatch {
                        what: format!("blob {digest}"),
                        expected: s,
                        actual: position,
                    });
                }
            }
            // Bytes the registry resent although we already have them.
            let skipped = skip.min(n as u64) as usize;
            skip -= skipped as u64;
            if skipped < n {
                out.write_all(&chunk[skipped..])
                    .map_err(|source| RegistryError::Write {
                        what: format!("blob {digest}"),
                        source,
                    })?;
                progress(position);
            }
        }
        out.flush().map_err(|source| RegistryError::Write {
            what: format!("blob {digest}"),
            source,
        })?;
        if let Some(s) = size {
            if position < s {
                return Err(RegistryError::Interrupted {
                    digest: digest.to_string(),
                    received: position.max(offset),
                    reason: "connection closed early".to_string(),
                });
            }
        }
        if let Some(h) = hasher {
            let actual = format!("sha256:{}", hex::encode(h.finalize()));
            if actual != digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("blob {digest}"),
                    expected: digest.to_string(),
                    actual,
                });
            }
        }
        Ok(())
    }

    fn repository_missing(&self) -> bool {
        let url = format!(
            "{}/v2/{}/tags/list?n=1",
            self.base, self.reference.repository
        );
        match self.get(&url, &[]) {
            Ok(resp) if resp.status().as_u16() == 404 => {
                error_codes(resp).0.iter().any(|c| c == "NAME_UNKNOWN")
            }
            _ => false,
        }
    }

    fn get_manifest(&self, reference: &str) -> Result<RawManifest, RegistryError> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base, self.reference.repository, reference
        );
        let accept = [
            MEDIA_OCI_INDEX,
            MEDIA_DOCKER_LIST,
            MEDIA_OCI_MANIFEST,
            MEDIA_DOCKER_MANIFEST,
        ]
        .join(", ");
        let resp = self.get(&url, &[("Accept", accept)])?;
        if resp.status().as_u16() != 200 {
            return Err(self.status_error(resp, &url, Target::Manifest(reference)));
        }
        let content_type = header_str(&resp, "content-type").map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
        let header_digest =
            header_str(&resp, "docker-content-digest").filter(|d| d.starts_with("sha256:"));
        let bytes = resp
            .into_body()
            .with_config()
            .limit(MANIFEST_LIMIT)
            .read_to_vec()
            .map_err(|e| RegistryError::Protocol {
                url: url.clone(),
                reason: format!("reading manifest: {}", ureq_reason(&e)),
            })?;
        Ok(RawManifest {
            bytes,
            content_type,
            header_digest,
        })
    }

    /// GET with our cached credentials; on 401 answers the challenge once
    /// (Bearer token or Basic) and retries.
    fn get(&self, url: &str, headers: &[(&str, String)]) -> Result<Response<Body>, RegistryError> {
        let mut answered = false;
        loop {
            let cached = self.cached_auth();
            let resp = self.get_following(url, headers, cached.as_deref())?;
            if resp.status().as_u16() != 401 {
                return Ok(resp);
            }
            if answered {
                // A 401 to a token is Docker Hub's answer for a missing or
                // private repository (status_error says so); a 401 to our
                // password means the password is wrong.
                if let (Some(sent), Some(c)) = (&cached, &self.credentials) {
                    if sent.starts_with("Basic ") {
                        return Err(RegistryError::Unauthorized {
                            registry: self.host.clone(),
                            reason: format!(
                                "the registry rejected the password of user {:?}",
                                c.username
                            ),
                        });
                    }
                }
                return Ok(resp);
            }
            let challenge =
                header_str(&resp, "www-authenticate").and_then(|h| auth::parse_challenge(&h));
            let value = match challenge {
                Some(Challenge::Bearer { realm, service, scope }) => {
                    let scope = scope.unwrap_or_else(|| self.scope.clone());
                    format!("Bearer {}", self.fetch_token(&realm, service.as_deref(), &scope)?)
                }
                Some(Challenge::Basic) => match &self.credentials {
                    Some(c) => c.basic_header(),
                    None => {
                        return Err(RegistryError::Unauthorized {
                            registry: self.host.clone(),
                            reason: "the registry requires a user name and password (none in the credentials file)".into(),
                        })
                    }
                },
                None => return Ok(resp),
            };
            if let Ok(mut cache) = self.auth_cache.lock() {
                cache.insert(self.scope.clone(), value);
            }
            answered = true;
        }
    }

    fn cached_auth(&self) -> Option<String> {
        self.auth_cache.lock().ok()?.get(&self.scope).cloned()
    }

    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let url = auth::token_url(realm, service, scope);
        let basic = self.credentials.as_ref().map(Credentials::basic_header);
        let resp = self.get_following(&url, &[], basic.as_deref())?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            let who = match &self.credentials {
                Some(c) => format!("user {:?}", c.username),
                None => "anonymous access".to_string(),
            };
            return Err(RegistryError::Unauthorized {
                registry: self.host.clone(),
                reason: format!(
                    "token server {realm} refused {who} ({status}{})",
                    error_detail(resp)
                ),
            });
        }
        if status != 200 {
            return Err(RegistryError::Http {
                status,
                detail: error_detail(resp),
                url: realm.to_string(),
            });
        }
        let body = resp
            .into_body()
            .with_config()
            .limit(ERROR_BODY_LIMIT * 16)
            .read_to_vec()
            .map_err(|e| RegistryError::Protocol {
                url: realm.to_string(),
                reason: ureq_reason(&e),
            })?;
        auth::token_from_response(&body).ok_or_else(|| RegistryError::Protocol {
            url: realm.to_string(),
            reason: "token server answered without a token".into(),
        })
    }

    /// One GET, following redirects; Authorization goes only to the origin
    /// it was meant for.
    fn get_following(
        &self,
        url: &str,
        headers: &[(&str, String)],
        authorization: Option<&str>,
    ) -> Result<Response<Body>, RegistryError> {
        let origin = origin_of(url);
        let mut current = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.agent.get(&current);
            for (k, v) in headers {
                req = req.header(*k, v.as_str());
            }
            if let Some(a) = authorization {
                if origin_of(&current) == origin {
                    req = req.header("Authorization", a);
                }
            }
            let resp = req.call().map_err(|e| RegistryError::Unreachable {
                registry: host_of(&current),
                reason: ureq_reason(&e),
            })?;
            let status = resp.status().as_u16();
            let location = header_str(&resp, "location");
            match (status, location) {
                (301 | 302 | 303 | 307 | 308, Some(loc)) => {
                    current = resolve_location(&current, &loc)
                }
                _ => return Ok(resp),
            }
        }
        Err(RegistryError::Protocol {
            url: url.to_string(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    fn status_error(&self, resp: Response<Body>, url: &str, target: Target) -> RegistryError {
        let status = resp.status().as_u16();
        let name = self.reference.name();
        let (codes, message) = error_codes(resp);
        let has = |c: &str| codes.iter().any(|x| x == c);
        match status {
            404 => match target {
                _ if has("NAME_UNKNOWN") => RegistryError::RepositoryNotFound(name),
                Target::Manifest(r) if r.starts_with("sha256:") => {
                    RegistryError::ManifestNotFound {
                        digest: r.to_string(),
                        repository: name,
                    }
                }
                Target::Manifest(r) => RegistryError::TagNotFound {
                    tag: r.to_string(),
                    repository: name,
                },
                Target::Blob(d) => RegistryError::BlobNotFound {
                    digest: d.to_string(),
                    repository: name,
                },
            },
            // Docker Hub answers 401 UNAUTHORIZED for repositories that do
            // not exist as well as for private ones.
            401 | 403 => {
                let detail = if message.is_empty() {
                    format!("HTTP {status}")
                } else {
                    message
                };
                RegistryError::Denied {
                    repository: name,
                    reason: format!(
                        "repository does not exist or may require authorization ({detail})"
                    ),
                }
            }
            _ => RegistryError::Http {
                status,
                url: url.to_string(),
                detail: if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                },
            },
        }
    }
}

struct RawManifest {
    bytes: Vec<u8>,
    content_type: Option<String>,
    /// Docker-Content-Digest, when it is a sha256 one.
    header_digest: Option<String>,
}

fn verify_manifest_digest(
    bytes: &[u8],
    expected: Option<&str>,
    what: &str,
) -> Result<String, RegistryError> {
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    if let Some(e) = expected {
        if e != actual {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest {what}"),
                expected: e.to_string(),
                actual,
            });
        }
    }
    Ok(actual)
}

fn header_str(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The registry's `{"errors":[{"code","message"}]}` body, for messages.
fn error_codes(resp: Response<Body>) -> (Vec<String>, String) {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let body = resp
        .into_body()
        .with_config()
        .limit(ERROR_BODY_LIMIT)
        .read_to_vec()
        .unwrap_or_default();
    match serde_json::from_slice::<Errors>(&body) {
        Ok(e) => {
            let message = e
                .errors
                .iter()
                .map(|i| {
                    if i.message.is_empty() {
                        i.code.clone()
                    } else {
                        i.message.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            (
                e.errors.into_iter().map(|i| i.code).collect(),
                one_line(&message),
            )
        }
        Err(_) => (Vec::new(), one_line(&String::from_utf8_lossy(&body))),
    }
}

fn error_detail(resp: Response<Body>) -> String {
    let (_, message) = error_codes(resp);
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset => "connection reset".into(),
        K::ConnectionAborted => "connection aborted".into(),
        K::TimedOut | K::WouldBlock => "timed out".into(),
        K::UnexpectedEof => "connection closed early".into(),
        K::NotConnected => "not connected".into(),
        K::AddrNotAvailable => "address not available".into(),
        _ => match e.get_ref() {
            // ureq wraps its own errors in io::Error while reading bodies.
            Some(inner) => one_line(&inner.to_string()),
            None => one_line(&e.to_string()),
        },
    }
}

fn ureq_reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io_reason(io),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::BodyExceedsLimit(n) => format!("answer larger than {n} bytes"),
        other => one_line(&other.to_string()),
    }
}

/// `bytes 100-199/200` → 100.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// scheme://host[:port] in lowercase, the unit Authorization is scoped to.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    )
}

fn host_of(url: &str) -> String {
    let (_, rest) = url.split_once("://").unwrap_or(("", url));
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_string()
}

fn resolve_location(current: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let origin = origin_of(current);
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = origin.split("://").next().unwrap_or("https");
        return format!("{scheme}://{rest}");
    }
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path_end = current.find(['?', '#']).unwrap_or(current.len());
    let base = &current[..path_end];
    match base.rfind('/') {
        Some(i) if i + 1 > origin.len() => format!("{}{location}", &base[..i + 1]),
        _ => format!("{origin}/{location}"),
    }
}

/// Docker's rule: loopback registries and the listed ones may be plain HTTP.
fn is_plain_http(host: &str, insecure: &[String]) -> bool {
    let bare = strip_port(host);
    if insecure
        .iter()
        .any(|i| i.eq_ignore_ascii_case(host) || i.eq_ignore_ascii_case(bare))
    {
        return true;
    }
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_rule() {
        assert!(is_plain_http("127.0.0.1:5000", &[]));
        assert!(is_plain_http("127.1.2.3", &[]));
        assert!(is_plain_http("localhost:5000", &[]));
        assert!(is_plain_http("[::1]:5000", &[]));
        assert!(!is_plain_http("registry-1.docker.io", &[]));
        assert!(!is_plain_http("10.0.0.1:5000", &[]));
        assert!(is_plain_http("10.0.0.1:5000", &["10.0.0.1:5000".into()]));
        assert!(is_plain_http("myreg:5000", &["myreg".into()]));
    }

    #[test]
    fn locations() {
        assert_eq!(
            resolve_location("http://a:1/v2/x/blobs/s", "http://b/x"),
            "http://b/x"
        );
        assert_eq!(
            resolve_location("http://a:1/v2/x/blobs/s", "/store/1"),
            "http://a:1/store/1"
        );
        assert_eq!(
            resolve_location("https://a/v2/x?y=1", "//c/d"),
            "https://c/d"
        );
        assert_eq!(resolve_location("http://a/v2/x", "y"), "http://a/v2/y");
        assert_eq!(resolve_location("http://a", "y"), "http://a/y");
        assert_eq!(origin_of("HTTP://A:1/x?y"), "http://a:1");
        assert_eq!(origin_of("http://a:1"), "http://a:1");
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes */200"), None);
    }
}
