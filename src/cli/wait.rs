//! `init-injector wait TARGET...`: flags into a [`WaitConfig`], then wait. Exit 0 when
//! every target is ready, 1 when the deadline passed, 2 on a usage error, 143 when
//! stopped by a signal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{EXIT_USAGE, FlagError, ShutdownSignals, fail, runtime};
use crate::engine::config;
use crate::engine::duration::parse_positive;
use crate::engine::target::WaitTarget;
use crate::wait::{self, WaitConfig, WaitOutcome};

/// Exit code when SIGTERM or Ctrl-C stopped the wait (128 + SIGTERM, as a shell reports it).
const EXIT_SIGNALLED: u8 = 143;

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Targets, waited for in the order given: host:port, tcp://host:port, http://…,
    /// https://… (IPv6 as [::1]:5432). HTTP targets need a 2xx answer.
    #[arg(required = true, value_name = "TARGET", value_parser = WaitTarget::parse)]
    pub targets: Vec<WaitTarget>,
    /// Give up when this much time has passed (for all targets together).
    // The duration flags take `-5s` as their value, so that a negative duration gets
    // the message that names the flag instead of clap's "unexpected argument".
    #[arg(long, default_value = config::DEFAULT_WAIT_TIMEOUT, value_parser = parse_positive, allow_hyphen_values = true)]
    pub timeout: Duration,
    /// First retry delay; later ones double, with jitter, up to --max-interval.
    #[arg(long, default_value = config::DEFAULT_WAIT_INTERVAL, value_parser = parse_positive, allow_hyphen_values = true)]
    pub interval: Duration,
    /// Longest retry delay.
    #[arg(long, default_value = "30s", value_parser = parse_positive, allow_hyphen_values = true)]
    pub max_interval: Duration,
    /// Bound on one attempt (connect, TLS handshake, HTTP answer).
    #[arg(long, default_value = "5s", value_parser = parse_positive, allow_hyphen_values = true)]
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
    /// Validates into a config.
    pub fn into_config(self) -> Result<WaitConfig, WaitArgsError> {
        let ca_pem = match &self.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|source| WaitArgsError::CaFile {
                path: path.clone(),
                source,
            })?),
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

    /// Waits for every target in turn.
    pub fn execute(self) -> ExitCode {
        let config = match self.into_config() {
            Ok(config) => config,
            Err(err) => return fail(EXIT_USAGE, &err),
        };
        // One thread is plenty for waiting on one target at a time.
        let runtime = match runtime(tokio::runtime::Builder::new_current_thread()) {
            Ok(runtime) => runtime,
            Err(code) => return code,
        };
        runtime.block_on(async move {
            let mut signals = ShutdownSignals::install();
            tokio::select! {
                outcome = wait::run(config) => match outcome {
                    WaitOutcome::Ready => ExitCode::SUCCESS,
                    WaitOutcome::TimedOut(_) => ExitCode::FAILURE,
                    WaitOutcome::NoClient(err) => fail(1, &err),
                },
                signal = signals.recv() => {
                    wait::log(&format!("received {signal}: stopped waiting"));
                    ExitCode::from(EXIT_SIGNALLED)
                }
            }
        })
    }
}

/// Flags that parse but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WaitArgsError {
    /// The `--ca-file` cannot be read.
    #[error("--ca-file {}: cannot read it", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn parse_step(text: &str) -> Result<(u32, u32), FlagError> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((i, n)) if i >= 1 && i <= n => Ok((i, n)),
        _ => Err(FlagError::Step),
    }
}
