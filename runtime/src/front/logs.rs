//! `minirun logs [-f] [--tail N] [-t]`: the container's output, from the
//! JSON-lines log its supervisor writes.

use std::io::Write;
use std::time::Duration;

use super::engine::logs::{read_from, LogEntry};
use super::engine::supervisor::LOG_FILE;
use super::engine::Engine;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Keep printing new output until the container exits.
    #[arg(long, short)]
    pub follow: bool,
    /// Only this many lines from the end ("all" for every line).
    #[arg(long, short = 'n', default_value = "all")]
    pub tail: String,
    #[arg(long, short)]
    pub timestamps: bool,
    pub container: String,
}

pub fn logs(engine: &Engine, args: &LogsArgs) -> Result<(), String> {
    let tail = match args.tail.as_str() {
        "all" => None,
        n => Some(n.parse::<usize>().map_err(|_| format!("invalid --tail {n:?}: a number or \"all\""))?),
    };
    let record = engine.store.resolve(&args.container).map_err(|e| e.to_string())?;
    let path = engine.store.dir(&record.id).join(LOG_FILE);
    let (mut entries, mut offset) = read_from(&path, 0).map_err(|e| format!("read {}: {e}", path.display()))?;
    if let Some(n) = tail {
        entries.drain(..entries.len().saturating_sub(n));
    }
    print(&entries, args.timestamps);
    if !args.follow {
        return Ok(());
    }
    loop {
        let running = engine.store.resolve(&record.id).is_ok_and(|r| r.is_running());
        let (more, next) = read_from(&path, offset).map_err(|e| format!("read {}: {e}", path.display()))?;
        print(&more, args.timestamps);
        offset = next;
        if !running {
            // One last read above caught what was written before the exit.
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn print(entries: &[LogEntry], timestamps: bool) {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for entry in entries {
        let sink: &mut dyn Write = if entry.stream == "stderr" { &mut err } else { &mut out };
        if timestamps {
            let _ = write!(sink, "{} ", entry.time);
        }
        let _ = sink.write_all(entry.log.as_bytes());
    }
    let _ = out.flush();
}
