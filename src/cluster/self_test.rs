//! `init-injector self-test`: sends a server-side dry run of an annotated pod to the API
//! server and checks that it came back injected, so an installation can be checked end to
//! end (API server → Service → webhook → patch) without creating anything. The chart's
//! `helm test` runs it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, PodSpec};
use kube::api::{Api, ObjectMeta, PostParams};

use super::ClusterError;
use crate::engine::annotations::{Key, Keys};
use crate::engine::config::EngineConfig;
use crate::engine::plan::restricted_security_context;
use crate::engine::{Outcome, PodContext, plan_injection};

/// What the dry-run pod asks for, and what must come back.
#[derive(Clone, Debug)]
pub struct SelfTest {
    pub namespace: String,
    pub prefix: String,
    /// The image of the pod (never pulled: the pod is not stored).
    pub image: String,
}

/// What came back.
#[derive(Debug, PartialEq, Eq)]
pub enum Finding {
    /// The pod came back with our status annotation and these init containers.
    Injected { init_containers: Vec<String> },
    /// The pod came back unchanged.
    NotInjected { reason: String },
}

/// The wait target the test pod names; `.invalid` never resolves, and nothing runs it.
pub const TARGET: &str = "self-test.invalid:5432";

impl SelfTest {
    /// The pod that is sent: one wait step, one run step, the restricted profile.
    pub fn pod(&self) -> Pod {
        let keys = Keys::new(&self.prefix);
        let annotations = BTreeMap::from([
            (keys.key(Key::WaitFor), TARGET.to_owned()),
            (keys.run("check"), "init-injector --version".to_owned()),
        ]);
        Pod {
            metadata: ObjectMeta {
                generate_name: Some("init-injector-self-test-".into()),
                namespace: Some(self.namespace.clone()),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    seccomp_profile: restricted_security_context().seccomp_profile,
                    ..Default::default()
                }),
                containers: vec![Container {
                    name: "app".into(),
                    image: Some(self.image.clone()),
                    args: Some(vec!["--version".into()]),
                    security_context: Some(restricted_security_context()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Sends the dry run and reads what came back.
    pub async fn run(&self, client: kube::Client) -> Result<Finding, ClusterError> {
        let pods: Api<Pod> = Api::namespaced(client, &self.namespace);
        let params = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let pod = pods
            .create(&params, &self.pod())
            .await
            .map_err(ClusterError::api(format!(
                "the dry-run pod in namespace {} was refused",
                self.namespace
            )))?;
        Ok(self.judge(&pod))
    }

    /// The init containers the webhook must add: what this binary's own engine plans for
    /// the same pod.
    fn expected(&self) -> Vec<String> {
        let pod = self.pod();
        let config = EngineConfig {
            prefix: self.prefix.clone(),
            ..EngineConfig::default()
        };
        let spec = pod.spec.as_ref().expect("the test pod has a spec");
        match plan_injection(&PodContext::new(&pod.metadata, spec, &config)) {
            Ok(Outcome::Injected(injection)) => injection
                .plan
                .steps
                .iter()
                .map(|step| step.container.name.clone())
                .collect(),
            other => unreachable!("the test pod always injects: {other:?}"),
        }
    }

    /// Whether `pod` carries the injection this test asked for.
    pub fn judge(&self, pod: &Pod) -> Finding {
        let status_key = Keys::new(&self.prefix).status();
        let init_containers: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|spec| spec.init_containers.iter().flatten())
            .map(|container| container.name.clone())
            .collect();
        let has_status = pod
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|annotations| annotations.contains_key(&status_key));
        if !has_status {
            return Finding::NotInjected {
                reason: format!(
                    "the pod came back without {status_key}: the webhook did not mutate it \
                     (is namespace {} excluded by the webhook's namespaceSelector, or is the \
                     annotation prefix not {}?)",
                    self.namespace, self.prefix
                ),
            };
        }
        if let Some(missing) = self
            .expected()
            .into_iter()
            .find(|name| !init_containers.contains(name))
        {
            return Finding::NotInjected {
                reason: format!(
                    "{status_key} is set but the init container {missing} is missing (got {init_containers:?})"
                ),
            };
        }
        Finding::Injected { init_containers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test() -> SelfTest {
        SelfTest {
            namespace: "default".into(),
            prefix: "init.example".into(),
            image: "registry.example.com/init-injector:1".into(),
        }
    }

    #[test]
    fn the_engines_own_injection_passes_and_an_untouched_pod_fails() {
        let test = test();
        let mut pod = test.pod();
        let Finding::NotInjected { reason } = test.judge(&pod) else {
            panic!("an untouched pod passed");
        };
        assert!(reason.contains("without init.example/status"), "{reason}");

        let config = EngineConfig::default();
        let spec = pod.spec.clone().unwrap();
        let Ok(Outcome::Injected(injection)) =
            plan_injection(&PodContext::new(&pod.metadata, &spec, &config))
        else {
            panic!("the test pod does not inject");
        };
        pod.spec = Some(injection.mutated_spec(&spec));
        pod.metadata.annotations =
            Some(injection.mutated_annotations(pod.metadata.annotations.as_ref()));
        assert_eq!(
            test.judge(&pod),
            Finding::Injected {
                init_containers: vec!["wait-for-self-test-invalid-5432".into(), "check".into()]
            }
        );

        // The status alone is not enough: the steps must be there too.
        pod.spec.as_mut().unwrap().init_containers = None;
        let Finding::NotInjected { reason } = test.judge(&pod) else {
            panic!("a pod without its steps passed");
        };
        assert!(reason.contains("is missing"), "{reason}");
    }
}
