//! Each InitPolicy's `Accepted` condition: computed from the snapshot that reviews read
//! (so the status never says anything the webhook does not do), and written by
//! server-side apply on the status subresource only when the object says otherwise.
//! Replicas compute the same condition from the same objects, so their writes agree;
//! `lastTransitionTime` is kept while the status stays the same.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::core::ResourceExt;

use super::{FIRST_BACKOFF, MAX_BACKOFF};
use crate::cluster::status_of;
use crate::engine::policy::crd::{InitPolicy, InitPolicyStatus};
use crate::engine::policy::select::Policies;
use crate::engine::policy::validate;

/// The field manager of the status this webhook writes.
const MANAGER: &str = "init-injector";
/// The condition's type.
pub const ACCEPTED: &str = "Accepted";
/// The API server refuses a condition message longer than this.
const MAX_MESSAGE: usize = 32_768;

/// The policies as listed, and what was made of them, built together.
#[derive(Clone, Debug, Default)]
pub(super) struct Snapshot {
    pub objects: Vec<Arc<InitPolicy>>,
    pub policies: Arc<Policies>,
}

/// What a policy's `Accepted` condition should say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Verdict {
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl Verdict {
    /// The verdict on `policy` within `policies`: in force, invalid on its own
    /// (`InvalidSpec`), or valid but clashing with a policy that applies earlier
    /// (`Conflict`).
    pub fn of(policy: &InitPolicy, policies: &Policies) -> Verdict {
        let name = policy.name_any();
        match policies.rejected.iter().find(|r| r.name == name) {
            None => Verdict {
                status: "True",
                reason: "Valid",
                message: "in force".to_owned(),
            },
            Some(rejected) => Verdict {
                status: "False",
                reason: if validate::problems(&policy.spec).is_empty() {
                    "Conflict"
                } else {
                    "InvalidSpec"
                },
                message: truncate(rejected.problems.join("; ")),
            },
        }
    }
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

/// The status to write for `policy`, or `None` when its status already says `verdict`
/// for its current generation. `now` is used only when the condition's status changes.
pub(super) fn wanted(
    policy: &InitPolicy,
    verdict: &Verdict,
    now: Time,
) -> Option<InitPolicyStatus> {
    let generation = policy.metadata.generation;
    let status = policy.status.as_ref();
    let current = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == ACCEPTED));
    let up_to_date = current.is_some_and(|c| {
        c.status == verdict.status
            && c.reason == verdict.reason
            && c.message == verdict.message
            && c.observed_generation == generation
    }) && status.is_some_and(|s| s.observed_generation == generation);
    if up_to_date {
        return None;
    }
    let last_transition_time = match current {
        Some(c) if c.status == verdict.status => c.last_transition_time.clone(),
        _ => now,
    };
    let mut conditions: Vec<Condition> = status
        .map(|s| {
            s.conditions
                .iter()
                .filter(|c| c.type_ != ACCEPTED)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    conditions.insert(
        0,
        Condition {
            type_: ACCEPTED.to_owned(),
            status: verdict.status.to_owned(),
            reason: verdict.reason.to_owned(),
            message: verdict.message.clone(),
            observed_generation: generation,
            last_transition_time,
        },
    );
    Some(InitPolicyStatus {
        conditions,
        observed_generation: generation,
    })
}

/// Writes the conditions of every snapshot that `latest` publishes. A write that fails is
/// tried again with a backoff, from the newest snapshot.
pub(super) async fn write_conditions(
    api: Api<InitPolicy>,
    mut latest: tokio::sync::watch::Receiver<Snapshot>,
) {
    loop {
        if latest.changed().await.is_err() {
            return;
        }
        let mut backoff = FIRST_BACKOFF;
        loop {
            let snapshot = latest.borrow_and_update().clone();
            if write_snapshot(&api, &snapshot).await {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                changed = latest.changed() => if changed.is_err() { return },
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Writes what differs; false when a write failed and should be tried again.
async fn write_snapshot(api: &Api<InitPolicy>, snapshot: &Snapshot) -> bool {
    let mut all_written = true;
    for policy in &snapshot.objects {
        let verdict = Verdict::of(policy, &snapshot.policies);
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let Some(status) = wanted(policy, &verdict, now) else {
            continue;
        };
        let name = policy.name_any();
        let patch = serde_json::json!({
            "apiVersion": "init.example/v1alpha1",
            "kind": "InitPolicy",
            "metadata": {"name": name},
            "status": status,
        });
        let params = PatchParams::apply(MANAGER).force();
        match api.patch_status(&name, &params, &Patch::Apply(patch)).await {
            Ok(_) => tracing::info!(
                policy = %name,
                accepted = verdict.status,
                reason = verdict.reason,
                "InitPolicy status written"
            ),
            // Deleted since the snapshot: nothing to report on.
            Err(err) if status_of(&err).is_some_and(|s| s.code == 404) => {}
            Err(err) => {
                all_written = false;
                tracing::warn!(
                    policy = %name,
                    error = %crate::error::chain(&err),
                    "cannot write the InitPolicy's status; trying again"
                );
            }
        }
    }
    all_written
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;

    use super::*;
    use crate::engine::policy::crd::InitPolicySpec;

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn policy(name: &str, generation: i64, wait_for: &[&str]) -> InitPolicy {
        InitPolicy {
            metadata: ObjectMeta {
                name: Some(name.into()),
                generation: Some(generation),
                ..Default::default()
            },
            spec: InitPolicySpec {
                wait_for: wait_for.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            },
            status: None,
        }
    }

    fn with_status(mut policy: InitPolicy, status: InitPolicyStatus) -> InitPolicy {
        policy.status = Some(status);
        policy
    }

    #[test]
    fn verdicts_name_the_reason() {
        let good = policy("good", 1, &["vault:8200"]);
        let bad = policy("bad", 1, &["nowhere"]);
        let policies = Policies::new([&good, &bad]);
        assert_eq!(
            Verdict::of(&good, &policies),
            Verdict {
                status: "True",
                reason: "Valid",
                message: "in force".into()
            }
        );
        let verdict = Verdict::of(&bad, &policies);
        assert_eq!((verdict.status, verdict.reason), ("False", "InvalidSpec"));
        assert!(
            verdict.message.contains("spec.waitFor[0]") && verdict.message.contains("nowhere"),
            "{}",
            verdict.message
        );
    }

    #[test]
    fn a_volume_clash_is_a_conflict() {
        use crate::engine::policy::crd::PolicyVolume;
        let volume = |medium: Option<&str>| PolicyVolume {
            name: "cache".into(),
            mount_path: "/cache".into(),
            medium: medium.map(Into::into),
            size_limit: None,
        };
        let mut first = policy("a-disk", 1, &[]);
        first.spec.volumes = vec![volume(None)];
        let mut second = policy("b-memory", 1, &[]);
        second.spec.volumes = vec![volume(Some("Memory"))];
        let policies = Policies::new([&first, &second]);
        assert_eq!(Verdict::of(&first, &policies).reason, "Valid");
        assert_eq!(Verdict::of(&second, &policies).reason, "Conflict");
    }

    #[test]
    fn written_only_when_the_condition_or_the_generation_changes() {
        let bad = policy("bad", 3, &["nowhere"]);
        let policies = Policies::new([&bad]);
        let verdict = Verdict::of(&bad, &policies);
        let first = wanted(&bad, &verdict, time(100)).expect("no status yet");
        assert_eq!(first.observed_generation, Some(3));
        let condition = &first.conditions[0];
        assert_eq!(
            (
                condition.type_.as_str(),
                condition.status.as_str(),
                condition.observed_generation
            ),
            ("Accepted", "False", Some(3))
        );
        assert_eq!(condition.last_transition_time, time(100));

        // The same verdict on the object as written: nothing to write.
        let written = with_status(bad.clone(), first.clone());
        assert_eq!(wanted(&written, &verdict, time(200)), None);

        // A new generation with the same problem: written again, transition time kept.
        let mut edited = written.clone();
        edited.metadata.generation = Some(4);
        let again = wanted(&edited, &verdict, time(300)).expect("a new generation");
        assert_eq!(again.conditions[0].observed_generation, Some(4));
        assert_eq!(again.conditions[0].last_transition_time, time(100));

        // Fixed: True, with a new transition time.
        let mut fixed = with_status(policy("bad", 5, &["vault:8200"]), first);
        fixed.metadata.generation = Some(5);
        let policies = Policies::new([&fixed]);
        let accepted = wanted(&fixed, &Verdict::of(&fixed, &policies), time(400)).unwrap();
        assert_eq!(accepted.conditions[0].status, "True");
        assert_eq!(accepted.conditions[0].reason, "Valid");
        assert_eq!(accepted.conditions[0].last_transition_time, time(400));
    }

    #[test]
    fn other_conditions_are_kept_and_long_messages_cut() {
        let other = Condition {
            type_: "Reviewed".into(),
            status: "True".into(),
            reason: "ByHand".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: time(1),
        };
        let policy = with_status(
            policy("p", 1, &[]),
            InitPolicyStatus {
                conditions: vec![other.clone()],
                observed_generation: None,
            },
        );
        let verdict = Verdict {
            status: "False",
            reason: "InvalidSpec",
            message: truncate("é".repeat(MAX_MESSAGE)),
        };
        assert!(verdict.message.len() <= MAX_MESSAGE && verdict.message.ends_with("..."));
        let status = wanted(&policy, &verdict, time(2)).unwrap();
        assert_eq!(status.conditions.len(), 2);
        assert_eq!(status.conditions[1], other);
    }
}
