use std::fmt;

use serde::{Deserialize, Serialize};

/// The OCI runtime spec's four states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// Field 22 of /proc/PID/stat: the process's start time in clock ticks since
/// boot. Recorded at create and compared later, so that a recycled pid is
/// never mistaken for the container's init (and never signalled).
/// None when the process is gone or is a zombie waiting to be reaped.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_stable() {
        let me = std::process::id() as i32;
        let first = process_start_time(me).expect("we are alive");
        assert_eq!(process_start_time(me), Some(first));
    }

    #[test]
    fn missing_process_has_no_start_time() {
        assert_eq!(process_start_time(i32::MAX), None);
    }
}
