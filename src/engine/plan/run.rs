//! Run steps: one init container per `P/run.NAME`, in the image and with the env, mounts,
//! working directory, securityContext and resources of the app container it copies.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, VolumeMount};

use super::{DEFAULT_CONTAINER_ANNOTATION, Origin, Planner, PodOrder, Rule, Step};
use crate::engine::annotations::{AnnotationError, RunAttribute, RunDirective};

impl<'a> Planner<'a> {
    /// Appends the pod's own steps, in `P/steps` order (`run.NAME` steps and policy templates),
    /// else its `run.NAME` steps in lexical order of NAME.
    pub(super) fn pod_steps(&mut self, mounts: &[VolumeMount], steps: &mut Vec<Step>) {
        let order = if self.directives.steps.is_some() {
            PodOrder::Steps
        } else if self.applied.injects() {
            PodOrder::LexicalAfterPolicies
        } else {
            PodOrder::Lexical
        };
        let names: Vec<&'a str> = match &self.directives.steps {
            Some(order) => order.iter().map(String::as_str).collect(),
            None => self.directives.runs.keys().map(String::as_str).collect(),
        };
        for name in names {
            let step = match self.directives.runs.get(name) {
                Some(run) => self.run_step(run, mounts, order),
                None => match self.applied.templates.get(name) {
                    Some((template, policy)) => self.template_step(template, policy, mounts, order),
                    // The parser refused names that are neither.
                    None => None,
                },
            };
            steps.extend(step);
        }
    }

    fn run_step(
        &mut self,
        run: &'a RunDirective,
        mounts: &[VolumeMount],
        order: PodOrder,
    ) -> Option<Step> {
        if let Some((_, policy)) = self.applied.templates.get(run.name.as_str()) {
            self.warnings.push(format!(
                "annotation {}: the pod's own step is used; InitPolicy {policy}'s template of the same name is not",
                self.keys.run(&run.name)
            ));
        }
        self.check_run_name(run);
        self.take(&run.name, "another injected step");
        let (index, source) = self.source_container(run, self.default_container)?;
        let env_of = source
            .env
            .as_ref()
            .is_some_and(|env| !env.is_empty())
            .then_some(index);
        let shared = self.copied_from(index, source, mounts, env_of.is_none());
        Some(Step {
            container: run_container(run, source),
            env_of,
            shared: Some(shared),
            origin: Origin::Run {
                source_container: source.name.clone(),
            },
            source: self.source_of_key(|| self.keys.run(&run.name)),
            rule: Rule::PodStep(order),
        })
    }

    /// What every run step that copies the app container at `index` (`source`) shares
    /// ([`Step::shared`]), made once per plan.
    fn copied_from(
        &mut self,
        index: usize,
        source: &Container,
        mounts: &[VolumeMount],
        with_env: bool,
    ) -> Arc<Container> {
        if let Some((_, shared)) = self.copied.iter().find(|(i, _)| *i == index) {
            return shared.clone();
        }
        let shared = Arc::new(copied_fields(source, mounts, with_env));
        self.copied.push((index, shared.clone()));
        shared
    }

    /// A step's name must not be taken by the pod or by a wait step.
    fn check_run_name(&mut self, run: &RunDirective) {
        let name = &run.name;
        let mut clashes = Vec::new();
        if self.pod_names.contains(name.as_str()) {
            clashes.push(format!(
                "the pod already has a container named {name:?}; choose another step name"
            ));
        }
        if let Some(what) = self.taken.get(name) {
            clashes.push(format!(
                "step name {name:?} is also the name of {what}; choose another"
            ));
        }
        for message in clashes {
            self.annotation_error(self.keys.run(name), run.argv.join(" "), message);
        }
    }

    /// The app container a run step copies, and its index among the pod's containers:
    /// the one it names, else the pod's default container, else the first.
    fn source_container(
        &mut self,
        run: &RunDirective,
        default_container: Option<&str>,
    ) -> Option<(usize, &'a Container)> {
        let spec = self.spec;
        let named = |name: &str| {
            spec.containers
                .iter()
                .enumerate()
                .find(|(_, c)| c.name == name)
        };
        if let Some(wanted) = &run.container {
            let found = named(wanted);
            if found.is_none() {
                let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
                let key = self.keys.run_attribute(&run.name, RunAttribute::Container);
                let source = self.source_of(&key);
                self.errors.push(
                    AnnotationError::new(
                        key,
                        wanted.clone(),
                        format!(
                            "the pod has no app container of that name; expected one of: {}",
                            names.join(", ")
                        ),
                    )
                    .from_source(source),
                );
            }
            return found;
        }
        if let Some(wanted) = default_container {
            match named(wanted) {
                Some(found) => return Some(found),
                None => self.warnings.push(format!(
                    "annotation {DEFAULT_CONTAINER_ANNOTATION}: {wanted:?} is not a container of this pod; step {:?} copies the first container instead",
                    run.name
                )),
            }
        }
        let first = spec.containers.first().map(|c| (0, c));
        if first.is_none() {
            self.annotation_error(
                self.keys.run(&run.name),
                run.argv.join(" "),
                "the pod has no app container to take the image and environment from".to_owned(),
            );
        }
        first
    }
}

/// What is a run step's own: its name, its command, and its image (the app container's,
/// with its pull policy, unless the step names one). The rest is [`copied_fields`].
fn run_container(run: &RunDirective, source: &Container) -> Container {
    let (image, image_pull_policy) = match &run.image {
        Some(image) => (Some(image.clone()), None),
        None => (source.image.clone(), source.image_pull_policy.clone()),
    };
    Container {
        name: run.name.clone(),
        image,
        image_pull_policy,
        command: Some(run.argv.clone()),
        ..Default::default()
    }
}

/// What a run step copies from its app container `source` besides the image: envFrom,
/// mounts (with the plan's), working directory, securityContext, resources, and its env
/// only when `with_env` (else the step shares the source's, see [`Step::env_of`]). The
/// webhook decodes only the fields of an app container that this, [`run_container`] and
/// `policy::copied_container` read (its `AppContainer`): a field copied here must be
/// added there too, or its test fails.
fn copied_fields(source: &Container, mounts: &[VolumeMount], with_env: bool) -> Container {
    let own = source.volume_mounts.as_deref().unwrap_or_default();
    let mut volume_mounts = Vec::with_capacity(own.len() + mounts.len());
    volume_mounts.extend_from_slice(own);
    volume_mounts.extend_from_slice(mounts);
    Container {
        env: if with_env { source.env.clone() } else { None },
        env_from: source.env_from.clone(),
        volume_mounts: (!volume_mounts.is_empty()).then_some(volume_mounts),
        working_dir: source.working_dir.clone(),
        security_context: source.security_context.clone(),
        resources: source.resources.clone(),
        ..Default::default()
    }
}
