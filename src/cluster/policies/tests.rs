//! The watches' health and empty state, without an API server.

use super::*;
use std::collections::BTreeMap;

use crate::engine::config::DEFAULT_PREFIX;

#[test]
fn staleness_counts_from_the_break_and_ends_with_a_complete_list() {
    let watch = PolicyWatch::new(DEFAULT_PREFIX);
    let watched = watch.source();
    let start = Instant::now();
    assert_eq!(watched.stale_at(start), Duration::ZERO, "connected");

    let broke = start + Duration::from_secs(100);
    assert_eq!(watched.namespace_health.broke(broke), Duration::ZERO);
    // Retries keep failing: the break is still counted from its first failure.
    assert_eq!(
        watched
            .namespace_health
            .broke(broke + Duration::from_secs(7)),
        Duration::from_secs(7)
    );
    watched.policy_health.broke(broke + Duration::from_secs(5));
    assert_eq!(
        watched.stale_at(broke + Duration::from_secs(20)),
        Duration::from_secs(20),
        "the longer break counts"
    );

    assert_eq!(
        watched
            .namespace_health
            .listed(broke + Duration::from_secs(30)),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        watched.stale_at(broke + Duration::from_secs(30)),
        Duration::from_secs(25),
        "the policy watch is still broken"
    );
    watched
        .policy_health
        .listed(broke + Duration::from_secs(31));
    assert_eq!(
        watched.stale_at(broke + Duration::from_secs(40)),
        Duration::ZERO
    );
}

#[test]
fn an_unseen_namespace_is_none_and_no_policies_are_in_force_before_the_first_list() {
    let watch = PolicyWatch::new(DEFAULT_PREFIX);
    let watched = watch.source();
    assert_eq!(watched.namespace("default"), None);
    assert_eq!(watched.in_force(), 0);
    assert!(!watch.ready().load(Ordering::Acquire));
}

/// The store keeps a namespace's name, labels and annotations under the prefix; its
/// managed fields and other annotations are dropped as they arrive.
#[test]
fn the_store_keeps_what_reviews_read_of_a_namespace() {
    let mut namespace: PartialObjectMeta<Namespace> = serde_json::from_value(serde_json::json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": {
            "name": "shop",
            "labels": {"kubernetes.io/metadata.name": "shop", "tier": "prod"},
            "annotations": {
                "init.example/wait-timeout": "2m",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\"}",
                "other.example/wait-timeout": "1m",
            },
            "managedFields": [{
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "v1",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:tier": {}}}},
            }],
        },
    }))
    .unwrap();
    let labels = namespace.metadata.labels.clone();
    keep_what_reviews_read(&mut namespace, DEFAULT_PREFIX);
    assert_eq!(namespace.metadata.name.as_deref(), Some("shop"));
    assert_eq!(namespace.metadata.labels, labels);
    assert_eq!(
        namespace.metadata.annotations,
        Some(BTreeMap::from([(
            "init.example/wait-timeout".to_owned(),
            "2m".to_owned()
        )]))
    );
    assert_eq!(namespace.metadata.managed_fields, None);
}
