//! The OCI lifecycle hooks: each runs with the container's state JSON on
//! stdin, its own args and env, and is killed when its timeout passes.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HookError {
    #[error("{phase} hook {path}: {reason}")]
    Failed { phase: &'static str, path: String, reason: String },
}

pub fn run_hooks(phase: &'static str, hooks: Option<&Vec<Hook>>, state_json: &str) -> Result<(), HookError> {
    for hook in hooks.into_iter().flatten() {
        run_hook(phase, hook, state_json)?;
    }
    Ok(())
}

/// For poststart and poststop, where the spec says a failing hook is a
/// warning and the rest still run.
pub fn run_hooks_warn(phase: &'static str, hooks: Option<&Vec<Hook>>, state_json: &str) {
    for hook in hooks.into_iter().flatten() {
        if let Err(e) = run_hook(phase, hook, state_json) {
            crate::logging::warn(&e.to_string());
        }
    }
}

fn run_hook(phase: &'static str, hook: &Hook, state_json: &str) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    let fail = |reason: String| HookError::Failed { phase, path: path.clone(), reason };
    let mut cmd = Command::new(hook.path());
    let args = hook.args().as_deref().unwrap_or_default();
    if let Some((argv0, rest)) = args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.stdin(Stdio::piped()).spawn().map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not an error (EPIPE).
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let deadline = hook.timeout().filter(|t| *t > 0).map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut pause = Duration::from_micros(200);
    loop {
        match child.try_wait().map_err(|e| fail(e.to_string()))? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => return Err(fail(format!("exited with {status}"))),
            None if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("timed out after {}s", hook.timeout().unwrap_or_default())));
            }
            None => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}
