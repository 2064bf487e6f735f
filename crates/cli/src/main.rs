//! `tempest`: parses the command line, installs logging, runs one command and maps its outcome
//! to the exit code (0 success, 1 user/config error, 2 runtime failure; SPEC §1).

mod check;
mod logging;
mod lua_checks;
mod replay;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The definitions or arguments are wrong; the user must fix them.
const USER_ERROR: u8 = 1;
/// Something failed while running (server, network, a crash of ours).
const RUNTIME_FAILURE: u8 = 2;

/// Runs durable Temporal workflows and activities written in Lua.
#[derive(Debug, Parser)]
#[command(name = "tempest", version)]
struct Cli {
    /// How log lines on stderr look; `RUST_LOG` picks what is logged (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Pretty)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the auto_start entries and run until SIGINT/SIGTERM.
    Run {
        /// Directory of definition files.
        #[arg(default_value = "./src")]
        dir: PathBuf,
    },
    /// Validate every definition file and Lua source without connecting anywhere.
    Check {
        /// Directory of definition files.
        #[arg(default_value = "./src")]
        dir: PathBuf,
    },
    /// Run one function.lua / process.lua entry once and print its result as JSON.
    Exec {
        /// Directory of definition files.
        dir: PathBuf,
        /// The entry ID (`namespace:name`).
        entry: String,
        /// Arguments, each one JSON value.
        args: Vec<String>,
    },
    /// Replay workflow histories against the current Lua sources.
    Replay {
        /// Directory of definition files.
        dir: PathBuf,
        /// History files (JSON from `temporal workflow show --output json`, or protobuf).
        #[arg(required = true)]
        histories: Vec<PathBuf>,
    },
    /// Like `run`, starting a local Temporal dev server first when none is listening.
    Dev {
        /// Directory of definition files.
        #[arg(default_value = "./src")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // `--help` and `--version` arrive here too, on stdout, and are not failures.
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(USER_ERROR) } else { ExitCode::SUCCESS };
        }
    };
    logging::init(cli.log_format);
    match cli.command {
        Command::Check { dir } => check::run(&dir),
        Command::Run { dir } => run::run(&dir),
        Command::Dev { dir } => run::dev(&dir),
        Command::Exec { .. } => not_implemented("exec"),
        Command::Replay { dir, histories } => replay::run(&dir, &histories),
    }
}

fn not_implemented(command: &str) -> ExitCode {
    eprintln!("tempest {command}: not implemented yet");
    ExitCode::from(RUNTIME_FAILURE)
}
