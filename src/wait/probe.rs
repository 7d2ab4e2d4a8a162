//! One attempt at one target: a TCP connect, or an HTTP(S) GET that must answer 2xx; and
//! the HTTPS client those GETs use.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::seconds;
use crate::engine::target::{Host, WaitTarget};

/// Why an attempt failed. Each message is one line of the wait log, with its cause in
/// parentheses where there is one, as the log has always shown them.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The attempt took longer than its bound.
    #[error("no answer within {}", seconds(*.0))]
    NoAnswer(Duration),
    /// The host name does not resolve (yet).
    #[error("no such host ({0})")]
    NoSuchHost(String),
    /// The name resolved to no address.
    #[error("no addresses")]
    NoAddresses,
    /// Nothing listens at the address.
    #[error("connection refused ({0})")]
    Refused(SocketAddr),
    /// Another connect error.
    #[error("{error} ({addr})")]
    Connect {
        addr: SocketAddr,
        error: std::io::Error,
    },
    /// Nothing listens at the URL's address.
    #[error("connection refused")]
    HttpRefused,
    /// The request failed otherwise; the most telling causes, in words.
    #[error("{0}")]
    Http(String),
    /// An answer other than 2xx.
    #[error("HTTP {0}")]
    Status(u16),
}

/// Why the HTTPS client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file is not PEM.
    #[error("the CA file is not PEM")]
    CaPem(#[source] rustls_pki_types::pem::Error),
    /// rustls does not accept a certificate of the CA file.
    #[error("the CA file holds an unusable certificate")]
    CaCertificate(#[source] rustls::Error),
    /// The CA file has no certificate in it.
    #[error("the CA file holds no certificate")]
    CaEmpty,
    /// rustls refused the client settings.
    #[error("cannot set up TLS")]
    Tls(#[source] rustls::Error),
    /// reqwest refused the client settings.
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
}

/// One attempt.
pub(super) async fn probe(target: &WaitTarget, http: &reqwest::Client) -> Result<(), ProbeError> {
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
                Err(ProbeError::Status(status.as_u16()))
            }
        }
    }
}

async fn connect(host: &Host, port: u16) -> Result<(), ProbeError> {
    let addrs: Vec<SocketAddr> = match host {
        Host::Ipv4(ip) => vec![(*ip, port).into()],
        Host::Ipv6(ip) => vec![(*ip, port).into()],
        // Resolved on every attempt: a Service created after the pod must still be found.
        Host::Name(name) => tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|e| ProbeError::NoSuchHost(e.to_string()))?
            .collect(),
    };
    let mut last = ProbeError::NoAddresses;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = ProbeError::Refused(addr)
            }
            Err(error) => last = ProbeError::Connect { addr, error },
        }
    }
    Err(last)
}

/// The most telling cause in a reqwest error chain.
fn describe_http(err: &reqwest::Error) -> ProbeError {
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(current) = source {
        let io_kind = current
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        if io_kind == Some(std::io::ErrorKind::ConnectionRefused) {
            return ProbeError::HttpRefused;
        }
        let text = current.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return ProbeError::NoSuchHost(text);
        }
        if !chain.contains(&text) {
            if !chain.is_empty() {
                chain.push_str(": ");
            }
            let _ = write!(chain, "{text}");
        }
        source = current.source();
    }
    ProbeError::Http(chain)
}

/// A client that trusts the Mozilla roots and the certificates of `ca_pem`, and opens a
/// fresh connection per attempt.
pub(super) fn http_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        use rustls_pki_types::pem::PemObject;
        let mut added = 0;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(ClientError::CaPem)?;
            roots.add(cert).map_err(ClientError::CaCertificate)?;
            added += 1;
        }
        if added == 0 {
            return Err(ClientError::CaEmpty);
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()
        .map_err(ClientError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        // A fresh connection per attempt, so names are resolved again every time.
        .pool_max_idle_per_host(0)
        .user_agent(concat!("init-injector-wait/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ClientError::Build)
}
