//! Shared by the registry_* tests (included with `#[path]`): a directory
//! blob sink that verifies digests, a scriptable fake registry on loopback,
//! and docker-registry instances of our own in temporary directories.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minirun_rootfs::image::registry::{BlobSink, RegistryError};
use sha2::{Digest, Sha256};

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

// ---------------------------------------------------------------- sink

/// blobs/<hex> committed, blobs/<hex>.partial while downloading.
pub struct DirSink {
    pub dir: tempfile::TempDir,
    pub commits: Mutex<Vec<String>>,
}

impl DirSink {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        DirSink {
            dir,
            commits: Mutex::new(Vec::new()),
        }
    }
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .path()
            .join("blobs")
            .join(digest.trim_start_matches("sha256:"))
    }
    pub fn partial_path(&self, digest: &str) -> PathBuf {
        let mut p = self.blob_path(digest).into_os_string();
        p.push(".partial");
        PathBuf::from(p)
    }
    pub fn read(&self, digest: &str) -> Vec<u8> {
        std::fs::read(self.blob_path(digest)).unwrap()
    }
    pub fn committed(&self) -> Vec<String> {
        self.commits.lock().unwrap().clone()
    }
    /// Files in blobs/ (committed and partial).
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path().join("blobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Default for DirSink {
    fn default() -> Self {
        Self::new()
    }
}

impl BlobSink for DirSink {
    fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).exists()
    }

    fn write_blob(
        &self,
        digest: &str,
        fill: &mut dyn FnMut(u64, &mut dyn Write) -> Result<(), RegistryError>,
    ) -> Result<(), RegistryError> {
        let partial = self.partial_path(digest);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial)
            .unwrap();
        let offset = f.metadata().unwrap().len();
        fill(offset, &mut f)?;
        drop(f);
        let actual = sha256(&std::fs::read(&partial).unwrap());
        if actual != digest {
            std::fs::remove_file(&partial).unwrap();
            return Err(RegistryError::DigestMismatch {
                what: format!("stored blob {digest}"),
                expected: digest.to_string(),
                actual,
            });
        }
        std::fs::rename(&partial, self.blob_path(digest)).unwrap();
        self.commits.lock().unwrap().push(digest.to_string());
        Ok(())
    }

    fn discard_partial(&self, digest: &str) {
        let _ = std::fs::remove_file(self.partial_path(digest));
    }
}

// ---------------------------------------------------------------- fake server

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
    pub fn query(&self, key: &str) -> Option<String> {
        let q = self.path.split_once('?')?.1;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then(|| percent_decode(v))
        })
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Close the connection after this many body bytes (Content-Length
    /// still announces the whole body).
    pub cut_after: Option<usize>,
    /// Pause before answering (to observe concurrency).
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            cut_after: None,
            delay: None,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
    pub fn json_error(status: u16, code: &str, message: &str) -> Self {
        Reply::new(
            status,
            format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#),
        )
        .header("Content-Type", "application/json")
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

pub struct FakeServer {
    pub addr: String,
    pub log: Arc<Mutex<Vec<Request>>>,
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let (log, stop, in_flight, max_in_flight) = (
                log.clone(),
                stop.clone(),
                in_flight.clone(),
                max_in_flight.clone(),
            );
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (handler, log, in_flight, max_in_flight) = (
                        handler.clone(),
                        log.clone(),
                        in_flight.clone(),
                        max_in_flight.clone(),
                    );
                    std::thread::spawn(move || {
                        serve(conn, &*handler, &log, &in_flight, &max_in_flight);
                    });
                }
            });
        }
        FakeServer {
            addr,
            log,
            in_flight,
            max_in_flight,
            stop,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(
    conn: TcpStream,
    handler: &Handler,
    log: &Mutex<Vec<Request>>,
    in_flight: &AtomicUsize,
    max_in_flight: &AtomicUsize,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let req = Request {
        method,
        path,
        headers,
    };
    // Request bodies (pushes) are not used against the fake server.
    log.lock().unwrap().push(req.clone());
    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    max_in_flight.fetch_max(now, Ordering::SeqCst);
    let reply = handler(&req);
    if let Some(d) = reply.delay {
        std::thread::sleep(d);
    }
    let mut conn = conn;
    let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    let body: &[u8] = if req.method == "HEAD" {
        &[]
    } else {
        &reply.body
    };
    let _ = conn.write_all(head.as_bytes());
    match reply.cut_after {
        Some(n) => {
            let _ = conn.write_all(&body[..n.min(body.len())]);
            let _ = conn.flush();
            let _ = conn.shutdown(Shutdown::Both);
        }
        None => {
            let _ = conn.write_all(body);
        }
    }
    in_flight.fetch_sub(1, Ordering::SeqCst);
}

/// Answers a GET for a blob honouring `Range: bytes=N-` with 206.
pub fn blob_reply(req: &Request, data: &[u8]) -> Reply {
    if let Some(r) = req.header("Range") {
        if let Some(start) = r
            .strip_prefix("bytes=")
            .and_then(|s| s.strip_suffix('-'))
            .and_then(|s| s.parse::<usize>().ok())
        {
            if start >= data.len() {
                return Reply::new(416, "");
            }
            return Reply::new(206, data[start..].to_vec())
                .header("Content-Type", "application/octet-stream")
                .header(
                    "Content-Range",
                    &format!("bytes {}-{}/{}", start, data.len() - 1, data.len()),
                );
        }
    }
    Reply::new(200, data.to_vec()).header("Content-Type", "application/octet-stream")
}

// ---------------------------------------------------------------- images

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A synthetic image: a config and some layers of arbitrary bytes.
#[derive(Clone)]
pub struct TestImage {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
}

impl TestImage {
    pub fn new(arch: &str, layers: Vec<Vec<u8>>) -> Self {
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        )
        .into_bytes();
        let layer_descs: Vec<String> = layers
            .iter()
            .map(|l| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}"#,
                    sha256(l),
                    l.len()
                )
            })
            .collect();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
            sha256(&config),
            config.len(),
            layer_descs.join(",")
        )
        .into_bytes();
        TestImage {
            config,
            layers,
            manifest,
        }
    }
    pub fn manifest_digest(&self) -> String {
        sha256(&self.manifest)
    }
    pub fn blobs(&self) -> HashMap<String, Vec<u8>> {
        let mut m = HashMap::new();
        m.insert(sha256(&self.config), self.config.clone());
        for l in &self.layers {
            m.insert(sha256(l), l.clone());
        }
        m
    }
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u8, len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// A fake registry serving one image under `repo` at `tag` (and by digest).
pub fn serve_image(
    repo: &str,
    tag: &str,
    image: &TestImage,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    let blobs = image.blobs();
    let manifest = image.manifest.clone();
    let mdigest = image.manifest_digest();
    let prefix = format!("/v2/{repo}/");
    let tag = tag.to_string();
    move |req: &Request| {
        let path = req.path_only();
        if path == "/v2/" {
            return Reply::new(200, "{}");
        }
        let Some(rest) = path.strip_prefix(&prefix) else {
            return Reply::json_error(404, "NAME_UNKNOWN", "repository name not known to registry");
        };
        if let Some(r) = rest.strip_prefix("manifests/") {
            if r == tag || r == mdigest {
                return Reply::new(200, manifest.clone())
                    .header("Content-Type", OCI_MANIFEST)
                    .header("Docker-Content-Digest", &mdigest);
            }
            return Reply::json_error(404, "MANIFEST_UNKNOWN", "manifest unknown");
        }
        if let Some(d) = rest.strip_prefix("blobs/") {
            if let Some(b) = blobs.get(d) {
                return blob_reply(req, b);
            }
            return Reply::json_error(404, "BLOB_UNKNOWN", "blob unknown");
        }
        if rest.starts_with("tags/list") {
            return Reply::new(200, format!(r#"{{"tags":["{tag}"]}}"#));
        }
        Reply::new(404, "")
    }
}

// ---------------------------------------------------------------- real registries

pub const LOCAL_REGISTRY: &str = "127.0.0.1:5000";

/// The shared registry of ../shared/checks/registry.sh, when it runs.
pub fn local_registry_up() -> bool {
    let up = ureq::get(format!(
        "http://{LOCAL_REGISTRY}/v2/library/busybox/tags/list"
    ))
    .call()
    .map(|r| r.status() == 200)
    .unwrap_or(false);
    if !up {
        eprintln!("SKIP: no registry with library/busybox on {LOCAL_REGISTRY} (run ../shared/checks/registry.sh)");
    }
    up
}

pub fn docker_registry_bin() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/docker-registry");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: /usr/bin/docker-registry not installed");
        None
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A docker-registry of our own, killed (by pid) when dropped.
pub struct OwnRegistry {
    pub addr: String,
    pub dir: tempfile::TempDir,
    child: Child,
    /// Authorization for pushes.
    pub auth: Option<String>,
}

impl OwnRegistry {
    /// `htpasswd`: a line `user:bcrypt-hash` enables Basic auth.
    pub fn start(bin: &Path, htpasswd: Option<&str>) -> Self {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let mut config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            );
            if let Some(h) = htpasswd {
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, format!("{h}\n")).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: minirun-test\n    path: {}\n",
                    path.display()
                ));
            }
            let cfg = dir.path().join("config.yml");
            std::fs::write(&cfg, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new(bin)
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            // From here the guard kills it whatever happens.
            let mut reg = OwnRegistry {
                addr: addr.clone(),
                dir,
                child,
                auth: None,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = reg.child.try_wait() {
                    break;
                }
                if TcpStream::connect(&addr).is_ok() {
                    return reg;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Lost the port race or failed: show why and try another port.
            let log =
                std::fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default();
            eprintln!("docker-registry on {addr} did not come up:\n{log}");
        }
        panic!("docker-registry did not start");
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent()
    }

    pub fn push_blob(&self, repo: &str, data: &[u8]) {
        let agent = Self::agent();
        let digest = sha256(data);
        let mut req = agent.post(format!("http://{}/v2/{repo}/blobs/uploads/", self.addr));
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send_empty().unwrap();
        assert_eq!(resp.status(), 202, "start upload of {digest}");
        let loc = resp
            .headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let loc = if loc.starts_with('/') {
            format!("http://{}{loc}", self.addr)
        } else {
            loc
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let mut req = agent
            .put(format!("{loc}{sep}digest={digest}"))
            .header("Content-Type", "application/octet-stream");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let mut resp = req.send(data).unwrap();
        let status = resp.status();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 201, "finish upload of {digest}: {body}");
    }

    pub fn push_manifest(&self, repo: &str, reference: &str, media_type: &str, data: &[u8]) {
        let agent = Self::agent();
        let mut req = agent
            .put(format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.addr
            ))
            .header("Content-Type", media_type);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let mut resp = req.send(data).unwrap();
        let status = resp.status();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 201, "push manifest {repo}:{reference}: {body}");
    }

    pub fn push_image(&self, repo: &str, tag: &str, image: &TestImage) {
        for data in image.blobs().values() {
            self.push_blob(repo, data);
        }
        self.push_manifest(repo, tag, OCI_MANIFEST, &image.manifest);
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET from the shared registry (for copying busybox into ours).
pub fn local_get(path: &str, accept: &str) -> (Vec<u8>, String) {
    let mut resp = ureq::get(format!("http://{LOCAL_REGISTRY}{path}"))
        .header("Accept", accept)
        .call()
        .unwrap();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    (body, ct)
}

pub fn write_credentials(dir: &Path, host: &str, user: &str, pass: &str) -> PathBuf {
    let path = dir.join("config.json");
    let auth = base64(format!("{user}:{pass}").as_bytes());
    std::fs::write(
        &path,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    path
}

pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}
