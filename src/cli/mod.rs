//! The command line: one binary, one subcommand per job. Flags fall back to
//! `INIT_INJECTOR_*` environment variables and are validated into plain config values.

pub mod certs;
pub mod inject;
pub mod self_test;
pub mod serve;
pub mod wait;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, EngineConfig};
use crate::duration;
use crate::names::is_dns1123_label;

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
    #[arg(long, env = "INIT_INJECTOR_WAIT_TIMEOUT", default_value = config::DEFAULT_WAIT_TIMEOUT, value_parser = parse_duration)]
    pub wait_timeout: Duration,
    /// First retry delay when a pod does not set PREFIX/wait-interval.
    #[arg(long, env = "INIT_INJECTOR_WAIT_INTERVAL", default_value = config::DEFAULT_WAIT_INTERVAL, value_parser = parse_duration)]
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

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse_positive(text)
        .map_err(|why| format!("expected a positive duration such as 90s or 5m, but {why}"))
}

fn parse_quantity(text: &str) -> Result<String, String> {
    if crate::annotations::is_quantity(text) {
        Ok(text.to_owned())
    } else {
        Err("expected a Kubernetes quantity such as 10m, 0.5, 16Mi or 1Gi".to_owned())
    }
}

/// An annotation prefix is a DNS subdomain, as Kubernetes requires of annotation prefixes.
pub(crate) fn parse_prefix(text: &str) -> Result<String, String> {
    let valid = !text.is_empty() && text.len() <= 253 && text.split('.').all(is_dns1123_label);
    if valid {
        Ok(text.to_owned())
    } else {
        Err("expected a DNS subdomain such as init.example (lowercase letters, digits, '-' and '.')".to_owned())
    }
}
