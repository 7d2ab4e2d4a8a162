//! The admission boundary, and the only module that knows kube's admission types:
//! AdmissionReview v1 bytes in, AdmissionReview bytes (or a clear refusal) out.
//! It knows nothing of HTTP; the server maps [`ReviewError`] to status codes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use json_patch::Patch;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, Resource, TypeMeta};

use crate::engine::config::EngineConfig;
use crate::engine::names::object_name;
use crate::engine::patch::PatchJson;
use crate::engine::policy::select::{NamespaceInfo, Policies};
use crate::engine::{self, Outcome, PodContext, Skip};

mod envelope;
mod pod;
pub use pod::ReviewedPod;

use envelope::Envelope;

/// What to do with a pod whose annotations are wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnInvalid {
    /// Refuse the pod with the message.
    Deny,
    /// Admit it unchanged and return the message as a warning.
    Warn,
}

/// Settings for answering reviews.
#[derive(Clone, Debug)]
pub struct AdmissionConfig {
    pub engine: EngineConfig,
    pub on_invalid: OnInvalid,
    /// Where the policies in force and the namespaces come from (`serve
    /// --watch-policies`); without it, only the pod's own annotations count.
    pub policies: Option<Arc<dyn PolicySource>>,
}

/// The engine's defaults, a pod with wrong annotations refused, no policies: `serve`'s
/// own defaults, without `--watch-policies`.
impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            engine: EngineConfig::default(),
            on_invalid: OnInvalid::Deny,
            policies: None,
        }
    }
}

/// The InitPolicies in force and the namespaces pods are created in, as last seen. The
/// webhook's reflectors implement it (`cluster::policies`); every review reads one
/// snapshot, never the API server.
pub trait PolicySource: Send + Sync + std::fmt::Debug {
    /// The policies in force now.
    fn policies(&self) -> Arc<Policies>;
    /// A namespace as last seen; `None` for one not seen (yet).
    fn namespace(&self, name: &str) -> Option<NamespaceInfo>;
}

/// How a review was answered (for logs and metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed with a patch of this many operations.
    Mutated { operations: usize },
    /// Allowed unchanged, and why.
    Skipped(&'static str),
    /// Refused: the annotations are wrong and `--on-invalid=deny`.
    Denied,
    /// Admitted unchanged with warnings: wrong annotations and `--on-invalid=warn`.
    Warned,
    /// Refused: the review names a pod but carries something that is not one.
    Invalid,
}

impl Decision {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Mutated { .. } => "mutated",
            Decision::Skipped(_) => "skipped",
            Decision::Denied => "denied",
            Decision::Warned => "warned",
            Decision::Invalid => "invalid",
        }
    }
}

/// A review that could not be read at all; no uid is known to answer it with.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not JSON, or not shaped like an AdmissionReview.
    #[error("the body is not an AdmissionReview")]
    Malformed(#[source] serde_json::Error),
    /// Another apiVersion or kind, such as a v1beta1 review.
    #[error(
        "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got {api_version:?} {kind:?}"
    )]
    WrongType { api_version: String, kind: String },
    /// A review without its `request`.
    #[error("the AdmissionReview has no request")]
    MissingRequest,
}

/// An answered review.
#[derive(Debug)]
pub struct Reviewed {
    /// The AdmissionReview to send back, serialized.
    pub body: Vec<u8>,
    pub decision: Decision,
    pub uid: String,
    pub namespace: String,
    /// The pod's name, or its generateName followed by `*`.
    pub name: String,
    /// Why the pod was refused, or empty.
    pub message: String,
}

/// Answers one AdmissionReview.
///
/// The object is decoded straight into a typed Pod ([`ReviewedPod`]: the spec and the
/// metadata the engine reads), in an envelope that reads only what the answer needs
/// (`envelope`), the fast path every real pod takes. When that fails, the
/// review is decoded again untyped, so that a review the webhook should not touch is
/// still allowed, and one that names a pod but carries something else is refused with
/// the decoder's reason.
///
/// The body is checked as UTF-8 once, whole, and then decoded as text: decoded from
/// bytes, serde_json checks each string on its own, and a pod's hundreds of short
/// strings made that about 3 % of an annotated review. A body that is not UTF-8 is
/// decoded from bytes: refused with serde_json's reason, or read when the bytes that are
/// not UTF-8 sit in a field the decoder skips (`tests/fuzz_regressions.rs`).
pub fn review(body: &[u8], config: &AdmissionConfig) -> Result<Reviewed, ReviewError> {
    let typed = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str::<Envelope>(text),
        Err(_) => serde_json::from_slice::<Envelope>(body),
    };
    match typed {
        Ok(review) => Ok(answer(into_request(review.into_parts())?, |request| {
            decide_object(request, |pod| (&pod.metadata, pod.spec.as_ref()), config)
        })),
        Err(typed_error) => {
            let review: AdmissionReview<DynamicObject> =
                serde_json::from_slice(body).map_err(ReviewError::Malformed)?;
            Ok(answer(
                into_request((review.types, review.request))?,
                |request| {
                    let reason = format!("the object is not a valid v1 Pod: {typed_error}");
                    (
                        AdmissionResponse::from(request).deny(reason),
                        Decision::Invalid,
                    )
                },
            ))
        }
    }
}

/// The request of a review of type `types`, which must be an AdmissionReview v1. The
/// request's own `types` stay empty, unlike in kube's conversion: kube's response starts
/// as a copy of them, and [`encode`] writes the v1 AdmissionReview's own instead.
fn into_request<T: Resource>(
    (types, request): (TypeMeta, Option<AdmissionRequest<T>>),
) -> Result<AdmissionRequest<T>, ReviewError> {
    if types.api_version != "admission.k8s.io/v1" || types.kind != "AdmissionReview" {
        return Err(ReviewError::WrongType {
            api_version: types.api_version,
            kind: types.kind,
        });
    }
    request.ok_or(ReviewError::MissingRequest)
}

/// Requests the webhook allows untouched whatever they carry.
fn skip_reason<T: Resource>(request: &AdmissionRequest<T>) -> Option<Decision> {
    let is_pod = request.resource.group.is_empty()
        && request.resource.resource == "pods"
        && request.sub_resource.is_none();
    if !is_pod {
        return Some(Decision::Skipped("not a pod"));
    }
    if request.operation != Operation::Create {
        return Some(Decision::Skipped("not a CREATE"));
    }
    None
}

/// Answers `request`: allowed untouched when [`skip_reason`] says so, else as `decide`
/// says; then encoded, with what the logs need.
fn answer<T: Resource>(
    request: AdmissionRequest<T>,
    decide: impl FnOnce(&AdmissionRequest<T>) -> (AdmissionResponse, Decision),
) -> Reviewed {
    let (response, decision) = match skip_reason(&request) {
        Some(decision) => (AdmissionResponse::from(&request), decision),
        None => decide(&request),
    };
    let body = encode(&response);
    let AdmissionRequest {
        uid,
        name,
        namespace,
        object,
        ..
    } = request;
    let meta = object.as_ref().map(Resource::meta);
    let name = object_name(
        meta.and_then(|m| m.name.as_deref()),
        meta.and_then(|m| m.generate_name.as_deref()),
    )
    .unwrap_or(name);
    Reviewed {
        body,
        decision,
        uid,
        namespace: namespace.unwrap_or_default(),
        name,
        message: response.result.message,
    }
}

/// Serializes a response as the AdmissionReview the apiserver reads, with the patch
/// base64-encoded.
///
/// kube's `AdmissionResponse` is how responses are built (`from`, `deny`, `with_patch`),
/// but its derived serialization writes the patch bytes as a JSON array of numbers
/// (kube-rs/kube#1781). Go decodes that too, yet it makes the answer about four times
/// the patch size, and on a typical injection the response grows from 7 KB to 20 KB,
/// which costs more to encrypt, send and parse than the engine costs to run. base64 is
/// what Go itself writes for `[]byte`. Audit annotations are written in key order so
/// that equal answers are equal bytes.
///
/// The patch, most of an answer, is base64-encoded straight into the output: no
/// intermediate string, and no escaping pass over text that never needs escaping. The
/// encoder is base64-simd's (AVX2 or SSSE3 where the CPU has them, found at run time):
/// on a typical 4 KB patch it took 0.65 µs where the `base64` crate's scalar engine took
/// 3.7 µs (docs/performance.md, tenth round). The other fields go through serde_json as
/// they would inside a derived struct; tests hold the bytes equal to that struct's
/// serialization with the `base64` crate's encoding (`WireReview` below).
pub fn encode(response: &AdmissionResponse) -> Vec<u8> {
    fn put<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
        serde_json::to_writer(out, value).expect("an AdmissionReview always serializes");
    }
    let base64 = &base64_simd::STANDARD;
    let patch_len = response
        .patch
        .as_ref()
        .map_or(0, |patch| base64.encoded_length(patch.len()));
    let mut out = Vec::with_capacity(patch_len + 1024);
    out.extend_from_slice(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"#,
    );
    put(&mut out, &response.uid);
    out.extend_from_slice(br#","allowed":"#);
    put(&mut out, &response.allowed);
    out.extend_from_slice(br#","status":"#);
    put(&mut out, &response.result);
    if let Some(patch) = &response.patch {
        out.extend_from_slice(br#","patch":""#);
        let at = out.len();
        out.resize(at + patch_len, 0);
        let written = base64
            .encode(patch, base64_simd::Out::from_slice(&mut out[at..]))
            .len();
        out.truncate(at + written);
        out.extend_from_slice(br#"","patchType":"JSONPatch""#);
    }
    if !response.audit_annotations.is_empty() {
        out.extend_from_slice(br#","auditAnnotations":"#);
        let sorted: BTreeMap<&str, &str> = response
            .audit_annotations
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        put(&mut out, &sorted);
    }
    if let Some(warnings) = &response.warnings {
        out.extend_from_slice(br#","warnings":"#);
        put(&mut out, warnings);
    }
    out.extend_from_slice(b"}}");
    out
}

/// [`decide`] for the pod the request carries, whose metadata and spec `parts` gives; a
/// request that carries none is refused.
fn decide_object<T: Resource>(
    request: &AdmissionRequest<T>,
    parts: impl Fn(&T) -> (&ObjectMeta, Option<&PodSpec>),
    config: &AdmissionConfig,
) -> (AdmissionResponse, Decision) {
    match &request.object {
        Some(object) => {
            let (meta, spec) = parts(object);
            decide(request, meta, spec, config)
        }
        None => (
            AdmissionResponse::from(request).deny("the CREATE request carries no object"),
            Decision::Invalid,
        ),
    }
}

fn decide<T: Resource>(
    request: &AdmissionRequest<T>,
    meta: &ObjectMeta,
    spec: Option<&PodSpec>,
    config: &AdmissionConfig,
) -> (AdmissionResponse, Decision) {
    let allowed = AdmissionResponse::from(request);
    let Some(spec) = spec else {
        return (allowed.deny("the pod has no spec"), Decision::Invalid);
    };
    let pod = PodContext::new(meta, spec, &config.engine);
    let scope = config.policies.as_ref().map(|source| {
        let name = request.namespace.clone().unwrap_or_default();
        let namespace = source
            .namespace(&name)
            .unwrap_or_else(|| NamespaceInfo::unseen(name));
        (namespace, source.policies())
    });
    let pod = match &scope {
        Some((namespace, policies)) => pod.in_scope(namespace, policies),
        None => pod,
    };
    match engine::plan_injection_with(&pod, PatchJson::from_ops) {
        Ok(Outcome::Skipped(Skip::NotAnnotated)) => (allowed, Decision::Skipped("not annotated")),
        Ok(Outcome::Skipped(Skip::OptedOut)) => (allowed, Decision::Skipped("opted out")),
        Ok(Outcome::Injected(injection)) => {
            let mut response = allowed;
            if !injection.plan.warnings.is_empty() {
                response.warnings = Some(injection.plan.warnings.clone());
            }
            if let Some(status) = &injection.status {
                response.audit_annotations = HashMap::from([
                    (
                        "injected-init-containers".to_owned(),
                        status.init_containers.join(","),
                    ),
                    ("injected-volumes".to_owned(), status.volumes.join(",")),
                    ("plan-hash".to_owned(), status.hash.clone()),
                ]);
                if !status.policies.is_empty() {
                    response
                        .audit_annotations
                        .insert("policies".to_owned(), status.policies.join(","));
                }
            }
            if injection.is_already_injected() {
                return (response, Decision::Skipped("already injected"));
            }
            // `with_patch` sets the patch type (a private field) and serializes the
            // operations it is given; the engine has already written ours as bytes.
            let patch = injection.patch;
            match response.with_patch(Patch(Vec::new())) {
                Ok(mut response) => {
                    response.patch = Some(patch.bytes);
                    let operations = patch.operations;
                    (response, Decision::Mutated { operations })
                }
                Err(err) => (
                    AdmissionResponse::from(request).deny(format!("internal error: {err}")),
                    Decision::Invalid,
                ),
            }
        }
        Err(invalid) => refuse(allowed, &invalid, config.on_invalid),
    }
}

/// The answer for a pod whose annotations are wrong: refused, or admitted unchanged
/// with the mistakes as warnings.
fn refuse(
    allowed: AdmissionResponse,
    invalid: &engine::Invalid,
    on_invalid: OnInvalid,
) -> (AdmissionResponse, Decision) {
    let messages: Vec<String> = invalid.0.iter().map(ToString::to_string).collect();
    match on_invalid {
        OnInvalid::Deny => {
            let message = format!("init-injector: {}", messages.join("; "));
            (allowed.deny(message), Decision::Denied)
        }
        OnInvalid::Warn => {
            let mut response = allowed;
            response.warnings = Some(
                messages
                    .into_iter()
                    .map(|m| format!("init-injector: pod admitted without injection: {m}"))
                    .collect(),
            );
            (response, Decision::Warned)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
