//! Authentication: Basic against a real docker-registry with an htpasswd
//! file, the bearer token flow against a fake registry + token server, and
//! blob redirects to a storage host that must never see our Authorization.

#[path = "registry_support.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use minirun_rootfs::image::reference::parse;
use minirun_rootfs::image::registry::{pull, RegistryError, RegistryOptions};
use support::*;

/// bcrypt (cost 5) of "s3cret", made with Python's crypt module.
const HTPASSWD: &str = "alice:$2b$05$.9kEWdVdLm1i59eKlc2av.sSIvoNISQg3M5QoOp1O/6izxu3QC6uS";

fn creds(path: std::path::PathBuf) -> RegistryOptions {
    RegistryOptions {
        credentials: Some(path),
        ..Default::default()
    }
}

#[test]
fn basic_auth_with_htpasswd_registry() {
    let Some(bin) = docker_registry_bin() else {
        return;
    };
    let mut reg = OwnRegistry::start(&bin, Some(HTPASSWD));
    reg.auth = Some(format!("Basic {}", base64(b"alice:s3cret")));
    let image = TestImage::new("amd64", vec![bytes(1, 20_000), bytes(2, 7_000)]);
    reg.push_image("team/app", "v1", &image);
    let r = parse(&format!("{}/team/app:v1", reg.addr)).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let sink = DirSink::new();
    let ok = creds(write_credentials(dir.path(), &reg.addr, "alice", "s3cret"));
    let res = pull(&r, &ok, &sink).unwrap();
    assert_eq!(res.manifest_digest, image.manifest_digest());
    for (d, data) in image.blobs() {
        assert_eq!(sink.read(&d), data);
    }

    // Credentials keyed with a scheme, as `docker login` sometimes writes them.
    let dir2 = tempfile::tempdir().unwrap();
    let url_key = creds(write_credentials(
        dir2.path(),
        &format!("http://{}", reg.addr),
        "alice",
        "s3cret",
    ));
    pull(&r, &url_key, &DirSink::new()).unwrap();

    let err = pull(&r, &RegistryOptions::default(), &DirSink::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "authentication to {} failed: the registry requires a user name and password (none in the credentials file)",
            reg.addr
        )
    );

    let bad = creds(write_credentials(dir.path(), &reg.addr, "alice", "wrong"));
    let sink = DirSink::new();
    let err = pull(&r, &bad, &sink).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "authentication to {} failed: the registry rejected the password of user \"alice\"",
            reg.addr
        )
    );
    assert!(sink.files().is_empty());
}

struct BearerSetup {
    registry: FakeServer,
    tokens: FakeServer,
    storage: FakeServer,
    token_calls: Arc<AtomicUsize>,
    image: TestImage,
}

/// A registry that wants `Bearer good-token`, its token server (which wants
/// bob:pw when `need_login`), and the storage its blob URLs redirect to.
fn bearer_setup(need_login: bool, token_key: &'static str) -> BearerSetup {
    let image = TestImage::new(
        "amd64",
        vec![bytes(3, 40_000), bytes(4, 1_000), bytes(5, 9_000)],
    );
    let blobs = image.blobs();
    let storage = FakeServer::start(move |req| {
        let d = req.path_only().trim_start_matches("/storage/");
        match blobs.get(d) {
            Some(b) => blob_reply(req, b),
            None => Reply::new(404, ""),
        }
    });
    let token_calls = Arc::new(AtomicUsize::new(0));
    let calls = token_calls.clone();
    let tokens = FakeServer::start(move |req| {
        calls.fetch_add(1, Ordering::SeqCst);
        if req.path_only() != "/token"
            || req.query("service").as_deref() != Some("fake-registry")
            || req.query("scope").as_deref() != Some("repository:library/app:pull")
        {
            return Reply::new(400, "bad token request");
        }
        if need_login
            && req.header("Authorization") != Some(&format!("Basic {}", base64(b"bob:pw")))
        {
            return Reply::json_error(401, "UNAUTHORIZED", "bad credentials");
        }
        Reply::new(
            200,
            format!(r#"{{"{token_key}":"good-token","expires_in":300}}"#),
        )
    });
    let realm = format!("http://{}/token", tokens.addr);
    let storage_addr = storage.addr.clone();
    let serve = serve_image("library/app", "latest", &image);
    let registry = FakeServer::start(move |req| {
        if req.header("Authorization") != Some("Bearer good-token") {
            return Reply::json_error(401, "UNAUTHORIZED", "authentication required").header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="fake-registry",scope="repository:library/app:pull""#),
            );
        }
        if let Some(d) = req.path_only().strip_prefix("/v2/library/app/blobs/") {
            return Reply::new(307, "")
                .header("Location", &format!("http://{storage_addr}/storage/{d}"));
        }
        serve(req)
    });
    BearerSetup {
        registry,
        tokens,
        storage,
        token_calls,
        image,
    }
}

#[test]
fn anonymous_bearer_token_and_redirects() {
    for key in ["token", "access_token"] {
        let s = bearer_setup(false, key);
        let r = parse(&format!("{}/library/app", s.registry.addr)).unwrap();
        let sink = DirSink::new();
        let res = pull(&r, &RegistryOptions::default(), &sink).unwrap();
        assert_eq!(res.manifest_digest, s.image.manifest_digest());
        for (d, data) in s.image.blobs() {
            assert_eq!(sink.read(&d), data);
        }
        // One token for the whole pull, parallel layers included.
        assert_eq!(s.token_calls.load(Ordering::SeqCst), 1);
        assert!(s.tokens.requests()[0].header("Authorization").is_none());
        // Every blob came from storage, none with our token.
        let storage = s.storage.requests();
        assert_eq!(storage.len(), s.image.blobs().len());
        assert!(storage.iter().all(|q| q.header("Authorization").is_none()));
        let authed = s
            .registry
            .requests()
            .iter()
            .filter(|q| q.header("Authorization").is_some())
            .count();
        assert!(authed > s.image.blobs().len());
    }
}

#[test]
fn bearer_token_with_credentials() {
    let s = bearer_setup(true, "token");
    let r = parse(&format!("{}/library/app", s.registry.addr)).unwrap();

    let err = pull(&r, &RegistryOptions::default(), &DirSink::new()).unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "authentication to {} failed: token server http://{}/token refused anonymous access (401: bad credentials)",
            s.registry.addr, s.tokens.addr
        )
    );

    let dir = tempfile::tempdir().unwrap();
    let wrong = creds(write_credentials(
        dir.path(),
        &s.registry.addr,
        "bob",
        "nope",
    ));
    let err = pull(&r, &wrong, &DirSink::new()).unwrap_err();
    assert!(err.to_string().contains("refused user \"bob\""), "{err}");

    let ok = creds(write_credentials(dir.path(), &s.registry.addr, "bob", "pw"));
    let res = pull(&r, &ok, &DirSink::new()).unwrap();
    assert_eq!(res.manifest_digest, s.image.manifest_digest());
}

#[test]
fn token_that_grants_nothing_is_access_denied() {
    // Docker Hub's behaviour for private or missing repositories: a token
    // is issued, then the registry still answers 401.
    let tokens = FakeServer::start(|_| Reply::new(200, r#"{"token":"useless"}"#));
    let realm = format!("http://{}/token", tokens.addr);
    let registry = FakeServer::start(move |_| {
        Reply::json_error(401, "UNAUTHORIZED", "authentication required").header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="{realm}",service="x""#),
        )
    });
    let r = parse(&format!("{}/library/private", registry.addr)).unwrap();
    let err = pull(&r, &RegistryOptions::default(), &DirSink::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pull access denied for {}/library/private: repository does not exist or may require authorization (authentication required)",
            registry.addr
        )
    );
    // The scope we asked for when the challenge had none.
    assert_eq!(
        tokens.requests()[0].query("scope").as_deref(),
        Some("repository:library/private:pull")
    );
}
