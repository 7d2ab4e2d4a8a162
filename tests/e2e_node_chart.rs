//! The whole product as a user meets it, on the e2e node that `tests/e2e/run.sh` starts:
//! `helm install` of `charts/init-injector` with the image that `image/build-oci.sh`
//! made. The chart's own pods run on the node in `self` certificate mode (they reach the
//! API server through the `kubernetes` Service's address), become Ready once their CA
//! is in the webhook configuration, and the API server calls them through the chart's
//! Service at the pod addresses the EndpointSlice controller publishes. An annotated pod
//! created afterwards is injected by them and runs.
//!
//! A target of its own, so that the chart's cluster-wide webhook is installed while no
//! other test creates annotated pods.
#![cfg(feature = "e2e")]

use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use serde_json::json;

mod common;
use common::helm::{CHART, helm_ok};
use common::init_names;
use common::node::{
    NODE_TAINT, app, client, container_log, diagnose, free_port, host_ip, init_statuses, phase,
    pod, tcp_server, terminated, wait_for_pod,
};

const RELEASE: &str = "init-injector";
const SYSTEM: &str = "e2e-node-chart-system";
const APPS: &str = "e2e-node-chart-apps";

/// The chart's pods, with everything that explains a failure: their status, events,
/// their own logs, the node's.
async fn report(client: &Client, pods: &[Pod]) -> String {
    let mut text = String::new();
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        text.push_str(&diagnose(client, SYSTEM, &name).await);
        let logs: Api<Pod> = Api::namespaced(client.clone(), SYSTEM);
        let log = logs
            .logs(&name, &Default::default())
            .await
            .unwrap_or_else(|e| format!("(no log: {e})"));
        text.push_str(&format!("\n---- log of {name}\n{log}\n"));
    }
    text
}

fn ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn the_chart_runs_on_the_node_and_its_pods_inject_a_pod_that_then_runs() {
    let client = client().await;
    let toleration =
        json!([{"key": NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}]).to_string();
    helm_ok(&[
        "install",
        RELEASE,
        CHART,
        "--namespace",
        SYSTEM,
        "--create-namespace",
        "--set-json",
        &format!("tolerations={toleration}"),
    ]);

    // Both replicas Ready: each readiness answer needs the CA in the webhook configuration.
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM);
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    let deadline = Instant::now() + Duration::from_secs(150);
    let webhook_pods = loop {
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items;
        if list.iter().filter(|p| ready(p)).count() == 2 {
            break list.into_iter().filter(ready).collect::<Vec<_>>();
        }
        if Instant::now() >= deadline {
            panic!(
                "the chart's two replicas Ready: not within 150s\n{}",
                report(&client, &list).await
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let pod_ips: Vec<String> = webhook_pods
        .iter()
        .map(|p| p.status.as_ref().unwrap().pod_ip.clone().unwrap())
        .collect();

    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let config = configs.get(RELEASE).await.unwrap();
    let webhook = &config.webhooks.as_ref().unwrap()[0];
    assert!(
        webhook
            .client_config
            .ca_bundle
            .as_ref()
            .is_some_and(|b| String::from_utf8_lossy(&b.0).contains("BEGIN CERTIFICATE")),
        "the replicas wrote no CA into the webhook configuration"
    );
    let service = webhook.client_config.service.as_ref().unwrap();
    assert_eq!(service.namespace, SYSTEM);

    // The EndpointSlice controller publishes both pods' addresses for the Service.
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), SYSTEM);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut published: Vec<String> = slices
            .list(
                &ListParams::default()
                    .labels(&format!("kubernetes.io/service-name={}", service.name)),
            )
            .await
            .unwrap()
            .items
            .iter()
            .flat_map(|s| s.endpoints.clone())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .flat_map(|e| e.addresses)
            .collect();
        published.sort();
        let mut expected = pod_ips.clone();
        expected.sort();
        if published == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Service's EndpointSlices list {published:?}, the pods are at {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A user's namespace and an annotated pod: the chart's pods inject it.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(APPS.to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), APPS);
    let deadline = Instant::now() + Duration::from_secs(30);
    while accounts.get_opt("default").await.unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "no default ServiceAccount in {APPS}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let ip = host_ip();
    let port = free_port().await;
    let (_server, connections) = tcp_server(port).await;
    let annotations = json!({
        "init.example/wait-for": format!("{ip}:{port}"),
        "init.example/run.prepare": "sh -c 'echo prepared > /shared/state'",
        "init.example/volumes": "shared:/shared",
    });
    let app_pods: Api<Pod> = Api::namespaced(client.clone(), APPS);
    let deadline = Instant::now() + Duration::from_secs(60);
    let created = loop {
        // Until the API server's webhook cache has the configuration with its caBundle,
        // a create may be refused (failurePolicy Fail); it never goes through uninjected.
        match app_pods
            .create(
                &PostParams::default(),
                &pod(
                    "web",
                    annotations.clone(),
                    json!({"containers": [app("cat /shared/state; exec sleep 3600")]}),
                ),
            )
            .await
        {
            Ok(created) => break created,
            Err(e) if Instant::now() < deadline => {
                eprintln!("create refused, retrying: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => panic!(
                "the annotated pod was refused for 60s: {e}\n{}",
                report(&client, &webhook_pods).await
            ),
        }
    };
    assert_eq!(
        init_names(&created),
        [
            format!("wait-for-{}-{port}", ip.to_string().replace('.', "-")),
            "prepare".to_owned()
        ],
        "the chart's webhook injected the steps"
    );

    let running = wait_for_pod(
        &client,
        APPS,
        "web",
        Duration::from_secs(90),
        "the injected pod Running",
        |p| phase(p) == "Running",
    )
    .await;
    for status in init_statuses(&running) {
        assert_eq!(terminated(&status).map(|t| t.2), Some(0), "{status:?}");
    }
    assert!(*connections.lock().unwrap() >= 1);
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.is_empty() && Instant::now() < deadline {
        log = container_log(&client, APPS, "web", "app").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(log.trim(), "prepared", "the app's output");

    // One of the chart's pods answered the review.
    let mut answered = false;
    for p in &webhook_pods {
        let name = p.metadata.name.as_deref().unwrap();
        let log = container_log(&client, SYSTEM, name, "webhook").await;
        answered |= log.lines().any(|line| {
            line.contains(&format!("\"namespace\":\"{APPS}\""))
                && line.contains("\"pod\":\"web\"")
                && line.contains("\"decision\":\"mutated\"")
        });
    }
    assert!(answered, "no chart pod logged the review of {APPS}/web");

    helm_ok(&["uninstall", RELEASE, "--namespace", SYSTEM]);
    assert!(
        configs.get_opt(RELEASE).await.unwrap().is_none(),
        "helm uninstall left the webhook configuration"
    );
    for ns in [APPS, SYSTEM] {
        let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    }
}
