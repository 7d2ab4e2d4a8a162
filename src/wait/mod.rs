//! `init-injector wait`: what the injected wait steps run. Waits for each target in
//! turn (TCP connect, or an HTTP(S) GET answered 2xx, see `probe.rs`), resolving names
//! again on every attempt, bounding each attempt, backing off with jitter, and giving up
//! at a deadline.

mod probe;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::Rng;

pub use probe::{ClientError, ProbeError};

use crate::engine::target::WaitTarget;

/// Settings for one `wait` run.
#[derive(Clone, Debug)]
pub struct WaitConfig {
    pub targets: Vec<WaitTarget>,
    /// Deadline for all targets together.
    pub timeout: Duration,
    /// First retry delay.
    pub interval: Duration,
    /// Longest retry delay.
    pub max_interval: Duration,
    /// Bound on one attempt (connect, TLS, request).
    pub attempt_timeout: Duration,
    /// `I/N` of the injected block, for the log; `None` numbers the targets.
    pub step: Option<(u32, u32)>,
    /// Extra CA certificates (PEM) trusted for https targets.
    pub ca_pem: Option<Vec<u8>>,
    /// Where the reason for giving up is written, if writable.
    pub termination_log: PathBuf,
}

/// How a wait ended.
#[derive(Debug)]
pub enum WaitOutcome {
    Ready,
    /// The deadline passed; the last attempt's error.
    TimedOut(ProbeError),
    /// No attempt was made: the HTTPS client cannot be built (an unusable CA file).
    NoClient(ClientError),
}

/// Exponential backoff from `interval` to `max`, each delay scaled by a random factor
/// in [0.8, 1.2) so that many pods started together do not retry in step.
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(interval: Duration, max: Duration) -> Self {
        Backoff {
            next: interval,
            max: max.max(interval),
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base.mul_f64(rng.random_range(0.8..1.2))
    }
}

/// Writes one timestamped line to stderr.
pub(crate) fn log(line: &str) {
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    eprintln!("{now} {line}");
}

pub(crate) fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Runs the wait. Logs one line per attempt and a final line.
pub async fn run(config: WaitConfig) -> WaitOutcome {
    let started = Instant::now();
    let deadline = started + config.timeout;
    let http = match probe::http_client(config.ca_pem.as_deref()) {
        Ok(client) => client,
        Err(err) => return WaitOutcome::NoClient(err),
    };
    let count = config.targets.len() as u32;
    for (index, target) in config.targets.iter().enumerate() {
        let (i, n) = config.step.unwrap_or((index as u32 + 1, count));
        let label = format!("[{i}/{n}] wait-for {target}");
        let attempts = Attempts {
            label: &label,
            started,
            deadline,
            config: &config,
            http: &http,
        };
        if let Err(error) = attempts.until_ready(target).await {
            return WaitOutcome::TimedOut(error);
        }
    }
    WaitOutcome::Ready
}

/// Tries one target until it is ready or the deadline passes.
struct Attempts<'a> {
    /// `[I/N] wait-for TARGET`, the start of every log line.
    label: &'a str,
    started: Instant,
    deadline: Instant,
    config: &'a WaitConfig,
    http: &'a reqwest::Client,
}

impl Attempts<'_> {
    async fn until_ready(&self, target: &WaitTarget) -> Result<(), ProbeError> {
        let label = self.label;
        let mut rng = rand::rng();
        let mut backoff = Backoff::new(self.config.interval, self.config.max_interval);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let bound = self
                .config
                .attempt_timeout
                .min(remaining.max(Duration::from_millis(1)));
            let result = match tokio::time::timeout(bound, probe::probe(target, self.http)).await {
                Ok(result) => result,
                Err(_) => Err(ProbeError::NoAnswer(bound)),
            };
            let elapsed = self.started.elapsed();
            let Err(error) = result else {
                log(&format!(
                    "{label}: ready after {} ({attempt} attempt{})",
                    seconds(elapsed),
                    plural(attempt)
                ));
                return Ok(());
            };
            let now = Instant::now();
            if now >= self.deadline {
                let message = format!(
                    "{label}: gave up after {} ({attempt} attempt{}); last error: {error}",
                    seconds(elapsed),
                    plural(attempt)
                );
                log(&message);
                write_termination_log(&self.config.termination_log, &message);
                return Err(error);
            }
            let delay = backoff.next_delay(&mut rng).min(self.deadline - now);
            log(&format!(
                "{label}: attempt {attempt} failed: {error} (elapsed {}, next try in {})",
                seconds(elapsed),
                seconds(delay)
            ));
            tokio::time::sleep(delay).await;
        }
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Kubernetes shows the content of /dev/termination-log in `kubectl describe pod`.
fn write_termination_log(path: &std::path::Path, message: &str) {
    let _ = std::fs::write(path, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(10));
        let bases = [2.0, 4.0, 8.0, 10.0, 10.0];
        for base in bases {
            let delay = backoff.next_delay(&mut rng).as_secs_f64();
            assert!(
                delay >= base * 0.8 && delay < base * 1.2,
                "{delay} vs {base}"
            );
        }
    }
}
