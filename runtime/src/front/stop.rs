//! `minirun stop`, `kill` and `wait`: signals to a container's init, and
//! waiting for its monitor to record the exit.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::engine::store::{ContainerRecord, Status};
use super::engine::Engine;

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait for the stop signal to work before SIGKILL.
    #[arg(long, short = 't', default_value_t = 10, alias = "timeout")]
    pub time: u64,
    /// Signal to send instead of the container's stop signal.
    #[arg(long, short)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    #[arg(long, short, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// SIGTERM, TERM, 15: the ways Docker accepts a signal.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("invalid signal: {text}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse::<Signal>().map_err(|_| format!("invalid signal: {text}"))
}

/// Every name is tried; errors are reported per name and the command
/// fails if any did, as Docker's do.
pub fn for_each(names: &[String], mut action: impl FnMut(&str) -> Result<(), String>) -> Result<(), String> {
    let mut failed = false;
    for name in names {
        if let Err(e) = action(name) {
            eprintln!("minirun: {e}");
            failed = true;
        }
    }
    if failed {
        Err(String::new())
    } else {
        Ok(())
    }
}

fn signal_init(record: &ContainerRecord, signal: Signal) -> Result<(), String> {
    match record.state.init.filter(|_| record.is_running()) {
        Some(init) => kill(Pid::from_raw(init.pid), signal).map_err(|e| format!("signal container {}: {e}", record.name)),
        None => Err(format!("container {} is not running", record.name)),
    }
}

pub fn kill_containers(engine: &Engine, args: &KillArgs) -> Result<(), String> {
    let signal = parse_signal(&args.signal)?;
    engine.reclaim();
    for_each(&args.containers, |name| {
        let record = engine.store.resolve(name).map_err(|e| e.to_string())?;
        signal_init(&record, signal)?;
        println!("{name}");
        Ok(())
    })
}

pub fn stop_containers(engine: &Engine, args: &StopArgs) -> Result<(), String> {
    let forced = args.signal.as_deref().map(parse_signal).transpose()?;
    engine.reclaim();
    for_each(&args.containers, |name| {
        let record = engine.store.resolve(name).map_err(|e| e.to_string())?;
        stop(engine, &record, forced, Duration::from_secs(args.time))?;
        println!("{name}");
        Ok(())
    })
}

/// The stop signal, then SIGKILL after `grace`; returns once the monitor
/// has recorded the exit and released what the container held. Stopping a
/// container that is not running is not an error (as in Docker).
pub fn stop(engine: &Engine, record: &ContainerRecord, signal: Option<Signal>, grace: Duration) -> Result<(), String> {
    if !record.is_running() {
        return Ok(());
    }
    let signal = signal.or_else(|| Signal::try_from(record.stop_signal).ok()).unwrap_or(Signal::SIGTERM);
    let _ = signal_init(record, signal);
    if wait_exited(engine, &record.id, grace) {
        return Ok(());
    }
    let _ = signal_init(record, Signal::SIGKILL);
    if wait_exited(engine, &record.id, Duration::from_secs(10)) {
        return Ok(());
    }
    Err(format!("container {} did not stop", record.name))
}

/// Polls the record until the container is exited (or gone, with --rm).
/// A monitor that died meanwhile is cleaned up after, so this ends.
pub fn wait_exited(engine: &Engine, id: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(2);
    loop {
        match engine.store.resolve(id) {
            Err(_) => return true,
            Ok(r) if r.status() == Status::Exited || (r.status() == Status::Created && r.state.monitor.is_none()) => return true,
            Ok(r) if r.is_orphaned() => engine.reclaim(),
            Ok(_) => {}
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// `minirun wait`: blocks until each container exits and prints its code.
pub fn wait_containers(engine: &Engine, names: &[String]) -> Result<(), String> {
    for_each(names, |name| {
        let record = engine.store.resolve(name).map_err(|e| e.to_string())?;
        while !wait_exited(engine, &record.id, Duration::from_secs(3600)) {}
        let code = engine.store.resolve(&record.id).ok().and_then(|r| r.state.exit_code).unwrap_or(0);
        println!("{code}");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_as_docker_spells_them() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("2").unwrap(), Signal::SIGINT);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
