//! TLS for the webhook: PEM loading and validation into a rustls `ServerConfig`, and
//! reloading when the files change. Files are re-read through their paths, so the
//! `..data` symlink swap Kubernetes does for a mounted Secret is seen like any write;
//! a pair that fails to load (a cert renewed before its key) keeps the old config.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    /// The certificate file is not PEM.
    #[error("{path} is not a PEM certificate chain")]
    BadCertificate {
        path: String,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The key file holds no key rustls can use.
    #[error("{path} holds no usable PEM private key")]
    BadKey {
        path: String,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused the pair (for example a key that does not match the certificate).
    #[error("the certificate and key do not make a valid TLS identity")]
    Rustls(#[from] rustls::Error),
}

/// A loaded serving identity.
#[derive(Clone)]
pub struct Identity {
    pub config: Arc<ServerConfig>,
    /// When the leaf certificate expires, if it could be read.
    pub not_after: Option<SystemTime>,
}

/// Builds a server config from PEM bytes; `cert_path` and `key_path` only name the
/// sources in errors. The key must match the certificate.
pub fn identity_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &str,
    key_path: &str,
) -> Result<Identity, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::BadCertificate {
            path: cert_path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::BadKey {
        path: key_path.to_owned(),
        source,
    })?;
    let not_after = expiry(&chain[0]);
    let mut config = ServerConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // The apiserver speaks HTTP/1.1 to webhooks and reuses connections.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        config: Arc::new(config),
        not_after,
    })
}

fn expiry(cert: &CertificateDer<'_>) -> Option<SystemTime> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    not_after(&parsed)
}

/// When a parsed certificate expires; `None` for a date before 1970.
pub fn not_after(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<SystemTime> {
    let seconds = u64::try_from(cert.validity().not_after.timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// The PEM bytes of a certificate chain and its key, as read from disk.
pub type PemPair = (Vec<u8>, Vec<u8>);

/// A certificate and key file pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads both files now.
    pub fn read(&self) -> Result<PemPair, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        Ok((read(&self.cert)?, read(&self.key)?))
    }

    /// Builds an identity from bytes read from these files.
    pub fn identity(&self, cert: &[u8], key: &[u8]) -> Result<Identity, TlsError> {
        identity_from_pem(
            cert,
            key,
            &self.cert.display().to_string(),
            &self.key.display().to_string(),
        )
    }

    /// Reads and validates both files; returns the identity and the bytes it came from.
    pub fn load(&self) -> Result<(Identity, PemPair), TlsError> {
        let (cert, key) = self.read()?;
        let identity = self.identity(&cert, &key)?;
        Ok((identity, (cert, key)))
    }
}
