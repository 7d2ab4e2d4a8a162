//! Policy steps: an `InitPolicy`'s `steps` for every pod it selects (after all waits,
//! before the pod's own steps), and its `templates` where a pod's `P/steps` names them.
//! A step with an image runs in it with the restricted securityContext; one without runs
//! in the app container's image with that container's env, mounts, securityContext and
//! resources, as a `P/run.NAME` step does.

use k8s_openapi::api::core::v1::{Container, VolumeMount};

use super::{DEFAULT_CONTAINER_ANNOTATION, Origin, Planner, PodOrder, Rule, Step};
use crate::engine::annotations::AnnotationError;
use crate::engine::plan::restricted_security_context;
use crate::engine::policy::crd::PolicyStep;
use crate::engine::source::Source;

impl<'a> Planner<'a> {
    /// Appends every policy's steps, in the order the policies apply.
    pub(super) fn policy_steps(&mut self, mounts: &[VolumeMount], steps: &mut Vec<Step>) {
        let applied = self.applied;
        for (index, (step, policy)) in applied.steps.iter().enumerate() {
            let field = format!("spec.steps[{index}]");
            steps.extend(self.policy_step(step, policy, &field, mounts, Rule::PolicyStep));
        }
    }

    /// A template that the pod's `P/steps` names.
    pub(super) fn template_step(
        &mut self,
        template: &'a PolicyStep,
        policy: &str,
        mounts: &[VolumeMount],
        order: PodOrder,
    ) -> Option<Step> {
        let field = format!("spec.templates[name={}]", template.name);
        self.policy_step(template, policy, &field, mounts, Rule::PodStep(order))
    }

    fn policy_step(
        &mut self,
        step: &'a PolicyStep,
        policy: &str,
        field: &str,
        mounts: &[VolumeMount],
        rule: Rule,
    ) -> Option<Step> {
        // The pod's steps among a policy's are its templates.
        let template = matches!(rule, Rule::PodStep(_));
        let name = step.name.as_str();
        let clash = if self.pod_names.contains(name) {
            Some("the pod already has a container of that name".to_owned())
        } else {
            self.taken
                .get(name)
                .map(|what| format!("it is also the name of {what}"))
        };
        if let Some(clash) = clash {
            self.errors.push(AnnotationError::policy(
                policy,
                format!("{field}.name"),
                name,
                format!("{clash}; the policy's step cannot be injected into this pod"),
            ));
        }
        self.take(name, format!("a step of InitPolicy {policy}"));
        let (container, source_container) = match &step.image {
            Some(image) => (self.own_image_container(step, image, mounts), None),
            None => {
                let source = self.app_container(step, policy, field)?;
                (
                    copied_container(step, source, mounts),
                    Some(source.name.clone()),
                )
            }
        };
        Some(Step {
            container,
            env_of: None,
            shared: None,
            origin: Origin::Policy {
                source_container,
                template,
            },
            source: Source::Policy(policy.to_owned()),
            rule,
        })
    }

    fn own_image_container(
        &self,
        step: &PolicyStep,
        image: &str,
        mounts: &[VolumeMount],
    ) -> Container {
        Container {
            name: step.name.clone(),
            image: Some(image.to_owned()),
            command: step.command.clone(),
            args: step.args.clone(),
            env: step.env.clone(),
            resources: Some(
                step.resources
                    .clone()
                    .unwrap_or_else(|| self.wait_resources()),
            ),
            security_context: Some(restricted_security_context()),
            volume_mounts: (!mounts.is_empty()).then(|| mounts.to_vec()),
            ..Default::default()
        }
    }

    /// The app container a policy step without an image copies: the pod's default
    /// container, else the first.
    fn app_container(
        &mut self,
        step: &PolicyStep,
        policy: &str,
        field: &str,
    ) -> Option<&'a Container> {
        let containers = &self.spec.containers;
        if let Some(wanted) = self.default_container {
            match containers.iter().find(|c| c.name == wanted) {
                Some(found) => return Some(found),
                None => self.warnings.push(format!(
                    "annotation {DEFAULT_CONTAINER_ANNOTATION}: {wanted:?} is not a container of this pod; step {:?} of InitPolicy {policy} copies the first container instead",
                    step.name
                )),
            }
        }
        let first = containers.first();
        if first.is_none() {
            self.errors.push(AnnotationError::policy(
                policy,
                format!("{field}.image"),
                "",
                "the step has no image and the pod has no app container to take one from",
            ));
        }
        first
    }
}

/// A step in the app container's image, with its env (the step's own env after it),
/// mounts, working directory and securityContext; the step's resources, else the app's.
fn copied_container(step: &PolicyStep, source: &Container, mounts: &[VolumeMount]) -> Container {
    let mut volume_mounts = source.volume_mounts.clone().unwrap_or_default();
    volume_mounts.extend(mounts.iter().cloned());
    let mut env = source.env.clone().unwrap_or_default();
    env.extend(step.env.iter().flatten().cloned());
    Container {
        name: step.name.clone(),
        image: source.image.clone(),
        image_pull_policy: source.image_pull_policy.clone(),
        command: step.command.clone(),
        args: step.args.clone(),
        env: (!env.is_empty()).then_some(env),
        env_from: source.env_from.clone(),
        volume_mounts: (!volume_mounts.is_empty()).then_some(volume_mounts),
        working_dir: source.working_dir.clone(),
        security_context: source.security_context.clone(),
        resources: step.resources.clone().or_else(|| source.resources.clone()),
        ..Default::default()
    }
}
