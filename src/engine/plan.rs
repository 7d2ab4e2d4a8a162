//! Planning: directives plus the pod (with any earlier injection already stripped) become
//! an ordered list of init containers, the shared volumes, and the place of the block.
//!
//! Every check that needs the pod happens here: unknown containers, names that clash
//! with the pod's own, volumes and mount paths that clash, unknown position anchors.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, PodSpec, SeccompProfile, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::engine::annotations::{AnnotationError, Directives, Position, RunDirective};
use crate::engine::config::{EngineConfig, IMAGE_BINARY_PATH};
use crate::engine::duration::format_compact;
use crate::engine::names::unique_label;
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

/// Which annotation asked for a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    Wait(WaitTarget),
    Run {
        name: String,
        source_container: String,
    },
}

/// Removes what an earlier pass injected (per `P/status`) from `spec`.
pub fn strip(spec: &mut PodSpec, injected_containers: &[String], injected_volumes: &[String]) {
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
pub fn build(
    directives: &Directives,
    spec: &PodSpec,
    default_container: Option<&str>,
    config: &EngineConfig,
) -> Result<Plan, Vec<AnnotationError>> {
    let key = |suffix: &str| format!("{}/{suffix}", config.prefix);
    let mut errors = Vec::new();
    let mut warnings = directives.warnings.clone();

    let pod_names: BTreeSet<&str> = spec
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

    let (volumes, mounts) = shared_volumes(directives, spec, &key("volumes"), &mut errors);

    let runs = directives.ordered_runs();
    let total = directives.waits.len() + runs.len();
    let mut steps = Vec::with_capacity(total);
    let mut taken = BTreeSet::new();

    let timeout = directives.wait_timeout.unwrap_or(config.default_timeout);
    let interval = directives.wait_interval.unwrap_or(config.default_interval);
    for (index, target) in directives.waits.iter().enumerate() {
        let seed = target.to_string();
        let name = unique_label("wait-for", &target.name_hint(), &seed, &taken);
        if pod_names.contains(name.as_str()) {
            errors.push(AnnotationError::new(
                key("wait-for"),
                seed.clone(),
                format!("the pod already has a container named {name:?}; remove the hand-written wait step or this target"),
            ));
        }
        taken.insert(name.clone());
        let step_label = format!("{}/{total}", index + 1);
        let container = wait_container(
            name,
            target,
            timeout,
            interval,
            &step_label,
            &mounts,
            config,
        );
        steps.push(Step {
            container,
            origin: Origin::Wait(target.clone()),
            reason: format!(
                "rule 1: pod wait-for, target {} of {} in written order",
                index + 1,
                directives.waits.len()
            ),
        });
    }

    let order_rule = if directives.steps.is_some() {
        format!("rule 1: pod run step, in {} order", key("steps"))
    } else {
        "rule 1: pod run step, in lexical order of NAME".to_owned()
    };
    for run in runs {
        let run_key = key(&format!("run.{}", run.name));
        if pod_names.contains(run.name.as_str()) {
            errors.push(AnnotationError::new(
                &run_key,
                run.argv.join(" "),
                format!(
                    "the pod already has a container named {:?}; choose another step name",
                    run.name
                ),
            ));
        }
        if taken.contains(&run.name) {
            errors.push(AnnotationError::new(
                &run_key,
                run.argv.join(" "),
                format!(
                    "step name {:?} is also the name of an injected wait step; choose another",
                    run.name
                ),
            ));
        }
        taken.insert(run.name.clone());
        let Some(source) = source_container(
            run,
            spec,
            default_container,
            &config.prefix,
            &mut errors,
            &mut warnings,
        ) else {
            continue;
        };
        steps.push(Step {
            container: run_container(run, source, &mounts),
            origin: Origin::Run {
                name: run.name.clone(),
                source_container: source.name.clone(),
            },
            reason: order_rule.clone(),
        });
    }

    let (insert_at, placement) = match placement(&directives.position, spec) {
        Ok(place) => place,
        Err(message) => {
            errors.push(AnnotationError::new(
                key("position"),
                directives.position.to_string(),
                message,
            ));
            (0, String::new())
        }
    };

    if errors.is_empty() {
        Ok(Plan {
            steps,
            volumes,
            mounts,
            insert_at,
            placement,
            warnings,
        })
    } else {
        Err(errors)
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

fn shared_volumes(
    directives: &Directives,
    spec: &PodSpec,
    key: &str,
    errors: &mut Vec<AnnotationError>,
) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for wanted in &directives.volumes {
        let entry = format!("{}:{}", wanted.name, wanted.mount_path);
        if spec.volumes.iter().flatten().any(|v| v.name == wanted.name) {
            errors.push(AnnotationError::new(
                key,
                entry.clone(),
                format!(
                    "the pod already has a volume named {:?}; choose another name",
                    wanted.name
                ),
            ));
        }
        let normalized = wanted.mount_path.trim_end_matches('/');
        for container in &spec.containers {
            let clash = container
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.mount_path.trim_end_matches('/') == normalized);
            if let Some(clash) = clash {
                errors.push(AnnotationError::new(
                    key,
                    entry.clone(),
                    format!(
                        "container {:?} already mounts volume {:?} at {}; choose another path",
                        container.name, clash.name, clash.mount_path
                    ),
                ));
            }
        }
        volumes.push(Volume {
            name: wanted.name.clone(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: wanted.medium.clone(),
                size_limit: wanted.size_limit.clone().map(Quantity),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: wanted.name.clone(),
            mount_path: wanted.mount_path.clone(),
            ..Default::default()
        });
    }
    (volumes, mounts)
}

/// The securityContext that passes Pod Security "restricted".
pub fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Default::default()
        }),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn wait_container(
    name: String,
    target: &WaitTarget,
    timeout: std::time::Duration,
    interval: std::time::Duration,
    step_label: &str,
    mounts: &[VolumeMount],
    config: &EngineConfig,
) -> Container {
    Container {
        name,
        image: Some(config.wait_image.clone()),
        command: Some(vec![IMAGE_BINARY_PATH.to_owned(), "wait".to_owned()]),
        args: Some(vec![
            "--timeout".to_owned(),
            format_compact(timeout),
            "--interval".to_owned(),
            format_compact(interval),
            "--step".to_owned(),
            step_label.to_owned(),
            target.to_string(),
        ]),
        resources: Some(config.wait_resources.clone()),
        security_context: Some(restricted_security_context()),
        volume_mounts: (!mounts.is_empty()).then(|| mounts.to_vec()),
        ..Default::default()
    }
}

fn run_container(run: &RunDirective, source: &Container, mounts: &[VolumeMount]) -> Container {
    let mut volume_mounts = source.volume_mounts.clone().unwrap_or_default();
    volume_mounts.extend(mounts.iter().cloned());
    let (image, image_pull_policy) = match &run.image {
        Some(image) => (Some(image.clone()), None),
        None => (source.image.clone(), source.image_pull_policy.clone()),
    };
    Container {
        name: run.name.clone(),
        image,
        image_pull_policy,
        command: Some(run.argv.clone()),
        env: source.env.clone(),
        env_from: source.env_from.clone(),
        volume_mounts: (!volume_mounts.is_empty()).then_some(volume_mounts),
        working_dir: source.working_dir.clone(),
        security_context: source.security_context.clone(),
        resources: source.resources.clone(),
        ..Default::default()
    }
}

fn source_container<'a>(
    run: &RunDirective,
    spec: &'a PodSpec,
    default_container: Option<&str>,
    prefix: &str,
    errors: &mut Vec<AnnotationError>,
    warnings: &mut Vec<String>,
) -> Option<&'a Container> {
    let names = || {
        spec.containers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(wanted) = &run.container {
        let found = spec.containers.iter().find(|c| &c.name == wanted);
        if found.is_none() {
            errors.push(AnnotationError::new(
                format!("{prefix}/run.{}.container", run.name),
                wanted.clone(),
                format!(
                    "the pod has no app container of that name; expected one of: {}",
                    names()
                ),
            ));
        }
        return found;
    }
    if let Some(wanted) = default_container {
        match spec.containers.iter().find(|c| c.name == wanted) {
            Some(found) => return Some(found),
            None => warnings.push(format!(
                "annotation {DEFAULT_CONTAINER_ANNOTATION}: {wanted:?} is not a container of this pod; step {:?} copies the first container instead",
                run.name
            )),
        }
    }
    let first = spec.containers.first();
    if first.is_none() {
        errors.push(AnnotationError::new(
            format!("{prefix}/run.{}", run.name),
            run.argv.join(" "),
            "the pod has no app container to take the image and environment from",
        ));
    }
    first
}

fn placement(position: &Position, spec: &PodSpec) -> Result<(usize, String), String> {
    let own = spec.init_containers.as_deref().unwrap_or_default();
    let find = |name: &str| {
        own.iter().position(|c| c.name == name).ok_or_else(|| {
            let names: Vec<&str> = own.iter().map(|c| c.name.as_str()).collect();
            if names.is_empty() {
                format!("the pod has no init container named {name:?} (it has none of its own)")
            } else {
                format!(
                    "the pod has no init container named {name:?}; expected one of: {}",
                    names.join(", ")
                )
            }
        })
    };
    Ok(match position {
        // Right after the last native sidecar: the steps then see the network the app
        // will see (a mesh proxy is already running), and they still run before the
        // legacy iptables init containers that mesh injectors append at the end.
        Position::First => match own.iter().rposition(is_native_sidecar) {
            Some(i) => (
                i + 1,
                format!(
                    "rule 3: first, right after native sidecar {:?}",
                    own[i].name
                ),
            ),
            None => (
                0,
                "rule 3: first, at the front (the pod has no native sidecar)".to_owned(),
            ),
        },
        Position::Last => (
            own.len(),
            format!(
                "rule 3: last, after all {} of the pod's own init containers",
                own.len()
            ),
        ),
        Position::Before(name) => (
            find(name)?,
            format!("rule 3: before the pod's init container {name:?}"),
        ),
        Position::After(name) => (
            find(name)? + 1,
            format!("rule 3: after the pod's init container {name:?}"),
        ),
    })
}

/// A native sidecar is an init container with `restartPolicy: Always`.
pub fn is_native_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}
