//! `logrelay`: parse the command line, load the config, run; the exit code
//! is chosen here (0 clean, 2 config error, 1 anything else).

use std::process::ExitCode;

use clap::Parser;

use logrelay::cli::{Cli, Command, RunArgs};
use logrelay::config::{defaults, Config, Mode};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Client(args) => run(Mode::Client, &args),
        Command::Relay(args) => run(Mode::Relay, &args),
        Command::Server(args) => run(Mode::Server, &args),
        Command::Check(args) => match Config::load(&args.config, args.mode) {
            Ok(config) => {
                print!("{}", config.describe());
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Stats(_) => {
            eprintln!("logrelay: stats: the control socket is not built yet");
            ExitCode::from(1)
        }
    }
}

fn config_error(e: &logrelay::config::Error) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(2)
}

fn run(mode: Mode, args: &RunArgs) -> ExitCode {
    if args.print_config {
        match &args.config {
            None => print!("{}", defaults::text(mode)),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => print!("{text}"),
                Err(e) => {
                    eprintln!("{}:1:1: cannot read the config file: {e}", path.display());
                    return ExitCode::from(2);
                }
            },
        }
        return ExitCode::SUCCESS;
    }
    let loaded = match &args.config {
        Some(path) => Config::load(path, mode),
        None => Config::embedded(mode),
    };
    let config = match loaded {
        Ok(config) => config,
        Err(e) => return config_error(&e),
    };
    eprintln!(
        "logrelay: {} mode: config {} is valid, but the runtime pipeline is not built yet",
        mode, config.origin
    );
    ExitCode::from(1)
}
