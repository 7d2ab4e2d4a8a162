//! `init-injector wait`: what the injected wait steps run. Waits for each target in
//! turn (TCP connect, or an HTTP(S) GET answered 2xx), resolving names again on every
//! attempt, bounding each attempt, backing off with jitter, and giving up at a deadline.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::net::TcpStream;

use crate::engine::target::{Host, WaitTarget};

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
#[derive(Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    Ready,
    /// The deadline passed; the last error.
    TimedOut(String),
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

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Runs the wait. Logs one line per attempt and a final line.
pub async fn run(config: WaitConfig) -> WaitOutcome {
    let started = Instant::now();
    let deadline = started + config.timeout;
    let http = match http_client(&config) {
        Ok(client) => client,
        Err(err) => return WaitOutcome::TimedOut(format!("cannot build the HTTP client: {err}")),
    };
    let mut rng = rand::rng();
    let count = config.targets.len() as u32;
    for (index, target) in config.targets.iter().enumerate() {
        let (i, n) = config.step.unwrap_or((index as u32 + 1, count));
        let label = format!("[{i}/{n}] wait-for {target}");
        let mut backoff = Backoff::new(config.interval, config.max_interval);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let bound = config
                .attempt_timeout
                .min(remaining.max(Duration::from_millis(1)));
            let result = match tokio::time::timeout(bound, probe(target, &http)).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {}", seconds(bound))),
            };
            let elapsed = started.elapsed();
            match result {
                Ok(()) => {
                    log(&format!(
                        "{label}: ready after {} ({attempt} attempt{})",
                        seconds(elapsed),
                        plural(attempt)
                    ));
                    break;
                }
                Err(error) => {
                    let now = Instant::now();
                    if now >= deadline {
                        let message = format!(
                            "{label}: gave up after {} ({attempt} attempt{}); last error: {error}",
                            seconds(elapsed),
                            plural(attempt)
                        );
                        log(&message);
                        write_termination_log(&config.termination_log, &message);
                        return WaitOutcome::TimedOut(error);
                    }
                    let delay = backoff.next_delay(&mut rng).min(deadline - now);
                    log(&format!(
                        "{label}: attempt {attempt} failed: {error} (elapsed {}, next try in {})",
                        seconds(elapsed),
                        seconds(delay)
                    ));
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
    WaitOutcome::Ready
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Kubernetes shows the content of /dev/termination-log in `kubectl describe pod`.
fn write_termination_log(path: &std::path::Path, message: &str) {
    let _ = std::fs::write(path, message);
}

async fn probe(target: &WaitTarget, http: &reqwest::Client) -> Result<(), String> {
    match target {
        WaitTarget::Tcp { host, port } => connect(host, *port).await,
        WaitTarget::Http(target) => {
            let response = http
                .get(target.url())
                .send()
                .await
                .map_err(|e| describe_http(&e))?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", status.as_u16()))
            }
        }
    }
}

async fn connect(host: &Host, port: u16) -> Result<(), String> {
    let addrs: Vec<std::net::SocketAddr> = match host {
        Host::Ipv4(ip) => vec![(*ip, port).into()],
        Host::Ipv6(ip) => vec![(*ip, port).into()],
        // Resolved on every attempt: a Service created after the pod must still be found.
        Host::Name(name) => tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|e| format!("no such host ({e})"))?
            .collect(),
    };
    let mut last = String::from("no addresses");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(err) => last = describe_io(&err, addr),
        }
    }
    Err(last)
}

fn describe_io(err: &std::io::Error, addr: std::net::SocketAddr) -> String {
    match err.kind() {
        std::io::ErrorKind::ConnectionRefused => format!("connection refused ({addr})"),
        _ => format!("{err} ({addr})"),
    }
}

/// The most telling cause in a reqwest error chain, in words.
fn describe_http(err: &reqwest::Error) -> String {
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(current) = source {
        let io_kind = current
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        if io_kind == Some(std::io::ErrorKind::ConnectionRefused) {
            return "connection refused".to_owned();
        }
        let text = current.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return format!("no such host ({text})");
        }
        if !chain.contains(&text) {
            if !chain.is_empty() {
                chain.push_str(": ");
            }
            let _ = write!(chain, "{text}");
        }
        source = current.source();
    }
    chain
}

fn http_client(config: &WaitConfig) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &config.ca_pem {
        use rustls_pki_types::pem::PemObject;
        let mut added = 0;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("the CA file is not PEM: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("the CA file holds an unusable certificate: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("the CA file holds no certificate".to_owned());
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        // A fresh connection per attempt, so names are resolved again every time.
        .pool_max_idle_per_host(0)
        .user_agent(concat!("init-injector-wait/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
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
