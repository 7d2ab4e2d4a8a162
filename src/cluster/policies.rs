//! InitPolicies and Namespaces, watched live through kube-runtime reflectors (never a GET
//! per review): what `serve --watch-policies` hands admission as its [`PolicySource`].
//!
//! - Every change of the policies rebuilds one [`Policies`] snapshot, which reviews read
//!   through an `Arc` swap; a rejected policy is logged once per change of its problems,
//!   counted (`init_injector_policies_rejected`) and left out, and never stops a review.
//! - Each policy's `Accepted` condition says whether it is in force and why not
//!   ([`status`]); it is written by server-side apply on the status subresource, only
//!   when it differs from what the object already says.
//! - `/readyz` waits for the first complete list of both kinds ([`PolicyWatch::ready`]).
//!   It stays ready afterwards, outages included: the last known state keeps serving,
//!   and taking every replica out of the Service would hold back every pod instead.
//! - How stale that state is counts from the moment a watch broke, not from its last
//!   event (a healthy watch of objects that do not change is quiet): a failed watch is
//!   dropped and started afresh with a full list, so the list's end is the proof that
//!   the watch is back.

mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::{ClusterError, status_of};
use crate::engine::annotations::Keys;
use crate::engine::policy::crd::InitPolicy;
use crate::engine::policy::select::{NamespaceInfo, Policies, Rejected};
use crate::webhook::admission::PolicySource;
use crate::webhook::metrics::PolicyWatchReport;

/// First delay before a broken watch is started again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The two watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Namespaces,
    InitPolicies,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Namespaces => "namespaces",
            Kind::InitPolicies => "initpolicies",
        }
    }
}

/// The health of one watch.
#[derive(Debug, Default)]
struct Health {
    /// Set by the first complete list.
    listed: AtomicBool,
    /// When the watch broke; `None` while it is connected.
    broken_since: Mutex<Option<Instant>>,
}

impl Health {
    fn broken_since(&self) -> Option<Instant> {
        *self
            .broken_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a failure; returns how long the watch has been broken.
    fn broke(&self, now: Instant) -> Duration {
        let mut since = self
            .broken_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        now - *since.get_or_insert(now)
    }

    /// Records a complete list; returns how long the watch had been broken, if it was.
    fn listed(&self, now: Instant) -> Option<Duration> {
        self.listed.store(true, Ordering::Release);
        let since = self
            .broken_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        since.map(|since| now - since)
    }
}

/// What reviews read: the policies in force and the namespaces, as last seen.
#[derive(Debug)]
pub struct Watched {
    namespaces: Store<PartialObjectMeta<Namespace>>,
    policies: RwLock<Arc<Policies>>,
    namespace_health: Health,
    policy_health: Health,
}

impl Watched {
    fn health(&self, kind: Kind) -> &Health {
        match kind {
            Kind::Namespaces => &self.namespace_health,
            Kind::InitPolicies => &self.policy_health,
        }
    }

    /// How long the state has been stale at `now`: the longer of the two watches' breaks.
    fn stale_at(&self, now: Instant) -> Duration {
        [&self.namespace_health, &self.policy_health]
            .into_iter()
            .filter_map(Health::broken_since)
            .map(|since| now.saturating_duration_since(since))
            .max()
            .unwrap_or_default()
    }
}

impl PolicySource for Watched {
    fn policies(&self) -> Arc<Policies> {
        self.policies
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        let namespace = self.namespaces.get(&ObjectRef::new(name))?;
        Some(NamespaceInfo {
            name: name.to_owned(),
            labels: namespace.metadata.labels.clone().unwrap_or_default(),
            annotations: namespace.metadata.annotations.clone().unwrap_or_default(),
        })
    }
}

impl PolicyWatchReport for Watched {
    fn in_force(&self) -> usize {
        self.policies().accepted.len()
    }

    fn rejected(&self) -> usize {
        self.policies().rejected.len()
    }

    fn stale(&self) -> Duration {
        self.stale_at(Instant::now())
    }
}

/// The watches before they run: [`PolicyWatch::source`] and [`PolicyWatch::ready`] go
/// into the server's config, then [`PolicyWatch::run`] keeps them current.
pub struct PolicyWatch {
    watched: Arc<Watched>,
    ready: Arc<AtomicBool>,
    namespace_writer: reflector::store::Writer<PartialObjectMeta<Namespace>>,
    policy_writer: reflector::store::Writer<InitPolicy>,
    policy_store: Store<InitPolicy>,
    /// The annotation prefix: the namespaces' annotations under it are all a review
    /// reads of them.
    prefix: String,
}

impl PolicyWatch {
    /// Empty stores, no policies, not ready; `prefix` is the engine's annotation prefix.
    pub fn new(prefix: &str) -> PolicyWatch {
        let (namespaces, namespace_writer) = reflector::store();
        let (policy_store, policy_writer) = reflector::store();
        PolicyWatch {
            watched: Arc::new(Watched {
                namespaces,
                policies: RwLock::new(Arc::new(Policies::default())),
                namespace_health: Health::default(),
                policy_health: Health::default(),
            }),
            ready: Arc::new(AtomicBool::new(false)),
            namespace_writer,
            policy_writer,
            policy_store,
            prefix: prefix.to_owned(),
        }
    }

    /// What admission reads and the metrics report.
    pub fn source(&self) -> Arc<Watched> {
        self.watched.clone()
    }

    /// The readiness gate: set once both watches have listed everything once.
    pub fn ready(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    /// Runs both watches (and the status writer) until the future is dropped.
    pub async fn run(self, client: Client) {
        let PolicyWatch {
            watched,
            ready,
            mut namespace_writer,
            mut policy_writer,
            policy_store,
            prefix,
        } = self;
        // Metadata only: labels and annotations are all a review reads of a namespace.
        let namespace_api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
        let policy_api: Api<InitPolicy> = Api::all(client);
        let (snapshots, latest) = tokio::sync::watch::channel(status::Snapshot::default());

        let namespaces = keep_watching(
            Kind::Namespaces,
            &watched,
            &ready,
            || {
                let prefix = prefix.clone();
                watcher(namespace_api.clone(), watcher::Config::default())
                    .modify(move |namespace| keep_what_reviews_read(namespace, &prefix))
            },
            |event| {
                namespace_writer.apply_watcher_event(event);
            },
        );
        let mut last_rejected: Vec<Rejected> = Vec::new();
        let policies = keep_watching(
            Kind::InitPolicies,
            &watched,
            &ready,
            || watcher(policy_api.clone(), watcher::Config::default()),
            |event| {
                policy_writer.apply_watcher_event(event);
                if matches!(event, watcher::Event::Init | watcher::Event::InitApply(_)) {
                    // The list is not complete yet: the store still holds the last one.
                    return;
                }
                let objects = policy_store.state();
                let policies = Arc::new(Policies::new(objects.iter().map(Arc::as_ref)));
                log_rejections(&last_rejected, &policies.rejected);
                last_rejected.clone_from(&policies.rejected);
                *watched
                    .policies
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = policies.clone();
                snapshots.send_replace(status::Snapshot { objects, policies });
            },
        );
        let writer = status::write_conditions(policy_api.clone(), latest);
        futures::join!(namespaces, policies, writer);
    }
}

/// Drops what no review reads of a namespace before the store keeps it: its managed
/// fields and its annotations outside `prefix` (kubectl's last-applied configuration, for
/// one). A review reads a namespace's name, its labels (policies' namespaceSelectors)
/// and its `P/` annotations (defaults for its pods), and copies the labels and
/// annotations of its pod's namespace; the store holds every namespace of the cluster.
fn keep_what_reviews_read(namespace: &mut PartialObjectMeta<Namespace>, prefix: &str) {
    namespace.metadata.managed_fields = None;
    if let Some(annotations) = &mut namespace.metadata.annotations {
        let keys = Keys::new(prefix);
        annotations.retain(|key, _| keys.owns(key));
    }
}

/// Checks once, before serving, that both kinds can be listed: a missing CRD or a
/// missing RBAC rule is a clear error at start instead of a replica that never turns
/// ready.
pub async fn check_access(client: &Client) -> Result<(), ClusterError> {
    let one = ListParams::default().limit(1);
    let policies: Api<InitPolicy> = Api::all(client.clone());
    if let Err(err) = policies.list_metadata(&one).await {
        let action = match status_of(&err) {
            Some(status) if status.code == 404 => {
                "cannot list InitPolicies: the CRD initpolicies.init.example is not installed (the chart ships it; or `init-injector crd | kubectl apply -f -`)"
                    .to_owned()
            }
            Some(status) if status.code == 403 => {
                "cannot list InitPolicies: forbidden (the chart's ClusterRole with policies.enabled=true grants list and watch)".to_owned()
            }
            _ => "cannot list InitPolicies".to_owned(),
        };
        return Err(ClusterError::api(action)(err));
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .list_metadata(&one)
        .await
        .map_err(ClusterError::api("cannot list Namespaces"))?;
    Ok(())
}

/// Feeds `apply` the events of watches made by `start`, for ever. A watch that fails is
/// dropped and, after a backoff, started afresh: its first complete list then both
/// replaces the store and proves the connection is back.
async fn keep_watching<K, S>(
    kind: Kind,
    watched: &Watched,
    ready: &AtomicBool,
    start: impl Fn() -> S,
    mut apply: impl FnMut(&watcher::Event<K>),
) where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let health = watched.health(kind);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut stream = std::pin::pin!(start());
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    apply(&event);
                    if matches!(event, watcher::Event::InitDone) {
                        backoff = FIRST_BACKOFF;
                        match health.listed(Instant::now()) {
                            Some(outage) => tracing::info!(
                                watch = kind.name(),
                                stale_seconds = outage.as_secs(),
                                "watch restored; serving current state again"
                            ),
                            None => tracing::debug!(watch = kind.name(), "listed"),
                        }
                        if watched.namespace_health.listed.load(Ordering::Acquire)
                            && watched.policy_health.listed.load(Ordering::Acquire)
                            && !ready.swap(true, Ordering::AcqRel)
                        {
                            tracing::info!("InitPolicies and Namespaces listed: ready");
                        }
                    }
                }
                Err(err) => {
                    let stale = health.broke(Instant::now());
                    tracing::warn!(
                        watch = kind.name(),
                        error = %crate::error::chain(&err),
                        stale_seconds = stale.as_secs(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "cannot watch; serving the last known state"
                    );
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Logs each policy that became rejected or changed its problems, and each that is in
/// force again, once.
fn log_rejections(before: &[Rejected], now: &[Rejected]) {
    for rejected in now {
        if !before.contains(rejected) {
            tracing::warn!(
                policy = %rejected.name,
                problems = %rejected.problems.join("; "),
                "InitPolicy rejected: left out until fixed"
            );
        }
    }
    for fixed in before {
        if !now.iter().any(|r| r.name == fixed.name) {
            tracing::info!(policy = %fixed.name, "InitPolicy no longer rejected");
        }
    }
}

#[cfg(test)]
mod tests;
