//! Prometheus metrics, served as text on the separate metrics port.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::webhook::admission::Decision;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Every metric the webhook exports.
pub struct Metrics {
    registry: Registry,
    reviews: Family<OutcomeLabel, Counter>,
    latency: Histogram,
    patch_operations: Counter,
    bad_requests: Counter,
    connections_refused: Counter,
    reloads: Family<ResultLabel, Counter>,
    expiry: Gauge<f64, AtomicU64>,
    policy_watch: Arc<OnceLock<Arc<dyn PolicyWatchReport>>>,
}

/// What the policy watch (`serve --watch-policies`) reports, read at every scrape so
/// the figures are never older than the scrape. Without the watch these metrics are
/// absent rather than zero, so an alert on them cannot fire for a webhook that does not
/// watch policies.
pub trait PolicyWatchReport: Send + Sync + std::fmt::Debug + 'static {
    /// InitPolicies in force.
    fn in_force(&self) -> usize;
    /// InitPolicies left out until fixed.
    fn rejected(&self) -> usize;
    /// How long the watches have been broken (the longer of the two): zero while both
    /// are connected, else the time since the first failure, whether or not events came
    /// before it (a healthy watch of objects that do not change is quiet).
    fn stale(&self) -> Duration;
}

/// Encodes the policy watch's figures, when there is a watch.
#[derive(Debug)]
struct PolicyWatchCollector(Arc<OnceLock<Arc<dyn PolicyWatchReport>>>);

impl Collector for PolicyWatchCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(report) = self.0.get() else {
            return Ok(());
        };
        let counts: [(&str, &str, usize); 2] = [
            (
                "policies_in_force",
                "InitPolicies in force",
                report.in_force(),
            ),
            (
                "policies_rejected",
                "InitPolicies left out until fixed (their Accepted condition says why)",
                report.rejected(),
            ),
        ];
        for (name, help, count) in counts {
            let gauge = ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX));
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        let stale = ConstGauge::new(report.stale().as_secs_f64());
        let metric = encoder.encode_descriptor(
            "policy_watch_stale_seconds",
            "Seconds since the watch of InitPolicies or Namespaces broke (0 while connected); the last known state is served meanwhile",
            None,
            stale.metric_type(),
        )?;
        stale.encode(metric)?;
        Ok(())
    }
}

/// Sub-millisecond buckets: the engine's own time is tens of microseconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5,
];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("init_injector");
        let reviews = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "reviews",
            "AdmissionReviews answered, by outcome (mutated, skipped, denied, warned, invalid)",
            reviews.clone(),
        );
        let latency = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "review_duration_seconds",
            "Time to answer an AdmissionReview, body read included",
            latency.clone(),
        );
        let patch_operations = Counter::default();
        registry.register(
            "patch_operations",
            "JSON Patch operations returned",
            patch_operations.clone(),
        );
        let bad_requests = Counter::default();
        registry.register(
            "bad_requests",
            "Requests refused before review (malformed, too large, too slow)",
            bad_requests.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections closed at once because --max-connections were open",
            connections_refused.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "certificate_reloads",
            "Serving certificate reloads, by result",
            reloads.clone(),
        );
        let expiry = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When the serving certificate in use expires (Unix time)",
            expiry.clone(),
        );
        let policy_watch = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(PolicyWatchCollector(policy_watch.clone())));
        Metrics {
            registry,
            reviews,
            latency,
            patch_operations,
            bad_requests,
            connections_refused,
            reloads,
            expiry,
            policy_watch,
        }
    }
}

impl Metrics {
    /// Records one answered review.
    pub fn review(&self, decision: &Decision, elapsed: Duration) {
        self.reviews
            .get_or_create(&OutcomeLabel {
                outcome: decision.label(),
            })
            .inc();
        self.latency.observe(elapsed.as_secs_f64());
        if let Decision::Mutated { operations } = decision {
            self.patch_operations.inc_by(*operations as u64);
        }
    }

    /// Records a request refused before review.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    pub fn bad_request(&self, elapsed: Duration) {
        self.bad_requests.inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Records a certificate (re)load attempt.
    pub fn certificate_loaded(&self, ok: bool, not_after: Option<SystemTime>) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
        if let Some(seconds) = not_after.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        {
            self.expiry.set(seconds.as_secs_f64());
        }
    }

    /// Exports the policy watch's figures from now on; a second call is ignored (one
    /// server has one watch).
    pub fn report_policy_watch(&self, report: Arc<dyn PolicyWatchReport>) {
        let _ = self.policy_watch.set(report);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed;

    impl PolicyWatchReport for Fixed {
        fn in_force(&self) -> usize {
            3
        }
        fn rejected(&self) -> usize {
            1
        }
        fn stale(&self) -> Duration {
            Duration::from_millis(42_500)
        }
    }

    #[test]
    fn policy_watch_metrics_appear_once_a_watch_reports() {
        let metrics = Metrics::default();
        assert!(!metrics.encode().contains("policies_in_force"));
        metrics.report_policy_watch(Arc::new(Fixed));
        let text = metrics.encode();
        for line in [
            "# TYPE init_injector_policies_in_force gauge",
            "init_injector_policies_in_force 3",
            "init_injector_policies_rejected 1",
            "init_injector_policy_watch_stale_seconds 42.5",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }
}
