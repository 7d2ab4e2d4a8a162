//! The Pod as a review reads it: the metadata the engine and the logs look at, and the
//! spec's text, decoded only when the answer is not kept from an earlier pod
//! ([`super::Answers`]).
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
use serde_json::value::RawValue;

/// A Pod with only the metadata a review reads: name, generateName, namespace, labels
/// and annotations. `apiVersion` and `kind`, when present, must say `v1` `Pod`, as
/// k8s-openapi's own decoder requires.
///
/// The spec is an `S`: k8s-openapi's `PodSpec`, or, where the answer may have been kept
/// ([`super::Answers`]), the spec's text as sent (`&RawValue`, borrowed from the body;
/// only serde_json's own deserializer gives it, from text or bytes), which
/// [`ReviewedPod::decode_spec`] decodes on a miss.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Wire<S>", bound(deserialize = "S: Deserialize<'de>"))]
pub struct ReviewedPod<S> {
    pub metadata: ObjectMeta,
    pub spec: Option<S>,
}

impl ReviewedPod<&RawValue> {
    /// The spec as k8s-openapi's `PodSpec`; an error says what in it is not one.
    pub fn decode_spec(&self) -> Result<Option<PodSpec>, serde_json::Error> {
        self.spec
            .map(|raw| serde_json::from_str(raw.get()))
            .transpose()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "S: Deserialize<'de>"))]
struct Wire<S> {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: Meta,
    spec: Option<S>,
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

impl<S> TryFrom<Wire<S>> for ReviewedPod<S> {
    type Error = WrongType;

    fn try_from(wire: Wire<S>) -> Result<Self, WrongType> {
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
impl<S> Resource for ReviewedPod<S> {
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

    /// Why `object` is not a [`ReviewedPod`], decoded as the webhook decodes it: from
    /// text (the spec's text cannot come from a `Value`).
    fn decode_error(object: serde_json::Value) -> serde_json::Error {
        let text = object.to_string();
        serde_json::from_str::<ReviewedPod<&RawValue>>(&text).unwrap_err()
    }

    #[test]
    fn reads_what_the_engine_reads_and_skips_the_rest() {
        let text = json!({
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
        })
        .to_string();
        let pod: ReviewedPod<&RawValue> = serde_json::from_str(&text).unwrap();
        let typed: ReviewedPod<PodSpec> = serde_json::from_str(&text).unwrap();
        let full: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": "web", "generateName": "web-", "namespace": "shop",
                "labels": {"app": "web"}, "annotations": {"init.example/wait-for": "db:5432"},
            },
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        }))
        .unwrap();
        assert_eq!(pod.metadata, full.metadata);
        assert_eq!(pod.decode_spec().unwrap(), full.spec);
        assert_eq!(typed.metadata, full.metadata);
        assert_eq!(typed.spec, full.spec);
    }

    #[test]
    fn another_kind_or_version_is_refused_as_k8s_openapi_refuses_it() {
        for (field, value, expected) in [
            ("kind", "Deployment", "expected Pod"),
            ("apiVersion", "apps/v1", "expected v1"),
        ] {
            let object = json!({field: value, "spec": {"containers": []}});
            let ours = decode_error(object.clone());
            let theirs = serde_json::from_value::<Pod>(object).unwrap_err();
            // serde_json gives no position for an error made after the object is read.
            assert_eq!(ours.to_string(), theirs.to_string());
            assert!(ours.to_string().contains(expected), "{ours}");
        }
    }

    #[test]
    fn bad_metadata_the_engine_reads_is_an_error() {
        let object = json!({"metadata": {"annotations": {"a": 1}}});
        let error = decode_error(object);
        assert!(
            error.to_string().contains("invalid type: integer"),
            "{error}"
        );
    }
}
