//! init-injector: a Kubernetes mutating admission webhook that turns annotations into
//! ordered, idempotent init containers and shared `emptyDir` volumes.
//!
//! The core is pure (annotations → plan → patch): [`annotations`], [`plan`], [`patch`],
//! tied together by [`engine::mutate`]. [`workload`] finds pod templates inside
//! Kubernetes objects. The edges: [`admission`] (AdmissionReview in and out),
//! [`server`] (HTTPS, TLS reload, metrics, shutdown) and [`cli`] (files and flags).

pub mod admission;
pub mod annotations;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod duration;
pub mod engine;
pub mod explain;
pub mod metrics;
pub mod names;
pub mod patch;
pub mod plan;
pub mod policy;
pub mod server;
pub mod status;
pub mod target;
pub mod tls;
pub mod wait;
pub mod workload;
