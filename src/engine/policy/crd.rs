//! The `InitPolicy` custom resource (`init.example/v1alpha1`, cluster-scoped): how a platform
//! team says which pods get which init steps. The CRD's schema is generated from these
//! types (`init-injector crd` prints it; the chart's copy is checked against it by a test).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Which pods get which init steps. Policies apply in `priority` order (then by name);
/// DESIGN.md's ordering rules decide where each step lands.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "init.example",
    version = "v1alpha1",
    kind = "InitPolicy",
    plural = "initpolicies",
    singular = "initpolicy",
    shortname = "ipol",
    status = "InitPolicyStatus",
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "Enforce", type_ = "boolean", json_path = ".spec.enforce"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct InitPolicySpec {
    /// Namespaces whose pods this policy applies to; every namespace when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Pods this policy applies to (by their labels); every pod when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Targets to wait for, in the annotation's grammar (`host:port`, `tcp://…`,
    /// `http://…`, `https://…`); they run before the pod's own waits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub wait_for: Vec<String>,
    /// Shared `emptyDir` volumes, mounted into every injected step and app container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub volumes: Vec<PolicyVolume>,
    /// Init steps for every selected pod; they run after all waits and before the pod's
    /// own run steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub steps: Vec<PolicyStep>,
    /// Named steps that a pod runs only when its `P/steps` annotation names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub templates: Vec<PolicyStep>,
    /// Defaults for the selected pods; their own annotations override them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<PolicyDefaults>,
    /// When true, `P/inject: "false"` does not opt a pod out, and a pod's `P/steps` may
    /// not leave this policy's steps out.
    #[serde(default)]
    pub enforce: bool,
    /// Lower numbers apply first; equal priorities apply in order of name.
    #[serde(default)]
    pub priority: i32,
}

/// A shared `emptyDir` volume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.medium) || self.medium == '' || self.medium == 'Memory'").message("medium must be Memory, or empty for the node's disk"))]
pub struct PolicyVolume {
    pub name: String,
    pub mount_path: String,
    /// `Memory` for a tmpfs; the node's disk when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub medium: Option<String>,
    /// A quantity such as `64Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<String>,
}

/// An init step: a container without the fields an init step has no use for.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStep {
    /// The init container's name (a DNS-1123 label).
    pub name: String,
    /// The image; the app container's image (with its env and mounts) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Defaults for selected pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDefaults {
    /// Deadline per wait target (`90s`, `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<String>,
    /// First retry delay of a wait step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_interval: Option<String>,
    /// Requests and limits of the injected wait steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// What the webhook found wrong with a policy, if anything.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InitPolicyStatus {
    /// `Accepted`: `True` when the policy is in force, `False` with the reason when it is
    /// left out until fixed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Labels as a map, for selector matching.
pub type Labels = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;

    #[test]
    fn the_crd_is_cluster_scoped_with_cel_rules() {
        let crd = InitPolicy::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("initpolicies.init.example")
        );
        let text = serde_json::to_string(&crd).unwrap();
        assert!(text.contains("medium must be Memory"), "{text}");
        // Names are unique per list through list-type map, which costs the API server's
        // CEL budget nothing (uniqueness rules in CEL exceeded it many times over).
        assert_eq!(
            text.matches(r#""x-kubernetes-list-map-keys":["name"]"#)
                .count(),
            3
        );
        let printed: Vec<&str> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|column| column.name.as_str())
            .collect();
        assert_eq!(printed, ["Priority", "Enforce", "Accepted", "Age"]);
    }
}
