//! `init-injector serve`: flags into a [`ServeConfig`] (and, in `self` certificate mode, a
//! [`SelfManaged`]), then run until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Args;

use super::{EngineArgs, ShutdownSignals, runtime};
use crate::cluster::certificates::SelfManaged;
use crate::cluster::policies::{self, PolicyWatch};
use crate::cluster::{self, ClusterError, certificates};
use crate::engine::duration::parse_positive;
use crate::webhook::admission::{AdmissionConfig, OnInvalid};
use crate::webhook::server;
use crate::webhook::server::reviewers;
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
    /// Connections open at once; more are closed as they arrive, counted in
    /// init_injector_connections_refused_total and logged. Keep it below the open-file
    /// limit (`ulimit -n`).
    #[arg(long, env = "INIT_INJECTOR_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Threads that run reviews (decode, plan, patch), apart from the one thread that
    /// runs TLS, HTTP and the timers [default: one per CPU available, at most 4; 0 on one
    /// CPU]. 0 runs each review on the thread that read it, with one such thread per CPU.
    #[arg(long, env = "INIT_INJECTOR_REVIEW_THREADS", value_parser = clap::value_parser!(u16).range(0..=64))]
    pub review_threads: Option<u16>,
    /// How often the certificate files are checked for changes.
    #[arg(long, env = "INIT_INJECTOR_CERT_RELOAD_INTERVAL", default_value = "2s", value_parser = parse_positive)]
    pub cert_reload_interval: Duration,
    /// Watch InitPolicies and Namespaces (kube reflectors; needs API access, in-cluster or
    /// KUBECONFIG, and the InitPolicy CRD): policies and namespace PREFIX/ annotations then
    /// apply to every pod the webhook is sent, and a change applies to the next pod
    /// without a restart. /readyz waits for the first complete list of both; if the API
    /// server becomes unreachable, the last known state keeps serving
    /// (init_injector_policy_watch_stale_seconds says for how long). Each policy's
    /// status gets an Accepted condition (get/patch on initpolicies/status).
    #[arg(long, env = "INIT_INJECTOR_WATCH_POLICIES")]
    pub watch_policies: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub self_managed: SelfManagedArgs,
}

/// `self` certificate mode (the chart's default): the webhook keeps its CA and serving
/// certificate in a Secret and writes the CA into its own webhook configuration.
#[derive(Debug, Args)]
pub struct SelfManagedArgs {
    /// Keep the CA and the serving certificate in this Secret of --namespace (created if
    /// absent, renewed before expiry) and serve that certificate. Needs --webhook-config,
    /// --service and --namespace, and API access (in-cluster or KUBECONFIG).
    #[arg(
        long,
        env = "INIT_INJECTOR_CERT_SECRET",
        conflicts_with = "tls_cert",
        requires_all = ["webhook_config", "service", "namespace"]
    )]
    pub cert_secret: Option<String>,
    /// The MutatingWebhookConfiguration whose webhooks get the CA as caBundle.
    #[arg(long, env = "INIT_INJECTOR_WEBHOOK_CONFIG", requires = "cert_secret")]
    pub webhook_config: Option<String>,
    /// The Service the API server calls; the certificate is for SERVICE.NAMESPACE.svc.
    #[arg(long, env = "INIT_INJECTOR_SERVICE", requires = "cert_secret")]
    pub service: Option<String>,
    /// Namespace of the Secret, the Service and the owner Deployment.
    #[arg(long, env = "INIT_INJECTOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// A Deployment (in --namespace) that owns the Secret, so deleting it deletes the Secret.
    #[arg(long, env = "INIT_INJECTOR_SECRET_OWNER", requires = "cert_secret")]
    pub secret_owner: Option<String>,
    /// Lifetime of the serving certificate; renewed when a third is left.
    #[arg(long, env = "INIT_INJECTOR_CERT_VALIDITY", default_value = "2160h", value_parser = parse_positive)]
    pub cert_validity: Duration,
}

impl ServeArgs {
    /// The server's config, what `self` certificate mode manages (the server then loads
    /// the files that mode writes into --self-signed-dir), and the policy watch, whose
    /// source and readiness gate are already in the config.
    pub fn into_config(self) -> Started {
        let dir = self
            .self_signed_dir
            .unwrap_or_else(|| std::env::temp_dir().join("init-injector"));
        // Self mode's readiness gate: the webhook configuration trusts our CA.
        let managed = self
            .self_managed
            .into_managed(dir.clone())
            .map(|managed| (managed, Arc::new(AtomicBool::new(false))));
        let tls = match (self.tls_cert, self.tls_key, &managed) {
            (Some(cert), Some(key), _) => TlsSource::Files(TlsFiles { cert, key }),
            (_, _, Some((managed, _))) => TlsSource::Files(managed.files()),
            _ => TlsSource::SelfSigned { dir },
        };
        let engine = self.engine.into_config();
        let watch = self
            .watch_policies
            .then(|| PolicyWatch::new(&engine.prefix));
        let mut gates: Vec<Arc<AtomicBool>> =
            managed.iter().map(|(_, trusted)| trusted.clone()).collect();
        gates.extend(watch.as_ref().map(PolicyWatch::ready));
        let config = ServeConfig {
            addr: self.addr,
            metrics_addr: self.metrics_addr,
            tls,
            admission: AdmissionConfig {
                engine,
                on_invalid: self.on_invalid,
                policies: watch.as_ref().map(|watch| watch.source() as _),
            },
            drain_timeout: self.drain_timeout,
            reload_interval: self.cert_reload_interval,
            request_timeout: self.request_timeout,
            gates,
            max_connections: self.max_connections as usize,
            review_threads: self
                .review_threads
                .map_or_else(reviewers::default_threads, usize::from),
        };
        Started {
            config,
            managed,
            watch,
        }
    }
}

/// What `serve` runs: see [`ServeArgs::into_config`].
pub struct Started {
    pub config: ServeConfig,
    pub managed: Option<(SelfManaged, Arc<AtomicBool>)>,
    pub watch: Option<PolicyWatch>,
}

impl SelfManagedArgs {
    fn into_managed(self, dir: PathBuf) -> Option<SelfManaged> {
        let secret = self.cert_secret?;
        // clap's `requires_all` guarantees the rest.
        Some(SelfManaged {
            namespace: self.namespace.unwrap_or_default(),
            secret,
            webhook_config: self.webhook_config.unwrap_or_default(),
            service: self.service.unwrap_or_default(),
            owner_deployment: self.secret_owner,
            validity: self.cert_validity,
            dir,
        })
    }
}

impl ServeArgs {
    /// Serves until SIGTERM or Ctrl-C, then drains. Exit 0 after a clean stop, 1 when the
    /// server cannot start or stops with an error.
    pub fn execute(self) -> ExitCode {
        let Started {
            config,
            managed,
            watch,
        } = self.into_config();
        // With review threads, one runtime thread serves every connection's TLS and HTTP.
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if config.review_threads > 0 {
            builder.worker_threads(1);
        }
        let runtime = match runtime(builder) {
            Ok(runtime) => runtime,
            Err(code) => return code,
        };
        runtime.block_on(async move {
            let mut signals = ShutdownSignals::install();
            let startup = async {
                // Self mode: settle the Secret and write the serving files before the
                // server loads them; the manager then keeps both in step for as long as we
                // serve.
                let manager = match managed {
                    Some((managed, trusted)) => match start_self_managed(managed, &trusted).await {
                        Ok(manager) => Some((manager, trusted)),
                        Err(err) => {
                            tracing::error!(error = %crate::error::chain(&err), "cannot set up the self-managed certificate");
                            return Err(ExitCode::FAILURE);
                        }
                    },
                    None => None,
                };
                // Policies: a client before serving; the first lists run while /readyz
                // says no.
                let watch = match watch {
                    Some(watch) => match watch_client().await {
                        Some(client) => Some((watch, client)),
                        None => return Err(ExitCode::FAILURE),
                    },
                    None => None,
                };
                match server::start(config).await {
                    Ok(running) => Ok((running, manager, watch)),
                    Err(err) => {
                        tracing::error!(error = %crate::error::chain(&err), "cannot start");
                        Err(ExitCode::FAILURE)
                    }
                }
            };
            // A signal while starting (say, the API server is slow to answer for the
            // self-managed Secret) stops at once: nothing is served yet, so nothing drains.
            let (running, manager, watch) = tokio::select! {
                started = startup => match started {
                    Ok(started) => started,
                    Err(code) => return code,
                },
                signal = signals.recv() => {
                    tracing::info!(signal, "stopped before serving");
                    return ExitCode::SUCCESS;
                }
            };
            if let Some(ca) = &running.self_signed_ca {
                tracing::info!(
                    ca = %ca.display(),
                    "no --tls-cert given: serving a self-signed certificate for localhost, 127.0.0.1 and ::1; trust the CA in this file"
                );
            }
            tracing::info!(
                addr = %running.addr,
                metrics_addr = %running.metrics_addr,
                review_threads = running.app.reviewers.threads(),
                "serving AdmissionReview v1 on POST /mutate"
            );
            let manager =
                manager.map(|(manager, trusted)| tokio::spawn(manager.run(trusted)));
            let mut watch = watch.map(|(watch, client)| {
                running.app.metrics.report_policy_watch(watch.source());
                tracing::info!("watching InitPolicies and Namespaces; ready once both are listed");
                tokio::spawn(run_policy_watch(watch, client))
            });
            let (signal, failed) = until_stopped(&mut signals, watch.as_mut()).await;
            if let Some(manager) = manager {
                manager.abort();
            }
            if let Some(watch) = watch {
                watch.abort();
            }
            if let Some(err) = &failed {
                tracing::error!(error = %crate::error::chain(err), "cannot watch InitPolicies (--watch-policies)");
            }
            tracing::info!(signal, "shutting down: no new connections, draining in-flight requests");
            match running.shutdown().await {
                Ok(()) if failed.is_some() => ExitCode::FAILURE,
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

async fn start_self_managed(
    managed: SelfManaged,
    trusted: &AtomicBool,
) -> Result<certificates::Manager, ClusterError> {
    let client = cluster::client().await?;
    let manager = certificates::Manager::new(managed, client).await?;
    manager.reconcile(trusted).await?;
    Ok(manager)
}

/// One list of each kind first, so that a missing CRD or RBAC rule is a clear error; then
/// the watches, for as long as the server runs.
/// The client for `--watch-policies`; `None` (after logging why) when there is none.
async fn watch_client() -> Option<kube::Client> {
    match cluster::client().await {
        Ok(client) => Some(client),
        Err(err) => {
            tracing::error!(error = %crate::error::chain(&err), "cannot watch InitPolicies (--watch-policies)");
            None
        }
    }
}

/// Waits for SIGTERM or Ctrl-C, or for the policy watch to fail. The watch ends only
/// when it cannot start (no CRD, no RBAC): then the server stops too, with the reason,
/// rather than run a replica that can never be ready.
async fn until_stopped(
    signals: &mut ShutdownSignals,
    watch: Option<&mut tokio::task::JoinHandle<Result<(), ClusterError>>>,
) -> (&'static str, Option<ClusterError>) {
    let watch_failed = async {
        match watch {
            Some(task) => match task.await {
                Ok(Err(err)) => Some(err),
                _ => None,
            },
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        signal = signals.recv() => (signal, None),
        Some(err) = watch_failed => ("watch failure", Some(err)),
    }
}

async fn run_policy_watch(watch: PolicyWatch, client: kube::Client) -> Result<(), ClusterError> {
    policies::check_access(&client).await?;
    watch.run(client).await;
    Ok(())
}
