//! The command line: one binary, one subcommand per job. Flags fall back to
//! `INIT_INJECTOR_*` environment variables and are validated into plain config values;
//! each command's `execute` runs it, prints what it has to say and picks the exit code.

pub mod certs;
pub mod crd;
pub mod inject;
pub mod input;
pub mod scope;
pub mod self_test;
pub mod serve;
pub mod wait;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::engine::config::{self, EngineConfig};
use crate::engine::duration::parse_positive;
use crate::engine::names::is_dns1123_subdomain;

/// Turns annotations into ordered, idempotent init containers.
#[derive(Debug, Parser)]
#[command(name = "init-injector", version, about)]
pub struct Cli {
    /// Log format (logs go to standard error).
    #[arg(
        long,
        global = true,
        env = "INIT_INJECTOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTPS admission webhook (AdmissionReview v1 on POST /mutate).
    Serve(Box<serve::ServeArgs>),
    /// Print manifests with init containers injected, as the webhook would (offline).
    Inject(inject::InjectArgs),
    /// Wait until TCP/HTTP targets are ready (what the injected wait steps run).
    /// Exit 0 ready, 1 deadline passed, 2 usage error.
    Wait(wait::WaitArgs),
    /// Generate a CA and a serving certificate for the webhook (development, bootstrap).
    Certs(certs::CertsArgs),
    /// Check an installation: send a server-side dry run of an annotated pod to the API
    /// server and check that it comes back injected. Exit 0 injected, 1 not.
    SelfTest(self_test::SelfTestArgs),
    /// Print the InitPolicy CustomResourceDefinition (YAML), as the chart ships it:
    /// `init-injector crd | kubectl apply -f -`.
    Crd(crd::CrdArgs),
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Engine settings shared by `serve` and `inject`.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Annotation prefix: keys are PREFIX/wait-for, PREFIX/run.NAME, …
    #[arg(long, env = "INIT_INJECTOR_ANNOTATION_PREFIX", default_value = config::DEFAULT_PREFIX, value_parser = parse_prefix)]
    pub annotation_prefix: String,
    /// Image of the injected wait steps (runs `init-injector wait`).
    #[arg(long, env = "INIT_INJECTOR_WAIT_IMAGE", default_value_t = config::default_wait_image())]
    pub wait_image: String,
    /// Deadline per wait target when a pod does not set PREFIX/wait-timeout.
    #[arg(long, env = "INIT_INJECTOR_WAIT_TIMEOUT", default_value = config::DEFAULT_WAIT_TIMEOUT, value_parser = parse_positive)]
    pub wait_timeout: Duration,
    /// First retry delay when a pod does not set PREFIX/wait-interval.
    #[arg(long, env = "INIT_INJECTOR_WAIT_INTERVAL", default_value = config::DEFAULT_WAIT_INTERVAL, value_parser = parse_positive)]
    pub wait_interval: Duration,
    /// CPU request of each injected wait step.
    #[arg(long, env = "INIT_INJECTOR_WAIT_CPU_REQUEST", default_value = config::DEFAULT_WAIT_CPU_REQUEST, value_parser = parse_quantity)]
    pub wait_cpu_request: String,
    /// Memory request of each injected wait step.
    #[arg(long, env = "INIT_INJECTOR_WAIT_MEMORY_REQUEST", default_value = config::DEFAULT_WAIT_MEMORY_REQUEST, value_parser = parse_quantity)]
    pub wait_memory_request: String,
    /// CPU limit of each injected wait step.
    #[arg(long, env = "INIT_INJECTOR_WAIT_CPU_LIMIT", default_value = config::DEFAULT_WAIT_CPU_LIMIT, value_parser = parse_quantity)]
    pub wait_cpu_limit: String,
    /// Memory limit of each injected wait step.
    #[arg(long, env = "INIT_INJECTOR_WAIT_MEMORY_LIMIT", default_value = config::DEFAULT_WAIT_MEMORY_LIMIT, value_parser = parse_quantity)]
    pub wait_memory_limit: String,
}

impl EngineArgs {
    pub fn into_config(self) -> EngineConfig {
        EngineConfig {
            prefix: self.annotation_prefix,
            wait_image: self.wait_image,
            default_timeout: self.wait_timeout,
            default_interval: self.wait_interval,
            wait_resources: config::wait_resources(
                &self.wait_cpu_request,
                &self.wait_memory_request,
                &self.wait_cpu_limit,
                &self.wait_memory_limit,
            ),
        }
    }
}

/// A flag value that does not parse; clap shows it after the flag's name.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// `--wait-cpu-request` and the like.
    #[error("expected a Kubernetes quantity such as 10m, 0.5, 16Mi or 1Gi")]
    Quantity,
    /// `--annotation-prefix`.
    #[error(
        "expected a DNS subdomain such as init.example (lowercase letters, digits, '-' and '.')"
    )]
    Prefix,
    /// `wait --step`.
    #[error("expected I/N with 1 <= I <= N, such as 2/5")]
    Step,
}

fn parse_quantity(text: &str) -> Result<String, FlagError> {
    if crate::engine::annotations::is_quantity(text) {
        Ok(text.to_owned())
    } else {
        Err(FlagError::Quantity)
    }
}

/// An annotation prefix is a DNS subdomain, as Kubernetes requires of annotation prefixes.
pub(crate) fn parse_prefix(text: &str) -> Result<String, FlagError> {
    if is_dns1123_subdomain(text) {
        Ok(text.to_owned())
    } else {
        Err(FlagError::Prefix)
    }
}

/// Exit code for a usage error: bad flags, unreadable inputs.
pub const EXIT_USAGE: u8 = 2;

/// Prints `error: ` and the error with its causes; returns `code` as the exit code.
fn fail(code: u8, err: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {}", crate::error::chain(err));
    ExitCode::from(code)
}

/// Builds the async runtime, or says why not.
fn runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|err| {
        eprintln!("error: cannot start the async runtime: {err}");
        ExitCode::FAILURE
    })
}

/// SIGTERM and Ctrl-C, caught from the moment this is built: a signal that arrives while
/// the command is still starting is held for [`ShutdownSignals::recv`] instead of
/// killing the process with the default action.
struct ShutdownSignals {
    term: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    /// Installs both handlers; call it inside the runtime, first thing.
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).ok(),
            interrupt: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Waits for SIGTERM or Ctrl-C and names the one that came.
    async fn recv(&mut self) -> &'static str {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.term) => "SIGTERM",
            _ = next(&mut self.interrupt) => "SIGINT",
        }
    }
}
