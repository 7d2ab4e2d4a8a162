//! Prometheus metrics, served as text on the separate metrics port.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::webhook::admission::Decision;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
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
        Metrics {
            registry,
            reviews,
            latency,
            patch_operations,
            bad_requests,
            connections_refused,
            reloads,
            expiry,
        }
    }
}

impl Metrics {
    /// Records one answered review.
    pub fn review(&self, decision: &Decision, elapsed: Duration) {
        self.reviews
            .get_or_create(&OutcomeLabel {
                outcome: decision.label().to_owned(),
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
        self.reloads
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
        if let Some(seconds) = not_after.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        {
            self.expiry.set(seconds.as_secs_f64());
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
