//! Tests of the admission boundary: decisions, refusals, and the answer's bytes against kube's own encoding.

use super::*;
use k8s_openapi::api::core::v1::Pod;

fn config() -> AdmissionConfig {
    AdmissionConfig {
        engine: EngineConfig::default(),
        on_invalid: OnInvalid::Deny,
        policies: None,
    }
}

/// The wire form as a derived struct: what [`encode`] writes by hand.
#[derive(serde::Serialize)]
struct WireReview<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'a str,
    response: WireResponse<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse<'a> {
    uid: &'a str,
    allowed: bool,
    status: &'a kube::core::Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a [String]>,
}

fn derived_encode(response: &AdmissionResponse) -> Vec<u8> {
    use base64::Engine;
    let patch = response
        .patch
        .as_deref()
        .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes));
    serde_json::to_vec(&WireReview {
        api_version: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        response: WireResponse {
            uid: &response.uid,
            allowed: response.allowed,
            status: &response.result,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            audit_annotations: response
                .audit_annotations
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            warnings: response.warnings.as_deref(),
        },
    })
    .unwrap()
}

/// Mutated, skipped, denied and warned answers, with and without every optional
/// field: the hand-written bytes are the derived struct's bytes.
#[test]
fn encode_writes_the_derived_wire_form() {
    let body = include_bytes!("../../../examples/review.json");
    let decoded: AdmissionReview<ReviewedPod> = serde_json::from_slice(body).unwrap();
    let request: AdmissionRequest<ReviewedPod> = decoded.try_into().unwrap();
    let pod = request.object.as_ref().unwrap();
    let (mutated, _) = decide(&request, &pod.metadata, pod.spec.as_ref(), &config());
    assert!(mutated.patch.is_some() && !mutated.audit_annotations.is_empty());
    let mut warned = AdmissionResponse::from(&request);
    warned.warnings = Some(vec!["a \"quoted\" warning\n".into(), "second".into()]);
    for response in [
        mutated.clone(),
        AdmissionResponse::from(&request),
        AdmissionResponse::from(&request).deny("init-injector: \"bad\" value \u{1f}"),
        warned,
        AdmissionResponse::invalid("no request"),
    ] {
        assert_eq!(
            String::from_utf8(encode(&response)).unwrap(),
            String::from_utf8(derived_encode(&response)).unwrap()
        );
    }
}

/// Our wire form and kube's own serialization carry the same JSON Patch, and it is
/// the patch the engine made.
#[test]
fn wire_patch_equals_kube_patch_equals_engine_patch() {
    use base64::Engine;
    let body = include_bytes!("../../../examples/review.json");
    let review: AdmissionReview<ReviewedPod> = serde_json::from_slice(body).unwrap();
    let request: AdmissionRequest<ReviewedPod> = review.try_into().unwrap();
    let pod = request.object.as_ref().unwrap();
    let (response, decision) = decide(&request, &pod.metadata, pod.spec.as_ref(), &config());
    assert!(matches!(decision, Decision::Mutated { .. }));

    let engine_config = config().engine;
    let pod = PodContext::new(&pod.metadata, pod.spec.as_ref().unwrap(), &engine_config);
    let Ok(Outcome::Injected(injection)) =
        engine::plan_injection_with(&pod, |ops, _| serde_json::to_value(&ops).unwrap())
    else {
        panic!("injected")
    };
    let engine_patch = injection.patch;
    let copies = engine_patch.as_array().unwrap().iter();
    assert_eq!(
        copies.filter(|op| op["op"] == "copy").count(),
        2,
        "both run steps copy the app container's env"
    );

    let ours: serde_json::Value = serde_json::from_slice(&encode(&response)).unwrap();
    let base64 = ours["response"]["patch"].as_str().unwrap();
    let ours_patch: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(base64)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ours_patch, engine_patch);
    assert_eq!(ours["response"]["patchType"], "JSONPatch");
    assert_eq!(ours["response"]["uid"], request.uid.as_str());

    let kube: serde_json::Value = serde_json::to_value(response.clone().into_review()).unwrap();
    let bytes: Vec<u8> = serde_json::from_value(kube["response"]["patch"].clone()).unwrap();
    let kube_patch: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(kube_patch, engine_patch);
    // Everything but the patch's encoding is the same document.
    let (mut ours, mut kube) = (ours, kube);
    ours["response"]["patch"] = serde_json::Value::Null;
    kube["response"]["patch"] = serde_json::Value::Null;
    assert_eq!(ours, kube);
}

/// The patch on the wire is the bytes of json-patch's own serialization of the
/// engine's operations.
#[test]
fn wire_patch_bytes_are_the_operations_bytes() {
    use base64::Engine;
    let body = include_bytes!("../../../examples/review.json");
    let decoded: AdmissionReview<Pod> = serde_json::from_slice(body).unwrap();
    let pod = decoded.request.unwrap().object.unwrap();
    let engine_config = config().engine;
    let context = PodContext::new(&pod.metadata, pod.spec.as_ref().unwrap(), &engine_config);
    let Ok(Outcome::Injected(views)) =
        engine::plan_injection_with(&context, |ops, _| serde_json::to_string(&ops).unwrap())
    else {
        panic!("injected")
    };
    let ours: serde_json::Value =
        serde_json::from_slice(&review(body, &config()).unwrap().body).unwrap();
    let wire = base64::engine::general_purpose::STANDARD
        .decode(ours["response"]["patch"].as_str().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(wire.clone()).unwrap(), views.patch);

    // The wire's copies make the pod that json-patch's owned form (every step whole) makes.
    let Ok(Outcome::Injected(owned)) = engine::plan_injection(&context) else {
        panic!("injected")
    };
    let wire: json_patch::Patch = serde_json::from_slice(&wire).unwrap();
    let (mut by_wire, mut by_owned) = (
        serde_json::to_value(&pod).unwrap(),
        serde_json::to_value(&pod).unwrap(),
    );
    json_patch::patch(&mut by_wire, &wire).unwrap();
    json_patch::patch(&mut by_owned, &owned.patch).unwrap();
    assert_eq!(by_wire, by_owned);
    assert!(
        owned.patch.len() < wire.len(),
        "the owned form has no copies"
    );
}

#[test]
fn equal_answers_are_equal_bytes() {
    let body = include_bytes!("../../../examples/review.json");
    let first = review(body, &config()).unwrap().body;
    for _ in 0..10 {
        assert_eq!(review(body, &config()).unwrap().body, first);
    }
}

/// A fixed snapshot, as `inject --policy` builds one; the webhook's reflectors implement
/// the same trait.
#[derive(Debug)]
struct Fixed {
    policies: Arc<Policies>,
    namespaces: Vec<NamespaceInfo>,
}

impl PolicySource for Fixed {
    fn policies(&self) -> Arc<Policies> {
        self.policies.clone()
    }

    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        self.namespaces.iter().find(|ns| ns.name == name).cloned()
    }
}

fn unannotated_review(namespace: &str) -> Vec<u8> {
    let mut review: serde_json::Value =
        serde_json::from_slice(include_bytes!("../../../examples/review-unannotated.json"))
            .unwrap();
    review["request"]["namespace"] = namespace.into();
    serde_json::to_vec(&review).unwrap()
}

/// With a policy source, an unannotated pod in a selected namespace is injected, the
/// status and the audit annotations name the policy, and a namespace the source has
/// not seen is matched by its name label alone.
#[test]
fn policies_reach_unannotated_pods_and_are_named_in_the_answer() {
    let policy: crate::engine::policy::crd::InitPolicy =
        serde_json::from_value(serde_json::json!({
            "apiVersion": "init.example/v1alpha1",
            "kind": "InitPolicy",
            "metadata": {"name": "prod-vault"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"tier": "prod"}},
                "waitFor": ["vault:8200"],
            },
        }))
        .unwrap();
    let mut prod = NamespaceInfo::unseen("prod".into());
    prod.labels.insert("tier".into(), "prod".into());
    let source = Fixed {
        policies: Arc::new(Policies::new([&policy])),
        namespaces: vec![prod],
    };
    let config = AdmissionConfig {
        policies: Some(Arc::new(source)),
        ..config()
    };

    let answered = review(&unannotated_review("prod"), &config).unwrap();
    assert!(matches!(answered.decision, Decision::Mutated { .. }));
    let body: serde_json::Value = serde_json::from_slice(&answered.body).unwrap();
    assert_eq!(
        body["response"]["auditAnnotations"]["policies"],
        "prod-vault"
    );
    assert_eq!(
        body["response"]["auditAnnotations"]["injected-init-containers"],
        "wait-for-vault-8200"
    );

    for elsewhere in ["dev", "not-seen-yet"] {
        let answered = review(&unannotated_review(elsewhere), &config).unwrap();
        assert_eq!(
            answered.decision,
            Decision::Skipped("not annotated"),
            "{elsewhere}"
        );
    }
    // Without a source, the same pod in prod is not touched.
    let answered = review(&unannotated_review("prod"), &self::config()).unwrap();
    assert_eq!(answered.decision, Decision::Skipped("not annotated"));
}
