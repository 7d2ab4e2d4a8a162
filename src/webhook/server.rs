//! The HTTPS webhook server: routes, TLS with reload, the metrics listener, readiness and
//! graceful shutdown. [`router`] is public so tests can drive the routes directly;
//! [`start`] runs the whole server on real sockets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::task::JoinHandle;

use crate::webhook::admission::{self, AdmissionConfig, ReviewError};
use crate::webhook::certs;
use crate::webhook::metrics::Metrics;
use crate::webhook::tls::{self, TlsError, TlsFiles};

/// The largest body accepted: the apiserver caps objects at 3 MiB and a CREATE review
/// carries the object once, plus the review's own fields.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum TlsSource {
    /// PEM files, reloaded when they change.
    Files(TlsFiles),
    /// A CA and certificate generated at start for localhost, 127.0.0.1 and ::1; the
    /// CA is written to `dir`.
    SelfSigned { dir: PathBuf },
}

/// Everything `serve` needs, validated.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub tls: TlsSource,
    pub admission: AdmissionConfig,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub drain_timeout: Duration,
    /// How often certificate files are checked for changes.
    pub reload_interval: Duration,
    /// Deadline for reading a request's headers and for reading its body.
    pub request_timeout: Duration,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The certificate files do not load.
    #[error("cannot load the serving certificate")]
    Tls(#[from] TlsError),
    /// No `--tls-cert` was given and the self-signed one cannot be made.
    #[error("cannot make a self-signed certificate")]
    Certs(#[from] certs::CertError),
    /// A listening address is taken or not ours.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Serving failed after the start.
    #[error("the server failed")]
    Io(#[from] std::io::Error),
}

/// State shared by the handlers.
pub struct App {
    pub admission: AdmissionConfig,
    pub metrics: Arc<Metrics>,
    /// Set after the first certificate load; cleared when shutdown starts.
    pub ready: AtomicBool,
    pub request_timeout: Duration,
}

/// The webhook's routes on the HTTPS port.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            json_error(
                StatusCode::NOT_FOUND,
                "no such path; the webhook serves POST /mutate",
            )
        })
        .with_state(app)
}

fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }
        }),
    )
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::Acquire) {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn mutate(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let refuse = |status: StatusCode, message: &str| {
        app.metrics.bad_request(started.elapsed());
        tracing::warn!(status = status.as_u16(), error = message, "request refused");
        json_error(status, message)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let bytes = match tokio::time::timeout(app.request_timeout, read_body(body, declared)).await {
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            );
        }
        Ok(Err(BodyError::TooLarge)) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            );
        }
        Ok(Err(BodyError::Read(err))) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {err}"),
            );
        }
        Ok(Ok(bytes)) => bytes,
    };
    if bytes.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the body is empty; expected an AdmissionReview",
        );
    }
    match admission::review(&bytes, &app.admission) {
        Ok(reviewed) => {
            let elapsed = started.elapsed();
            app.metrics.review(&reviewed.decision, elapsed);
            let (decision, detail) = match &reviewed.decision {
                admission::Decision::Skipped(why) => ("skipped", *why),
                other => (other.label(), ""),
            };
            let patch_ops = match reviewed.decision {
                admission::Decision::Mutated { operations } => operations,
                _ => 0,
            };
            tracing::info!(
                uid = %reviewed.uid,
                namespace = %reviewed.namespace,
                pod = %reviewed.name,
                decision,
                detail,
                patch_ops,
                latency_us = elapsed.as_micros() as u64,
                reason = %reviewed.message,
                "review"
            );
            ([(header::CONTENT_TYPE, "application/json")], reviewed.body).into_response()
        }
        Err(
            err @ (ReviewError::Malformed(_)
            | ReviewError::WrongType { .. }
            | ReviewError::MissingRequest),
        ) => refuse(StatusCode::BAD_REQUEST, &crate::error::chain(&err)),
    }
}

enum BodyError {
    TooLarge,
    Read(axum::Error),
}

/// Reads the body up to [`MAX_BODY_BYTES`]. Past the limit it keeps reading and
/// discarding (up to a bound), so that the client, still sending, gets to see the 413
/// instead of a reset connection.
async fn read_body(mut body: Body, declared: Option<usize>) -> Result<Vec<u8>, BodyError> {
    use http_body_util::BodyExt;
    const DISCARD_LIMIT: usize = 8 * MAX_BODY_BYTES;
    let mut buf = Vec::with_capacity(declared.unwrap_or(16 * 1024).min(MAX_BODY_BYTES));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyError::Read)?.into_data() else {
            continue;
        };
        seen += data.len();
        if seen <= MAX_BODY_BYTES {
            buf.extend_from_slice(&data);
        } else if seen > DISCARD_LIMIT {
            break;
        }
    }
    if seen > MAX_BODY_BYTES {
        Err(BodyError::TooLarge)
    } else {
        Ok(buf)
    }
}

/// A running server.
pub struct Running {
    /// The HTTPS address actually bound (useful with port 0).
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// Where the CA of a self-signed certificate was written.
    pub self_signed_ca: Option<PathBuf>,
    pub app: Arc<App>,
    handle: Handle<SocketAddr>,
    server: JoinHandle<std::io::Result<()>>,
    metrics_stop: tokio::sync::watch::Sender<bool>,
    metrics_task: JoinHandle<std::io::Result<()>>,
    reloader: Option<JoinHandle<()>>,
    drain_timeout: Duration,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to the drain timeout), and
    /// returns when everything has stopped.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.app.ready.store(false, Ordering::Release);
        self.handle.graceful_shutdown(Some(self.drain_timeout));
        let served = self.server.await.map_err(std::io::Error::other)?;
        let _ = self.metrics_stop.send(true);
        let _ = self.metrics_task.await;
        if let Some(reloader) = self.reloader {
            reloader.abort();
        }
        served.map_err(ServeError::Io)
    }
}

/// Loads the certificate, binds both ports and starts serving.
pub async fn start(config: ServeConfig) -> Result<Running, ServeError> {
    let metrics = Arc::new(Metrics::default());
    let (identity, self_signed_ca, loaded) = match &config.tls {
        TlsSource::Files(files) => {
            let (identity, loaded) = files.load()?;
            (identity, None, Some(loaded))
        }
        TlsSource::SelfSigned { dir } => {
            let ips = [
                "127.0.0.1".parse().expect("literal"),
                "::1".parse().expect("literal"),
            ];
            let generated = certs::generate(&["localhost".to_owned()], &ips, 365)?;
            let ca_path = dir.join(certs::CA_FILE);
            certs::write(&generated, dir)?;
            let identity = tls::identity_from_pem(
                generated.cert_pem.as_bytes(),
                generated.key_pem.as_bytes(),
                "generated certificate",
                "generated key",
            )?;
            (identity, Some(ca_path), None)
        }
    };
    metrics.certificate_loaded(true, identity.not_after);
    let rustls = RustlsConfig::from_config(identity.config.clone());

    let app = Arc::new(App {
        admission: config.admission.clone(),
        metrics: metrics.clone(),
        ready: AtomicBool::new(true),
        request_timeout: config.request_timeout,
    });

    let listener = std::net::TcpListener::bind(config.addr).map_err(|source| ServeError::Bind {
        addr: config.addr,
        source,
    })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.metrics_addr,
            source,
        })?;
    let metrics_addr = metrics_listener.local_addr()?;

    let handle = Handle::new();
    let acceptor = RustlsAcceptor::new(rustls.clone()).handshake_timeout(config.request_timeout);
    let mut server = axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .handle(handle.clone())
        .http1_only();
    server
        .http_builder()
        .http1()
        .header_read_timeout(config.request_timeout)
        .keep_alive(true);
    let service = router(app.clone()).into_make_service();
    let server = tokio::spawn(async move { server.serve(service).await });

    let (metrics_stop, mut stopped) = tokio::sync::watch::channel(false);
    let metrics_task = tokio::spawn(async move {
        axum::serve(metrics_listener, metrics_router(metrics))
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });

    let reloader = match (&config.tls, loaded) {
        (TlsSource::Files(files), Some(loaded)) => Some(tokio::spawn(watch_certificates(
            files.clone(),
            rustls,
            app.clone(),
            config.reload_interval,
            loaded,
        ))),
        _ => None,
    };

    Ok(Running {
        addr,
        metrics_addr,
        self_signed_ca,
        app,
        handle,
        server,
        metrics_stop,
        metrics_task,
        reloader,
        drain_timeout: config.drain_timeout,
    })
}

/// Re-reads the certificate files every `interval` and swaps in a new config when their
/// content changed and loads cleanly. New connections get the new certificate; open
/// ones keep theirs, so no request fails during a rotation.
async fn watch_certificates(
    files: TlsFiles,
    rustls: RustlsConfig,
    app: Arc<App>,
    interval: Duration,
    loaded: tls::PemPair,
) {
    // Compare with what was actually loaded, so that a change between the first load
    // and this task's start is not mistaken for the current certificate.
    let mut last_seen = Some(loaded);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let current = match files.read() {
            Ok(current) => current,
            Err(err) => {
                tracing::warn!(error = %crate::error::chain(&err), "cannot read the certificate files; keeping the current certificate");
                continue;
            }
        };
        if last_seen.as_ref() == Some(&current) {
            continue;
        }
        let (cert, key) = &current;
        match files.identity(cert, key) {
            Ok(identity) => {
                rustls.reload_from_config(identity.config);
                app.metrics.certificate_loaded(true, identity.not_after);
                tracing::info!(cert = %files.cert.display(), "serving certificate reloaded");
            }
            Err(err) => {
                app.metrics.certificate_loaded(false, None);
                tracing::warn!(error = %crate::error::chain(&err), "new certificate files do not load; keeping the current certificate");
            }
        }
        last_seen = Some(current);
    }
}
