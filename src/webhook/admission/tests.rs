//! Tests of the admission boundary: decisions, refusals, and the answer's bytes against kube's own encoding.

use super::*;
use k8s_openapi::api::core::v1::Pod;

fn config() -> AdmissionConfig {
    AdmissionConfig {
        engine: EngineConfig::default(),
        on_invalid: OnInvalid::Deny,
        policies: None,
        answers: None,
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
    let decoded: AdmissionReview<ReviewedPod<PodSpec>> = serde_json::from_slice(body).unwrap();
    let request: AdmissionRequest<ReviewedPod<PodSpec>> = decoded.try_into().unwrap();
    let pod = request.object.as_ref().unwrap();
    let (mutated, _) = decide(&request, &pod.metadata, pod.spec.as_ref(), None, &config());
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
    let review: AdmissionReview<ReviewedPod<PodSpec>> = serde_json::from_slice(body).unwrap();
    let request: AdmissionRequest<ReviewedPod<PodSpec>> = review.try_into().unwrap();
    let pod = request.object.as_ref().unwrap();
    let (response, decision) = decide(&request, &pod.metadata, pod.spec.as_ref(), None, &config());
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

/// `examples/review.json` with its request changed by `edit`.
fn review_with(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut review: serde_json::Value =
        serde_json::from_slice(include_bytes!("../../../examples/review.json")).unwrap();
    edit(&mut review["request"]);
    serde_json::to_vec(&review).unwrap()
}

fn with_uid(uid: &str) -> impl FnOnce(&mut serde_json::Value) {
    move |request| request["uid"] = uid.into()
}

fn cached(max_bytes: u64) -> AdmissionConfig {
    AdmissionConfig {
        answers: Answers::new(max_bytes).map(Arc::new),
        ..config()
    }
}

/// A second pod like the first, as a ReplicaSet's next replica reaches the webhook (its
/// own uid, managedFields written a second later), is answered from the cache, and the
/// answer is the one planning it would give, for its own uid.
#[test]
fn the_next_replica_is_answered_from_the_cache_as_planning_would_answer_it() {
    let config = cached(DEFAULT_ANSWER_CACHE_BYTES);
    let first = review(&review_with(with_uid("first")), &config).unwrap();
    assert_eq!(first.lookup, Some(Lookup::Miss));
    assert!(matches!(
        first.decision,
        Decision::Mutated { operations: 8 }
    ));

    let next = review_with(|request| {
        request["uid"] = "next".into();
        request["object"]["metadata"]["managedFields"] = serde_json::json!([{
            "manager": "kube-controller-manager", "operation": "Update",
            "apiVersion": "v1", "time": "2026-12-01T10:00:01Z",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:generateName": {}}},
        }]);
    });
    let answered = review(&next, &config).unwrap();
    assert_eq!(answered.lookup, Some(Lookup::Hit));
    let planned = review(&next, &self::config()).unwrap();
    assert_eq!(planned.lookup, None);
    assert_eq!(
        String::from_utf8(answered.body).unwrap(),
        String::from_utf8(planned.body).unwrap()
    );
    assert_eq!(answered.decision, planned.decision);
    assert_eq!(answered.uid, "next");
    assert_eq!(config.answers.as_ref().unwrap().len(), 1);
}

/// Each input the answer depends on is in the key: a pod that differs in one of them is
/// planned, and answered as planning it alone would answer it. Refusals are kept too.
#[test]
fn a_pod_that_differs_in_anything_the_engine_reads_is_planned() {
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 9] = [
        ("an annotation", |r| {
            r["object"]["metadata"]["annotations"]["init.example/wait-for"] = "db:5432".into()
        }),
        ("no annotations", |r| {
            r["object"]["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("annotations");
        }),
        ("a wrong annotation", |r| {
            r["object"]["metadata"]["annotations"]["init.example/wait-for"] = "db:http".into()
        }),
        ("a label", |r| {
            r["object"]["metadata"]["labels"]["app"] = "other".into()
        }),
        ("the name", |r| {
            r["object"]["metadata"]["name"] = "web-0".into()
        }),
        ("the generateName", |r| {
            r["object"]["metadata"]["generateName"] = "other-".into()
        }),
        ("the object's namespace", |r| {
            r["object"]["metadata"]["namespace"] = "other".into()
        }),
        ("the request's namespace", |r| {
            r["namespace"] = "other".into()
        }),
        ("the spec", |r| {
            r["object"]["spec"]["containers"][0]["image"] = "app:2".into()
        }),
    ];
    let config = cached(DEFAULT_ANSWER_CACHE_BYTES);
    review(&review_with(with_uid("original")), &config).unwrap();
    for (what, edit) in edits {
        let body = review_with(|request| {
            edit(request);
            request["uid"] = what.into();
        });
        let answered = review(&body, &config).unwrap();
        assert_eq!(answered.lookup, Some(Lookup::Miss), "{what}");
        let planned = review(&body, &self::config()).unwrap();
        assert_eq!(answered.body, planned.body, "{what}");
        assert_eq!(answered.decision, planned.decision, "{what}");
        // And the second such pod is a hit with the same answer.
        let again = review(&body, &config).unwrap();
        assert_eq!(
            (again.lookup, &again.body),
            (Some(Lookup::Hit), &planned.body),
            "{what}"
        );
    }
    let refused = review_with(|r| {
        r["object"]["metadata"]["annotations"]["init.example/wait-for"] = "db:http".into()
    });
    let again = review(&refused, &config).unwrap();
    assert_eq!(again.decision, Decision::Denied);
    assert!(again.message.contains("db:http"), "{}", again.message);
}

/// With policies, the namespace as last seen and the policy snapshot are in the key: a
/// new snapshot or a relabelled namespace plans the pod again.
#[test]
fn a_new_policy_snapshot_or_namespace_label_plans_the_pod_again() {
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
    let answers = Answers::new(DEFAULT_ANSWER_CACHE_BYTES).map(Arc::new);
    let in_prod = |labels: &[(&str, &str)],
                   policies: &[&crate::engine::policy::crd::InitPolicy]| {
        let mut prod = NamespaceInfo::unseen("prod".into());
        for (k, v) in labels {
            prod.labels.insert((*k).into(), (*v).into());
        }
        AdmissionConfig {
            policies: Some(Arc::new(Fixed {
                policies: Arc::new(Policies::new(policies.iter().copied())),
                namespaces: vec![prod],
            })),
            answers: answers.clone(),
            ..config()
        }
    };
    let body = unannotated_review("prod");
    let selected = in_prod(&[("tier", "prod")], &[&policy]);
    let first = review(&body, &selected).unwrap();
    assert_eq!(
        (first.lookup, &first.decision),
        (Some(Lookup::Miss), &Decision::Mutated { operations: 2 })
    );
    assert_eq!(review(&body, &selected).unwrap().lookup, Some(Lookup::Hit));

    // The same policy in a new snapshot (as the reflector builds one on every change).
    let resnapshot = in_prod(&[("tier", "prod")], &[&policy]);
    let again = review(&body, &resnapshot).unwrap();
    assert_eq!(again.lookup, Some(Lookup::Miss));
    assert_eq!(again.body, first.body);

    // The namespace relabelled: the policy no longer selects it.
    let relabelled = in_prod(&[("tier", "dev")], &[&policy]);
    let skipped = review(&body, &relabelled).unwrap();
    assert_eq!(
        (skipped.lookup, &skipped.decision),
        (Some(Lookup::Miss), &Decision::Skipped("not annotated"))
    );
    // No policy at all.
    let none = in_prod(&[("tier", "prod")], &[]);
    let skipped = review(&body, &none).unwrap();
    assert_eq!(
        (skipped.lookup, &skipped.decision),
        (Some(Lookup::Miss), &Decision::Skipped("not annotated"))
    );
}

/// The cache never holds more than its bytes, whatever it is sent; a pod too large for
/// one of its parts is planned every time and still answered.
#[test]
fn the_cache_holds_at_most_its_bytes() {
    let max = 64 * 1024;
    let config = cached(max);
    let answers = config.answers.clone().unwrap();
    for i in 0..100 {
        let body = review_with(|r| r["object"]["metadata"]["labels"]["n"] = i.to_string().into());
        let answered = review(&body, &config).unwrap();
        assert_eq!(answered.lookup, Some(Lookup::Miss));
        assert!(
            answers.bytes() <= max,
            "{} bytes after {i}",
            answers.bytes()
        );
    }
    assert!(
        (1..100).contains(&answers.len()),
        "{} entries",
        answers.len()
    );

    let large = review_with(|r| {
        r["object"]["spec"]["containers"][0]["env"] = (0..2000)
            .map(|i| serde_json::json!({"name": format!("SETTING_{i}"), "value": "v"}))
            .collect();
    });
    for _ in 0..2 {
        let answered = review(&large, &config).unwrap();
        assert_eq!(answered.lookup, Some(Lookup::Miss));
        assert_eq!(answered.body, review(&large, &self::config()).unwrap().body);
    }
    assert!(answers.bytes() <= max);
}

/// `serve --answer-cache-bytes 0` keeps nothing and looks nothing up.
#[test]
fn a_cache_of_zero_bytes_is_no_cache() {
    assert!(Answers::new(0).is_none());
    let config = cached(0);
    let answered = review(&review_with(with_uid("a")), &config).unwrap();
    assert_eq!(answered.lookup, None);
}

/// Requests the webhook allows untouched, and objects that are not pods, are not
/// looked up.
#[test]
fn only_pods_are_looked_up() {
    let config = cached(DEFAULT_ANSWER_CACHE_BYTES);
    let update = review_with(|r| r["operation"] = "UPDATE".into());
    assert_eq!(review(&update, &config).unwrap().lookup, None);
    let not_a_pod = review_with(|r| r["object"]["kind"] = "Deployment".into());
    let answered = review(&not_a_pod, &config).unwrap();
    assert_eq!(
        (answered.lookup, &answered.decision),
        (None, &Decision::Invalid)
    );
    let bad_spec = review_with(|r| r["object"]["spec"]["containers"] = "x".into());
    let answered = review(&bad_spec, &config).unwrap();
    assert_eq!(answered.decision, Decision::Invalid);
    assert!(
        answered
            .message
            .contains("not a valid v1 Pod: invalid type: string"),
        "{}",
        answered.message
    );
}
