//! Planning: directives plus the pod (with any earlier injection already stripped) become
//! an ordered list of init containers, the shared volumes, and the place of the block.
//!
//! Every check that needs the pod happens here: unknown containers, names that clash
//! with the pod's own, volumes and mount paths that clash, unknown position anchors.
//! One file per kind of step (`wait.rs`, `run.rs`), plus `volumes.rs` and `placement.rs`; a
//! new kind of step is a new file, a new [`Origin`] variant and one line in [`build`].

mod placement;
mod run;
mod volumes;
mod wait;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume, VolumeMount};

pub use placement::is_native_sidecar;
pub use wait::restricted_security_context;

use crate::engine::annotations::{AnnotationError, Directives, Keys};
use crate::engine::config::EngineConfig;
use crate::engine::status::Status;
use crate::engine::target::WaitTarget;

/// The annotation kubectl uses to pick a pod's main container.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// The ordered injection for one pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The injected init containers, in execution order.
    pub steps: Vec<Step>,
    /// Shared `emptyDir` volumes added to the pod.
    pub volumes: Vec<Volume>,
    /// Mounts of those volumes, added to every injected step and every app container.
    pub mounts: Vec<VolumeMount>,
    /// Index among the pod's own init containers where the block goes.
    pub insert_at: usize,
    /// Why the block goes there, in words.
    pub placement: String,
    pub warnings: Vec<String>,
}

/// One injected init container and why it is where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub container: Container,
    pub origin: Origin,
    /// The ordering rule that put it at this place.
    pub reason: String,
}

/// Which annotation asked for a step, with what `explain` tells about it.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// `P/wait-for`: one target, with the deadline and first retry delay it was given.
    Wait {
        target: WaitTarget,
        timeout: Duration,
        interval: Duration,
    },
    /// `P/run.NAME`, copying image, env and mounts from this app container.
    Run { source_container: String },
}

/// Removes what an earlier pass injected (per its `P/status`) from `spec`.
pub fn strip(spec: &mut PodSpec, earlier: &Status) {
    let (injected_containers, injected_volumes) = (&earlier.init_containers, &earlier.volumes);
    if let Some(init) = spec.init_containers.as_mut() {
        init.retain(|c| !injected_containers.contains(&c.name));
    }
    if let Some(volumes) = spec.volumes.as_mut() {
        volumes.retain(|v| !injected_volumes.contains(&v.name));
    }
    for container in &mut spec.containers {
        if let Some(mounts) = container.volume_mounts.as_mut() {
            mounts.retain(|m| !injected_volumes.contains(&m.name));
        }
    }
}

/// Plans the injection for a pod whose earlier injection, if any, is already stripped.
/// `default_container` is the pod's `kubectl.kubernetes.io/default-container`.
pub fn build(
    directives: &Directives,
    spec: &PodSpec,
    default_container: Option<&str>,
    config: &EngineConfig,
) -> Result<Plan, Vec<AnnotationError>> {
    let mut planner = Planner::new(directives, spec, config);
    let (volumes, mounts) = planner.shared_volumes();
    let mut steps = planner.wait_steps(&mounts);
    steps.extend(planner.run_steps(&mounts, default_container));
    let (insert_at, placement) = planner.placement();
    if planner.errors.is_empty() {
        Ok(Plan {
            steps,
            volumes,
            mounts,
            insert_at,
            placement,
            warnings: planner.warnings,
        })
    } else {
        Err(planner.errors)
    }
}

/// Inserts the plan into a stripped pod spec.
pub fn apply(spec: &mut PodSpec, plan: &Plan) {
    if !plan.steps.is_empty() {
        let init = spec.init_containers.get_or_insert_with(Vec::new);
        let at = plan.insert_at.min(init.len());
        init.splice(at..at, plan.steps.iter().map(|s| s.container.clone()));
    }
    if !plan.volumes.is_empty() {
        spec.volumes
            .get_or_insert_with(Vec::new)
            .extend(plan.volumes.iter().cloned());
        for container in &mut spec.containers {
            container
                .volume_mounts
                .get_or_insert_with(Vec::new)
                .extend(plan.mounts.iter().cloned());
        }
    }
}

/// What the kinds of step share while one plan is built.
struct Planner<'a> {
    directives: &'a Directives,
    spec: &'a PodSpec,
    config: &'a EngineConfig,
    keys: Keys<'a>,
    /// The names of the pod's own containers, of every kind.
    pod_names: BTreeSet<&'a str>,
    /// The names of the steps planned so far.
    taken: BTreeSet<String>,
    /// How many steps the block has, for the `[I/N]` of each wait step's log.
    total: usize,
    errors: Vec<AnnotationError>,
    warnings: Vec<String>,
}

impl<'a> Planner<'a> {
    fn new(directives: &'a Directives, spec: &'a PodSpec, config: &'a EngineConfig) -> Self {
        let pod_names = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .map(|c| c.name.as_str())
            .chain(
                spec.ephemeral_containers
                    .iter()
                    .flatten()
                    .map(|c| c.name.as_str()),
            )
            .collect();
        Planner {
            directives,
            spec,
            config,
            keys: Keys::new(&config.prefix),
            pod_names,
            taken: BTreeSet::new(),
            total: directives.waits.len() + directives.runs.len(),
            errors: Vec::new(),
            warnings: directives.warnings.clone(),
        }
    }
}
