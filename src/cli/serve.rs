//! `init-injector serve`: flags into a [`ServeConfig`], then run until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{EngineArgs, runtime, shutdown_signal};
use crate::engine::duration::parse_positive;
use crate::webhook::admission::{AdmissionConfig, OnInvalid};
use crate::webhook::server;
use crate::webhook::server::{ServeConfig, TlsSource};
use crate::webhook::tls::TlsFiles;

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
    #[arg(long, env = "INIT_INJECTOR_DRAIN_TIMEOUT", default_value = "20s", value_parser = parse_positive)]
    pub drain_timeout: Duration,
    /// Deadline for a client's TLS handshake, request headers, and request body.
    #[arg(long, env = "INIT_INJECTOR_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_positive)]
    pub request_timeout: Duration,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "INIT_INJECTOR_CERT_RELOAD_INTERVAL", default_value = "2s", value_parser = parse_positive)]
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

impl ServeArgs {
    /// Serves until SIGTERM or Ctrl-C, then drains. Exit 0 after a clean stop, 1 when the
    /// server cannot start or stops with an error.
    pub fn execute(self) -> ExitCode {
        let config = self.into_config();
        let runtime = match runtime(tokio::runtime::Builder::new_multi_thread()) {
            Ok(runtime) => runtime,
            Err(code) => return code,
        };
        runtime.block_on(async move {
            let running = match server::start(config).await {
                Ok(running) => running,
                Err(err) => {
                    tracing::error!(error = %crate::error::chain(&err), "cannot start");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(ca) = &running.self_signed_ca {
                tracing::info!(
                    ca = %ca.display(),
                    "no --tls-cert given: serving a self-signed certificate for localhost, 127.0.0.1 and ::1; trust the CA in this file"
                );
            }
            tracing::info!(addr = %running.addr, metrics_addr = %running.metrics_addr, "serving AdmissionReview v1 on POST /mutate");
            let signal = shutdown_signal().await;
            tracing::info!(signal, "shutting down: no new connections, draining in-flight requests");
            match running.shutdown().await {
                Ok(()) => {
                    tracing::info!("stopped");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    tracing::error!(error = %crate::error::chain(&err), "stopped with an error");
                    ExitCode::FAILURE
                }
            }
        })
    }
}
