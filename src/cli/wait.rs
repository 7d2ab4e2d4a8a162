//! `init-injector wait TARGET...`: flags into a [`WaitConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::parse_duration;
use crate::config;
use crate::target::WaitTarget;
use crate::wait::WaitConfig;

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Targets, waited for in the order given: host:port, tcp://host:port, http://…,
    /// https://… (IPv6 as [::1]:5432). HTTP targets need a 2xx answer.
    #[arg(required = true, value_name = "TARGET", value_parser = parse_target)]
    pub targets: Vec<WaitTarget>,
    /// Give up when this much time has passed (for all targets together).
    // The duration flags take `-5s` as their value, so that a negative duration gets
    // the message that names the flag instead of clap's "unexpected argument".
    #[arg(long, default_value = config::DEFAULT_WAIT_TIMEOUT, value_parser = parse_duration, allow_hyphen_values = true)]
    pub timeout: Duration,
    /// First retry delay; later ones double, with jitter, up to --max-interval.
    #[arg(long, default_value = config::DEFAULT_WAIT_INTERVAL, value_parser = parse_duration, allow_hyphen_values = true)]
    pub interval: Duration,
    /// Longest retry delay.
    #[arg(long, default_value = "30s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub max_interval: Duration,
    /// Bound on one attempt (connect, TLS handshake, HTTP answer).
    #[arg(long, default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub attempt_timeout: Duration,
    /// Position in the injected block, I/N, shown in the log as [I/N].
    #[arg(long, value_name = "I/N", value_parser = parse_step)]
    pub step: Option<(u32, u32)>,
    /// A PEM file of CA certificates to trust for https targets, besides the built-in
    /// Mozilla roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Where the reason for giving up is written (shown by `kubectl describe pod`).
    #[arg(long, value_name = "FILE", default_value = "/dev/termination-log")]
    pub termination_log: PathBuf,
}

impl WaitArgs {
    /// Validates into a config; the error names the argument.
    pub fn into_config(self) -> Result<WaitConfig, String> {
        let ca_pem = match &self.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("--ca-file {}: cannot read it: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(WaitConfig {
            targets: self.targets,
            timeout: self.timeout,
            interval: self.interval,
            max_interval: self.max_interval,
            attempt_timeout: self.attempt_timeout,
            step: self.step,
            ca_pem,
            termination_log: self.termination_log,
        })
    }
}

fn parse_target(text: &str) -> Result<WaitTarget, String> {
    WaitTarget::parse(text)
}

fn parse_step(text: &str) -> Result<(u32, u32), String> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((i, n)) if i >= 1 && i <= n => Ok((i, n)),
        _ => Err("expected I/N with 1 <= I <= N, such as 2/5".to_owned()),
    }
}
