//! What the fuzz targets check, beyond "no panic, no hang". Shared word for word with
//! `tests/fuzz_regressions.rs`, which replays every input the fuzzers ever crashed on,
//! so a fixed crash stays fixed under `cargo test` without a fuzzer.
//!
//! The library is reached through three entry points only:
//! [`init_injector::engine::annotations::parse`], [`init_injector::webhook::admission::review`] and
//! [`init_injector::cli::inject::run`].

use std::collections::BTreeMap;

use base64::Engine as _;
use init_injector::engine::config::{DEFAULT_PREFIX, EngineConfig};
use init_injector::webhook::admission::{self, AdmissionConfig};
use serde_json::Value;

/// The annotation parser over `key=value` lines. A key without `/` is put under the
/// default prefix, so that the fuzzer spends its time on values and our own keys.
///
/// Checks: every error names an annotation the pod has, and its message shows that key.
pub fn annotations(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let key = if key.contains('/') {
            key.to_owned()
        } else {
            format!("{DEFAULT_PREFIX}/{key}")
        };
        map.insert(key, value.replace("\\n", "\n"));
    }
    if let Err(errors) = init_injector::engine::annotations::parse(&map, DEFAULT_PREFIX) {
        assert!(!errors.is_empty(), "an Err without a single error");
        for error in errors {
            assert!(
                map.contains_key(&error.key),
                "the error names {:?}, which the pod does not have: {error}",
                error.key
            );
            assert!(
                error.to_string().contains(&error.key),
                "the message does not show the key: {error}"
            );
        }
    }
}

/// The AdmissionReview decoder and the engine behind it, as `serve` calls them.
///
/// Checks: an answer is a JSON AdmissionReview for the same uid; a patch applies to the
/// object it was made for; and reviewing the patched object again (what the API server's
/// reinvocation does) admits it with no patch at all.
pub fn review(data: &[u8]) {
    let config = AdmissionConfig::default();
    let Ok(reviewed) = admission::review(data, &config) else {
        return;
    };
    let Some(patched) = check_answer(data, &reviewed.body, &reviewed.uid) else {
        return;
    };
    let again = admission::review(&patched, &config)
        .unwrap_or_else(|err| panic!("the patched review is refused as unreadable: {err}"));
    let body: Value = serde_json::from_slice(&again.body).expect("the answer is JSON");
    assert_eq!(
        body["response"]["allowed"],
        Value::Bool(true),
        "the patched pod is refused on reinvocation: {body}"
    );
    assert!(
        body["response"].get("patch").is_none(),
        "reinvocation on the patched pod patches again: {:?}, {body}",
        again.decision
    );
}

/// Checks one answer to `request`; returns the request with its object patched when
/// the answer carries a patch.
fn check_answer(request: &[u8], answer: &[u8], uid: &str) -> Option<Vec<u8>> {
    let body: Value = serde_json::from_slice(answer).expect("the answer is JSON");
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1", "{body}");
    assert_eq!(body["kind"], "AdmissionReview", "{body}");
    assert_eq!(
        body["response"]["uid"], uid,
        "the answer is for another uid"
    );
    let patch = body["response"].get("patch")?;
    assert_eq!(body["response"]["allowed"], Value::Bool(true), "{body}");
    assert_eq!(body["response"]["patchType"], "JSONPatch", "{body}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch.as_str().expect("the patch is a string"))
        .expect("the patch is base64");
    let patch: json_patch::Patch =
        serde_json::from_slice(&bytes).expect("the patch is a JSON Patch");
    // serde skips unknown fields without checking their strings, so the decoder reads
    // bodies that are not strict JSON (a lone surrogate escape in an unknown field); the
    // API server never sends one, and there is no strict object to patch.
    let Ok(mut review) = serde_json::from_slice::<Value>(request) else {
        return None;
    };
    let object = &mut review["request"]["object"];
    if let Err(err) = json_patch::patch(object, &patch) {
        panic!("the patch does not apply to the object it was made for: {err}");
    }
    Some(serde_json::to_vec(&review).expect("a Value serializes"))
}

/// `inject`'s YAML path over one input, plain and `--explain`.
///
/// Checks: no internal error; and `inject` of its own output writes that output again,
/// byte for byte, with no error (injecting twice is injecting once).
pub fn inject_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = EngineConfig::default();
    let input = [("fuzz.yaml".to_owned(), text.to_owned())];
    let explained = init_injector::cli::inject::run(&input, true, &config);
    assert_no_internal_error(&explained.errors);
    let first = init_injector::cli::inject::run(&input, false, &config);
    assert_no_internal_error(&first.errors);
    if !first.errors.is_empty() {
        assert!(first.stdout.is_empty(), "output despite errors");
        return;
    }
    let again = [("fuzz.yaml".to_owned(), first.stdout.clone())];
    let second = init_injector::cli::inject::run(&again, false, &config);
    assert!(
        second.errors.is_empty(),
        "inject refuses its own output: {:?}\n--- output:\n{}",
        second.errors,
        first.stdout
    );
    assert_eq!(
        second.stdout, first.stdout,
        "inject of inject's output changed it"
    );
}

fn assert_no_internal_error(errors: &[String]) {
    for error in errors {
        assert!(!error.contains("internal error"), "{error}");
    }
}
