//! The pure engine: a pod template's metadata and spec in, an [`Outcome`] out.
//! No I/O; the webhook, the offline `inject` command and the tests all call [`mutate`].

pub mod annotations;
pub mod config;
pub mod duration;
pub mod explain;
pub mod names;
pub mod patch;
pub mod plan;
pub mod status;
pub mod target;
pub mod workload;

use std::borrow::Cow;
use std::collections::BTreeMap;

use json_patch::PatchOperation;
use jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::engine::annotations::AnnotationError;
use crate::engine::config::EngineConfig;
use crate::engine::names::hex_prefix;
use crate::engine::patch::{Owned, StatusChange};
use crate::engine::plan::{DEFAULT_CONTAINER_ANNOTATION, Plan};
use crate::engine::status::Status;
use sha2::{Digest, Sha256};

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
    /// What an earlier pass had injected (its `P/status`), replaced by this one.
    pub replaced: Option<Status>,
    /// The full status annotation key.
    pub status_key: String,
}

impl Injection {
    pub fn warnings(&self) -> &[String] {
        &self.plan.warnings
    }

    /// The pod spec after injection, built from `original` by stripping and inserting,
    /// independently of the patch (tests prove that the two agree).
    pub fn mutated_spec(&self, original: &PodSpec) -> PodSpec {
        let mut spec = original.clone();
        if let Some(replaced) = &self.replaced {
            plan::strip(&mut spec, &replaced.init_containers, &replaced.volumes);
        }
        plan::apply(&mut spec, &self.plan);
        spec
    }

    /// The annotations after injection.
    pub fn mutated_annotations(
        &self,
        original: Option<&BTreeMap<String, String>>,
    ) -> BTreeMap<String, String> {
        let mut annotations = original.cloned().unwrap_or_default();
        match &self.status {
            Some(status) => annotations.insert(self.status_key.clone(), status.to_annotation()),
            None => annotations.remove(&self.status_key),
        };
        annotations
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

    let replaced = directives.status.clone();
    let stripped = match &replaced {
        Some(status) => {
            let mut stripped = spec.clone();
            plan::strip(&mut stripped, &status.init_containers, &status.volumes);
            Cow::Owned(stripped)
        }
        None => Cow::Borrowed(spec),
    };
    let default_container = annotations
        .get(DEFAULT_CONTAINER_ANNOTATION)
        .map(String::as_str);
    let plan = plan::build(&directives, &stripped, default_container, config).map_err(Invalid)?;

    let status = directives.requests_injection().then(|| status_of(&plan));
    let status_key = format!("{}/status", config.prefix);
    let status_text = status.as_ref().map(Status::to_annotation);

    let no_names = Vec::new();
    let (old_containers, old_volumes) = match &replaced {
        Some(status) => (&status.init_containers, &status.volumes),
        None => (&no_names, &no_names),
    };
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
    let change = StatusChange {
        key: &status_key,
        value: status_text.as_deref(),
    };
    let patch = patch::diff(
        root,
        meta.annotations.as_ref(),
        spec,
        &stripped,
        &plan,
        change,
        &owned,
    );
    drop(stripped);

    Ok(Outcome::Injected(Box::new(Injection {
        plan,
        status,
        patch,
        replaced,
        status_key,
    })))
}

fn status_of(plan: &Plan) -> Status {
    let containers: Vec<_> = plan.steps.iter().map(|s| &s.container).collect();
    let mut hasher = Sha256::new();
    serde_json::to_writer(&mut hasher, &(containers, &plan.volumes))
        .expect("Kubernetes API types always serialize");
    Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        hash: hex_prefix(&hasher.finalize(), 16),
        init_containers: plan
            .steps
            .iter()
            .map(|s| s.container.name.clone())
            .collect(),
        volumes: plan.volumes.iter().map(|v| v.name.clone()).collect(),
    }
}
