//! The pure engine: a pod template's metadata and spec in, an [`Outcome`] out. No I/O;
//! the webhook, the offline `inject` command and the tests all call [`plan_injection`].
//!
//! The stages, one module each: [`annotations`] parses a pod's annotations into
//! directives, [`plan`] turns directives and the pod into ordered steps, [`patch`] turns
//! the plan into a JSON Patch. Beside them: [`names`] (DNS-1123 names), [`target`] and
//! [`duration`] (the value grammars shared with `wait`), [`status`] (the `P/status`
//! record), [`explain`] (`inject --explain`), [`workload`] (where pod templates sit in
//! Kubernetes objects) and [`config`].

pub mod annotations;
pub mod config;
pub mod duration;
pub mod explain;
pub mod names;
pub mod patch;
pub mod plan;
pub mod policy;
mod resolve;
pub mod source;
pub mod status;
pub mod target;
pub mod workload;

use std::borrow::Cow;
use std::collections::BTreeMap;

use json_patch::PatchOperation;
use jsonptr::Pointer;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::engine::annotations::{AnnotationError, Keys};
use crate::engine::config::EngineConfig;
use crate::engine::patch::{Owned, StatusChange};
use crate::engine::plan::{DEFAULT_CONTAINER_ANNOTATION, Plan};
use crate::engine::policy::select::{NamespaceInfo, Policies};
use crate::engine::status::Status;

/// Everything the engine reads for one pod template. New inputs (the namespace's
/// annotations and labels, the policies that apply) become fields here rather than new
/// parameters of [`plan_injection`].
#[derive(Clone, Copy, Debug)]
pub struct PodContext<'a> {
    pub meta: &'a ObjectMeta,
    pub spec: &'a PodSpec,
    /// Where the template's `metadata` and `spec` live in the object the patch will be
    /// applied to: the root for a Pod, `/spec/template` for a Deployment, …
    pub root: &'a Pointer,
    pub config: &'a EngineConfig,
    /// The namespace the pod is created in and the policies in force; `None` when only
    /// the pod's own annotations count.
    pub scope: Option<Scope<'a>>,
}

/// What applies to a pod besides its own annotations.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// Its namespace: labels for policy selection, `P/` annotations as defaults.
    pub namespace: &'a NamespaceInfo,
    pub policies: &'a Policies,
}

impl<'a> PodContext<'a> {
    /// A Pod's own metadata and spec, patched at the root of the Pod.
    pub fn new(meta: &'a ObjectMeta, spec: &'a PodSpec, config: &'a EngineConfig) -> Self {
        PodContext {
            meta,
            spec,
            root: Pointer::root(),
            config,
            scope: None,
        }
    }

    /// The same template, created in `namespace` with `policies` in force.
    pub fn in_scope(self, namespace: &'a NamespaceInfo, policies: &'a Policies) -> Self {
        PodContext {
            scope: Some(Scope {
                namespace,
                policies,
            }),
            ..self
        }
    }

    /// The same template at `root` inside a larger object.
    pub fn at(self, root: &'a Pointer) -> Self {
        PodContext { root, ..self }
    }
}

/// What the engine decided for one pod. `P` is the form of the patch: json-patch's
/// operations from [`plan_injection`], or what [`plan_injection_with`] makes of them.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<P = Vec<PatchOperation>> {
    /// Nothing to do, and why.
    Skipped(Skip),
    /// The pod gets the plan: [`Injection::patch`] performs it, or is empty when the pod
    /// already carries exactly this plan ([`Previous::AlreadyInjected`]).
    Injected(Box<Injection<P>>),
}

/// Why a pod was left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// No annotation under our prefix.
    NotAnnotated,
    /// `P/inject: "false"`.
    OptedOut,
}

/// What the pod carried before this pass, by its `P/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Previous {
    /// No `P/status`: the patch adds the whole plan.
    NotInjected,
    /// An earlier pass injected what this status lists, and the pod no longer matches the
    /// plan (another webhook moved things, or the spec was cloned from a mutated pod and
    /// then changed): the patch removes or re-places it and injects the plan.
    Replaced(Status),
    /// The pod already carries exactly this plan where the ordering rules put it: the
    /// patch is empty.
    AlreadyInjected(Status),
}

/// A planned injection and the patch that performs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Injection<P = Vec<PatchOperation>> {
    pub plan: Plan,
    /// The new `P/status`; `None` when a stale injection is only removed.
    pub status: Option<Status>,
    /// JSON Patch operations, with paths under [`PodContext::root`].
    pub patch: P,
    pub previous: Previous,
    /// The full status annotation key.
    pub status_key: String,
}

impl<P> Injection<P> {
    pub fn warnings(&self) -> &[String] {
        &self.plan.warnings
    }

    /// Whether the pod already carries this plan (and the patch is empty).
    pub fn is_already_injected(&self) -> bool {
        matches!(self.previous, Previous::AlreadyInjected(_))
    }

    /// The pod spec after injection, built from `original` by stripping and inserting,
    /// independently of the patch (tests prove that the two agree).
    pub fn mutated_spec(&self, original: &PodSpec) -> PodSpec {
        let mut spec = original.clone();
        if let Previous::Replaced(earlier) | Previous::AlreadyInjected(earlier) = &self.previous {
            plan::strip(&mut spec, earlier);
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

/// Decides whether the pod gets an injection and, if so, plans it and builds the patch
/// that brings the pod there from where it stands.
pub fn plan_injection(pod: &PodContext<'_>) -> Result<Outcome, Invalid> {
    plan_injection_with(pod, |ops, written| {
        ops.into_iter()
            .filter_map(|op| op.into_operation(written))
            .collect()
    })
}

/// [`plan_injection`], with the patch in the form that `form` makes of the operations,
/// which are views of the pod and the plan, and of the plan's containers already
/// written as JSON (the webhook writes the operations straight to bytes, copying those,
/// see [`patch::PatchJson`]).
pub fn plan_injection_with<P>(
    pod: &PodContext<'_>,
    form: impl FnOnce(Vec<patch::Op<'_>>, &patch::Written<'_>) -> P,
) -> Result<Outcome<P>, Invalid> {
    let resolved = match resolve::resolve(pod)? {
        Ok(resolved) => resolved,
        Err(skip) => return Ok(Outcome::Skipped(skip)),
    };
    let directives = &resolved.directives;
    let requested = directives.requests_injection() || resolved.applied.injects();
    let earlier = directives.status.clone();
    let stripped = match &earlier {
        Some(status) => Cow::Owned(plan::stripped(pod.spec, status)),
        None => Cow::Borrowed(pod.spec),
    };
    let default_container = resolved
        .annotations
        .get(DEFAULT_CONTAINER_ANNOTATION)
        .map(String::as_str);
    let plan = plan::build(&plan::Inputs {
        directives,
        applied: &resolved.applied,
        namespace_keys: &resolved.namespace_keys,
        namespace: resolved.namespace,
        spec: &stripped,
        default_container,
        config: pod.config,
    })
    .map_err(|errors| resolved.blame(errors))?;

    let written = patch::Written::of(
        plan.steps
            .iter()
            .map(|s| (&s.container, s.shared_env(&stripped), s.shared.as_deref())),
    );
    let status = requested.then(|| Status::of(&plan, &written));
    let status_key = Keys::new(&pod.config.prefix).status();
    let status_text = status.as_ref().map(Status::to_annotation);
    let change = StatusChange {
        key: &status_key,
        value: status_text.as_deref(),
    };
    let ops = patch::diff(
        pod.root,
        pod.meta.annotations.as_ref(),
        pod.spec,
        &stripped,
        &plan,
        change,
        &Owned::of(earlier.as_ref(), &plan, status.as_ref()),
    );
    let unchanged = ops.is_empty();
    let patch = form(ops, &written);
    drop(written);
    drop(stripped);

    let previous = match earlier {
        None => Previous::NotInjected,
        Some(earlier) if unchanged => Previous::AlreadyInjected(earlier),
        Some(earlier) => Previous::Replaced(earlier),
    };
    Ok(Outcome::Injected(Box::new(Injection {
        plan,
        status,
        patch,
        previous,
        status_key,
    })))
}
