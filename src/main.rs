//! The `init-injector` binary: parses the command line and hands off to the library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use init_injector::cli::{Cli, Command, LogFormat, certs, inject, self_test, serve, wait};
use init_injector::cluster::{self, certificates};
use init_injector::{server, tls};
use tracing_subscriber::EnvFilter;

/// mimalloc: the engine allocates many small strings and a few large structs per review,
/// where glibc's allocator spends more time than the engine itself (see benches/engine.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    tls::install_provider();
    match cli.command {
        Command::Serve(args) => run_serve(*args),
        Command::Inject(args) => run_inject(args),
        Command::Certs(args) => run_certs(args),
        Command::Wait(args) => run_wait(args),
        Command::SelfTest(args) => run_self_test(args),
    }
}

fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("INIT_INJECTOR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn run_serve(args: serve::ServeArgs) -> ExitCode {
    let (config, managed) = args.into_config();
    let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async move {
        // Self mode: settle the Secret and write the serving files before the server
        // loads them; the manager then keeps both in step for as long as we serve.
        let manager = match (managed, &config.trusted) {
            (Some(managed), Some(trusted)) => match start_self_managed(managed, trusted).await {
                Ok(manager) => Some(manager),
                Err(err) => {
                    tracing::error!(error = %certificates::error_chain(&err), "cannot set up the self-managed certificate");
                    return ExitCode::FAILURE;
                }
            },
            _ => None,
        };
        let trusted = config.trusted.clone();
        let running = match server::start(config).await {
            Ok(running) => running,
            Err(err) => {
                tracing::error!(error = %err, "cannot start");
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
        let manager = manager
            .zip(trusted)
            .map(|(manager, trusted)| tokio::spawn(manager.run(trusted)));
        let signal = shutdown_signal().await;
        if let Some(manager) = manager {
            manager.abort();
        }
        tracing::info!(signal, "shutting down: no new connections, draining in-flight requests");
        match running.shutdown().await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(err) => {
                tracing::error!(error = %err, "stopped with an error");
                ExitCode::FAILURE
            }
        }
    })
}

async fn start_self_managed(
    managed: certificates::SelfManaged,
    trusted: &std::sync::atomic::AtomicBool,
) -> Result<certificates::Manager, cluster::ClusterError> {
    let client = cluster::client().await?;
    let manager = certificates::Manager::new(managed, client).await?;
    manager.reconcile(trusted).await?;
    Ok(manager)
}

fn run_self_test(args: self_test::SelfTestArgs) -> ExitCode {
    let (test, timeout) = args.into_test();
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    let outcome = runtime.block_on(async {
        let run = async { test.run(cluster::client().await?).await };
        tokio::time::timeout(timeout, run).await
    });
    match outcome {
        Ok(Ok(cluster::self_test::Finding::Injected { init_containers })) => {
            println!(
                "ok: a dry-run pod in namespace {} came back injected with init containers {}",
                test.namespace,
                init_containers.join(", ")
            );
            ExitCode::SUCCESS
        }
        Ok(Ok(cluster::self_test::Finding::NotInjected { reason })) => {
            eprintln!("error: {reason}");
            ExitCode::FAILURE
        }
        Ok(Err(err)) => {
            eprintln!("error: {}", certificates::error_chain(&err));
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!(
                "error: no answer from the API server within {}",
                humantime::format_duration(timeout)
            );
            ExitCode::FAILURE
        }
    }
}

fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|err| eprintln!("error: cannot start the async runtime: {err}"))
        .ok()
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

fn run_wait(args: wait::WaitArgs) -> ExitCode {
    let config = match args.into_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    // One thread is plenty for waiting on one target at a time.
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async move {
        tokio::select! {
            outcome = init_injector::wait::run(config) => match outcome {
                init_injector::wait::WaitOutcome::Ready => ExitCode::SUCCESS,
                init_injector::wait::WaitOutcome::TimedOut(_) => ExitCode::FAILURE,
            },
            signal = shutdown_signal() => {
                eprintln!("{} received {signal}: stopped waiting", humantime::format_rfc3339_millis(std::time::SystemTime::now()));
                ExitCode::from(143)
            }
        }
    })
}

fn run_certs(args: certs::CertsArgs) -> ExitCode {
    let names = args.names();
    let generated = match init_injector::certs::generate(&names, &args.ips, args.valid_days) {
        Ok(generated) => generated,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    if let Err(err) = init_injector::certs::write(&generated, &args.out) {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    let ips: Vec<String> = args.ips.iter().map(ToString::to_string).collect();
    println!(
        "wrote {dir}/ca.pem, ca-key.pem, tls.crt and tls.key for {names}",
        dir = args.out.display(),
        names = names
            .iter()
            .chain(&ips)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    ExitCode::SUCCESS
}

fn run_inject(args: inject::InjectArgs) -> ExitCode {
    let inputs = match inject::read_inputs(&args.files) {
        Ok(inputs) => inputs,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let config = args.engine.into_config();
    let report = inject::run(&inputs, args.explain, &config);
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if !report.errors.is_empty() {
        for error in &report.errors {
            eprintln!("error: {error}");
        }
        eprintln!(
            "error: {} problem(s) found; nothing was written",
            report.errors.len()
        );
        return ExitCode::FAILURE;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout
        .write_all(report.stdout.as_bytes())
        .and_then(|()| stdout.flush())
    {
        eprintln!("error: cannot write output: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
