//! `logrelay`: parse the command line, load the config, run the pipeline; the exit code
//! is chosen here (0 clean, 2 config error, 1 anything else).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use logrelay::cli::{Cli, Command, RejectsArgs, RunArgs, StatsArgs, TapArgs};
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
        Command::Rejects(args) => rejects(&args),
        Command::Tap(args) => tap(&args),
    }
}

/// `logrelay rejects`: lists the rejects store of `--state-dir`, of the
/// config of `-c`, or else of the first embedded default's or packaged
/// config's state directory that has one; `--replay DEST` asks the
/// running instance (its control socket found as `logrelay stats` finds
/// it) to send DEST's set-aside messages again.
fn rejects(args: &RejectsArgs) -> ExitCode {
    use logrelay::state::rejects;
    let config = match &args.config {
        Some(file) => match Config::load(file, Mode::Server) {
            Ok(config) => Some(config),
            Err(e) => return config_error(&e),
        },
        None => None,
    };
    if let Some(dest) = &args.replay {
        let path = match (&args.control, &config) {
            (Some(path), _) => path.clone(),
            (None, Some(config)) => config.global.control.clone(),
            (None, None) => {
                let candidates = logrelay::control::default_paths();
                match candidates.iter().find(|p| p.exists()) {
                    Some(p) => p.clone(),
                    None => {
                        eprintln!("logrelay: rejects: no control socket found: name one with --control PATH or -c FILE");
                        return ExitCode::from(1);
                    }
                }
            }
        };
        return match logrelay::control::replay(&path, dest) {
            Ok(started) => {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({ "destination": dest, "files": started.files, "records": started.records })
                    );
                } else {
                    println!(
                        "replaying {} set-aside messages to {dest} ({} files): `logrelay rejects` shows what is left",
                        started.records, started.files
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("logrelay: rejects: {e}");
                ExitCode::from(1)
            }
        };
    }
    let state_dir = match (&args.state_dir, &config) {
        (Some(dir), _) => dir.clone(),
        (None, Some(config)) => config.global.state_dir.clone(),
        (None, None) => {
            let candidates: Vec<std::path::PathBuf> = ["server", "relay", "client"]
                .iter()
                .map(|m| std::path::PathBuf::from(format!("./logrelay-data/{m}")))
                .chain(
                    ["server", "relay", "client"]
                        .iter()
                        .map(|m| std::path::PathBuf::from(format!("/var/lib/logrelay/{m}"))),
                )
                .collect();
            match candidates.iter().find(|d| d.join("rejects").is_dir()) {
                Some(dir) => dir.clone(),
                None => {
                    let list: Vec<String> =
                        candidates.iter().map(|p| p.display().to_string()).collect();
                    eprintln!(
                        "logrelay: rejects: no rejects store in {}: name the state directory with --state-dir DIR or -c FILE",
                        list.join(", ")
                    );
                    return ExitCode::from(1);
                }
            }
        }
    };
    let dir = state_dir.join("rejects");
    let rows = match rejects::summarize(&dir) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("logrelay: rejects: {}: {e}", dir.display());
            return ExitCode::from(1);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&rows).unwrap_or_default());
    } else if rows.is_empty() {
        println!("no messages set aside ({})", dir.display());
    } else {
        print!("{}", rejects::table(&rows));
    }
    ExitCode::SUCCESS
}

/// The control socket of `--control`, of the config of `-c`, or else the
/// first that exists of the embedded defaults' sockets (server, relay,
/// client) and the packaged configs' ones; or the exit code of the error
/// (printed).
fn control_path(
    config: Option<&std::path::Path>,
    control: Option<&std::path::Path>,
    command: &str,
) -> Result<std::path::PathBuf, ExitCode> {
    if let Some(path) = control {
        return Ok(path.to_path_buf());
    }
    if let Some(file) = config {
        return match Config::load(file, Mode::Server) {
            Ok(config) => Ok(config.global.control),
            Err(e) => Err(config_error(&e)),
        };
    }
    let candidates = logrelay::control::default_paths();
    match candidates.iter().find(|p| p.exists()) {
        Some(p) => Ok(p.clone()),
        None => {
            let list: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            eprintln!(
                "logrelay: {command}: no control socket at {}: name one with --control PATH or -c FILE",
                list.join(", ")
            );
            Err(ExitCode::from(1))
        }
    }
}

/// `logrelay stats`: asks the control socket (see [`control_path`]).
fn stats(args: &StatsArgs) -> ExitCode {
    let path = match control_path(args.config.as_deref(), args.control.as_deref(), "stats") {
        Ok(path) => path,
        Err(code) => return code,
    };
    if args.hosts {
        return match logrelay::control::hosts(&path) {
            Ok((text, document)) => {
                if args.json {
                    println!("{text}");
                } else {
                    print!("{}", document.table());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("logrelay: stats: {e}");
                ExitCode::from(1)
            }
        };
    }
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

/// `logrelay tap`: the filter is checked first (exit 2 with its column,
/// before any instance is asked), then the tap runs until Ctrl-C.
fn tap(args: &TapArgs) -> ExitCode {
    use logrelay::live::{tap::Request, tap_client};
    if let Some(expr) = &args.filter {
        if let Err(e) = tap_client::check_filter(expr) {
            eprintln!("logrelay: tap: {e}");
            return ExitCode::from(2);
        }
    }
    let path = match control_path(args.config.as_deref(), args.control.as_deref(), "tap") {
        Ok(path) => path,
        Err(code) => return code,
    };
    let request = Request {
        filter: args.filter.clone(),
        format: Some(args.format.clone()),
        source: args.source.clone(),
        destination: args.destination.clone(),
    };
    match tap_client::run(&path, &request) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logrelay: tap: {e}");
            ExitCode::from(if e.is_usage() { 2 } else { 1 })
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
