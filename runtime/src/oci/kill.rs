use std::str::FromStr;

use nix::sys::signal::{kill as send, Signal};

use super::cli::OciCli;
use super::{Container, OciError};
use crate::container::Status;

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal every process in the container, not only its init.
    #[arg(long, short)]
    pub all: bool,
    pub id: String,
    /// A name (TERM, SIGTERM) or a number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

pub fn parse_signal(text: &str) -> Result<Signal, OciError> {
    let bad = || OciError::Config(format!("invalid signal {text:?}"));
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    Signal::from_str(&name).map_err(|_| bad())
}

pub fn kill(cli: &OciCli, args: &KillArgs) -> Result<(), OciError> {
    let signal = parse_signal(&args.signal)?;
    let container = Container::open(&cli.root, &args.id)?;
    match container.status() {
        // containerd's shim kills with --all after the container exited: not an error.
        Status::Stopped if args.all => Ok(()),
        Status::Stopped => Err(OciError::WrongStatus { id: args.id.clone(), status: Status::Stopped, action: "container not running" }),
        _ if args.all => container.signal_all(signal),
        _ => send(container.init_pid(), signal).map_err(|e| OciError::io(format!("send {signal} to container {}", args.id))(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigusr1").unwrap(), Signal::SIGUSR1);
        assert_eq!(parse_signal("SIGTERM").unwrap(), Signal::SIGTERM);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
        assert!(parse_signal("").is_err());
    }
}
