//! `pull`, `images`, `load`, `import`, `rmi`, `image inspect`, `image prune`:
//! the local image store, fed from a registry or from files.

use std::path::PathBuf;

use clap::Subcommand;
use minirun_rootfs::image::reference;
use minirun_rootfs::image::registry::{self, RegistryOptions};
use minirun_rootfs::image::store::ImageStore;

use super::FrontCli;

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// os/arch[/variant], e.g. linux/arm64 (default: this host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// A registry (host or host:port) to reach over plain HTTP; registries
    /// on 127.0.0.0/8 and localhost always are, as with Docker.
    #[arg(long = "insecure-registry")]
    pub insecure: Vec<String>,
    /// Docker's config.json with credentials (default: ~/.docker/config.json if present).
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    #[arg(long, short)]
    pub quiet: bool,
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// An image as JSON.
    Inspect { name: String },
    /// Remove images no name refers to, and blobs and layers nothing uses.
    Prune,
    /// List images.
    Ls {
        #[arg(long, short)]
        quiet: bool,
    },
}

/// `busybox` names docker.io/library/busybox:latest in the store; an id or
/// an id prefix is tried as given when no image has the normalised name.
fn find(store: &ImageStore, name: &str) -> Result<minirun_rootfs::image::store::ImageRecord, String> {
    if let Ok(reference) = reference::parse(name) {
        if let Ok(image) = store.resolve(&reference.to_string()) {
            return Ok(image);
        }
    }
    store.resolve(name).map_err(|e| e.to_string())
}

fn normalised(name: &str) -> String {
    reference::parse(name).map(|r| r.to_string()).unwrap_or_else(|_| name.to_string())
}

pub fn store(cli: &FrontCli) -> Result<ImageStore, String> {
    ImageStore::open(&cli.image_root).map_err(|e| e.to_string())
}

/// Pulls `args.name` into the store and records it under its full name.
pub fn pull(cli: &FrontCli, args: &PullArgs) -> Result<String, String> {
    let reference = reference::parse(&args.name).map_err(|e| e.to_string())?;
    let store = store(cli)?;
    let credentials = args.credentials.clone().or_else(|| {
        let home = std::env::var_os("HOME")?;
        let path = PathBuf::from(home).join(".docker/config.json");
        path.exists().then_some(path)
    });
    let opts = RegistryOptions { insecure: args.insecure.clone(), credentials, platform: args.platform.clone(), progress: !args.quiet };
    // Held until the image is recorded, so a concurrent prune keeps our blobs.
    let _lease = store.lease().map_err(|e| e.to_string())?;
    let pulled = registry::pull(&reference, &opts, &store).map_err(|e| e.to_string())?;
    let image = store.add_image(&reference.to_string(), &pulled.manifest_digest).map_err(|e| e.to_string())?;
    if !args.quiet {
        eprintln!("Digest: {}", pulled.manifest_digest);
        eprintln!("Status: Downloaded newer image for {reference}");
    }
    Ok(image.id)
}

pub fn images(cli: &FrontCli, quiet: bool) -> Result<(), String> {
    let store = store(cli)?;
    let mut list = store.list().map_err(|e| e.to_string())?;
    list.sort_by(|a, b| b.created.cmp(&a.created));
    if !quiet {
        println!("{:<50} {:<20} {:<14} SIZE", "REPOSITORY", "TAG", "IMAGE ID");
    }
    for image in list {
        let short = image.id.trim_start_matches("sha256:").chars().take(12).collect::<String>();
        if quiet {
            println!("{short}");
            continue;
        }
        let names = if image.names.is_empty() { vec!["<none>:<none>".to_string()] } else { image.names.clone() };
        for name in names {
            let (repo, tag) = match name.rsplit_once('@') {
                Some((repo, _digest)) => (repo.to_string(), "<none>".to_string()),
                None => match name.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                    Some((r, t)) => (r.to_string(), t.to_string()),
                    None => (name.clone(), "<none>".to_string()),
                },
            };
            println!("{repo:<50} {tag:<20} {short:<14} {:.1}MB", image.size as f64 / 1e6);
        }
    }
    Ok(())
}

pub fn inspect(cli: &FrontCli, name: &str) -> Result<(), String> {
    let store = store(cli)?;
    let image = find(&store, name)?;
    let layers = store.layer_dirs(&image).map_err(|e| e.to_string())?;
    let json = serde_json::json!({
        "Id": image.id,
        "RepoTags": image.names,
        "ManifestDigest": image.manifest_digest,
        "Created": image.created,
        "Size": image.size,
        "Config": image.config,
        "Layers": layers,
    });
    println!("{}", serde_json::to_string_pretty(&json).expect("JSON values serialise"));
    Ok(())
}

/// Ids of the images that containers (running or not) were made from:
/// `rmi` and `prune` keep them, as Docker does.
fn in_use(cli: &FrontCli) -> Vec<String> {
    // No container root yet: no containers (and none is made just to look).
    if !cli.root.exists() {
        return Vec::new();
    }
    super::engine(cli).and_then(|e| e.store.list().map_err(|e| e.to_string())).map(|records| records.into_iter().map(|r| r.image_id).collect()).unwrap_or_default()
}

/// The image `name` from the store, pulled first when it is not there, as
/// `docker run` does.
pub fn find_or_pull(cli: &FrontCli, name: &str) -> Result<minirun_rootfs::image::store::ImageRecord, String> {
    reference::parse(name).map_err(|e| e.to_string())?;
    let store = store(cli)?;
    if let Ok(image) = find(&store, name) {
        return Ok(image);
    }
    eprintln!("Unable to find image '{name}' locally");
    let args = PullArgs { platform: None, insecure: Vec::new(), credentials: None, quiet: false, name: name.to_string() };
    pull(cli, &args)?;
    find(&store, name)
}

pub fn rmi(cli: &FrontCli, names: &[String]) -> Result<(), String> {
    let store = store(cli)?;
    for name in names {
        let target = if store.resolve(&normalised(name)).is_ok() { normalised(name) } else { name.clone() };
        for line in store.remove(&target, &in_use(cli)).map_err(|e| e.to_string())? {
            println!("{line}");
        }
    }
    Ok(())
}

pub fn prune(cli: &FrontCli) -> Result<(), String> {
    let freed = store(cli)?.prune(&in_use(cli)).map_err(|e| e.to_string())?;
    println!("Total reclaimed space: {:.1}MB", freed as f64 / 1e6);
    Ok(())
}

pub fn load(cli: &FrontCli, input: &std::path::Path) -> Result<(), String> {
    for name in store(cli)?.load(input).map_err(|e| e.to_string())? {
        println!("Loaded image: {name}");
    }
    Ok(())
}

pub fn import(cli: &FrontCli, tarball: &std::path::Path, name: &str) -> Result<(), String> {
    let reference = reference::parse(name).map_err(|e| e.to_string())?;
    let image = store(cli)?.import(tarball, &reference.to_string()).map_err(|e| e.to_string())?;
    println!("{}", image.id);
    Ok(())
}
