//! The Pod as a review reads it: the metadata the engine and the logs look at, and the
//! whole spec.
//!
//! The API server sends the full object, and a stored or server-side-applied pod carries
//! `managedFields` (free-form JSON, decoded by k8s-openapi into `serde_json::Value`
//! trees), owner references, timestamps and a status. None of that decides an
//! injection, and on an annotated review decoding it was about a tenth of the review's
//! time. Fields not named here are skipped by the decoder without being built.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::Resource;
use serde::Deserialize;

/// A Pod with only the metadata a review reads: name, generateName, namespace, labels
/// and annotations. `apiVersion` and `kind`, when present, must say `v1` `Pod`, as
/// k8s-openapi's own decoder requires.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Wire")]
pub struct ReviewedPod {
    pub metadata: ObjectMeta,
    pub spec: Option<PodSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: Meta,
    spec: Option<PodSpec>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    generate_name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

/// `apiVersion` or `kind` names another type.
#[derive(Debug, thiserror::Error)]
#[error("invalid value: string {found:?}, expected {expected}")]
struct WrongType {
    found: String,
    expected: &'static str,
}

impl TryFrom<Wire> for ReviewedPod {
    type Error = WrongType;

    fn try_from(wire: Wire) -> Result<Self, WrongType> {
        use k8s_openapi::Resource as _;
        let expect = |found: Option<String>, expected: &'static str| match found {
            Some(found) if found != expected => Err(WrongType { found, expected }),
            _ => Ok(()),
        };
        expect(wire.api_version, Pod::API_VERSION)?;
        expect(wire.kind, Pod::KIND)?;
        let Meta {
            name,
            generate_name,
            namespace,
            labels,
            annotations,
        } = wire.metadata;
        Ok(ReviewedPod {
            metadata: ObjectMeta {
                name,
                generate_name,
                namespace,
                labels,
                annotations,
                ..ObjectMeta::default()
            },
            spec: wire.spec,
        })
    }
}

/// The same resource as [`Pod`], so that kube's admission types carry it.
impl Resource for ReviewedPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        <Pod as Resource>::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        <Pod as Resource>::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        <Pod as Resource>::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        <Pod as Resource>::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_the_engine_reads_and_skips_the_rest() {
        let pod: ReviewedPod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web", "generateName": "web-", "namespace": "shop",
                "labels": {"app": "web"}, "annotations": {"init.example/wait-for": "db:5432"},
                "uid": "0b9c", "resourceVersion": "7",
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:metadata": {}}}],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "1"}],
            },
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            "status": {"phase": "Pending"},
        }))
        .unwrap();
        let full: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": "web", "generateName": "web-", "namespace": "shop",
                "labels": {"app": "web"}, "annotations": {"init.example/wait-for": "db:5432"},
            },
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        }))
        .unwrap();
        assert_eq!(pod.metadata, full.metadata);
        assert_eq!(pod.spec, full.spec);
    }

    #[test]
    fn another_kind_or_version_is_refused_as_k8s_openapi_refuses_it() {
        for (field, value, expected) in [
            ("kind", "Deployment", "expected Pod"),
            ("apiVersion", "apps/v1", "expected v1"),
        ] {
            let object = json!({field: value, "spec": {"containers": []}});
            let ours = serde_json::from_value::<ReviewedPod>(object.clone()).unwrap_err();
            let theirs = serde_json::from_value::<Pod>(object).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string());
            assert!(ours.to_string().contains(expected), "{ours}");
        }
    }

    #[test]
    fn bad_metadata_the_engine_reads_is_an_error() {
        let object = json!({"metadata": {"annotations": {"a": 1}}});
        let error = serde_json::from_value::<ReviewedPod>(object).unwrap_err();
        assert!(
            error.to_string().contains("invalid type: integer"),
            "{error}"
        );
    }
}
