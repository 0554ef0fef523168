//! `minirun ps [-a] [-q] [--format TEMPLATE]`, shaped like `docker ps`.

use super::engine::store::{ContainerRecord, Status};
use super::engine::Engine;
use crate::timefmt;

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all containers (default: only running ones).
    #[arg(long, short)]
    pub all: bool,
    /// Only the ids.
    #[arg(long, short)]
    pub quiet: bool,
    /// Do not truncate ids and commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// A Go-template-like format: `{{.ID}}`, `{{.Names}}`, `{{.Image}}`,
    /// `{{.Command}}`, `{{.Status}}`, `{{.State}}`, `{{.Ports}}`,
    /// `{{.Networks}}`, `{{.CreatedAt}}`, `{{.RunningFor}}`; `table ...`
    /// adds a header.
    #[arg(long)]
    pub format: Option<String>,
}

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

pub fn ps(engine: &Engine, args: &PsArgs) -> Result<(), String> {
    engine.reclaim();
    let records: Vec<ContainerRecord> =
        engine.store.list().map_err(|e| e.to_string())?.into_iter().rev().filter(|r| args.all || r.status() == Status::Running).collect();
    if args.quiet {
        for r in &records {
            println!("{}", if args.no_trunc { &r.id } else { r.short_id() });
        }
        return Ok(());
    }
    let format = args.format.as_deref().unwrap_or(DEFAULT_FORMAT);
    let (table, template) = match format.strip_prefix("table") {
        Some(rest) => (true, rest.trim_start()),
        None => (false, format),
    };
    let template = template.replace("\\t", "\t");
    let mut rows = Vec::new();
    if table {
        rows.push(render(&template, |field| header(field).to_string()));
    }
    for r in &records {
        rows.push(render(&template, |field| value(r, field, args.no_trunc)));
    }
    print_rows(&rows, table);
    Ok(())
}

/// Fills `{{.Field}}` placeholders; unknown ones are left as they are.
fn render(template: &str, mut field: impl FnMut(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out += &rest[..start];
        let Some(end) = rest[start..].find("}}") else { break };
        let name = rest[start + 2..start + end].trim().trim_start_matches('.');
        out += &field(name);
        rest = &rest[start + end + 2..];
    }
    out + rest
}

fn header(field: &str) -> &str {
    match field {
        "ID" => "CONTAINER ID",
        "Image" => "IMAGE",
        "Command" => "COMMAND",
        "RunningFor" => "CREATED",
        "CreatedAt" => "CREATED AT",
        "Status" => "STATUS",
        "State" => "STATE",
        "Ports" => "PORTS",
        "Names" => "NAMES",
        "Networks" => "NETWORKS",
        other => other,
    }
}

fn value(r: &ContainerRecord, field: &str, no_trunc: bool) -> String {
    match field {
        "ID" if no_trunc => r.id.clone(),
        "ID" => r.short_id().to_string(),
        "Image" => r.image.clone(),
        "Command" => {
            let command = r.args.join(" ");
            let command = if !no_trunc && command.chars().count() > 20 { command.chars().take(19).collect::<String>() + "…" } else { command };
            format!("\"{command}\"")
        }
        "RunningFor" => format!("{} ago", since(&r.created)),
        "CreatedAt" => r.created.clone(),
        "Status" => status_text(r),
        "State" => state_name(r).to_string(),
        "Ports" => ports_text(r),
        "Names" => r.name.clone(),
        "Networks" => r.network.display(),
        other => format!("{{{{.{other}}}}}"),
    }
}

pub fn state_name(r: &ContainerRecord) -> &'static str {
    match r.status() {
        Status::Created => "created",
        Status::Running => "running",
        Status::Exited => "exited",
    }
}

/// `Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`, as Docker says it.
pub fn status_text(r: &ContainerRecord) -> String {
    match r.status() {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", since(r.state.started_at.as_deref().unwrap_or(&r.created))),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code.unwrap_or(0),
            since(r.state.finished_at.as_deref().unwrap_or(&r.created))
        ),
    }
}

/// `0.0.0.0:8080->80/tcp`, for the ports that were really published.
pub fn ports_text(r: &ContainerRecord) -> String {
    let Some(attachment) = &r.attachment else { return String::new() };
    attachment
        .ports
        .iter()
        .map(|p| format!("{}:{}->{}/{}", p.host_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "0.0.0.0".into()), p.host_port, p.container_port, p.protocol))
        .collect::<Vec<_>>()
        .join(", ")
}

fn since(rfc3339: &str) -> String {
    let Some(then) = timefmt::parse_rfc3339(rfc3339) else { return "?".into() };
    let secs = std::time::SystemTime::now().duration_since(then).map(|d| d.as_secs()).unwrap_or(0);
    human_duration(secs)
}

/// Docker's go-units HumanDuration.
pub fn human_duration(secs: u64) -> String {
    let (minutes, hours) = (secs / 60, secs / 3600);
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 14 => format!("{} days", hours / 24),
        _ if hours < 24 * 60 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

/// Columns padded to their widest cell plus three spaces, as Docker's
/// tabwriter does; plain `--format` output is printed as is.
fn print_rows(rows: &[String], table: bool) {
    if !table {
        for row in rows {
            println!("{row}");
        }
        return;
    }
    let cells: Vec<Vec<&str>> = rows.iter().map(|r| r.split('\t').collect()).collect();
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns).map(|c| cells.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    for row in cells {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line += cell;
            if c + 1 < row.len() {
                line += &" ".repeat(widths[c] - cell.chars().count() + 3);
            }
        }
        println!("{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_durations() {
        assert_eq!(render("{{.ID}}\t{{ .Names }}!", |f| f.to_lowercase()), "id\tnames!");
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }
}
