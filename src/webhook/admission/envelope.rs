//! The AdmissionReview around the pod, as a review reads it.
//!
//! kube's `AdmissionReview<T>` decodes every field of the request: who sent it
//! (`userInfo`, its groups and extra), the kind and resource as first requested
//! (`requestKind`, `requestResource`) and the `options` object, as a `serde_json::Value`
//! tree. A review reads none of them, and building them was 17 of the 98 allocations of
//! an unannotated review (docs/performance.md, nineteenth round). [`Envelope`] reads
//! what the answer, the logs and the skip rules look at (the review's type; the
//! request's uid, kind, resource, subresource, name, namespace, operation, dry-run flag,
//! object and old object) and skips the rest; the skipped fields must still be JSON, and
//! `userInfo` must be present, as kube requires. The result is kube's own
//! [`AdmissionRequest`], the skipped fields left at their defaults, so everything after
//! the decode is kube's. The API server built the envelope itself; a test holds every
//! answer equal to the answer made from kube's whole decode (`webhook::admission::tests`).

use kube::core::admission::{AdmissionRequest, Operation};
use kube::core::{GroupVersionKind, GroupVersionResource, TypeMeta};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::ReviewedPod;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Envelope {
    api_version: String,
    kind: String,
    request: Option<Request>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    uid: String,
    kind: GroupVersionKind,
    resource: GroupVersionResource,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    operation: Operation,
    /// Required, as kube requires it; not read.
    #[serde(rename = "userInfo")]
    _user_info: IgnoredAny,
    object: Option<ReviewedPod>,
    old_object: Option<ReviewedPod>,
    #[serde(default)]
    dry_run: bool,
}

impl Envelope {
    /// The review's apiVersion and kind, and its request as kube holds one, the fields
    /// not read left at their defaults (and its `types` empty, see `into_request`).
    pub(super) fn into_parts(self) -> (TypeMeta, Option<AdmissionRequest<ReviewedPod>>) {
        let types = TypeMeta {
            api_version: self.api_version,
            kind: self.kind,
        };
        let request = self.request.map(|request| AdmissionRequest {
            types: TypeMeta::default(),
            uid: request.uid,
            kind: request.kind,
            resource: request.resource,
            sub_resource: request.sub_resource,
            request_kind: None,
            request_resource: None,
            request_sub_resource: None,
            name: request.name,
            namespace: request.namespace,
            operation: request.operation,
            user_info: Default::default(),
            object: request.object,
            old_object: request.old_object,
            dry_run: request.dry_run,
            options: None,
        });
        (types, request)
    }
}
