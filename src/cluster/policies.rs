//! InitPolicies and Namespaces, watched live through kube-runtime reflectors (never a GET
//! per review). Every change of the policies rebuilds one [`Policies`] snapshot that the
//! reviews read; each policy's `Accepted` condition says whether it is in force and why
//! not. When the API server cannot be reached, the last known state keeps serving, and
//! [`Watched::staleness`] and a log line say for how long.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::engine::policy::crd::{InitPolicy, InitPolicyStatus};
use crate::engine::policy::select::{NamespaceInfo, Policies, Rejected};

/// The field manager of the status this webhook writes.
const MANAGER: &str = "init-injector";

/// What the reviews read: the policies in force and the namespaces, kept current.
#[derive(Clone)]
pub struct Watched {
    namespaces: Store<Namespace>,
    policies: Arc<RwLock<Arc<Policies>>>,
    synced: Arc<[AtomicBool; 2]>,
    /// Unix seconds of the last event from either watch (0 before the first).
    last_event: Arc<AtomicU64>,
}

impl Watched {
    /// The policies in force now.
    pub fn policies(&self) -> Arc<Policies> {
        self.policies
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A namespace as last seen; `None` before the first sync or for one that is gone.
    pub fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        let namespace = self.namespaces.get(&ObjectRef::new(name))?;
        Some(NamespaceInfo {
            name: name.to_owned(),
            labels: namespace.metadata.labels.clone().unwrap_or_default(),
            annotations: namespace.metadata.annotations.clone().unwrap_or_default(),
        })
    }

    /// Whether both watches have listed everything once: until then `/readyz` says no.
    pub fn synced(&self) -> bool {
        self.synced
            .iter()
            .all(|synced| synced.load(Ordering::Acquire))
    }

    /// Time since the last event from the API server.
    pub fn staleness(&self) -> Duration {
        let last = self.last_event.load(Ordering::Acquire);
        let now = unix_now();
        Duration::from_secs(now.saturating_sub(last))
    }

    /// A snapshot built from documents, for `inject --policy` and tests: no watch.
    pub fn fixed(policies: Policies) -> Arc<RwLock<Arc<Policies>>> {
        Arc::new(RwLock::new(Arc::new(policies)))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Starts both watches; the returned future runs them until dropped.
pub fn watch(client: kube::Client) -> (Watched, impl Future<Output = ()> + Send + 'static) {
    let (namespaces, namespace_writer) = reflector::store::<Namespace>();
    let (policy_store, policy_writer) = reflector::store::<InitPolicy>();
    let watched = Watched {
        namespaces,
        policies: Arc::new(RwLock::new(Arc::new(Policies::default()))),
        synced: Arc::new([AtomicBool::new(false), AtomicBool::new(false)]),
        last_event: Arc::new(AtomicU64::new(0)),
    };
    let policy_api: Api<InitPolicy> = Api::all(client.clone());
    let namespace_api: Api<Namespace> = Api::all(client);

    let state = watched.clone();
    let namespace_task = async move {
        let stream = reflector::reflector(
            namespace_writer,
            watcher(namespace_api, watcher::Config::default()),
        )
        .default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            state.observe(0, event.as_ref().map(drop), "namespaces");
        }
    };

    let state = watched.clone();
    let policy_task = async move {
        let stream = reflector::reflector(
            policy_writer,
            watcher(policy_api.clone(), watcher::Config::default()),
        )
        .default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut reported: BTreeMap<String, Option<String>> = BTreeMap::new();
        while let Some(event) = stream.next().await {
            let settled = matches!(
                event,
                Ok(watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_))
            );
            state.observe(1, event.as_ref().map(drop), "initpolicies");
            if !settled {
                continue;
            }
            let all = policy_store.state();
            let policies = Policies::new(all.iter().map(Arc::as_ref));
            for rejected in &policies.rejected {
                tracing::warn!(policy = %rejected.name, problems = %rejected.problems.join("; "), "InitPolicy left out until fixed");
            }
            write_conditions(&policy_api, &all, &policies, &mut reported).await;
            *state
                .policies
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(policies);
        }
    };
    let run = async move {
        futures::join!(namespace_task, policy_task);
    };
    (watched, run)
}

impl Watched {
    fn observe(&self, which: usize, event: Result<(), &watcher::Error>, what: &str) {
        match event {
            Ok(()) => {
                self.last_event.store(unix_now(), Ordering::Release);
                if !self.synced[which].swap(true, Ordering::AcqRel) {
                    tracing::info!(watch = what, "first list done");
                }
            }
            Err(err) => tracing::warn!(
                watch = what,
                error = %err,
                stale_seconds = self.staleness().as_secs(),
                "cannot watch; serving the last known state"
            ),
        }
    }
}

/// The `Accepted` condition of each policy, written only when it changes (both
/// replicas compute the same one, so their writes agree).
async fn write_conditions(
    api: &Api<InitPolicy>,
    all: &[Arc<InitPolicy>],
    policies: &Policies,
    reported: &mut BTreeMap<String, Option<String>>,
) {
    for policy in all {
        let Some(name) = policy.metadata.name.clone() else {
            continue;
        };
        let rejected: Option<&Rejected> = policies.rejected.iter().find(|r| r.name == name);
        let problems = rejected.map(|r| r.problems.join("; "));
        let generation = policy.metadata.generation;
        let current = policy
            .status
            .as_ref()
            .and_then(|status| status.conditions.iter().find(|c| c.type_ == "Accepted"));
        let wanted_status = if problems.is_some() { "False" } else { "True" };
        let wanted_message = problems.clone().unwrap_or_else(|| "in force".to_owned());
        let up_to_date = current.is_some_and(|c| {
            c.status == wanted_status
                && c.message == wanted_message
                && c.observed_generation == generation
        });
        if up_to_date || reported.get(&name) == Some(&problems) && current.is_some() {
            continue;
        }
        let status = InitPolicyStatus {
            conditions: vec![Condition {
                type_: "Accepted".into(),
                status: wanted_status.into(),
                reason: if problems.is_some() {
                    "Invalid"
                } else {
                    "Valid"
                }
                .into(),
                message: wanted_message,
                observed_generation: generation,
                last_transition_time: Time(jiff_now()),
            }],
            observed_generation: generation,
        };
        let patch = serde_json::json!({
            "apiVersion": "init.example/v1alpha1",
            "kind": "InitPolicy",
            "status": status,
        });
        let params = PatchParams::apply(MANAGER).force();
        match api.patch_status(&name, &params, &Patch::Apply(patch)).await {
            Ok(_) => {
                reported.insert(name, problems);
            }
            Err(err) => {
                tracing::warn!(policy = %name, error = %err, "cannot write the InitPolicy's status");
            }
        }
    }
}

fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}
