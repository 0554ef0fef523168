use std::time::Duration;

use super::cli::OciCli;
use super::{Container, OciError};
use crate::cgroups::Stats;
use crate::container::Status;

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Print the container's resource usage once and exit.
    #[arg(long)]
    pub stats: bool,
    /// Seconds between stats events while following.
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    pub interval: Duration,
    pub id: String,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit() && c != '.').map(|i| text.split_at(i)).unwrap_or((text, "s"));
    let n: f64 = number.parse().map_err(|_| format!("invalid interval {text:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid interval unit in {text:?} (ms, s or m)")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("interval must be positive: {text:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn stats_event(id: &str, stats: &Stats) -> serde_json::Value {
    serde_json::json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": { "usage": { "total": stats.cpu_usage_ns } },
            "memory": { "usage": { "usage": stats.memory_usage_bytes, "max": stats.memory_max_usage_bytes, "limit": stats.memory_limit_bytes }, "oom_kills": stats.oom_kills },
            "pids": { "current": stats.pids_current, "limit": stats.pids_limit }
        }
    })
}

/// runc's `events`: stats as JSON, and an `oom` event each time the
/// kernel's OOM killer strikes in the container's cgroup, until it stops.
pub fn events(cli: &OciCli, args: &EventsArgs) -> Result<(), OciError> {
    let cgroup = {
        let container = Container::open(&cli.root, &args.id)?;
        if container.status() == Status::Stopped {
            return Err(OciError::WrongStatus { id: args.id.clone(), status: Status::Stopped, action: "no events from a stopped container" });
        }
        container.new_cgroup_manager()?
    };
    if args.stats {
        println!("{}", stats_event(&args.id, &cgroup.stats()?));
        return Ok(());
    }
    let mut ooms = cgroup.oom_kill_count()?;
    let poll = args.interval.min(Duration::from_millis(200));
    let mut since_stats = Duration::ZERO;
    loop {
        // The lock is taken only for the look, so other commands are not held up.
        match Container::open(&cli.root, &args.id) {
            Ok(c) if c.status() != Status::Stopped => {}
            _ => return Ok(()),
        }
        let now = cgroup.oom_kill_count()?;
        if now > ooms {
            println!("{}", serde_json::json!({ "type": "oom", "id": args.id }));
            ooms = now;
        }
        if since_stats >= args.interval {
            println!("{}", stats_event(&args.id, &cgroup.stats()?));
            since_stats = Duration::ZERO;
        }
        std::thread::sleep(poll);
        since_stats += poll;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("x").is_err());
        assert!(parse_interval("5h").is_err());
    }
}
