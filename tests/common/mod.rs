//! Shared by the integration tests: certificates, a real server on 127.0.0.1:0, real
//! TLS clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use init_injector::engine::config::EngineConfig;
use init_injector::webhook::admission::{AdmissionConfig, OnInvalid};
use init_injector::webhook::certs::{self, Generated};
use init_injector::webhook::server::{self, Running, ServeConfig, TlsSource};
use init_injector::webhook::tls::TlsFiles;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub fn generate() -> Generated {
    init_injector::crypto::install_provider();
    certs::generate(&["localhost".into()], &["127.0.0.1".parse().unwrap()], 30).unwrap()
}

/// A serving identity for localhost/127.0.0.1, and the certificates it came from (whose
/// `ca_cert_pem` clients trust).
pub fn loopback_identity() -> (init_injector::webhook::tls::Identity, Generated) {
    let generated = generate();
    let identity = init_injector::webhook::tls::identity_from_pem(
        generated.cert_pem.as_bytes(),
        generated.key_pem.as_bytes(),
        "generated certificate",
        "generated key",
    )
    .unwrap();
    (identity, generated)
}

/// Writes a certificate pair the way the kubelet lays out a mounted Secret:
/// `dir/..<version>/tls.crt`, `dir/..data -> ..<version>`, `dir/tls.crt -> ..data/tls.crt`.
pub fn write_secret_volume(dir: &Path, version: &str, generated: &Generated) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&versioned).unwrap();
    std::fs::write(versioned.join("tls.crt"), &generated.cert_pem).unwrap();
    std::fs::write(versioned.join("tls.key"), &generated.key_pem).unwrap();
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(format!("..{version}"), &tmp_link).unwrap();
    // rename(2) over the old link is the atomic swap the kubelet does.
    std::fs::rename(&tmp_link, dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
}

pub fn config(dir: &Path, on_invalid: OnInvalid) -> ServeConfig {
    ServeConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        tls: TlsSource::Files(TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }),
        admission: AdmissionConfig {
            engine: EngineConfig::default(),
            on_invalid,
            policies: None,
        },
        drain_timeout: Duration::from_secs(10),
        reload_interval: Duration::from_millis(100),
        request_timeout: Duration::from_secs(2),
        gates: Vec::new(),
        max_connections: 64,
        // The threaded mode `serve` runs by default on more than one CPU, whatever this
        // machine has; tests/server.rs runs the inline mode too.
        review_threads: 2,
    }
}

/// A running server with certificates in a temporary Secret-like directory.
pub struct TestServer {
    pub running: Running,
    pub ca_pem: String,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start(on_invalid: OnInvalid) -> Self {
        Self::start_with(on_invalid, |_| {}).await
    }

    /// [`TestServer::start`] with `edit` made to the config first.
    pub async fn start_with(on_invalid: OnInvalid, edit: impl FnOnce(&mut ServeConfig)) -> Self {
        let generated = generate();
        let dir = tempfile::tempdir().unwrap();
        write_secret_volume(dir.path(), "v1", &generated);
        let mut config = config(dir.path(), on_invalid);
        edit(&mut config);
        let running = server::start(config).await.unwrap();
        TestServer {
            running,
            ca_pem: generated.ca_cert_pem,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.running.addr.port())
    }

    pub fn client(&self) -> reqwest::Client {
        client(&[&self.ca_pem], true)
    }
}

pub fn tls_config(cas: &[&str]) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let mut config = ClientConfig::builder_with_provider(init_injector::crypto::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A real HTTPS client trusting `cas`, resolving localhost to 127.0.0.1.
pub fn client(cas: &[&str], pooled: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(cas))
        .http1_only()
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
        .timeout(Duration::from_secs(20));
    if !pooled {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().unwrap()
}

/// The Prometheus text a server's metrics port serves.
pub async fn metrics(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A raw TLS connection, for clients that misbehave on purpose.
pub async fn raw_tls(addr: SocketAddr, ca: &str) -> TlsStream<TcpStream> {
    let connector = TlsConnector::from(Arc::new(tls_config(&[ca])));
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Polls `check` every 20 ms until it says `Ok`, and returns what it gave; past
/// `limit`, fails with what it said last.
pub async fn eventually<T>(limit: Duration, check: impl AsyncFnMut() -> Result<T, String>) -> T {
    eventually_every(Duration::from_millis(20), limit, check).await
}

/// [`eventually`], polling every `every` (200 ms for checks that ask the API server).
pub async fn eventually_every<T>(
    every: Duration,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(state) => assert!(
                std::time::Instant::now() < deadline,
                "after {limit:?}: {state}"
            ),
        }
        tokio::time::sleep(every).await;
    }
}

/// Whether a TCP connection to `addr` is accepted.
pub async fn accepting(addr: SocketAddr) -> bool {
    TcpStream::connect(addr).await.is_ok()
}

/// Waits for the `100 Continue` the server sends once it has parsed a request head that
/// carries `expect: 100-continue` and its handler starts reading the body: proof that the
/// request is in flight on the server's side, not only written by the client.
pub async fn await_continue(stream: &mut TlsStream<TcpStream>, limit: Duration) {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => buf.push(byte[0]),
                _ => break,
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        read.is_ok() && text.starts_with("HTTP/1.1 100"),
        "expected `HTTP/1.1 100 Continue` within {limit:?}, got {text:?}"
    );
}

/// Reads what the server sends until it closes the connection or `limit` passes.
pub async fn read_response(stream: &mut TlsStream<TcpStream>, limit: Duration) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") && response_complete(&buf) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&buf).into_owned()
}

fn response_complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
    });
    length.is_some_and(|n| body.len() >= n)
}

pub async fn write_all(stream: &mut TlsStream<TcpStream>, bytes: &[u8]) {
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
}

pub fn example(name: &str) -> String {
    std::fs::read_to_string(PathBuf::from("examples").join(name)).unwrap()
}

/// `examples/review.json` with its request changed by `edit`.
pub fn review_with(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut review: serde_json::Value = serde_json::from_str(&example("review.json")).unwrap();
    edit(&mut review["request"]);
    serde_json::to_vec(&review).unwrap()
}

/// `init-injector serve` on 127.0.0.1 with ephemeral ports and JSON logs, whose start-up
/// line carries the bound address (see [`logged_addr`]).
pub fn serve_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_init-injector"));
    command.args([
        "--log-format",
        "json",
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    command
}

/// A serve process, its log as it goes on, and its start-up line.
pub type Started = (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
    String,
);

/// Spawns `command` (a [`serve_command`]) with its self-signed certificate written to
/// `dir`, and reads its log up to the start-up line, the one with the bound address.
pub fn spawn_serve(command: &mut std::process::Command, dir: &Path) -> Started {
    use std::io::BufRead;
    let mut child = command
        .arg("--self-signed-dir")
        .arg(dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| logged_addr(line).is_some())
        .expect("the server logs its address");
    (child, lines, line)
}

/// The HTTPS address in a JSON log line of `serve`, if the line has one.
pub fn logged_addr(line: &str) -> Option<SocketAddr> {
    let entry: serde_json::Value = serde_json::from_str(line).ok()?;
    entry.get("addr")?.as_str()?.parse().ok()
}

/// Names of a pod's init containers, in order.
pub fn init_names(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .unwrap()
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect()
}

/// Names of a pod's volumes, in order.
pub fn volume_names(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect()
}

/// Applies the engine's patch to `pod` and checks that the result is the engine's own
/// mutated pod, built independently of the patch.
pub fn apply_checked(
    pod: &k8s_openapi::api::core::v1::Pod,
    injection: &init_injector::engine::Injection,
) -> k8s_openapi::api::core::v1::Pod {
    let mut doc = serde_json::to_value(pod).unwrap();
    json_patch::patch(&mut doc, &injection.patch)
        .unwrap_or_else(|e| panic!("the engine's patch does not apply: {e}"));
    let patched: k8s_openapi::api::core::v1::Pod = serde_json::from_value(doc).unwrap();
    assert_eq!(
        patched.spec.as_ref(),
        Some(&injection.mutated_spec(pod.spec.as_ref().unwrap())),
        "the patched pod differs from the engine's pod"
    );
    assert_eq!(
        patched.metadata.annotations.as_ref(),
        Some(&injection.mutated_annotations(pod.metadata.annotations.as_ref()))
    );
    patched
}

/// Applies the webhook's patch `wire` to `pod` and asserts that it makes the pod that the
/// engine's owned patch makes (checked by [`apply_checked`]): the owned form adds whole
/// the steps that the wire adds without the app container's env and then copies it.
/// Returns how many copies the wire holds.
pub fn wire_makes_the_owned_pod(
    pod: &k8s_openapi::api::core::v1::Pod,
    wire: &json_patch::Patch,
    injection: &init_injector::engine::Injection,
) -> usize {
    let copies = wire
        .iter()
        .filter(|op| matches!(op, json_patch::PatchOperation::Copy(_)))
        .count();
    assert_eq!(wire.len(), injection.patch.len() + copies);
    let mut by_wire = serde_json::to_value(pod).unwrap();
    json_patch::patch(&mut by_wire, wire).unwrap();
    assert_eq!(
        by_wire,
        serde_json::to_value(apply_checked(pod, injection)).unwrap()
    );
    copies
}

#[cfg(feature = "e2e")]
pub mod accounts;
#[cfg(feature = "e2e")]
pub mod helm;
#[cfg(feature = "e2e")]
pub mod node;
#[cfg(feature = "e2e")]
pub mod proxy;
#[cfg(feature = "e2e")]
pub mod webhook;
