//! init-injector: a Kubernetes mutating admission webhook that turns annotations into
//! ordered, idempotent init containers and shared `emptyDir` volumes.
//!
//! # Where things live
//!
//! - [`engine`]: the pure core, annotations → plan → patch. [`engine::plan_injection`]
//!   is the entry point; [`engine::policy`] holds the `InitPolicy` type and the pure
//!   rules of which policies select a pod.
//! - [`webhook`]: the HTTPS edge: AdmissionReview decoding and answers, the server, TLS
//!   and its reload, self-made certificates, metrics.
//! - [`wait`]: what the injected wait steps run (`init-injector wait`).
//! - [`cli`]: one module per command; flags into config values, exit codes, printing.
//! - [`cluster`]: the only code that talks to the API server (kube's client): `self`
//!   certificate mode, the `self-test` command and the InitPolicy and Namespace reflectors.
//! - [`crypto`]: the one rustls crypto provider; [`error`]: how an error chain is printed.
//!
//! # Dependency rule
//!
//! Edges call the core, never the reverse: `engine` uses no other module of this crate
//! and does no I/O. `webhook` and `wait` may use `engine` and the two shared leaves,
//! `crypto` and `error`, but not each other; `cli` may use every module, and nothing
//! uses `cli`. Only `webhook::admission` knows kube's admission
//! types and only `webhook::server` knows axum. Code that talks to the API server
//! (certificate bootstrap, `self-test`, the policy reflectors) lives in `cluster`, the only
//! module that may use kube's client; the engine gets what it reads from there as plain
//! values in its context, never a client.

pub mod cli;
pub mod cluster;
pub mod crypto;
pub mod engine;
pub mod error;
pub mod wait;
pub mod webhook;
