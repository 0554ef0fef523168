//! Registry authentication: `WWW-Authenticate` challenges, Docker's
//! config.json credentials, and the token server round trip of the Docker
//! token spec (anonymous or with Basic credentials).

use std::collections::HashMap;
use std::path::Path;

use super::RegistryError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    Basic,
}

/// Parses a `WWW-Authenticate` value; a Bearer challenge wins when the
/// server offers several schemes.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut found_basic = false;
    let mut rest = header.trim();
    while !rest.is_empty() {
        let (scheme, after) = match rest.find(|c: char| c.is_whitespace() || c == ',') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (params, remaining) = parse_params(after);
        rest = remaining.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if scheme.eq_ignore_ascii_case("bearer") {
            let realm = params.get("realm").filter(|r| !r.is_empty())?.clone();
            return Some(Challenge::Bearer {
                realm,
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            });
        }
        if scheme.eq_ignore_ascii_case("basic") {
            found_basic = true;
        }
        if scheme.is_empty() {
            break;
        }
    }
    found_basic.then_some(Challenge::Basic)
}

/// `k=v` or `k="quoted, \"escaped\""` pairs separated by commas; stops at
/// the next scheme (a token not followed by '=').
fn parse_params(s: &str) -> (HashMap<String, String>, &str) {
    let mut params = HashMap::new();
    let mut rest = s;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        let Some(eq) = trimmed.find('=') else {
            return (params, trimmed);
        };
        let key = &trimmed[..eq];
        if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == ',' || c == '"') {
            return (params, trimmed);
        }
        let after = &trimmed[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key.to_ascii_lowercase(), value);
        rest = next;
    }
}

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, even in debug logs.
        write!(f, "Credentials({:?}, ***)", self.username)
    }
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            base64_encode(format!("{}:{}", self.username, self.password).as_bytes())
        )
    }
}

/// Looks `registry` (as written in the reference) up in a Docker config.json.
/// Keys may carry a scheme and path (`https://index.docker.io/v1/`), so they
/// are compared by host only.
pub fn load_credentials(path: &Path, registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let err = |reason: String| RegistryError::Credentials {
        path: path.to_path_buf(),
        reason,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        // No file simply means anonymous, as for Docker.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    let Some(auths) = json.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let wanted = host_aliases(registry);
    for (key, entry) in auths {
        if !wanted.iter().any(|w| w == &normalize_key(key)) {
            continue;
        }
        if let Some(auth) = entry
            .get("auth")
            .and_then(|a| a.as_str())
            .filter(|a| !a.is_empty())
        {
            let raw = base64_decode(auth)
                .ok_or_else(|| err(format!("auths.{key}.auth is not base64")))?;
            let text = String::from_utf8(raw)
                .map_err(|_| err(format!("auths.{key}.auth is not UTF-8")))?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| err(format!("auths.{key}.auth is not user:password")))?;
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
        let user = entry.get("username").and_then(|v| v.as_str());
        let pass = entry.get("password").and_then(|v| v.as_str());
        if let (Some(u), Some(p)) = (user, pass) {
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
    }
    Ok(None)
}

fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k).to_ascii_lowercase()
}

fn host_aliases(registry: &str) -> Vec<String> {
    let r = registry.to_ascii_lowercase();
    if matches!(
        r.as_str(),
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        vec![
            "docker.io".into(),
            "index.docker.io".into(),
            "registry-1.docker.io".into(),
        ]
    } else {
        vec![r]
    }
}

/// The token server's answer: Docker's `token` or OAuth's `access_token`.
pub fn token_from_response(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["token", "access_token"]
        .iter()
        .filter_map(|k| json.get(*k).and_then(|t| t.as_str()))
        .find(|t| !t.is_empty())
        .map(str::to_string)
}

pub fn token_url(realm: &str, service: Option<&str>, scope: &str) -> String {
    let mut url = realm.to_string();
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    if let Some(s) = service {
        url.push(sep);
        url.push_str("service=");
        url.push_str(&percent_encode(s));
        sep = '&';
    }
    url.push(sep);
    url.push_str("scope=");
    url.push_str(&percent_encode(scope));
    url
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard alphabet, padding optional (some tools drop it).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x, y", Bearer realm=http://t/tok"#),
            Some(Challenge::Bearer {
                realm: "http://t/tok".into(),
                service: None,
                scope: None
            })
        );
        assert_eq!(
            parse_challenge(r#"Bearer realm="a\"b""#).map(|c| match c {
                Challenge::Bearer { realm, .. } => realm,
                Challenge::Basic => String::new(),
            }),
            Some("a\"b".into())
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge(""), None);
        assert_eq!(parse_challenge("Negotiate"), None);
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_some());
    }

    #[test]
    fn base64_round_trip() {
        for s in ["", "a", "ab", "abc", "user:pa:ss", "\u{e9}\u{e8}"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes());
        }
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert!(base64_decode("!!").is_none());
    }

    #[test]
    fn token_urls() {
        assert_eq!(
            token_url("http://h/token", Some("reg svc"), "repository:a/b:pull"),
            "http://h/token?service=reg%20svc&scope=repository%3Aa%2Fb%3Apull"
        );
        assert_eq!(
            token_url("http://h/t?x=1", None, "s"),
            "http://h/t?x=1&scope=s"
        );
        assert_eq!(
            token_from_response(br#"{"access_token":"x"}"#).as_deref(),
            Some("x")
        );
        assert_eq!(
            token_from_response(br#"{"token":"","access_token":"y"}"#).as_deref(),
            Some("y")
        );
        assert_eq!(token_from_response(b"nope"), None);
    }

    #[test]
    fn credentials_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"127.0.0.1:5001":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let c = load_credentials(&path, "docker.io").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("user", "pass"));
        let c = load_credentials(&path, "127.0.0.1:5001").unwrap().unwrap();
        assert_eq!(c.username, "u");
        assert!(load_credentials(&path, "quay.io").unwrap().is_none());
        assert!(load_credentials(&dir.path().join("none.json"), "x")
            .unwrap()
            .is_none());
        std::fs::write(&path, "{").unwrap();
        assert!(load_credentials(&path, "x").is_err());
    }
}
