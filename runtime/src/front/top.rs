//! `minirun top X [ps options]` and `minirun stats [--no-stream] X...`:
//! a running container's processes, and what its cgroup counts.

use std::time::{Duration, Instant};

use super::engine::store::ContainerRecord;
use super::engine::Engine;
use crate::oci::embed;

fn running(engine: &Engine, name: &str) -> Result<ContainerRecord, String> {
    let record = engine.store.resolve(name).map_err(|e| e.to_string())?;
    if !record.is_running() {
        return Err(format!("container {name} is not running"));
    }
    Ok(record)
}

pub fn top(engine: &Engine, name: &str, ps_args: &[String]) -> Result<(), String> {
    let record = running(engine, name)?;
    let pids = embed::pids(&engine.runtime_root(), &record.id).map_err(|e| e.to_string())?;
    crate::oci::ps::print_table(&pids, ps_args).map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Print one sample and exit (default: a new sample every second).
    #[arg(long)]
    pub no_stream: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// One sample per container, CPU % over the time since the previous one
/// (half a second for the first), as `docker stats` shows them.
pub fn stats(engine: &Engine, args: &StatsArgs) -> Result<(), String> {
    let records = args.containers.iter().map(|n| running(engine, n)).collect::<Result<Vec<_>, _>>()?;
    let sample = |r: &ContainerRecord| embed::stats(&engine.runtime_root(), &r.id).map_err(|e| e.to_string());
    let mut previous: Vec<(Instant, u64)> = records.iter().map(|r| sample(r).map(|s| (Instant::now(), s.cpu_usage_ns.unwrap_or(0)))).collect::<Result<_, _>>()?;
    std::thread::sleep(Duration::from_millis(500));
    loop {
        println!("{:<14} {:<20} {:>8} {:>22} {:>8} {:>6}", "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS");
        for (r, prev) in records.iter().zip(previous.iter_mut()) {
            let Ok(s) = sample(r) else { continue };
            let (now, cpu) = (Instant::now(), s.cpu_usage_ns.unwrap_or(0));
            let cpu_percent = cpu.saturating_sub(prev.1) as f64 / now.duration_since(prev.0).as_nanos().max(1) as f64 * 100.0;
            *prev = (now, cpu);
            let usage = s.memory_usage_bytes.unwrap_or(0);
            // An unlimited cgroup reports a huge number; Docker shows the host's memory then.
            let limit = s.memory_limit_bytes.filter(|l| *l < host_memory()).unwrap_or_else(host_memory);
            println!(
                "{:<14} {:<20} {:>7.2}% {:>22} {:>7.2}% {:>6}",
                r.short_id(),
                r.name,
                cpu_percent,
                format!("{} / {}", bytes(usage), bytes(limit)),
                usage as f64 / limit.max(1) as f64 * 100.0,
                s.pids_current.unwrap_or(0)
            );
        }
        if args.no_stream {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())))
        .map(|kb| kb * 1024)
        .unwrap_or(u64::MAX)
}

/// Docker's binary units: `1.5MiB`.
fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{value:.2}{}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn binary_units() {
        assert_eq!(super::bytes(512), "512B");
        assert_eq!(super::bytes(1536), "1.50KiB");
        assert_eq!(super::bytes(64 << 20), "64.00MiB");
    }
}
