//! `minirun rm [-f]`: a container and everything it made, gone.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::engine::Engine;
use super::stop::{for_each, stop};

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Kill a running container first.
    #[arg(long, short)]
    pub force: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn rm(engine: &Engine, args: &RmArgs) -> Result<(), String> {
    engine.reclaim();
    for_each(&args.containers, |name| {
        let record = engine.store.resolve(name).map_err(|e| e.to_string())?;
        // A container being started is locked by its monitor until it runs
        // (or has failed): wait for that, then look again, so as not to
        // remove it from under the monitor.
        drop(engine.store.lock(&record.id).map_err(|e| e.to_string())?);
        let record = engine.store.resolve(&record.id).map_err(|e| e.to_string())?;
        if record.is_running() {
            if !args.force {
                return Err(format!("cannot remove container {name}: it is running; stop it first or use rm -f"));
            }
            // Docker's rm -f kills at once, with no grace period.
            stop(engine, &record, Some(Signal::SIGKILL), Duration::ZERO)?;
        }
        // Gone already when it was started with --rm: its monitor removed it.
        if let Ok(record) = engine.store.resolve(&record.id) {
            engine.remove(&record).map_err(|e| e.to_string())?;
        }
        println!("{name}");
        Ok(())
    })
}
