//! Certificates for the webhook: a private CA and a serving certificate signed by it,
//! for the `certs` command, for `serve` without certificate files, and for tests.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused the parameters (for example an invalid DNS name).
    #[error("cannot generate the certificate")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Neither a DNS name nor an IP address was given.
    #[error("a serving certificate needs at least one DNS name or IP address")]
    NoNames,
}

/// A CA and a serving certificate, PEM-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Generated {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generated").finish_non_exhaustive()
    }
}

/// Generates a CA and a serving certificate for `dns_names` and `ips`, valid for
/// `valid_days` from now.
pub fn generate(
    dns_names: &[String],
    ips: &[IpAddr],
    valid_days: i64,
) -> Result<Generated, CertError> {
    let validity = Duration::days(valid_days);
    let (ca_cert_pem, ca_key_pem) = generate_ca(validity)?;
    let (cert_pem, key_pem) = issue_serving(&ca_cert_pem, &ca_key_pem, dns_names, ips, validity)?;
    Ok(Generated {
        ca_cert_pem,
        ca_key_pem,
        cert_pem,
        key_pem,
    })
}

/// A new CA certificate and its key (PEM), valid for `validity` from now.
pub fn generate_ca(validity: Duration) -> Result<(String, String), CertError> {
    let now = OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "init-injector webhook CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - Duration::minutes(5);
    ca.not_after = now + validity;
    let ca_cert = ca.self_signed(&ca_key)?;
    Ok((ca_cert.pem(), ca_key.serialize_pem()))
}

/// A serving certificate and its new key (PEM) for `dns_names` and `ips`, signed by the
/// CA given as PEM, valid for `validity` from now.
pub fn issue_serving(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    dns_names: &[String],
    ips: &[IpAddr],
    validity: Duration,
) -> Result<(String, String), CertError> {
    if dns_names.is_empty() && ips.is_empty() {
        return Err(CertError::NoNames);
    }
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, KeyPair::from_pem(ca_key_pem)?)?;
    let now = OffsetDateTime::now_utc();
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(dns_names.to_vec())?;
    leaf.subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let common_name = dns_names
        .first()
        .cloned()
        .unwrap_or_else(|| ips[0].to_string());
    leaf.distinguished_name
        .push(DnType::CommonName, common_name);
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - Duration::minutes(5);
    leaf.not_after = now + validity;
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// File names inside an output directory, as the chart and scripts expect them.
pub const CA_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";

/// Writes `ca.pem`, `ca-key.pem`, `tls.crt` and `tls.key` into `dir` (created if
/// needed); keys are readable by the owner only.
pub fn write(generated: &Generated, dir: &Path) -> Result<(), CertError> {
    let io = |path: &Path, source| CertError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for (name, text, secret) in [
        (CA_FILE, &generated.ca_cert_pem, false),
        (CA_KEY_FILE, &generated.ca_key_pem, true),
        (CERT_FILE, &generated.cert_pem, false),
        (KEY_FILE, &generated.key_pem, true),
    ] {
        let path = dir.join(name);
        write_file(&path, text.as_bytes(), secret).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half a file;
/// `secret` files are readable by the owner only.
pub fn write_file(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
