//! The keys of `self` mode and what a Secret's contents are good for: pure, so every
//! branch of the decision is unit-tested without an API server.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::SelfManaged;
use crate::cluster::ClusterError;
use crate::webhook::certs::{self, Generated};
use crate::webhook::tls::not_after;

/// Keys of the Secret: a `kubernetes.io/tls` Secret plus the CA and its key.
pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
pub const CERT_KEY: &str = "tls.crt";
pub const KEY_KEY: &str = "tls.key";

/// What a Secret's contents are good for.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve these keys as they are.
    Use(Generated),
    /// The CA is fine; issue a new serving certificate (the reason says why).
    NewLeaf(String),
    /// Start over with a new CA (the reason says why).
    NewCa(String),
}

/// The CA and the serving certificate in a Secret's data, when all four keys are there.
pub fn from_data(data: &BTreeMap<String, ByteString>) -> Option<Generated> {
    let text = |key: &str| {
        data.get(key)
            .and_then(|value| String::from_utf8(value.0.clone()).ok())
    };
    Some(Generated {
        ca_cert_pem: text(CA_CERT_KEY)?,
        ca_key_pem: text(CA_KEY_KEY)?,
        cert_pem: text(CERT_KEY)?,
        key_pem: text(KEY_KEY)?,
    })
}

/// A Secret's data holding `keys`.
pub fn to_data(keys: &Generated) -> BTreeMap<String, ByteString> {
    [
        (CA_CERT_KEY, &keys.ca_cert_pem),
        (CA_KEY_KEY, &keys.ca_key_pem),
        (CERT_KEY, &keys.cert_pem),
        (KEY_KEY, &keys.key_pem),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), ByteString(value.as_bytes().to_vec())))
    .collect()
}

/// Decides what to do with a Secret's data: pure, so every branch is unit-tested.
pub fn assess(
    data: &BTreeMap<String, ByteString>,
    names: &[String],
    validity: Duration,
    now: SystemTime,
) -> Verdict {
    let Some(keys) = from_data(data) else {
        return Verdict::NewCa("the Secret lacks one of ca.crt, ca.key, tls.crt, tls.key".into());
    };
    let Some(ca_der) = pem_der(&keys.ca_cert_pem) else {
        return Verdict::NewCa("ca.crt is not a PEM certificate".into());
    };
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(&ca_der) else {
        return Verdict::NewCa("ca.crt does not parse".into());
    };
    if !ca.is_ca() {
        return Verdict::NewCa("ca.crt is not a CA certificate".into());
    }
    if remaining(&ca, now) < validity {
        return Verdict::NewCa("the CA expires within one serving lifetime".into());
    }
    if !key_matches(&keys.ca_key_pem, &ca) {
        return Verdict::NewCa("ca.key does not belong to ca.crt".into());
    }
    let Some(leaf_der) = pem_der(&keys.cert_pem) else {
        return Verdict::NewLeaf("tls.crt is not a PEM certificate".into());
    };
    let Ok((_, leaf)) = x509_parser::parse_x509_certificate(&leaf_der) else {
        return Verdict::NewLeaf("tls.crt does not parse".into());
    };
    if leaf.verify_signature(Some(ca.public_key())).is_err() {
        return Verdict::NewLeaf("tls.crt is not signed by ca.crt".into());
    }
    if !key_matches(&keys.key_pem, &leaf) {
        return Verdict::NewLeaf("tls.key does not belong to tls.crt".into());
    }
    let covered = dns_names(&leaf);
    if let Some(missing) = names.iter().find(|name| !covered.contains(name)) {
        return Verdict::NewLeaf(format!("tls.crt does not cover {missing}"));
    }
    if remaining(&leaf, now) < validity / 3 {
        return Verdict::NewLeaf("less than a third of its lifetime is left".into());
    }
    Verdict::Use(keys)
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(parsed.contents)
}

fn remaining(cert: &X509Certificate<'_>, now: SystemTime) -> Duration {
    not_after(cert)
        .and_then(|end| end.duration_since(now).ok())
        .unwrap_or(Duration::ZERO)
}

fn key_matches(key_pem: &str, cert: &X509Certificate<'_>) -> bool {
    rcgen::KeyPair::from_pem(key_pem)
        .map(|key| rcgen::PublicKeyData::subject_public_key_info(&key) == cert.public_key().raw)
        .unwrap_or(false)
}

fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect()
}

fn time_duration(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}

/// New keys for `verdict`: a new serving certificate from the existing CA, or a new CA.
pub(super) fn renew(
    config: &SelfManaged,
    current: Option<&BTreeMap<String, ByteString>>,
    verdict: &Verdict,
) -> Result<Generated, ClusterError> {
    let reuse_ca = match (verdict, current.and_then(from_data)) {
        (Verdict::NewLeaf(_), Some(keys)) => Some((keys.ca_cert_pem, keys.ca_key_pem)),
        _ => None,
    };
    let (ca_cert_pem, ca_key_pem) = match reuse_ca {
        Some(ca) => ca,
        None => certs::generate_ca(time_duration(config.ca_validity()))?,
    };
    let (cert_pem, key_pem) = certs::issue_serving(
        &ca_cert_pem,
        &ca_key_pem,
        &config.dns_names(),
        &[],
        time_duration(config.validity),
    )?;
    Ok(Generated {
        ca_cert_pem,
        ca_key_pem,
        cert_pem,
        key_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    use super::super::write_serving_files;
    use crate::webhook::tls::TlsFiles;

    fn config() -> SelfManaged {
        SelfManaged {
            namespace: "init-system".into(),
            secret: "webhook-tls".into(),
            webhook_config: "webhook".into(),
            service: "webhook".into(),
            owner_deployment: None,
            validity: Duration::from_secs(90 * 24 * 3600),
            dir: PathBuf::from("/nonexistent"),
        }
    }

    fn fresh(config: &SelfManaged) -> BTreeMap<String, ByteString> {
        to_data(&renew(config, None, &Verdict::NewCa(String::new())).unwrap())
    }

    fn verdict(
        config: &SelfManaged,
        data: &BTreeMap<String, ByteString>,
        at: SystemTime,
    ) -> Verdict {
        assess(data, &config.dns_names(), config.validity, at)
    }

    #[test]
    fn fresh_keys_are_used_as_they_are() {
        let config = config();
        let data = fresh(&config);
        assert!(matches!(
            verdict(&config, &data, SystemTime::now()),
            Verdict::Use(_)
        ));
    }

    #[test]
    fn a_serving_certificate_is_renewed_in_the_last_third_of_its_life() {
        let config = config();
        let data = fresh(&config);
        let later = SystemTime::now() + config.validity * 2 / 3 + Duration::from_secs(3600);
        let Verdict::NewLeaf(reason) = verdict(&config, &data, later) else {
            panic!("expected a new serving certificate");
        };
        assert!(reason.contains("third"), "{reason}");
        // The renewed certificate keeps the CA, so the caBundle stays valid.
        let renewed = renew(&config, Some(&data), &Verdict::NewLeaf(reason)).unwrap();
        assert_eq!(
            renewed.ca_cert_pem.as_bytes(),
            data[CA_CERT_KEY].0.as_slice()
        );
        assert!(matches!(
            verdict(&config, &to_data(&renewed), SystemTime::now()),
            Verdict::Use(_)
        ));
    }

    #[test]
    fn a_certificate_for_another_service_is_reissued() {
        let mut config = config();
        let data = fresh(&config);
        config.service = "renamed".into();
        let Verdict::NewLeaf(reason) = verdict(&config, &data, SystemTime::now()) else {
            panic!("expected a new serving certificate");
        };
        assert_eq!(reason, "tls.crt does not cover renamed.init-system.svc");
    }

    #[test]
    fn a_certificate_from_another_ca_is_reissued() {
        let config = config();
        let mut data = fresh(&config);
        let other = fresh(&config);
        data.insert(CERT_KEY.into(), other[CERT_KEY].clone());
        data.insert(KEY_KEY.into(), other[KEY_KEY].clone());
        assert_eq!(
            verdict(&config, &data, SystemTime::now()),
            Verdict::NewLeaf("tls.crt is not signed by ca.crt".into())
        );
    }

    #[test]
    fn mismatched_keys_are_replaced() {
        let config = config();
        let mut data = fresh(&config);
        let other = fresh(&config);
        data.insert(KEY_KEY.into(), other[KEY_KEY].clone());
        assert_eq!(
            verdict(&config, &data, SystemTime::now()),
            Verdict::NewLeaf("tls.key does not belong to tls.crt".into())
        );
        data.insert(CA_KEY_KEY.into(), other[CA_KEY_KEY].clone());
        assert_eq!(
            verdict(&config, &data, SystemTime::now()),
            Verdict::NewCa("ca.key does not belong to ca.crt".into())
        );
    }

    #[test]
    fn missing_or_garbled_data_starts_over() {
        let config = config();
        let mut data = fresh(&config);
        data.remove(CA_KEY_KEY);
        assert!(matches!(
            verdict(&config, &data, SystemTime::now()),
            Verdict::NewCa(_)
        ));
        let mut data = fresh(&config);
        data.insert(
            CA_CERT_KEY.into(),
            ByteString(b"not a certificate".to_vec()),
        );
        assert_eq!(
            verdict(&config, &data, SystemTime::now()),
            Verdict::NewCa("ca.crt is not a PEM certificate".into())
        );
        let mut data = fresh(&config);
        data.insert(CA_CERT_KEY.into(), data[CERT_KEY].clone());
        assert_eq!(
            verdict(&config, &data, SystemTime::now()),
            Verdict::NewCa("ca.crt is not a CA certificate".into())
        );
    }

    #[test]
    fn a_ca_near_its_end_is_replaced() {
        let config = config();
        let data = fresh(&config);
        let near_end = SystemTime::now() + config.ca_validity() - config.validity / 2;
        assert_eq!(
            verdict(&config, &data, near_end),
            Verdict::NewCa("the CA expires within one serving lifetime".into())
        );
    }

    #[test]
    fn serving_files_are_written_without_the_ca_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = config();
        let keys = renew(&config, None, &Verdict::NewCa(String::new())).unwrap();
        write_serving_files(dir.path(), &keys).unwrap();
        let written = config_files(dir.path());
        assert_eq!(written, vec!["ca.pem", "tls.crt", "tls.key"]);
        let loaded = TlsFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        crate::crypto::install_provider();
        loaded
            .load()
            .expect("the written pair loads as a TLS identity");
    }

    fn config_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}
