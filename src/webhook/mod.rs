//! The webhook edge: AdmissionReview in and out ([`admission`], the only module that
//! knows kube's admission types), the HTTPS server ([`server`], the only one that knows
//! axum), its TLS identity and reload ([`tls`]), the certificates it can make
//! ([`certs`]) and its Prometheus metrics ([`metrics`]).

pub mod admission;
pub mod certs;
pub mod metrics;
pub mod server;
pub mod tls;
