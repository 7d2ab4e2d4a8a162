//! The AdmissionReview decoder never panics: arbitrary bytes, and the sample review with
//! arbitrary JSON put in place of any of its fields, always yield either a clear error
//! or an answered review with the request's uid.

use init_injector::webhook::admission::{AdmissionConfig, review};
use proptest::prelude::*;
use serde_json::Value;

fn sample() -> Value {
    serde_json::from_str(include_str!("../examples/review.json")).unwrap()
}

/// Every JSON Pointer into `value`.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let token = key.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{token}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn json_values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        prop::sample::select(vec![
            "CREATE",
            "Pod",
            "v1",
            "pods",
            "init.example/wait-for",
            "db:5432"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = review(&bytes, &AdmissionConfig::default());
    }

    #[test]
    fn any_field_replaced_never_panics(pick in any::<prop::sample::Index>(), replacement in json_values()) {
        let mut doc = sample();
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        let target = &all[pick.index(all.len())];
        if target.is_empty() {
            doc = replacement;
        } else if let Some(slot) = doc.pointer_mut(target) {
            *slot = replacement;
        }
        let body = serde_json::to_vec(&doc).unwrap();
        if let Ok(reviewed) = review(&body, &AdmissionConfig::default()) {
            let answer: Value = serde_json::from_slice(&reviewed.body).unwrap();
            prop_assert_eq!(&answer["kind"], "AdmissionReview");
            prop_assert_eq!(answer["response"]["uid"].as_str(), doc["request"]["uid"].as_str());
        }
    }
}
