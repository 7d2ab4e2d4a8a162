//! `init-injector certs`: a CA and a serving certificate for the webhook's Service.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory for ca.pem, ca-key.pem, tls.crt and tls.key.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The webhook Service's name: adds SVC, SVC.NAMESPACE and SVC.NAMESPACE.svc.
    #[arg(long, value_name = "SVC", requires = "namespace")]
    pub service: Option<String>,
    /// The Service's namespace (with --service).
    #[arg(long, value_name = "NAMESPACE", requires = "service")]
    pub namespace: Option<String>,
    /// A DNS name for the certificate (repeatable).
    #[arg(long = "dns-name", value_name = "NAME")]
    pub dns_names: Vec<String>,
    /// An IP address for the certificate (repeatable), e.g. 127.0.0.1 for a local webhook.
    #[arg(long = "ip", value_name = "IP")]
    pub ips: Vec<IpAddr>,
    /// Validity in days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub valid_days: i64,
}

impl CertsArgs {
    /// Every DNS name the certificate should carry, in order, without repeats.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if let (Some(svc), Some(ns)) = (&self.service, &self.namespace) {
            names.extend([
                svc.clone(),
                format!("{svc}.{ns}"),
                format!("{svc}.{ns}.svc"),
            ]);
        }
        for name in &self.dns_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }
}
