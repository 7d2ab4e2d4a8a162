//! The watches' health and empty state, without an API server.

use super::*;

#[test]
fn staleness_counts_from_the_break_and_ends_with_a_complete_list() {
    let watch = PolicyWatch::new();
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
    let watch = PolicyWatch::new();
    let watched = watch.source();
    assert_eq!(watched.namespace("default"), None);
    assert_eq!(watched.in_force(), 0);
    assert!(!watch.ready().load(Ordering::Acquire));
}
