//! The pure engine: a pod template's metadata and spec in, an [`Outcome`] out.
//! No I/O; the webhook, the offline `inject` command and the tests all call [`mutate`].

use std::collections::BTreeMap;

use json_patch::PatchOperation;
use jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::annotations::{self, AnnotationError};
use crate::config::EngineConfig;
use crate::names::short_hash;
use crate::patch::{self, Owned};
use crate::plan::{self, DEFAULT_CONTAINER_ANNOTATION, Plan};
use crate::status::Status;

/// What the engine decided for one pod.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Nothing to do, and why.
    Skipped(Skip),
    /// The pod gets (or already has) an injection. An empty patch means it already
    /// matches the plan.
    Injected(Box<Injection>),
}

/// Why a pod was left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// No annotation under our prefix.
    NotAnnotated,
    /// `P/inject: "false"`.
    OptedOut,
}

/// A planned injection and the patch that performs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Injection {
    pub plan: Plan,
    /// The new `P/status`; `None` when a stale injection is only removed.
    pub status: Option<Status>,
    /// JSON Patch operations, with paths under the `root` given to [`mutate`].
    pub patch: Vec<PatchOperation>,
    /// The pod spec after the patch, built independently of it.
    pub spec: PodSpec,
    /// The annotations after the patch.
    pub annotations: BTreeMap<String, String>,
}

impl Injection {
    pub fn warnings(&self) -> &[String] {
        &self.plan.warnings
    }
}

/// Every mistake found in one pod's annotations.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.0))]
pub struct Invalid(pub Vec<AnnotationError>);

fn render(errors: &[AnnotationError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Plans and patches one pod template. `root` is where the template's `metadata` and
/// `spec` live in the object the patch will be applied to.
pub fn mutate(
    meta: &ObjectMeta,
    spec: &PodSpec,
    root: &PointerBuf,
    config: &EngineConfig,
) -> Result<Outcome, Invalid> {
    let empty = BTreeMap::new();
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    let directives = annotations::parse(annotations, &config.prefix).map_err(Invalid)?;
    if directives.opted_out {
        return Ok(Outcome::Skipped(Skip::OptedOut));
    }
    if !directives.requests_injection() && directives.status.is_none() {
        return Ok(Outcome::Skipped(Skip::NotAnnotated));
    }

    let (old_containers, old_volumes) = match &directives.status {
        Some(status) => (status.init_containers.clone(), status.volumes.clone()),
        None => (Vec::new(), Vec::new()),
    };
    let mut new_spec = spec.clone();
    plan::strip(&mut new_spec, &old_containers, &old_volumes);
    let default_container = annotations
        .get(DEFAULT_CONTAINER_ANNOTATION)
        .map(String::as_str);
    let plan = plan::build(&directives, &new_spec, default_container, config).map_err(Invalid)?;
    plan::apply(&mut new_spec, &plan);

    let status = directives.requests_injection().then(|| status_of(&plan));
    let status_key = format!("{}/status", config.prefix);
    let status_text = status.as_ref().map(Status::to_annotation);

    let owned_containers: Vec<&str> = old_containers
        .iter()
        .map(String::as_str)
        .chain(plan.steps.iter().map(|s| s.container.name.as_str()))
        .collect();
    let owned_volumes: Vec<&str> = old_volumes
        .iter()
        .map(String::as_str)
        .chain(plan.volumes.iter().map(|v| v.name.as_str()))
        .collect();
    let owned = Owned {
        init_containers: &owned_containers,
        volumes: &owned_volumes,
    };
    let patch = patch::diff(
        root,
        meta.annotations.as_ref(),
        spec,
        &status_key,
        status_text.as_deref(),
        &new_spec,
        &owned,
    );

    let mut new_annotations = annotations.clone();
    match status_text {
        Some(text) => new_annotations.insert(status_key, text),
        None => new_annotations.remove(&status_key),
    };
    Ok(Outcome::Injected(Box::new(Injection {
        plan,
        status,
        patch,
        spec: new_spec,
        annotations: new_annotations,
    })))
}

fn status_of(plan: &Plan) -> Status {
    let containers: Vec<_> = plan.steps.iter().map(|s| &s.container).collect();
    let fingerprint = serde_json::to_string(&(containers, &plan.volumes))
        .expect("Kubernetes API types always serialize");
    Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        hash: short_hash(&fingerprint, 16),
        init_containers: plan
            .steps
            .iter()
            .map(|s| s.container.name.clone())
            .collect(),
        volumes: plan.volumes.iter().map(|v| v.name.clone()).collect(),
    }
}
