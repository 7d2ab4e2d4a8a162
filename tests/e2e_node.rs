//! Injected init containers running for real, on the node that `tests/e2e/run.sh` starts
//! inside its network namespace: a kubelet with containerd and runc, the CNI bridge,
//! kube-scheduler and CoreDNS (see `tests/e2e/README.md`). The wait steps run the image
//! that `image/build-oci.sh` makes from the release binary, under the engine's default
//! wait image name; the apps and run steps run Debian's static busybox.
//!
//! Each test runs its own `init-injector serve` on 127.0.0.1, registered by URL for its
//! own namespace, and checks what the pod actually did: the init containers' start and
//! finish times and exit codes from the pod's status, what the app container printed
//! (read through the API server's pods/log, which asks the kubelet), a failed wait's
//! termination message.
#![cfg(feature = "e2e")]

use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

mod common;
use common::init_names;
use common::node::{
    app, app_status, client, container_log, diagnose, free_port, host_ip, http_server,
    init_statuses, is_running, log_tail, logs_dir, on_node, phase, pod, tcp_server, terminated,
    unix_now, wait_for_pod,
};
use common::webhook::{Webhook, create_namespace, pod_webhook, register, wait_until_active};

const LABEL: &str = "init-injector-e2e-node";

/// A fresh namespace labelled for this test (plus `labels`), with its `default`
/// ServiceAccount, and `webhook` registered for it; returns once the API server calls it.
async fn namespace(client: &Client, name: &str, labels: &[(&str, &str)], webhook: &Webhook) {
    let mut all = vec![(LABEL, name)];
    all.extend_from_slice(labels);
    create_namespace(client, name, &all).await;
    let registration = pod_webhook(
        name,
        &webhook.url(),
        &webhook.ca_pem,
        (LABEL, name),
        "Fail",
        "IfNeeded",
    );
    register(client, &format!("node-{name}"), registration).await;
    wait_until_active(client, name, json!({"containers": [app("sleep 1")]})).await;
}

/// Deletes the test's namespace and webhook configuration, without waiting.
async fn cleanup(client: &Client, name: &str) {
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let _ = configs
        .delete(&format!("node-{name}"), &DeleteParams::default())
        .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(name, &DeleteParams::default()).await;
}

/// Issue 9, test 1: the seed pipeline. Two waits whose servers come up late (TCP first,
/// HTTP later), two run steps sharing an emptyDir, an app that reads what they wrote.
#[tokio::test]
async fn the_seed_pipeline_runs_in_order_once_its_dependencies_answer() {
    let client = client().await;
    let ns = "e2e-node-seed";
    let webhook = Webhook::start("node-seed", &[]);
    namespace(&client, ns, &[], &webhook).await;

    let ip = host_ip();
    let tcp_port = free_port().await;
    let http_port = free_port().await;
    let annotations = json!({
        "init.example/wait-for": format!("{ip}:{tcp_port},http://{ip}:{http_port}/healthz"),
        "init.example/wait-interval": "1s",
        "init.example/wait-timeout": "3m",
        "init.example/run.01-migrate":
            "sh -c 'echo \"migrated for $APP_ENV by uid $(id -u)\" > /shared/migrated'",
        "init.example/run.02-seed": "sh -c 'cat /shared/migrated > /shared/seeded && echo seeded >> /shared/seeded'",
        "init.example/volumes": "shared:/shared",
    });
    let mut app = app("echo app read:; cat /shared/seeded; exec sleep 3600");
    app["env"] = json!([{"name": "APP_ENV", "value": "production-e2e"}]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created = pods
        .create(
            &PostParams::default(),
            &pod("web", annotations, json!({"containers": [app]})),
        )
        .await
        .unwrap();
    let names = init_names(&created);
    assert_eq!(
        names,
        [
            format!("wait-for-{}-{tcp_port}", ip.to_string().replace('.', "-")),
            format!(
                "wait-for-http-{}-{http_port}-healthz",
                ip.to_string().replace('.', "-")
            ),
            "01-migrate".to_owned(),
            "02-seed".to_owned(),
        ],
        "the injected steps, in the order they must run"
    );
    // The run steps hold the app's env as the API server stored them: the webhook's
    // patch adds them without it and copies it from the app container.
    let spec = created.spec.as_ref().unwrap();
    let app_env = spec.containers[0].env.as_ref();
    assert!(app_env.is_some_and(|env| env[0].name == "APP_ENV"));
    for step in &spec.init_containers.as_ref().unwrap()[2..] {
        assert_eq!(step.env.as_ref(), app_env, "{}", step.name);
    }

    // Nothing answers yet: the first wait step runs and keeps the pod from starting.
    let waiting = wait_for_pod(
        &client,
        ns,
        "web",
        Duration::from_secs(90),
        "the first wait step running",
        |p| init_statuses(p).first().is_some_and(is_running),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let still = pods.get("web").await.unwrap();
    assert_eq!(phase(&still), "Pending", "{:?}", still.status);
    assert!(
        init_statuses(&still).first().is_some_and(is_running),
        "the TCP wait step gave up or passed with nothing listening: {:?}",
        still.status
    );
    assert!(
        app_status(&waiting).is_none_or(|s| s.started != Some(true)),
        "the app started before its dependencies"
    );

    // The TCP server comes up: the first wait passes, the second (HTTP) keeps waiting.
    let tcp_up = unix_now();
    let (_tcp, tcp_connections) = tcp_server(tcp_port).await;
    let second = wait_for_pod(
        &client,
        ns,
        "web",
        Duration::from_secs(60),
        "the TCP wait step done and the HTTP one running",
        |p| {
            let s = init_statuses(p);
            s.len() == 4 && terminated(&s[0]).is_some() && is_running(&s[1])
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = pods.get("web").await.unwrap();
    assert_eq!(phase(&still), "Pending", "{:?}", still.status);
    assert!(
        is_running(&init_statuses(&still)[1]),
        "the HTTP wait step should still be waiting: {:?}",
        still.status
    );

    let http_up = unix_now();
    let (_http, http_requests) = http_server(http_port).await;
    let running = wait_for_pod(
        &client,
        ns,
        "web",
        Duration::from_secs(90),
        "the pod Running",
        |p| phase(p) == "Running" && app_status(p).is_some_and(|s| is_running(&s)),
    )
    .await;

    let statuses = init_statuses(&running);
    let observed: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(observed, names, "status order is spec order");
    let times: Vec<(i64, i64, i32)> = statuses
        .iter()
        .map(|s| terminated(s).unwrap_or_else(|| panic!("{} not terminated: {s:?}", s.name)))
        .collect();
    for (status, (_, _, code)) in statuses.iter().zip(&times) {
        assert_eq!(*code, 0, "{} exited {code}", status.name);
    }
    for pair in times.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "a step started before the one before it finished: {times:?}"
        );
    }
    assert!(
        times[0].1 >= tcp_up,
        "the TCP wait finished at {} before the server came up at {tcp_up}",
        times[0].1
    );
    assert!(
        times[1].1 >= http_up,
        "the HTTP wait finished at {} before the server came up at {http_up}",
        times[1].1
    );
    assert!(
        terminated(&init_statuses(&second)[0]).is_some_and(|t| t.1 >= tcp_up),
        "the TCP wait passed before its server was up"
    );
    let app_started = app_status(&running)
        .and_then(|s| s.state?.running?.started_at)
        .map(|t| t.0.as_second())
        .expect("app start time");
    assert!(
        app_started >= times[3].1,
        "the app started before 02-seed finished"
    );
    assert!(*tcp_connections.lock().unwrap() >= 1);
    assert!(
        http_requests
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.starts_with("GET /healthz ")),
        "the HTTP wait never asked for /healthz: {:?}",
        http_requests.lock().unwrap()
    );

    // The app read what 01-migrate wrote (with the app's env, as the image's user),
    // through 02-seed, from the shared emptyDir.
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log.contains("seeded") && Instant::now() < deadline {
        log = container_log(&client, ns, "web", "app").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "app read:",
            "migrated for production-e2e by uid 65532",
            "seeded"
        ],
        "the app's output"
    );
    let wait_log = container_log(&client, ns, "web", &names[0]).await;
    assert!(
        wait_log.contains("ready after"),
        "the TCP wait step's log: {wait_log}"
    );
    cleanup(&client, ns).await;
}

/// Issue 9, test 2: a wait that never becomes ready fails after its timeout with the
/// reason as its termination message, and the app container never starts.
#[tokio::test]
async fn a_wait_that_never_answers_fails_with_its_reason_and_the_app_never_starts() {
    let client = client().await;
    let ns = "e2e-node-timeout";
    let webhook = Webhook::start("node-timeout", &[]);
    namespace(&client, ns, &[], &webhook).await;

    let ip = host_ip();
    let port = free_port().await;
    let target = format!("{ip}:{port}");
    let annotations = json!({
        "init.example/wait-for": target,
        "init.example/wait-timeout": "4s",
        "init.example/wait-interval": "1s",
    });
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(
        &PostParams::default(),
        &pod(
            "never",
            annotations,
            json!({"containers": [app("echo the app ran; exec sleep 3600")]}),
        ),
    )
    .await
    .unwrap();

    let failed = wait_for_pod(
        &client,
        ns,
        "never",
        Duration::from_secs(120),
        "the wait step terminated with a failure",
        |p| {
            init_statuses(p).first().is_some_and(|s| {
                s.last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .is_some()
            })
        },
    )
    .await;
    let status = &init_statuses(&failed)[0];
    let last = status
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .unwrap();
    assert_ne!(last.exit_code, 0, "{last:?}");
    let message = last.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("[1/1] wait-for {target}: gave up after")),
        "termination message: {message:?}"
    );
    assert!(
        message.contains("last error"),
        "termination message: {message:?}"
    );
    let ran_for = last.finished_at.as_ref().unwrap().0.as_second()
        - last.started_at.as_ref().unwrap().0.as_second();
    assert!(
        (3..=30).contains(&ran_for),
        "the wait step ran {ran_for}s for a 4s timeout"
    );
    assert!(status.restart_count >= 1, "{status:?}");

    assert_eq!(phase(&failed), "Pending");
    let app = app_status(&failed).expect("the app's status");
    assert_ne!(app.started, Some(true));
    assert_eq!(
        app.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref()),
        Some("PodInitializing"),
        "{app:?}"
    );
    assert!(
        app.last_state
            .as_ref()
            .is_none_or(|l| l.terminated.is_none())
    );
    cleanup(&client, ns).await;
}

/// Issue 9, test 3: under Pod Security "restricted", the injected pod is admitted and
/// runs: every container non-root, read-only root filesystem, no capabilities.
#[tokio::test]
async fn a_restricted_namespace_runs_the_injected_pod() {
    let client = client().await;
    let ns = "e2e-node-restricted";
    let webhook = Webhook::start("node-restricted", &[]);
    namespace(
        &client,
        ns,
        &[
            ("pod-security.kubernetes.io/enforce", "restricted"),
            ("pod-security.kubernetes.io/enforce-version", "latest"),
        ],
        &webhook,
    )
    .await;

    let ip = host_ip();
    let port = free_port().await;
    let (_server, _) = tcp_server(port).await;
    let annotations = json!({
        "init.example/wait-for": format!("{ip}:{port}"),
        "init.example/run.inspect": "sh -c 'id -u > /out/uid; grep CapEff /proc/self/status > /out/caps; touch /root-write 2> /out/root-write || true'",
        "init.example/volumes": "out:/out",
    });
    let script =
        "cat /out/uid /out/caps /out/root-write; id -u; touch /app-write 2>&1; exec sleep 3600";
    let spec = json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [app(script)],
    });
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created = pods
        .create(&PostParams::default(), &pod("locked", annotations, spec))
        .await
        .expect("the restricted namespace admits the injected pod");
    assert_eq!(init_names(&created).len(), 2, "{:?}", init_names(&created));
    for container in created
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .iter()
        .flatten()
    {
        let sc = container.security_context.as_ref().unwrap();
        assert_eq!(
            sc.read_only_root_filesystem,
            Some(true),
            "{}",
            container.name
        );
        assert_eq!(
            sc.allow_privilege_escalation,
            Some(false),
            "{}",
            container.name
        );
    }

    let running = wait_for_pod(
        &client,
        ns,
        "locked",
        Duration::from_secs(90),
        "the restricted pod Running",
        |p| phase(p) == "Running",
    )
    .await;
    for status in init_statuses(&running) {
        assert_eq!(terminated(&status).map(|t| t.2), Some(0), "{status:?}");
    }
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.lines().count() < 5 && Instant::now() < deadline {
        log = container_log(&client, ns, "locked", "app").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 5, "the app's output: {log}");
    assert_eq!(lines[0], "65532", "the run step's uid");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["CapEff:", "0000000000000000"],
        "the run step's effective capabilities"
    );
    assert!(
        lines[2].contains("Read-only file system"),
        "the run step could write to its root filesystem: {log}"
    );
    assert_eq!(lines[3], "65532", "the app's uid");
    assert!(
        lines[4].contains("Read-only file system"),
        "the app could write to its root filesystem: {log}"
    );
    cleanup(&client, ns).await;
}

/// Issue 9, test 4: a Service name as the wait target, both short and fully qualified,
/// resolved by the cluster's DNS (CoreDNS, the kubelet's clusterDNS). The Service is
/// headless: its name resolves to the pod's address, which needs no kube-proxy.
#[tokio::test]
async fn a_service_name_is_resolved_by_cluster_dns_and_waited_for() {
    let client = client().await;
    let ns = "e2e-node-dns";
    let webhook = Webhook::start("node-dns", &[]);
    namespace(&client, ns, &[], &webhook).await;

    let fqdn = format!("db.{ns}.svc.cluster.local");
    let annotations = json!({
        "init.example/wait-for": format!("db:5432,{fqdn}:5432"),
        "init.example/wait-interval": "1s",
        "init.example/wait-timeout": "3m",
    });
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(
        &PostParams::default(),
        &pod(
            "client",
            annotations,
            json!({"containers": [app("echo started; exec sleep 3600")]}),
        ),
    )
    .await
    .unwrap();
    // No such name yet: the first wait step keeps failing to resolve it.
    wait_for_pod(
        &client,
        ns,
        "client",
        Duration::from_secs(90),
        "the first wait step running",
        |p| init_statuses(p).first().is_some_and(is_running),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The database: a busybox httpd on 5432 behind a headless Service.
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"},
                 "ports": [{"name": "postgres", "port": 5432}]},
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    pods.create(
        &PostParams::default(),
        &pod(
            "db",
            json!({}),
            json!({"containers": [app("exec httpd -f -p 5432 -h /")]}),
        ),
    )
    .await
    .unwrap();

    let running = wait_for_pod(
        &client,
        ns,
        "client",
        Duration::from_secs(120),
        "the client pod Running",
        |p| phase(p) == "Running",
    )
    .await;
    let statuses = init_statuses(&running);
    assert_eq!(
        statuses.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        [
            "wait-for-db-5432",
            "wait-for-db-e2e-node-dns-svc-cluster-local-5432"
        ]
    );
    for status in &statuses {
        assert_eq!(terminated(status).map(|t| t.2), Some(0), "{status:?}");
    }
    let short = container_log(&client, ns, "client", "wait-for-db-5432").await;
    assert!(short.contains("attempt 1 failed"), "{short}");
    assert!(short.contains("ready after"), "{short}");
    let long = container_log(
        &client,
        ns,
        "client",
        "wait-for-db-e2e-node-dns-svc-cluster-local-5432",
    )
    .await;
    assert!(long.contains("ready after"), "{long}");

    // The names were answered by CoreDNS (its `log` plugin records every query).
    let dns_log = std::fs::read_to_string(logs_dir().join("coredns.log")).unwrap_or_default();
    assert!(
        dns_log.contains(&format!("\"A IN {fqdn}. ")) && dns_log.contains("NOERROR"),
        "CoreDNS never answered {fqdn}:\n{}",
        log_tail("coredns.log", 20)
    );
    cleanup(&client, ns).await;
}

/// Issue 9, test 5: a Deployment of two replicas: both pods injected and Running.
#[tokio::test]
async fn both_replicas_of_a_deployment_are_injected_and_run() {
    let client = client().await;
    let ns = "e2e-node-deploy";
    let webhook = Webhook::start("node-deploy", &[]);
    namespace(&client, ns, &[], &webhook).await;

    let ip = host_ip();
    let port = free_port().await;
    let (_server, connections) = tcp_server(port).await;
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {
                    "init.example/wait-for": format!("{ip}:{port}"),
                    "init.example/run.prepare": "sh -c 'hostname > /shared/prepared-by'",
                    "init.example/volumes": "shared:/shared",
                }},
                "spec": on_node(json!({"containers": [app("echo prepared by $(cat /shared/prepared-by); exec sleep 3600")]})),
            },
        },
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(120);
    let running = loop {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap();
        let running: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| phase(p) == "Running" && p.metadata.deletion_timestamp.is_none())
            .collect();
        if running.len() == 2 {
            break running;
        }
        if Instant::now() >= deadline {
            let names: Vec<String> = pods
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            let mut report = String::new();
            for name in &names {
                report.push_str(&diagnose(&client, ns, name).await);
            }
            panic!("2 Running replicas: not within 120s (pods: {names:?})\n{report}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    for pod in &running {
        let name = pod.metadata.name.clone().unwrap();
        assert_eq!(
            init_names(pod),
            [
                format!("wait-for-{}-{port}", ip.to_string().replace('.', "-")),
                "prepare".to_owned()
            ],
            "{name}"
        );
        for status in init_statuses(pod) {
            assert_eq!(
                terminated(&status).map(|t| t.2),
                Some(0),
                "{name}: {status:?}"
            );
        }
        let mut log = String::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while log.is_empty() && Instant::now() < deadline {
            log = container_log(&client, ns, &name, "app").await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(log.trim(), format!("prepared by {name}"), "{name}'s app");
    }
    assert!(
        *connections.lock().unwrap() >= 2,
        "each replica's wait step connected"
    );
    cleanup(&client, ns).await;
}
