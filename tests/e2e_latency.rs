//! What the webhook costs a pod create on a real kube-apiserver: the same pods created
//! through the API with the webhook (annotated), written by hand with the init containers
//! the webhook produced (no webhook on their namespace), and without annotations in the
//! webhook's namespace (the chart's `matchConditions` keep them from the webhook).
//!
//! Correctness is asserted (no failed create, at most two reviews per annotated pod and
//! the second an empty patch, no review at all of an unannotated pod); the latencies are
//! measured, not asserted, and written to `latency.md` in the e2e log directory, since
//! timing depends on the machine. `INIT_INJECTOR_E2E_LATENCY_PODS` sets the pods per kind
//! (default 1000).
#![cfg(feature = "e2e")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::{MatchCondition, MutatingWebhookConfiguration};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

mod common;
use common::init_names;
use common::node::{client, logs_dir};
use common::webhook::{Webhook, create_namespace, pod_webhook, register};

/// Concurrent clients, like a few controllers creating pods at once.
const CLIENTS: usize = 4;

const SELECTOR: &str = "init-injector-e2e-latency";

/// The chart's webhook: the same rules, reinvocation and `matchConditions`.
async fn register_as_the_chart_does(client: &Client, serve: &Webhook, namespace: &str) {
    let mut webhook = pod_webhook(
        "pods",
        &serve.url(),
        &serve.ca_pem,
        (SELECTOR, namespace),
        "Fail",
        "IfNeeded",
    );
    webhook.match_conditions = Some(vec![MatchCondition {
        name: "has-init-injector-annotations".into(),
        expression: "has(object.metadata.annotations) && \
             object.metadata.annotations.exists(k, k.startsWith(\"init.example/\"))"
            .into(),
    }]);
    register(client, "e2e-latency", webhook).await;
}

/// A pod kept off any node: only the create is measured.
fn pod(name: &str, annotations: Value, extra_spec: Value) -> Pod {
    let mut spec = json!({
        "nodeSelector": {"init-injector.example/e2e": "no-such-node"},
        "containers": [{"name": "app", "image": "registry.example.com/app:1",
                        "env": [{"name": "DATABASE_URL", "value": "postgres://db:5432/app"}]}],
    });
    if let (Value::Object(spec), Value::Object(extra)) = (&mut spec, extra_spec) {
        spec.extend(extra);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": spec,
    }))
    .unwrap()
}

fn annotations() -> Value {
    json!({
        "init.example/wait-for": "postgres.db.svc:5432,redis.cache.svc:6379",
        "init.example/run.01-migrate": "migrate --to latest",
        "init.example/volumes": "config:/config",
    })
}

/// Creates `pods` with `CLIENTS` concurrent clients; returns each create's latency.
async fn create_all(api: &Api<Pod>, pods: Vec<Pod>) -> Vec<Duration> {
    let queue = Arc::new(tokio::sync::Mutex::new(pods));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (api, queue) = (api.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some(pod) = queue.lock().await.pop() else {
                    return latencies;
                };
                let started = Instant::now();
                let created = api.create(&PostParams::default(), &pod).await;
                latencies.push(started.elapsed());
                if let Err(err) = created {
                    panic!("creating {:?} failed: {err}", pod.metadata.name);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test]
async fn the_webhook_adds_little_to_a_pod_create() {
    let count: usize = std::env::var("INIT_INJECTOR_E2E_LATENCY_PODS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let client = client().await;
    let (hooked, by_hand) = ("e2e-latency-webhook", "e2e-latency-by-hand");
    create_namespace(&client, hooked, &[(SELECTOR, hooked)]).await;
    create_namespace(&client, by_hand, &[(SELECTOR, by_hand)]).await;
    let serve = Webhook::start("latency", &[]);
    register_as_the_chart_does(&client, &serve, hooked).await;
    let hooked_pods: Api<Pod> = Api::namespaced(client.clone(), hooked);
    let hand_pods: Api<Pod> = Api::namespaced(client.clone(), by_hand);

    // The webhook's registration reaches the API server's cache a moment later; the
    // first injected pod also gives the init containers and volumes to write by hand.
    let deadline = Instant::now() + Duration::from_secs(30);
    let template = loop {
        let probe = pod("probe", annotations(), json!({}));
        let dry = PostParams {
            dry_run: true,
            ..Default::default()
        };
        if let Ok(stored) = hooked_pods.create(&dry, &probe).await
            && !init_names(&stored).is_empty()
        {
            break stored;
        }
        assert!(Instant::now() < deadline, "the webhook never became active");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let spec = template.spec.unwrap();
    let written = json!({
        "initContainers": spec.init_containers,
        "volumes": spec.volumes,
        "containers": spec.containers,
    });

    // Rounds of the three kinds, so drift on the machine affects each alike.
    let (mut with_webhook, mut written_by_hand, mut unannotated) = (vec![], vec![], vec![]);
    let round = 100.min(count);
    let mut made = 0;
    while made < count {
        let n = round.min(count - made);
        let batch = |prefix: &str, annotations: &Value, spec: &Value| -> Vec<Pod> {
            (made..made + n)
                .map(|i| pod(&format!("{prefix}-{i}"), annotations.clone(), spec.clone()))
                .collect()
        };
        with_webhook
            .extend(create_all(&hooked_pods, batch("annotated", &annotations(), &json!({}))).await);
        written_by_hand
            .extend(create_all(&hand_pods, batch("by-hand", &json!({}), &written)).await);
        unannotated.extend(
            create_all(
                &hooked_pods,
                batch("plain", &json!({"team": "shop"}), &json!({})),
            )
            .await,
        );
        made += n;
    }

    // Reviews per pod, from the webhook's own log.
    let log = std::fs::read_to_string(&serve.log_path).unwrap();
    let mut reviews: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for entry in log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
    {
        if entry["message"] == "review" {
            let pod = entry["pod"].as_str().unwrap_or_default().to_owned();
            reviews
                .entry(pod)
                .or_default()
                .push(entry["patch_ops"].as_u64().unwrap());
        }
    }
    let plain_reviewed = reviews
        .keys()
        .filter(|pod| pod.starts_with("plain-"))
        .count();
    assert_eq!(plain_reviewed, 0, "unannotated pods reached the webhook");
    let mut per_pod = BTreeMap::new();
    for i in 0..count {
        let seen = reviews
            .get(&format!("annotated-{i}"))
            .unwrap_or_else(|| panic!("annotated-{i} was never reviewed"));
        assert!(seen.len() <= 2 && seen[0] > 0, "annotated-{i}: {seen:?}");
        assert!(
            seen[1..].iter().all(|&ops| ops == 0),
            "annotated-{i}: {seen:?}"
        );
        *per_pod.entry(seen.len()).or_insert(0) += 1;
    }

    let mut report =
        String::from("| pods | p50 ms | p99 ms | max ms |\n| --- | --- | --- | --- |\n");
    let mut p99s = Vec::new();
    for (label, latencies) in [
        ("annotated, through the webhook", &mut with_webhook),
        ("same init containers written by hand", &mut written_by_hand),
        ("unannotated, webhook registered", &mut unannotated),
    ] {
        latencies.sort();
        let (p50, p99) = (percentile(latencies, 0.5), percentile(latencies, 0.99));
        p99s.push((p50, p99));
        report.push_str(&format!(
            "| {label} ({}) | {:.2} | {:.2} | {:.2} |\n",
            latencies.len(),
            millis(p50),
            millis(p99),
            millis(*latencies.last().unwrap())
        ));
    }
    report.push_str(&format!(
        "\nwebhook / by hand: p50 {:.2}x, p99 {:.2}x; reviews per annotated pod: {per_pod:?}; \
         {CLIENTS} concurrent clients\n",
        millis(p99s[0].0) / millis(p99s[1].0),
        millis(p99s[0].1) / millis(p99s[1].1),
    ));
    std::fs::write(logs_dir().join("latency.md"), &report).unwrap();
    eprintln!("{report}");

    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let _ = api.delete("e2e-latency", &DeleteParams::default()).await;
    let namespaces: Api<Namespace> = Api::all(client);
    for name in [hooked, by_hand] {
        let _ = namespaces.delete(name, &DeleteParams::default()).await;
    }
}
