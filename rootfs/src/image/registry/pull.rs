//! `docker pull`: the manifest, the config and every missing layer into a
//! [`BlobSink`], layers three at a time, with progress lines on a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::Registry;
use super::{RegistryError, RegistryOptions};
use crate::image::reference::Reference;

/// Docker's default of concurrent layer downloads.
const PARALLEL_LAYERS: usize = 3;
/// A dropped connection is retried (resuming) this many times in all.
const ATTEMPTS: u32 = 3;
const RETRY_DELAY: Duration = Duration::from_millis(250);
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// Where pulled blobs go: the image store, or anything else keyed by digest.
/// Shared by the download threads, hence `Sync`.
pub trait BlobSink: Sync {
    fn has_blob(&self, digest: &str) -> bool;

    /// Opens (or reopens) the partial data for `digest` and calls
    /// `fill(offset, writer)` with the number of bytes already there; the
    /// writer appends. When `fill` succeeds the sink verifies the digest of
    /// the whole blob and commits it atomically; when `fill` fails it keeps
    /// the partial data, so that the next pull resumes from it.
    fn write_blob(
        &self,
        digest: &str,
        fill: &mut dyn FnMut(u64, &mut dyn Write) -> Result<(), RegistryError>,
    ) -> Result<(), RegistryError>;

    /// The partial data of `digest` proved corrupt (wrong digest or size):
    /// drop it so that the next pull starts over.
    fn discard_partial(&self, _digest: &str) {}
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledLayer {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    /// False when the sink already had it.
    pub fetched: bool,
}

#[derive(Debug, Clone)]
pub struct PullResult {
    /// The image manifest (stored in the sink as a blob).
    pub manifest_digest: String,
    pub manifest_media_type: String,
    /// The list or index it was chosen from, if any (not stored).
    pub index_digest: Option<String>,
    pub config_digest: String,
    /// In manifest order, lowest layer first.
    pub layers: Vec<PulledLayer>,
}

/// Pulls `reference` into `sink`: config and layers first, the manifest
/// last, so that a manifest in the sink means its blobs are all there.
/// Every thread started here is joined before this returns.
pub fn pull(
    reference: &Reference,
    opts: &RegistryOptions,
    sink: &dyn BlobSink,
) -> Result<PullResult, RegistryError> {
    let mut registry = Registry::new(reference, opts)?;
    let fetched = registry.fetch_manifest()?;
    let progress = Progress::new(opts.progress && std::io::stderr().is_terminal());
    progress.message(&format!(
        "{}: Pulling from {}",
        reference
            .tag
            .as_deref()
            .or(reference.digest.as_deref())
            .unwrap_or("latest"),
        reference.repository
    ));

    let config = fetched.manifest.config();
    // parse_manifest checked every digest: they become file names.
    let config_digest = config.digest().to_string();
    if !sink.has_blob(&config_digest) {
        fetch_into(
            &registry,
            sink,
            &config_digest,
            config.size(),
            &mut |_| {},
            None,
        )?;
    }

    let mut layers = Vec::new();
    for d in fetched.manifest.layers() {
        layers.push(PulledLayer {
            digest: d.digest().to_string(),
            size: d.size(),
            media_type: d.media_type().to_string(),
            fetched: false,
        });
    }
    let fetched_set = fetch_layers(&registry, sink, &layers, &progress)?;
    for l in &mut layers {
        l.fetched = fetched_set.contains(&l.digest);
    }

    if !sink.has_blob(&fetched.digest) {
        let bytes = &fetched.bytes;
        sink.write_blob(&fetched.digest, &mut |offset, w| {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            w.write_all(&bytes[start..])
                .map_err(|source| RegistryError::Write {
                    what: format!("manifest {}", fetched.digest),
                    source,
                })
        })?;
    }
    progress.message(&format!(
        "Digest: {}",
        fetched.index.as_ref().map_or(&fetched.digest, |(d, _)| d)
    ));
    progress.message(&format!("Status: Downloaded image for {reference}"));
    Ok(PullResult {
        manifest_digest: fetched.digest,
        manifest_media_type: fetched.media_type,
        index_digest: fetched.index.map(|(d, _)| d),
        config_digest,
        layers,
    })
}

/// Downloads the missing layers, at most [`PARALLEL_LAYERS`] at once; the
/// first failure cancels the others (their partial data stays for the next
/// pull). Returns the digests actually downloaded.
fn fetch_layers(
    registry: &Registry,
    sink: &dyn BlobSink,
    layers: &[PulledLayer],
    progress: &Progress,
) -> Result<Vec<String>, RegistryError> {
    // One download per distinct digest: two writers on one partial file
    // would corrupt it.
    let mut work: Vec<(String, u64, usize)> = Vec::new();
    for l in layers {
        if work.iter().any(|(d, _, _)| d == &l.digest) {
            continue;
        }
        let line = progress.add_line(&l.digest);
        if sink.has_blob(&l.digest) {
            progress.set(line, "Already exists".into(), true);
        } else {
            progress.set(line, "Waiting".into(), true);
            work.push((l.digest.clone(), l.size, line));
        }
    }
    if work.is_empty() {
        return Ok(Vec::new());
    }

    let next = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, Result<(), RegistryError>)>> = Mutex::new(Vec::new());
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some((digest, size, line)) = work.get(i) else {
            break;
        };
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        let (size, line) = (*size, *line);
        progress.set(line, "Downloading".into(), true);
        let mut report = |done: u64| {
            progress.set(
                line,
                format!("Downloading {}/{}", human(done), human(size)),
                false,
            );
        };
        let r = fetch_into(registry, sink, digest, size, &mut report, Some(&cancel));
        match &r {
            Ok(()) => progress.set(line, "Pull complete".into(), true),
            Err(RegistryError::Cancelled(_)) => progress.set(line, "Cancelled".into(), true),
            Err(_) => {
                cancel.store(true, Ordering::SeqCst);
                progress.set(line, "Failed".into(), true);
            }
        }
        if let Ok(mut v) = results.lock() {
            v.push((i, r));
        }
    };

    let mut panicked = false;
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        // The calling thread is one of the workers.
        for n in 1..PARALLEL_LAYERS.min(work.len()) {
            let spawned = std::thread::Builder::new()
                .name(format!("pull-layer-{n}"))
                .spawn_scoped(s, worker);
            match spawned {
                Ok(h) => handles.push(h),
                // Fewer threads only means a slower pull.
                Err(_) => break,
            }
        }
        worker();
        for h in handles {
            panicked |= h.join().is_err();
        }
    });
    progress.finish();

    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut first_cancelled = None;
    let mut done = Vec::new();
    for (i, r) in results {
        match r {
            Ok(()) => done.push(work[i].0.clone()),
            Err(e @ RegistryError::Cancelled(_)) => {
                first_cancelled.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    if panicked {
        return Err(RegistryError::ThreadPanicked(
            registry.reference().to_string(),
        ));
    }
    if let Some(e) = first_cancelled {
        return Err(e);
    }
    if done.len() < work.len() {
        // Only reachable if a worker stopped without a result.
        return Err(RegistryError::ThreadPanicked(
            registry.reference().to_string(),
        ));
    }
    Ok(done)
}

/// One blob into the sink, resuming after dropped connections.
fn fetch_into(
    registry: &Registry,
    sink: &dyn BlobSink,
    digest: &str,
    size: u64,
    progress: &mut dyn FnMut(u64),
    cancel: Option<&AtomicBool>,
) -> Result<(), RegistryError> {
    let mut attempt = 1;
    loop {
        let r = sink.write_blob(digest, &mut |offset, w| {
            registry.fetch_blob_with(digest, Some(size), offset, w, progress, cancel)
        });
        match r {
            Err(RegistryError::Interrupted { .. })
                if attempt < ATTEMPTS && !cancel.is_some_and(|c| c.load(Ordering::SeqCst)) =>
            {
                std::thread::sleep(RETRY_DELAY * attempt);
                attempt += 1;
            }
            Err(
                e @ (RegistryError::DigestMismatch { .. } | RegistryError::SizeMismatch { .. }),
            ) => {
                sink.discard_partial(digest);
                return Err(e);
            }
            other => return other,
        }
    }
}

/// `docker pull`'s display: a line per layer, redrawn in place.
struct Progress {
    enabled: bool,
    state: Mutex<ProgressState>,
}

struct ProgressState {
    lines: Vec<(String, String)>,
    drawn: usize,
    last: Option<Instant>,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Progress {
            enabled,
            state: Mutex::new(ProgressState {
                lines: Vec::new(),
                drawn: 0,
                last: None,
            }),
        }
    }

    fn message(&self, text: &str) {
        if !self.enabled {
            return;
        }
        // Under the lock, so a message never lands inside a redraw.
        if let Ok(mut s) = self.state.lock() {
            let _ = writeln!(std::io::stderr(), "{text}");
            // Lines drawn before the message scroll away with it.
            s.drawn = 0;
            s.lines.clear();
        }
    }

    fn add_line(&self, digest: &str) -> usize {
        let short: String = digest
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        match self.state.lock() {
            Ok(mut s) => {
                s.lines.push((short, String::new()));
                s.lines.len() - 1
            }
            Err(_) => 0,
        }
    }

    fn set(&self, line: usize, status: String, force: bool) {
        if !self.enabled {
            return;
        }
        let Ok(mut s) = self.state.lock() else { return };
        if let Some(l) = s.lines.get_mut(line) {
            l.1 = status;
        }
        let due = !matches!(s.last, Some(t) if t.elapsed() < REDRAW_EVERY);
        if force || due {
            s.last = Some(Instant::now());
            redraw(&mut s);
        }
    }

    fn finish(&self) {
        if !self.enabled {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            redraw(&mut s);
        }
    }
}

fn redraw(s: &mut ProgressState) {
    let mut out = String::new();
    if s.drawn > 0 {
        out.push_str(&format!("\x1b[{}A", s.drawn));
    }
    for (short, status) in &s.lines {
        out.push_str(&format!("\r\x1b[2K{short}: {status}\n"));
    }
    s.drawn = s.lines.len();
    // A terminal that went away is no reason to fail the pull.
    let _ = std::io::stderr().write_all(out.as_bytes());
}

/// Decimal units, as Docker prints them.
fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn sizes() {
        assert_eq!(human(999), "999B");
        assert_eq!(human(1_200), "1.2kB");
        assert_eq!(human(3_400_000), "3.4MB");
        assert_eq!(human(5_000_000_000), "5.0GB");
    }
}
