use std::process::Command;

use super::cli::OciCli;
use super::{Container, OciError};

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    #[arg(long, short, default_value = "table")]
    pub format: String,
    pub id: String,
    /// Arguments for ps(1) in table format (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn ps(cli: &OciCli, args: &PsArgs) -> Result<(), OciError> {
    let container = Container::open(&cli.root, &args.id)?;
    let pids: Vec<i32> = container.cgroup()?.pids()?.into_iter().map(|p| p.as_raw()).collect();
    match args.format.as_str() {
        "json" => {
            println!("{}", serde_json::to_string(&pids).expect("a list of numbers serialises"));
            Ok(())
        }
        "table" => print_table(&pids, &args.ps_args),
        other => Err(OciError::Config(format!("invalid format {other:?} (table or json)"))),
    }
}

/// As runc: ps(1)'s own output, keeping the header and the lines whose PID
/// column is one of the container's.
pub(crate) fn print_table(pids: &[i32], ps_args: &[String]) -> Result<(), OciError> {
    let ps_args: Vec<&str> = if ps_args.is_empty() { vec!["-ef"] } else { ps_args.iter().map(String::as_str).collect() };
    let output = Command::new("ps").args(&ps_args).output().map_err(OciError::io("run ps"))?;
    if !output.status.success() {
        return Err(OciError::Container(format!("ps {}: {}", ps_args.join(" "), String::from_utf8_lossy(&output.stderr).trim())));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_column = header.split_whitespace().position(|h| h == "PID").ok_or_else(|| OciError::Container("ps output has no PID column".into()))?;
    println!("{header}");
    for line in lines {
        if line.split_whitespace().nth(pid_column).and_then(|p| p.parse().ok()).is_some_and(|p: i32| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}
