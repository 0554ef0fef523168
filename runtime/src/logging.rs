//! runc's `--log` and `--log-format`: Podman (through conmon) and containerd's
//! shim read the runtime's errors back from the log file, as JSON lines
//! `{"level":"error","msg":...,"time":...}` when asked for json.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::timefmt::now_rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Default)]
struct LogConfig {
    file: Option<PathBuf>,
    format: LogFormat,
    debug: bool,
}

static CONFIG: OnceLock<LogConfig> = OnceLock::new();

pub fn init(file: Option<PathBuf>, format: LogFormat, debug: bool) {
    let _ = CONFIG.set(LogConfig { file, format, debug });
}

fn write(level: &str, msg: &str) {
    let Some(config) = CONFIG.get() else { return };
    let Some(path) = &config.file else { return };
    let line = match config.format {
        LogFormat::Json => serde_json::json!({ "level": level, "msg": msg, "time": now_rfc3339() }).to_string(),
        LogFormat::Text => format!("time=\"{}\" level={level} msg={msg:?}", now_rfc3339()),
    };
    // A log that cannot be written must not turn a success into a failure.
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// Errors go to stderr (for people) and to the log file (for the clients).
pub fn error(msg: &str) {
    eprintln!("minirun: {msg}");
    write("error", msg);
}

pub fn warn(msg: &str) {
    eprintln!("minirun: warning: {msg}");
    write("warning", msg);
}

pub fn debug(msg: &str) {
    if CONFIG.get().is_some_and(|c| c.debug) {
        write("debug", msg);
    }
}
