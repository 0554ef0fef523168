//! `minirun run`'s command line, spelled as `docker run` spells it. Values
//! stay strings here; `run_spec::RunConfig::parse` checks and types them so
//! that every error names its flag the same way.

use std::ffi::OsString;
use std::path::PathBuf;

/// `docker run [OPTIONS] IMAGE [COMMAND] [ARG...]`.
///
/// `-h` is `--hostname`, as in Docker, so clap's `-h` for help is turned
/// off and help is `--help` only. An option takes the next word as its
/// value even when it starts with `-` (`--memory-swap -1`), as Docker's
/// flag parser does; `end_flags_at_image` counts on that.
#[derive(Debug, Clone, clap::Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run the container in the background and print its ID.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container.
    #[arg(long, allow_hyphen_values = true)]
    pub name: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long, allow_hyphen_values = true)]
    pub hostname: Option<String>,
    /// bridge, host, none, container:NAME|ID or a network's name.
    #[arg(long, visible_alias = "net", default_value = "bridge", allow_hyphen_values = true)]
    pub network: String,
    /// Publish a container's port to the host ([ip:]host_port:container_port[/proto]).
    #[arg(short = 'p', long, allow_hyphen_values = true)]
    pub publish: Vec<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to pass minirun's own).
    #[arg(short = 'e', long, allow_hyphen_values = true)]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long, allow_hyphen_values = true)]
    pub env_file: Vec<PathBuf>,
    /// Bind mount a host path: /host/path:/container/path[:ro|rw].
    #[arg(short = 'v', long, allow_hyphen_values = true)]
    pub volume: Vec<String>,
    /// Mount a tmpfs: /container/path[:options].
    #[arg(long, allow_hyphen_values = true)]
    pub tmpfs: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long, allow_hyphen_values = true)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long, allow_hyphen_values = true)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image ("" clears it).
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short = 'm', long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (e.g. 1.5).
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_shares: Option<String>,
    /// Tune the container's pids limit (-1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long)]
    pub read_only: bool,
    /// Add Linux capabilities (or ALL).
    #[arg(long, allow_hyphen_values = true)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities (or ALL).
    #[arg(long, allow_hyphen_values = true)]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// Security options: seccomp=unconfined|PROFILE.json, no-new-privileges.
    #[arg(long, allow_hyphen_values = true)]
    pub security_opt: Vec<String>,
    /// Ulimit options (e.g. nofile=1024:2048).
    #[arg(long, allow_hyphen_values = true)]
    pub ulimit: Vec<String>,
    /// Signal to stop the container.
    #[arg(long, allow_hyphen_values = true)]
    pub stop_signal: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Print what would be done, and do nothing.
    #[arg(long)]
    pub explain: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// The image to run.
    pub image: String,
    /// The command and its arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Docker stops reading its own flags at IMAGE: in `run busybox ls -d` or
/// even `run busybox -d`, everything after `busybox` is the command. clap
/// only starts passing arguments through once the command's first word is
/// seen, so a known flag right after IMAGE would be taken as minirun's. This
/// inserts `--` after IMAGE of the `run_name` subcommand, which makes clap
/// take the rest as they are. `cli` is the whole command line definition
/// (globals included); argv[0] is the program. Arguments are returned
/// unchanged when there is no `run_name` subcommand or no IMAGE.
pub fn end_flags_at_image(cli: &clap::Command, run_name: &str, args: Vec<OsString>) -> Vec<OsString> {
    let mut cli = cli.clone();
    // Globals only reach subcommands once the command is built.
    cli.build();
    let Some(run) = cli.find_subcommand(run_name) else {
        return args;
    };
    let mut i = 1;
    // The subcommand's name: skip the top level's options and their values.
    loop {
        let Some(arg) = args.get(i).and_then(|a| a.to_str()) else {
            return args;
        };
        i += 1;
        if arg == "--" {
            return args;
        }
        if arg == run_name {
            break;
        }
        if arg.starts_with('-') {
            i += usize::from(option_takes_next(&cli, arg));
        } else {
            // Another subcommand.
            return args;
        }
    }
    while let Some(arg) = args.get(i) {
        let Some(arg) = arg.to_str() else {
            // Not UTF-8: cannot be a flag of ours, so it is IMAGE.
            break;
        };
        if arg == "--" {
            return args;
        }
        if arg.starts_with('-') && arg.len() > 1 {
            i += 1 + usize::from(option_takes_next(run, arg));
            continue;
        }
        break;
    }
    // args[i] is IMAGE (or past the end).
    if i >= args.len() {
        return args;
    }
    let mut out = args;
    out.insert(i + 1, OsString::from("--"));
    out
}

/// Whether `arg` (a `--long[=v]` or `-abc` word) is an option of `cmd` whose
/// value is the next word.
fn option_takes_next(cmd: &clap::Command, arg: &str) -> bool {
    let takes_value = |a: &clap::Arg| a.get_num_args().is_some_and(|n| n.takes_values());
    if let Some(long) = arg.strip_prefix("--") {
        if long.contains('=') {
            return false;
        }
        return cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long) || a.get_all_aliases().is_some_and(|al| al.contains(&long)))
            .is_some_and(takes_value);
    }
    // A cluster of shorts: the first one taking a value eats the rest of the
    // word, or the next word when it is last.
    let shorts: Vec<char> = arg.chars().skip(1).collect();
    for (pos, c) in shorts.iter().enumerate() {
        let Some(a) = cmd.get_arguments().find(|a| a.get_short() == Some(*c)) else {
            return false;
        };
        if takes_value(a) {
            return pos + 1 == shorts.len();
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};

    #[derive(Debug, Parser)]
    struct Cli {
        #[arg(long, global = true, default_value = "/x")]
        network_root: PathBuf,
        #[command(subcommand)]
        command: Cmd,
    }

    #[derive(Debug, Subcommand)]
    enum Cmd {
        Run(Box<RunArgs>),
        Other,
    }

    fn argv(words: &[&str]) -> Vec<OsString> {
        std::iter::once("minirun")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn parse(words: &[&str]) -> RunArgs {
        let args = end_flags_at_image(&Cli::command(), "run", argv(words));
        match Cli::try_parse_from(args).expect("parses").command {
            Cmd::Run(run) => *run,
            Cmd::Other => panic!("not run"),
        }
    }

    #[test]
    fn interactive_tty_and_a_shell_command() {
        let run = parse(&["run", "-it", "busybox", "sh", "-c", "x"]);
        assert!(run.interactive && run.tty);
        assert_eq!(run.image, "busybox");
        assert_eq!(run.command, ["sh", "-c", "x"]);
    }

    #[test]
    fn flags_after_the_image_belong_to_the_command() {
        let run = parse(&["run", "--rm", "busybox", "-d", "--rm", "-h"]);
        assert!(run.rm && !run.detach);
        assert_eq!(run.command, ["-d", "--rm", "-h"]);
        let run = parse(&["run", "busybox", "ls", "-l", "--", "x"]);
        assert_eq!(run.command, ["ls", "-l", "--", "x"]);
        let run = parse(&["run", "busybox", "--", "x"]);
        assert_eq!(run.command, ["--", "x"]);
    }

    #[test]
    fn option_values_are_not_the_image() {
        let run = parse(&[
            "--network-root",
            "/nr",
            "run",
            "-h",
            "web",
            "-e",
            "A=1",
            "--name=n",
            "-p",
            "80:80",
            "--memory-swap",
            "-1",
            "-m64m",
            "--net",
            "host",
            "--network-root",
            "/y",
            "alpine",
            "env",
        ]);
        assert_eq!(run.hostname.as_deref(), Some("web"));
        assert_eq!(run.env, ["A=1"]);
        assert_eq!(run.name.as_deref(), Some("n"));
        assert_eq!(run.publish, ["80:80"]);
        assert_eq!(run.memory_swap.as_deref(), Some("-1"));
        assert_eq!(run.memory.as_deref(), Some("64m"));
        assert_eq!(run.network, "host");
        assert_eq!(run.image, "alpine");
        assert_eq!(run.command, ["env"]);
    }

    #[test]
    fn values_may_start_with_a_dash() {
        let run = parse(&["run", "--name", "-d", "-e", "-x", "--pids-limit", "-1", "busybox", "-d"]);
        assert!(!run.detach);
        assert_eq!(run.name.as_deref(), Some("-d"));
        assert_eq!(run.env, ["-x"]);
        assert_eq!(run.pids_limit.as_deref(), Some("-1"));
        assert_eq!(run.command, ["-d"]);
    }

    #[test]
    fn defaults_and_every_flag() {
        let run = parse(&["run", "busybox"]);
        assert_eq!(run.network, "bridge");
        assert!(run.command.is_empty());
        let run = parse(&[
            "run",
            "-d",
            "-i",
            "-t",
            "--rm",
            "--name",
            "n",
            "--hostname",
            "h",
            "--network",
            "none",
            "--publish",
            "1:2",
            "--env",
            "A",
            "--env-file",
            "/f",
            "--volume",
            "/a:/b",
            "--tmpfs",
            "/t",
            "--workdir",
            "/w",
            "--user",
            "1:2",
            "--entrypoint",
            "",
            "--memory",
            "1g",
            "--memory-swap",
            "2g",
            "--cpus",
            "1.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "-1",
            "--read-only",
            "--cap-add",
            "SYS_ADMIN",
            "--cap-drop",
            "ALL",
            "--privileged",
            "--security-opt",
            "no-new-privileges",
            "--ulimit",
            "nofile=1:2",
            "--stop-signal",
            "SIGINT",
            "--init",
            "--explain",
            "img",
            "cmd",
        ]);
        assert!(run.detach && run.interactive && run.tty && run.rm && run.read_only);
        assert!(run.privileged && run.init && run.explain);
        assert_eq!(run.env_file, [PathBuf::from("/f")]);
        assert_eq!(run.volume, ["/a:/b"]);
        assert_eq!(run.tmpfs, ["/t"]);
        assert_eq!(run.workdir.as_deref(), Some("/w"));
        assert_eq!(run.user.as_deref(), Some("1:2"));
        assert_eq!(run.entrypoint.as_deref(), Some(""));
        assert_eq!(run.cpus.as_deref(), Some("1.5"));
        assert_eq!(run.cpu_shares.as_deref(), Some("512"));
        assert_eq!(run.pids_limit.as_deref(), Some("-1"));
        assert_eq!(run.cap_add, ["SYS_ADMIN"]);
        assert_eq!(run.cap_drop, ["ALL"]);
        assert_eq!(run.security_opt, ["no-new-privileges"]);
        assert_eq!(run.ulimit, ["nofile=1:2"]);
        assert_eq!(run.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(
            (run.image.as_str(), run.command.as_slice()),
            ("img", &["cmd".to_string()][..])
        );
    }

    #[test]
    fn help_is_long_only() {
        let err = Cli::try_parse_from(argv(&["run", "--help"])).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        // Without IMAGE, -h wants a value and the image is missing.
        assert!(Cli::try_parse_from(argv(&["run", "-h"])).is_err());
    }

    #[test]
    fn other_subcommands_are_left_alone() {
        let words = argv(&["other"]);
        assert_eq!(end_flags_at_image(&Cli::command(), "run", words.clone()), words);
        let words = argv(&["run", "-d"]);
        assert_eq!(end_flags_at_image(&Cli::command(), "run", words.clone()), words);
    }
}
