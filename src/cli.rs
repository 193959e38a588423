//! The command line (SPEC.md, "One binary, three modes").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Mode;

/// Ships syslog across a fleet: tails files and sockets on every instance
/// (client), forwards from many clients (relay), filters and archives
/// (server).
#[derive(Debug, Parser)]
#[command(name = "logrelay", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ship local logs: tail files, pipes, /dev/log -> forward.
    Client(RunArgs),
    /// Receive from many clients -> filter -> forward.
    Relay(RunArgs),
    /// Receive -> filter -> archive to files and databases.
    Server(RunArgs),
    /// Validate a config, print the resolved pipeline; exit 0, or 2 on errors.
    Check(CheckArgs),
    /// Print the counters of a running instance.
    Stats(StatsArgs),
    /// List the messages set aside as undeliverable, or send them again.
    Rejects(RejectsArgs),
    /// Print the messages flowing through a running instance, as they pass.
    Tap(TapArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config file: the whole pipeline. Without it, the mode's
    /// embedded default runs (see --print-config).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the config that would run (the embedded default unless -c)
    /// and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file to validate.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// The role whose `[global]` defaults apply.
    #[arg(long, value_name = "MODE", default_value = "server", value_parser = parse_mode)]
    pub mode: Mode,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Read the control socket path from this config.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        conflicts_with = "control"
    )]
    pub config: Option<PathBuf>,
    /// The control socket of the running instance.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The hosts this instance has seen (first and last seen, messages,
    /// rate, silent or not), most recently seen first.
    #[arg(long)]
    pub hosts: bool,
}

#[derive(Debug, Args)]
pub struct TapArgs {
    /// Read the control socket path from this config.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        conflicts_with = "control"
    )]
    pub config: Option<PathBuf>,
    /// The control socket of the running instance.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// How each message is printed.
    #[arg(long, value_name = "FORMAT", default_value = "line", value_parser = ["line", "json"])]
    pub format: String,
    /// Only the messages this source delivers.
    #[arg(long, value_name = "NAME", conflicts_with = "destination")]
    pub source: Option<String>,
    /// Only the messages routed to this destination.
    #[arg(long, value_name = "NAME")]
    pub destination: Option<String>,
    /// Only the messages that match this filter expression (SPEC.md,
    /// "Filter language"); without it, every message.
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
}

#[derive(Debug, Args)]
pub struct RejectsArgs {
    /// Read `state_dir` (and, with --replay, the control socket) from this
    /// config.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        conflicts_with_all = ["state_dir", "control"]
    )]
    pub config: Option<PathBuf>,
    /// The state directory whose rejects store (`DIR/rejects`) to list.
    #[arg(long, value_name = "DIR", conflicts_with = "replay")]
    pub state_dir: Option<PathBuf>,
    /// Ask the running instance to deliver DEST's set-aside messages to
    /// DEST again (what fails again is set aside again).
    #[arg(long, value_name = "DEST")]
    pub replay: Option<String>,
    /// The control socket of the running instance (for --replay).
    #[arg(long, value_name = "PATH", requires = "replay")]
    pub control: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "client" => Ok(Mode::Client),
        "relay" => Ok(Mode::Relay),
        "server" => Ok(Mode::Server),
        other => Err(format!("`{other}` is not a mode: client, relay or server")),
    }
}
