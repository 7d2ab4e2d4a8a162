//! init-injector: a Kubernetes mutating admission webhook that turns annotations into
//! ordered, idempotent init containers and shared `emptyDir` volumes.
//!
//! The core is pure (annotations → plan → patch): [`annotations`], [`plan`], [`patch`],
//! tied together by [`engine::mutate`]. [`workload`] finds pod templates inside
//! Kubernetes objects; the `cli` module is the edge that reads files and flags.

pub mod annotations;
pub mod cli;
pub mod config;
pub mod duration;
pub mod engine;
pub mod explain;
pub mod names;
pub mod patch;
pub mod plan;
pub mod status;
pub mod target;
pub mod workload;
