//! `logrelay`: parse the command line, load the config, run the pipeline; the exit code
//! is chosen here (0 clean, 2 config error, 1 anything else).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use logrelay::cli::{Cli, Command, RunArgs, StatsArgs};
use logrelay::config::{defaults, Config, Mode, Origin};
use logrelay::pipeline;

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
        Command::Stats(args) => stats(&args),
    }
}

/// `logrelay stats`: asks the control socket of `--control`, of the
/// config of `-c`, or else the first that exists of the embedded defaults'
/// sockets (server, relay, client) and the packaged configs' ones.
fn stats(args: &StatsArgs) -> ExitCode {
    let path = if let Some(path) = &args.control {
        path.clone()
    } else if let Some(file) = &args.config {
        match Config::load(file, Mode::Server) {
            Ok(config) => config.global.control,
            Err(e) => return config_error(&e),
        }
    } else {
        let candidates = logrelay::control::default_paths();
        match candidates.iter().find(|p| p.exists()) {
            Some(p) => p.clone(),
            None => {
                let list: Vec<String> =
                    candidates.iter().map(|p| p.display().to_string()).collect();
                eprintln!(
                    "logrelay: stats: no control socket at {}: name one with --control PATH or -c FILE",
                    list.join(", ")
                );
                return ExitCode::from(1);
            }
        }
    };
    match logrelay::control::query(&path) {
        Ok((text, snapshot)) => {
            if args.json {
                println!("{text}");
            } else {
                print!("{}", snapshot.table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("logrelay: stats: {e}");
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
    // Remembered so that SIGHUP reads the same file (or default) again.
    let origin = match &args.config {
        Some(path) => Origin::File(path.clone()),
        None => Origin::Embedded(mode),
    };
    let config = match origin.load(mode) {
        Ok(config) => config,
        Err(e) => return config_error(&e),
    };
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("logrelay: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(pipeline::run(config, origin));
    // A blocking read of stdin cannot be interrupted: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logrelay: {e}");
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default: info).
fn init_tracing() {
    logrelay::logging::init();
}
