//! The `init-injector` binary: parses the command line, sets up logging and the crypto
//! provider, and hands off to the command. Exit codes and printing live with each
//! command under `src/cli/`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use init_injector::cli::{Cli, Command, LogFormat};
use init_injector::crypto;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    crypto::install_provider();
    match cli.command {
        Command::Serve(args) => args.execute(),
        Command::Inject(args) => args.execute(),
        Command::Certs(args) => args.execute(),
        Command::Wait(args) => args.execute(),
        Command::SelfTest(args) => args.execute(),
        Command::Crd(args) => args.execute(),
    }
}

fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("INIT_INJECTOR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a pod's log (a pipe) or a file gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
