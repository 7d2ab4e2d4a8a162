//! The HTTPS webhook server: [`start`] loads the certificate, binds the HTTPS and metrics
//! ports and serves until [`Running::shutdown`] drains it. The routes and body limits
//! are in `routes.rs`, certificate rotation in `reload.rs`.

pub mod limit;
mod reload;
pub mod reviewers;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::task::JoinHandle;

pub use routes::MAX_BODY_BYTES;

use crate::webhook::admission::AdmissionConfig;
use crate::webhook::certs;
use crate::webhook::metrics::Metrics;
use crate::webhook::server::reviewers::Reviewers;
use crate::webhook::tls::{self, TlsError, TlsFiles};

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
    /// Further readiness conditions kept by others: in `self` certificate mode, whether
    /// the webhook configuration trusts the served certificate's CA; with policies,
    /// whether the first list of policies and namespaces is done. `/readyz` answers 200
    /// only when all hold.
    pub gates: Vec<Arc<AtomicBool>>,
    /// Connections open at once; more are closed as they arrive (see [`limit`]).
    pub max_connections: usize,
    /// Threads that run reviews, apart from the runtime's; 0 runs them on the runtime's
    /// workers (see [`reviewers`]).
    pub review_threads: usize,
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
    /// The review threads cannot be started.
    #[error("cannot start the review threads")]
    Threads(#[source] std::io::Error),
    /// Serving failed after the start.
    #[error("the server failed")]
    Io(#[from] std::io::Error),
}

/// The most a connection's HTTP read buffer holds: a request's head must fit in it (a
/// larger one is refused with 431), and a body passes through it in pieces of at most
/// this size. hyper's default (about 400 KB) let each keep-alive connection keep a buffer
/// the size of the largest body it had read, which was most of the peak memory over a
/// burst of 100 KB pods (docs/performance.md, seventeenth round).
pub const READ_BUFFER_BYTES: usize = 16 * 1024;

/// State shared by the handlers.
pub struct App {
    pub reviewers: Reviewers,
    pub metrics: Arc<Metrics>,
    /// Set after the first certificate load; cleared when shutdown starts.
    pub ready: AtomicBool,
    /// See [`ServeConfig::gates`].
    pub gates: Vec<Arc<AtomicBool>>,
    pub request_timeout: Duration,
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
    let loaded = load_identity(&config.tls)?;
    metrics.certificate_loaded(true, loaded.identity.not_after);
    let rustls = RustlsConfig::from_config(loaded.identity.config.clone());

    let app = Arc::new(App {
        reviewers: Reviewers::start(config.admission.clone(), config.review_threads)
            .map_err(ServeError::Threads)?,
        metrics: metrics.clone(),
        ready: AtomicBool::new(true),
        gates: config.gates.clone(),
        request_timeout: config.request_timeout,
    });

    let bind_error = |addr| move |source| ServeError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(config.addr).map_err(bind_error(config.addr))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(bind_error(config.metrics_addr))?;
    let metrics_addr = metrics_listener.local_addr()?;

    let handle = Handle::new();
    let acceptor = limit::Limited::new(
        RustlsAcceptor::new(rustls.clone()).handshake_timeout(config.request_timeout),
        config.max_connections,
        metrics.clone(),
    );
    let mut server = axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .handle(handle.clone())
        .http1_only();
    server
        .http_builder()
        .http1()
        .header_read_timeout(config.request_timeout)
        .max_buf_size(READ_BUFFER_BYTES)
        .keep_alive(true);
    let service = routes::router(app.clone()).into_make_service();
    let server = tokio::spawn(async move { server.serve(service).await });

    let (metrics_stop, mut stopped) = tokio::sync::watch::channel(false);
    let metrics_task = tokio::spawn(async move {
        axum::serve(metrics_listener, routes::metrics_router(metrics))
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });

    let reloader = match (&config.tls, loaded.pem) {
        (TlsSource::Files(files), Some(pem)) => Some(tokio::spawn(reload::watch_certificates(
            files.clone(),
            rustls,
            app.clone(),
            config.reload_interval,
            pem,
        ))),
        _ => None,
    };

    Ok(Running {
        addr,
        metrics_addr,
        self_signed_ca: loaded.self_signed_ca,
        app,
        handle,
        server,
        metrics_stop,
        metrics_task,
        reloader,
        drain_timeout: config.drain_timeout,
    })
}

/// The first serving identity, and where it came from.
struct Loaded {
    identity: tls::Identity,
    /// The bytes of the certificate files, for the reload watcher to compare with.
    pem: Option<tls::PemPair>,
    /// Where the CA of a self-signed certificate was written.
    self_signed_ca: Option<PathBuf>,
}

fn load_identity(source: &TlsSource) -> Result<Loaded, ServeError> {
    match source {
        TlsSource::Files(files) => {
            let (identity, pem) = files.load()?;
            Ok(Loaded {
                identity,
                pem: Some(pem),
                self_signed_ca: None,
            })
        }
        TlsSource::SelfSigned { dir } => {
            let ips = [
                "127.0.0.1".parse().expect("literal"),
                "::1".parse().expect("literal"),
            ];
            let generated = certs::generate(&["localhost".to_owned()], &ips, 365)?;
            certs::write(&generated, dir)?;
            let identity = tls::identity_from_pem(
                generated.cert_pem.as_bytes(),
                generated.key_pem.as_bytes(),
                "generated certificate",
                "generated key",
            )?;
            Ok(Loaded {
                identity,
                pem: None,
                self_signed_ca: Some(dir.join(certs::CA_FILE)),
            })
        }
    }
}
