//! `init-injector certs`: a CA and a serving certificate for the webhook's Service.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{EXIT_USAGE, fail};
use crate::webhook::certs;

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

impl CertsArgs {
    /// Writes the files and says what it wrote. Exit 2 when no certificate can be made
    /// from the names given, 1 when the files cannot be written.
    pub fn execute(self) -> ExitCode {
        let names = self.names();
        let generated = match certs::generate(&names, &self.ips, self.valid_days) {
            Ok(generated) => generated,
            Err(err) => return fail(EXIT_USAGE, &err),
        };
        if let Err(err) = certs::write(&generated, &self.out) {
            return fail(1, &err);
        }
        let ips = self.ips.iter().map(ToString::to_string);
        println!(
            "wrote {dir}/ca.pem, ca-key.pem, tls.crt and tls.key for {names}",
            dir = self.out.display(),
            names = names.into_iter().chain(ips).collect::<Vec<_>>().join(", ")
        );
        ExitCode::SUCCESS
    }
}
