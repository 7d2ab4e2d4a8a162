//! Tests of the admission boundary: decisions, refusals, and the answer's bytes against kube's own encoding.

use super::*;
use k8s_openapi::api::core::v1::Pod;

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
    let (mutated, _) = decide(
        &request,
        &pod.metadata,
        pod.spec.as_ref(),
        &AdmissionConfig::default(),
    );
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

/// The patch's base64 (base64-simd's, vectorized) is the `base64` crate's, padding
/// included, for every length up to well past the vector blocks and for a large patch.
#[test]
fn encode_writes_the_base64_crate_encoding_at_every_length() {
    let mut response = AdmissionResponse::invalid("none");
    let bytes: Vec<u8> = (0..200_003u32).map(|i| (i * 7919 % 256) as u8).collect();
    for len in (0..=300).chain([4_039, 200_003]) {
        response.patch = Some(bytes[..len].to_vec());
        assert_eq!(
            String::from_utf8(encode(&response)).unwrap(),
            String::from_utf8(derived_encode(&response)).unwrap(),
            "a patch of {len} bytes"
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
    let (response, decision) = decide(
        &request,
        &pod.metadata,
        pod.spec.as_ref(),
        &AdmissionConfig::default(),
    );
    assert!(matches!(decision, Decision::Mutated { .. }));

    let engine_config = EngineConfig::default();
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
    let engine_config = EngineConfig::default();
    let context = PodContext::new(&pod.metadata, pod.spec.as_ref().unwrap(), &engine_config);
    let Ok(Outcome::Injected(views)) =
        engine::plan_injection_with(&context, |ops, _| serde_json::to_string(&ops).unwrap())
    else {
        panic!("injected")
    };
    let ours: serde_json::Value =
        serde_json::from_slice(&review(body, &AdmissionConfig::default()).unwrap().body).unwrap();
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
    let first = review(body, &AdmissionConfig::default()).unwrap().body;
    for _ in 0..10 {
        assert_eq!(
            review(body, &AdmissionConfig::default()).unwrap().body,
            first
        );
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
        ..AdmissionConfig::default()
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
    let answered = review(&unannotated_review("prod"), &AdmissionConfig::default()).unwrap();
    assert_eq!(answered.decision, Decision::Skipped("not annotated"));
}

/// An answer with its patch decoded, for a diff that a person can read.
fn readable(answer: &[u8]) -> serde_json::Value {
    use base64::Engine;
    let mut answer: serde_json::Value = serde_json::from_slice(answer).unwrap();
    if let Some(patch) = answer["response"]["patch"].as_str() {
        let patch = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        answer["response"]["patch"] = serde_json::from_slice(&patch).unwrap();
    }
    answer
}

/// `body` with its pod patched by the answer `answer`.
fn patched(body: &[u8], answer: &[u8]) -> Vec<u8> {
    let patch: json_patch::Patch =
        serde_json::from_value(readable(answer)["response"]["patch"].take()).unwrap();
    let mut review: serde_json::Value = serde_json::from_slice(body).unwrap();
    json_patch::patch(&mut review["request"]["object"], &patch).unwrap();
    serde_json::to_vec(&review).unwrap()
}

/// Skipping the spec fields the engine does not read changes no answer: a first
/// injection, the pod it made sent again (already injected), that pod with its plan
/// changed (replaced), steps copied from a second app container that sets every field a
/// Container has, native sidecars, ephemeral containers, and mistakes.
#[test]
fn the_lean_decode_answers_as_the_whole_decode() {
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        example_with(&|review| edit(&mut review["request"]["object"]))
    };
    // A container with every field of the API's Container set.
    let every_field = serde_json::json!({
        "name": "worker", "image": "worker:2", "imagePullPolicy": "Always",
        "command": ["/worker"], "args": ["--fast"], "workingDir": "/srv",
        "env": [{"name": "A", "value": "1"},
                {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "S_"}],
        "ports": [{"containerPort": 9000, "name": "grpc", "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
        "securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": true},
        "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}],
        "volumeDevices": [{"name": "block", "devicePath": "/dev/xvda"}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 9000}, "periodSeconds": 5},
        "readinessProbe": {"grpc": {"port": 9000}},
        "startupProbe": {"exec": {"command": ["true"]}},
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "stdin": true, "stdinOnce": true, "tty": true,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    let mut bodies = vec![
        include_bytes!("../../../examples/review.json").to_vec(),
        with(&|pod| {
            pod["spec"]["containers"]
                .as_array_mut()
                .unwrap()
                .push(every_field.clone());
            let annotations = &mut pod["metadata"]["annotations"];
            annotations["init.example/run.01-migrate.container"] = "worker".into();
            annotations["init.example/position"] = "first".into();
        }),
        with(&|pod| {
            pod["spec"]["initContainers"] = serde_json::json!([
                {"name": "proxy", "image": "proxy:1", "restartPolicy": "Always",
                 "ports": [{"containerPort": 15001}]},
                {"name": "setup", "image": "setup:1"},
            ]);
            pod["spec"]["ephemeralContainers"] =
                serde_json::json!([{"name": "debugger", "image": "busybox"}]);
            pod["metadata"]["annotations"]["init.example/position"] = "first".into();
        }),
        with(&|pod| {
            pod["metadata"]["annotations"]["init.example/run.01-migrate.container"] =
                "no-such-container".into();
        }),
    ];
    // The pods those answers made, sent again as they are and with their plan changed.
    for body in bodies.clone() {
        let answer = review(&body, &AdmissionConfig::default()).unwrap();
        if !matches!(answer.decision, Decision::Mutated { .. }) {
            continue;
        }
        let again = patched(&body, &answer.body);
        let mut changed: serde_json::Value = serde_json::from_slice(&again).unwrap();
        changed["request"]["object"]["metadata"]["annotations"]["init.example/wait-for"] =
            "postgres.shop.svc:5432".into();
        // With its plan changed, the injected volumes are compared field by field: one
        // given another source by hand is the plan's no longer.
        let mut tampered = changed.clone();
        let volumes = tampered["request"]["object"]["spec"]["volumes"]
            .as_array_mut()
            .unwrap();
        let injected = volumes.last_mut().unwrap();
        injected.as_object_mut().unwrap().remove("emptyDir");
        injected["hostPath"] = serde_json::json!({"path": "/srv/shared"});
        bodies.push(again);
        bodies.push(serde_json::to_vec(&changed).unwrap());
        bodies.push(serde_json::to_vec(&tampered).unwrap());
    }

    let mut decisions = Vec::new();
    for body in &bodies {
        let ours = review(body, &AdmissionConfig::default()).unwrap();
        let whole = answered_from_kubes_decode(body).unwrap().body;
        assert_eq!(readable(&ours.body), readable(&whole));
        assert_eq!(ours.body, whole);
        decisions.push(ours.decision.label());
    }
    // The cases reach every kind of answer they are meant to.
    assert_eq!(
        decisions,
        [
            "mutated", "mutated", "mutated", "denied", "skipped", "mutated", "mutated", "skipped",
            "mutated", "mutated", "skipped", "mutated", "mutated"
        ]
    );
}

/// The review the API server sends back for every pod the webhook injected
/// (reinvocation), as `benches/load.sh` sends it: its object is the stored pod of
/// `tests/fixtures/stored-pod.yaml` before storage gave it an identity and a status,
/// and it is answered with no patch.
#[test]
fn the_reinvoked_review_carries_the_stored_pod_and_is_left_as_it_is() {
    let body = include_bytes!("../../../tests/fixtures/review-reinvoked.json");
    let sent: AdmissionReview<Pod> = serde_json::from_slice(body).unwrap();
    let request = sent.request.unwrap();
    let sent_pod = request.object.unwrap();
    let mut stored: Pod =
        serde_yaml_ng::from_str(include_str!("../../../tests/fixtures/stored-pod.yaml"))
            .unwrap_or_else(|e| panic!("stored-pod.yaml: {e}"));
    stored.metadata.uid = None;
    stored.metadata.creation_timestamp = None;
    stored.metadata.resource_version = None;
    stored.metadata.generation = None;
    stored.status = None;
    assert_eq!(sent_pod, stored);
    assert_eq!(request.namespace.as_deref(), Some("e2e-defaults"));
    assert_eq!(request.name, "counted");

    let reviewed = review(body, &AdmissionConfig::default()).unwrap();
    assert_eq!(reviewed.decision, Decision::Skipped("already injected"));
    let answer: serde_json::Value = serde_json::from_slice(&reviewed.body).unwrap();
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(answer["response"].get("patch"), None, "{answer}");
}

/// `examples/review.json` as `edit` leaves it.
fn example_with(edit: &dyn Fn(&mut serde_json::Value)) -> Vec<u8> {
    let mut review: serde_json::Value =
        serde_json::from_slice(include_bytes!("../../../examples/review.json")).unwrap();
    edit(&mut review);
    serde_json::to_vec(&review).unwrap()
}

/// `body` answered as [`review`] answers it, but from kube's whole decode of the
/// AdmissionReview (and k8s-openapi's of the pod); `Err` when kube cannot decode it.
fn answered_from_kubes_decode(body: &[u8]) -> Result<Reviewed, ReviewError> {
    let whole: AdmissionReview<Pod> =
        serde_json::from_slice(body).map_err(ReviewError::Malformed)?;
    Ok(answer(
        into_request((whole.types, whole.request))?,
        |request| {
            decide_object(
                request,
                |pod| (&pod.metadata, pod.spec.as_ref()),
                &AdmissionConfig::default(),
            )
        },
    ))
}

/// The envelope's skipped fields change no answer, and the fields it reads decide as
/// kube's do: other operations, subresources and resources, a dry run, a named pod in no
/// namespace, odd content in the fields it skips; a review that kube refuses (no
/// `userInfo`, another type, no request) is refused alike.
#[test]
fn the_lean_envelope_answers_as_kubes_decode() {
    let answered = [
        example_with(&|_| {}),
        example_with(&|r| {
            r["request"]["operation"] = "UPDATE".into();
            r["request"]["oldObject"] = r["request"]["object"].clone();
        }),
        example_with(&|r| r["request"]["subResource"] = "ephemeralcontainers".into()),
        example_with(&|r| {
            r["request"]["resource"] =
                serde_json::json!({"group": "apps", "version": "v1", "resource": "deployments"});
        }),
        example_with(&|r| r["request"]["dryRun"] = true.into()),
        example_with(&|r| {
            let request = r["request"].as_object_mut().unwrap();
            request.remove("namespace");
            request.insert("name".into(), "web-0".into());
            r["request"]["object"]["metadata"]["name"] = "web-0".into();
        }),
        example_with(&|r| {
            r["request"]["userInfo"]["extra"] = serde_json::json!({"scopes": ["a", "b"]});
            r["request"]["requestSubResource"] = "".into();
            r["request"]["options"] = serde_json::json!({"fieldManager": "kubectl"});
            r["request"]["object"] = serde_json::Value::Null;
        }),
    ];
    let mut decisions = Vec::new();
    for body in &answered {
        let ours = review(body, &AdmissionConfig::default()).unwrap();
        let kubes = answered_from_kubes_decode(body).unwrap();
        assert_eq!(readable(&ours.body), readable(&kubes.body));
        assert_eq!(ours.body, kubes.body);
        assert_eq!(
            (&ours.decision, &ours.uid, &ours.namespace, &ours.name),
            (&kubes.decision, &kubes.uid, &kubes.namespace, &kubes.name)
        );
        decisions.push(ours.decision.label());
    }
    assert_eq!(
        decisions,
        [
            "mutated", "skipped", "skipped", "skipped", "mutated", "mutated", "invalid"
        ]
    );

    let refused = [
        example_with(&|r| {
            r["request"].as_object_mut().unwrap().remove("userInfo");
        }),
        example_with(&|r| r["apiVersion"] = "admission.k8s.io/v1beta1".into()),
        example_with(&|r| {
            r.as_object_mut().unwrap().remove("request");
        }),
        example_with(&|r| r["request"]["operation"] = "PATCH".into()),
    ];
    for body in &refused {
        let ours = review(body, &AdmissionConfig::default()).map(|r| r.body);
        let kubes = answered_from_kubes_decode(body).map(|r| r.body);
        assert!(ours.is_err(), "answered: {ours:?}");
        assert_eq!(
            ours.unwrap_err().to_string(),
            kubes.unwrap_err().to_string()
        );
    }
}
