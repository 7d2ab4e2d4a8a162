//! `init-injector serve`: flags into a [`ServeConfig`], then run until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{EngineArgs, parse_duration};
use crate::admission::{AdmissionConfig, OnInvalid};
use crate::server::{ServeConfig, TlsSource};
use crate::tls::TlsFiles;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// HTTPS address for /mutate, /healthz and /readyz.
    #[arg(long, env = "INIT_INJECTOR_ADDR", default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
    /// Plain HTTP address for Prometheus /metrics.
    #[arg(
        long,
        env = "INIT_INJECTOR_METRICS_ADDR",
        default_value = "0.0.0.0:9090"
    )]
    pub metrics_addr: SocketAddr,
    /// PEM certificate chain; reloaded when it changes. Without it, a self-signed
    /// certificate for localhost is generated.
    #[arg(long, env = "INIT_INJECTOR_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching --tls-cert.
    #[arg(long, env = "INIT_INJECTOR_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where the self-signed CA and certificate go when no --tls-cert is given
    /// [default: <temp dir>/init-injector].
    #[arg(
        long,
        env = "INIT_INJECTOR_SELF_SIGNED_DIR",
        conflicts_with = "tls_cert"
    )]
    pub self_signed_dir: Option<PathBuf>,
    /// What to do with a pod whose annotations are wrong: refuse it, or admit it
    /// unchanged with a warning.
    #[arg(
        long,
        env = "INIT_INJECTOR_ON_INVALID",
        value_enum,
        default_value = "deny"
    )]
    pub on_invalid: OnInvalid,
    /// How long in-flight requests may run after SIGTERM.
    #[arg(long, env = "INIT_INJECTOR_DRAIN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Deadline for a client's TLS handshake, request headers, and request body.
    #[arg(long, env = "INIT_INJECTOR_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "INIT_INJECTOR_CERT_RELOAD_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub cert_reload_interval: Duration,
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl ServeArgs {
    pub fn into_config(self) -> ServeConfig {
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => TlsSource::Files(TlsFiles { cert, key }),
            _ => TlsSource::SelfSigned {
                dir: self
                    .self_signed_dir
                    .unwrap_or_else(|| std::env::temp_dir().join("init-injector")),
            },
        };
        ServeConfig {
            addr: self.addr,
            metrics_addr: self.metrics_addr,
            tls,
            admission: AdmissionConfig {
                engine: self.engine.into_config(),
                on_invalid: self.on_invalid,
            },
            drain_timeout: self.drain_timeout,
            reload_interval: self.cert_reload_interval,
            request_timeout: self.request_timeout,
        }
    }
}
