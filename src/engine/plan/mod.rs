//! Planning: directives plus the pod (with any earlier injection already stripped) become
//! an ordered list of init containers, the shared volumes, and the place of the block.
//!
//! Every check that needs the pod happens here: unknown containers, names that clash
//! with the pod's own, volumes and mount paths that clash, unknown position anchors.
//! One file per kind of step (`wait.rs`, `run.rs`), plus `volumes.rs` and `placement.rs`; a
//! new kind of step is a new file, a new [`Origin`] variant and one line in [`build`].

mod placement;
mod policy;
mod run;
mod volumes;
mod wait;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, EnvVar, PodSpec, ResourceRequirements, Volume, VolumeMount,
};

pub use placement::is_native_sidecar;
pub use wait::restricted_security_context;

use crate::engine::annotations::{AnnotationError, Directives, Key, Keys};
use crate::engine::config::EngineConfig;
use crate::engine::policy::apply::Applied;
use crate::engine::source::Source;
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
    /// The InitPolicies that apply to the pod, in the order they apply.
    pub policies: Vec<String>,
}

/// One injected init container and why it is where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The init container, except for the env of a step that runs with an app
    /// container's env ([`Step::env_of`]) and the fields it has in common with other
    /// steps of its plan ([`Step::shared`]): those are not copied here.
    pub container: Container,
    /// What the step has in common with other steps of its plan, held once for all of
    /// them: for a wait step, what every wait step has (the injector's image, command,
    /// resources, securityContext, mounts); for a run step, what every run step that
    /// copies the same app container copies (envFrom, env unless [`Step::env_of`],
    /// mounts, working directory, securityContext, resources). `container` then holds
    /// only the step's own fields ([`OWN_FIELDS`]) and the shared container none of
    /// them. Each copy was some twenty strings to allocate, serialize and drop again per
    /// step. [`Step::container_in`] gives the whole container.
    pub shared: Option<Arc<Container>>,
    /// The index, in the pod's `containers`, of the app container whose (non-empty) `env`
    /// this step runs with. It is left out of `container` (whose `env` is `None`): the
    /// patch has the API server copy it (a JSON Patch `copy`), and on a pod with a large
    /// env the copies were most of a review's memory. [`Step::container_in`] gives the
    /// whole container.
    pub env_of: Option<usize>,
    pub origin: Origin,
    /// Who asked for it.
    pub source: Source,
    /// The ordering rule that put it at this place; [`Step::reason`] says it in words.
    pub rule: Rule,
}

/// The ordering rule that put a step at its place. It is said in words only when
/// someone reads it (`inject --explain`, [`Step::reason`]): the webhook never does, and
/// writing the sentence for every step of every review was a formatted string each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A policy's wait: before the pod's own waits.
    PolicyWait,
    /// One of the pod's waits: target `index` (from 1) of `of`, in written order;
    /// `after_policies` when policies wait too.
    PodWait {
        index: usize,
        of: usize,
        after_policies: bool,
    },
    /// A policy's step: after every wait, before the pod's own steps.
    PolicyStep,
    /// One of the pod's steps (a `run.NAME` step, or a policy's template: its
    /// [`Origin`] says which), in this order.
    PodStep(PodOrder),
}

/// The order of the pod's own steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodOrder {
    /// The order `P/steps` gives.
    Steps,
    /// Lexical order of NAME, after the policies' steps.
    LexicalAfterPolicies,
    /// Lexical order of NAME; no policy injects.
    Lexical,
}

/// Which annotation asked for a step, with what `explain` tells about it.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// `P/wait-for`: one target, with the deadline and first retry delay it was given.
    Wait {
        target: WaitTarget,
        timeout: Duration,
        interval: Duration,
        /// Who set the timeout and the interval; `None`: the webhook's defaults.
        timing_from: [Option<Source>; 2],
    },
    /// `P/run.NAME`, copying image, env and mounts from this app container.
    Run { source_container: String },
    /// A policy's step, or a policy template a pod named in `P/steps`: in its own image,
    /// or copying image, env and mounts from `source_container`.
    Policy {
        source_container: Option<String>,
        template: bool,
    },
}

impl Step {
    /// The whole init container, with the env of [`Step::env_of`] taken from `spec`
    /// (the pod the plan was made for) and the fields of [`Step::shared`].
    pub fn container_in(&self, spec: &PodSpec) -> Cow<'_, Container> {
        whole(
            &self.container,
            self.shared_env(spec).map(Vec::as_slice),
            self.shared.as_deref(),
        )
    }

    /// The ordering rule that put the step at its place, in words; `keys` name the
    /// pod's annotations.
    pub fn reason(&self, keys: &Keys<'_>) -> String {
        match self.rule {
            Rule::PolicyWait => format!(
                "rule 1: policy wait-for ({}), before the pod's own waits",
                self.source
            ),
            Rule::PodWait {
                index,
                of,
                after_policies: false,
            } => format!("rule 1: pod wait-for, target {index} of {of} in written order"),
            Rule::PodWait { index, of, .. } => format!(
                "rule 1: pod wait-for, after the policies' waits, target {index} of {of} in written order"
            ),
            Rule::PolicyStep => format!(
                "rule 1: policy step ({}), after every wait and before the pod's own steps",
                self.source
            ),
            Rule::PodStep(order) => {
                let order = match order {
                    PodOrder::Steps => format!(
                        "rule 1: pod step, after every wait and policy step, in {} order",
                        keys.key(Key::Steps)
                    ),
                    PodOrder::LexicalAfterPolicies => "rule 1: pod run step, after every wait and policy step, in lexical order of NAME".to_owned(),
                    PodOrder::Lexical => "rule 1: pod run step, in lexical order of NAME".to_owned(),
                };
                match self.origin {
                    Origin::Policy { template: true, .. } => {
                        format!("{order} (a template of {})", self.source)
                    }
                    _ => order,
                }
            }
        }
    }

    /// The app container's env this step runs with and does not hold.
    pub fn shared_env<'s>(&self, spec: &'s PodSpec) -> Option<&'s Vec<EnvVar>> {
        let index = self.env_of?;
        spec.containers.get(index)?.env.as_ref()
    }
}

/// The fields of a step's container that are its own when it shares the rest
/// ([`Step::shared`]), as the API names them.
pub const OWN_FIELDS: [&str; 5] = ["args", "command", "image", "imagePullPolicy", "name"];

/// A step's whole container: `container`, planned without the env and the fields it
/// shares, with `env` and the fields of `shared` (which holds none of the
/// [`OWN_FIELDS`], the only fields `container` then holds).
pub fn whole<'c>(
    container: &'c Container,
    env: Option<&[EnvVar]>,
    shared: Option<&Container>,
) -> Cow<'c, Container> {
    let mut whole = match shared {
        None if env.is_none() => return Cow::Borrowed(container),
        None => container.clone(),
        Some(shared) => {
            fn own<T: Clone>(field: &Option<T>, theirs: &Option<T>) -> Option<T> {
                field.as_ref().or(theirs.as_ref()).cloned()
            }
            Container {
                name: container.name.clone(),
                args: own(&container.args, &shared.args),
                command: own(&container.command, &shared.command),
                image: own(&container.image, &shared.image),
                image_pull_policy: own(&container.image_pull_policy, &shared.image_pull_policy),
                ..shared.clone()
            }
        }
    };
    if let Some(env) = env {
        whole.env = Some(env.to_vec());
    }
    Cow::Owned(whole)
}

/// Removes what an earlier pass injected (per its `P/status`) from `spec`, in place: the
/// same init containers, volumes and mounts that [`stripped`] leaves out of its copy.
pub fn strip(spec: &mut PodSpec, earlier: &Status) {
    if let Some(init) = spec.init_containers.as_mut() {
        init.retain(|c| !earlier.injected_container(&c.name));
    }
    if let Some(volumes) = spec.volumes.as_mut() {
        volumes.retain(|v| !earlier.injected_volume(&v.name));
    }
    for container in &mut spec.containers {
        if let Some(mounts) = container.volume_mounts.as_mut() {
            mounts.retain(|m| !earlier.injected_volume(&m.name));
        }
    }
}

/// What [`build`] and the patch's diff read of `spec` once an earlier pass's injection
/// (per its `P/status`) is taken out: its containers without the injected volumes'
/// mounts, its own init containers and volumes, and its ephemeral containers (whose
/// names a step's name must not take). Every other field is left at its default.
///
/// The API server sends every injected pod back for review (reinvocation), so this runs
/// for every pod the webhook injects: copying the whole spec, the injected init
/// containers with it, only to drop them again cost 8 % of that review's instructions
/// (docs/performance.md, eleventh round).
pub fn stripped(spec: &PodSpec, earlier: &Status) -> PodSpec {
    let containers = spec
        .containers
        .iter()
        .map(|container| {
            let mut container = container.clone();
            if let Some(mounts) = container.volume_mounts.as_mut() {
                mounts.retain(|m| !earlier.injected_volume(&m.name));
            }
            container
        })
        .collect();
    let init_containers = spec.init_containers.as_ref().map(|init| {
        init.iter()
            .filter(|c| !earlier.injected_container(&c.name))
            .cloned()
            .collect()
    });
    let volumes = spec.volumes.as_ref().map(|volumes| {
        volumes
            .iter()
            .filter(|v| !earlier.injected_volume(&v.name))
            .cloned()
            .collect()
    });
    PodSpec {
        containers,
        init_containers,
        volumes,
        ephemeral_containers: spec.ephemeral_containers.clone(),
        ..PodSpec::default()
    }
}

/// Everything one plan is built from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The pod's directives (its own annotations, with its namespace's as defaults).
    pub directives: &'a Directives,
    /// What the policies that select the pod add.
    pub applied: &'a Applied<'a>,
    /// The annotation keys that came from the namespace, and its name.
    pub namespace_keys: &'a BTreeSet<String>,
    pub namespace: &'a str,
    /// The pod spec, any earlier injection already stripped ([`stripped`], which keeps
    /// only the containers, init containers, volumes and ephemeral containers: all the
    /// plan reads).
    pub spec: &'a PodSpec,
    /// The pod's `kubectl.kubernetes.io/default-container`.
    pub default_container: Option<&'a str>,
    pub config: &'a EngineConfig,
}

/// Plans the injection for a pod whose earlier injection, if any, is already stripped.
pub fn build(inputs: &Inputs<'_>) -> Result<Plan, Vec<AnnotationError>> {
    let mut planner = Planner::new(inputs);
    let (volumes, mounts) = planner.shared_volumes();
    // Each kind of step appends to one list sized for every step: a step is a large
    // value (the whole `Container`), and lists of each kind joined after were moved again.
    let mut steps = Vec::with_capacity(planner.total);
    planner.wait_steps(&mounts, &mut steps);
    planner.policy_steps(&mounts, &mut steps);
    planner.pod_steps(&mounts, &mut steps);
    let (insert_at, placement) = planner.placement();
    if planner.errors.is_empty() {
        Ok(Plan {
            steps,
            volumes,
            mounts,
            insert_at,
            placement,
            warnings: planner.warnings,
            policies: inputs.applied.owned_names(),
        })
    } else {
        Err(planner.errors)
    }
}

/// Inserts the plan into a stripped pod spec.
pub fn apply(spec: &mut PodSpec, plan: &Plan) {
    if !plan.steps.is_empty() {
        let steps: Vec<Container> = plan
            .steps
            .iter()
            .map(|s| s.container_in(spec).into_owned())
            .collect();
        let init = spec.init_containers.get_or_insert_with(Vec::new);
        let at = plan.insert_at.min(init.len());
        init.splice(at..at, steps);
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
    applied: &'a Applied<'a>,
    namespace_keys: &'a BTreeSet<String>,
    namespace: &'a str,
    spec: &'a PodSpec,
    default_container: Option<&'a str>,
    config: &'a EngineConfig,
    keys: Keys<'a>,
    /// The names of the pod's own containers, of every kind.
    pod_names: BTreeSet<&'a str>,
    /// The names of the steps planned so far, and what each is (for messages).
    taken: BTreeMap<String, Cow<'static, str>>,
    /// The pod's own waits that a policy does not already wait for.
    pod_waits: Vec<&'a WaitTarget>,
    /// How many steps the block has, for the `[I/N]` of each wait step's log.
    total: usize,
    /// What run steps copy from an app container, by its index ([`Step::shared`]).
    copied: Vec<(usize, Arc<Container>)>,
    errors: Vec<AnnotationError>,
    warnings: Vec<String>,
}

impl<'a> Planner<'a> {
    fn new(inputs: &Inputs<'a>) -> Self {
        let (directives, applied, spec) = (inputs.directives, inputs.applied, inputs.spec);
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
        let mut warnings = directives.warnings.clone();
        let keys = Keys::new(&inputs.config.prefix);
        let mut pod_waits = Vec::with_capacity(directives.waits.len());
        for target in &directives.waits {
            match applied.waits.iter().find(|(seen, _)| seen == target) {
                Some((_, policy)) => warnings.push(format!(
                    "annotation {}: target {target} is also waited for by InitPolicy {policy}, whose wait runs first; waiting for it once",
                    keys.key(Key::WaitFor)
                )),
                None => pod_waits.push(target),
            }
        }
        let pod_step_count = match &directives.steps {
            Some(order) => order.len(),
            None => directives.runs.len(),
        };
        Planner {
            directives,
            applied,
            namespace_keys: inputs.namespace_keys,
            namespace: inputs.namespace,
            spec,
            default_container: inputs.default_container,
            config: inputs.config,
            keys,
            pod_names,
            taken: BTreeMap::new(),
            total: applied.waits.len() + pod_waits.len() + applied.steps.len() + pod_step_count,
            pod_waits,
            copied: Vec::new(),
            errors: Vec::new(),
            warnings,
        }
    }

    /// Who set the annotation `key`: the pod, or its namespace.
    fn source_of(&self, key: &str) -> Source {
        if self.namespace_keys.contains(key) {
            Source::Namespace(self.namespace.to_owned())
        } else {
            Source::Pod
        }
    }

    /// Who set the annotation whose key `key` builds, as [`Planner::source_of`] says; the
    /// key is built only when the namespace set annotations at all.
    fn source_of_key(&self, key: impl FnOnce() -> String) -> Source {
        if self.namespace_keys.is_empty() {
            Source::Pod
        } else {
            self.source_of(&key())
        }
    }

    /// A mistake in the annotation `key`, reported with whoever set it.
    fn annotation_error(&mut self, key: String, value: impl Into<String>, message: String) {
        let source = self.source_of(&key);
        self.errors
            .push(AnnotationError::new(key, value, message).from_source(source));
    }

    /// Records a planned step's name; `what` describes it in later clash messages (the
    /// first step to take a name keeps it).
    fn take(&mut self, name: &str, what: impl Into<Cow<'static, str>>) {
        if !self.taken.contains_key(name) {
            self.taken.insert(name.to_owned(), what.into());
        }
    }

    /// Requests and limits of injected wait steps (and of policy steps in their own
    /// image that give none).
    fn wait_resources(&self) -> ResourceRequirements {
        match self.applied.wait_resources {
            Some((resources, _)) => resources.clone(),
            None => self.config.wait_resources.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each rule in words, as `inject --explain` prints it.
    #[test]
    fn rules_in_words() {
        // A pod's step is a run step, unless a policy's template.
        let step = |rule: Rule, source: Source| Step {
            container: Container::default(),
            shared: None,
            env_of: None,
            origin: match (&rule, &source) {
                (Rule::PodStep(_), Source::Policy(_)) => Origin::Policy {
                    source_container: None,
                    template: true,
                },
                _ => Origin::Run {
                    source_container: "app".to_owned(),
                },
            },
            source,
            rule,
        };
        let policy = || Source::Policy("prod-secrets".to_owned());
        for (rule, source, words) in [
            (
                Rule::PolicyWait,
                policy(),
                "rule 1: policy wait-for (InitPolicy prod-secrets), before the pod's own waits",
            ),
            (
                Rule::PodWait {
                    index: 2,
                    of: 3,
                    after_policies: false,
                },
                Source::Pod,
                "rule 1: pod wait-for, target 2 of 3 in written order",
            ),
            (
                Rule::PodWait {
                    index: 1,
                    of: 1,
                    after_policies: true,
                },
                Source::Namespace("shop".to_owned()),
                "rule 1: pod wait-for, after the policies' waits, target 1 of 1 in written order",
            ),
            (
                Rule::PolicyStep,
                policy(),
                "rule 1: policy step (InitPolicy prod-secrets), after every wait and before the pod's own steps",
            ),
            (
                Rule::PodStep(PodOrder::Steps),
                Source::Pod,
                "rule 1: pod step, after every wait and policy step, in acme.io/steps order",
            ),
            (
                Rule::PodStep(PodOrder::Steps),
                policy(),
                "rule 1: pod step, after every wait and policy step, in acme.io/steps order (a template of InitPolicy prod-secrets)",
            ),
            (
                Rule::PodStep(PodOrder::LexicalAfterPolicies),
                Source::Pod,
                "rule 1: pod run step, after every wait and policy step, in lexical order of NAME",
            ),
            (
                Rule::PodStep(PodOrder::Lexical),
                Source::Pod,
                "rule 1: pod run step, in lexical order of NAME",
            ),
        ] {
            assert_eq!(step(rule, source).reason(&Keys::new("acme.io")), words);
        }
    }
}
