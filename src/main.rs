//! The `init-injector` binary: parses the command line and hands off to the library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use init_injector::cli::{Cli, Command, inject};

/// mimalloc: the engine allocates many small strings and a few large structs per review,
/// where glibc's allocator spends more time than the engine itself (see benches/engine.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inject(args) => run_inject(args),
    }
}

fn run_inject(args: inject::InjectArgs) -> ExitCode {
    let inputs = match inject::read_inputs(&args.files) {
        Ok(inputs) => inputs,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let config = args.engine.into_config();
    let report = inject::run(&inputs, args.explain, &config);
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if !report.errors.is_empty() {
        for error in &report.errors {
            eprintln!("error: {error}");
        }
        eprintln!(
            "error: {} problem(s) found; nothing was written",
            report.errors.len()
        );
        return ExitCode::FAILURE;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout
        .write_all(report.stdout.as_bytes())
        .and_then(|()| stdout.flush())
    {
        eprintln!("error: cannot write output: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
