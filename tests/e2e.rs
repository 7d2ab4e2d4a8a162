//! End-to-end tests against a real kube-apiserver (and kube-controller-manager), started
//! by `tests/e2e/run.sh`, which passes the kubeconfig in KUBECONFIG. Each test runs its
//! own `init-injector serve` on loopback, registers it with a MutatingWebhookConfiguration
//! (`clientConfig.url`, `caBundle`) scoped to the test's own namespace, and checks what
//! the apiserver stores.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

mod common;
use common::node::client;
use common::webhook::{Webhook, create_namespace, pod_webhook, register, wait_until_active};
use common::{init_names, loopback_identity, volume_names};

const LABEL: &str = "init-injector-e2e";

/// Registers `webhook` for namespace `ns` (the configuration is named after it), with
/// reinvocation IfNeeded and `failure_policy`, and waits until the apiserver calls it.
async fn inject_into(client: &Client, ns: &str, webhook: &Webhook, failure_policy: &str) {
    let config = pod_webhook(
        ns,
        &webhook.url(),
        &webhook.ca_pem,
        (LABEL, ns),
        failure_policy,
        "IfNeeded",
    );
    register(client, ns, config).await;
    wait_until_active(client, ns, app_spec()).await;
}

async fn unregister(client: &Client, names: &[&str]) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    for name in names {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
}

/// A fresh namespace labelled for this test (plus `labels`), with its `default`
/// ServiceAccount.
async fn namespace(client: &Client, name: &str, labels: &[(&str, &str)]) -> String {
    let mut all = vec![(LABEL, name)];
    all.extend_from_slice(labels);
    create_namespace(client, name, &all).await;
    name.to_owned()
}

fn pod(name: &str, annotations: Value, spec: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": spec,
    }))
    .unwrap()
}

fn restricted() -> Value {
    json!({"runAsNonRoot": true, "runAsUser": 1000, "allowPrivilegeEscalation": false,
           "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}})
}

fn app_spec() -> Value {
    json!({"containers": [{"name": "app", "image": "registry.example.com/app:1", "securityContext": restricted()}]})
}

#[tokio::test]
async fn annotated_pod_is_stored_with_its_steps_in_order() {
    let client = client().await;
    let ns = namespace(&client, "e2e-stored", &[]).await;
    let webhook = Webhook::start("stored", &[]);
    inject_into(&client, &ns, &webhook, "Fail").await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut spec = app_spec();
    spec["initContainers"] = json!([{"name": "setup", "image": "registry.example.com/setup:1", "securityContext": restricted()}]);
    let annotations = json!({
        "init.example/wait-for": "postgres.db.svc:5432,http://config.svc:8080/healthz",
        "init.example/run.01-migrate": "migrate --to latest",
        "init.example/volumes": "config:/config,scratch:/scratch:Memory:16Mi",
    });
    pods.create(&PostParams::default(), &pod("web", annotations, spec))
        .await
        .unwrap();
    let stored = pods.get("web").await.unwrap();
    assert_eq!(
        init_names(&stored),
        [
            "wait-for-postgres-db-svc-5432",
            "wait-for-http-config-svc-8080-healthz",
            "01-migrate",
            "setup"
        ]
    );
    let spec = stored.spec.as_ref().unwrap();
    let volumes = volume_names(&stored);
    assert!(
        volumes.contains(&"config".to_owned()) && volumes.contains(&"scratch".to_owned()),
        "{volumes:?}"
    );
    let mounts: Vec<&str> = spec.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert!(
        mounts.contains(&"/config") && mounts.contains(&"/scratch"),
        "{mounts:?}"
    );
    let status = &stored.metadata.annotations.as_ref().unwrap()["init.example/status"];
    assert!(status.contains("\"01-migrate\""), "{status}");
    let migrate = &spec.init_containers.as_ref().unwrap()[2];
    assert_eq!(
        migrate.command.as_deref().unwrap(),
        ["migrate", "--to", "latest"]
    );
    assert_eq!(migrate.image.as_deref(), Some("registry.example.com/app:1"));

    unregister(&client, &[ns.as_str()]).await;
}

#[tokio::test]
async fn deployment_pods_made_by_the_controllers_are_mutated() {
    let client = client().await;
    let ns = namespace(&client, "e2e-deployment", &[]).await;
    let webhook = Webhook::start("deployment", &[]);
    inject_into(&client, &ns, &webhook, "Fail").await;

    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "shop"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}, "annotations": {"init.example/wait-for": "redis:6379"}},
                "spec": app_spec(),
            },
        },
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    let made = loop {
        let list = pods
            .list(&ListParams::default().labels("app=shop"))
            .await
            .unwrap();
        if list.items.len() >= 2 {
            break list.items;
        }
        assert!(
            Instant::now() < deadline,
            "the controllers made {} pods",
            list.items.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for pod in made {
        assert_eq!(
            init_names(&pod),
            ["wait-for-redis-6379"],
            "{:?}",
            pod.metadata.name
        );
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "ReplicaSet");
    }
    unregister(&client, &[ns.as_str()]).await;
}

/// How the sidecar webhook writes its patch.
#[derive(Clone, Copy)]
enum PatchWire {
    /// A base64 string, as Go writes `[]byte` and init-injector writes it.
    Base64,
    /// kube-rs's own serialization of `AdmissionResponse`: an array of numbers.
    KubeRs,
}

/// A second mutating webhook that appends a native sidecar, as a mesh injector does.
async fn start_sidecar_webhook(
    wire: PatchWire,
) -> (SocketAddr, String, axum_server::Handle<SocketAddr>) {
    use axum::routing::post;
    let (identity, generated) = loopback_identity();
    let app = axum::Router::new().route(
        "/mutate",
        post(move |body: axum::body::Bytes| async move {
            use base64::Engine;
            let review: Value = serde_json::from_slice(&body).unwrap();
            let request = &review["request"];
            let init = &request["object"]["spec"]["initContainers"];
            let sidecar = json!({"name": "mesh-proxy", "image": "mesh/proxy:1", "restartPolicy": "Always",
                                 "securityContext": restricted()});
            let already = init.as_array().is_some_and(|list| list.iter().any(|c| c["name"] == "mesh-proxy"));
            if let PatchWire::KubeRs = wire {
                use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
                let typed: AdmissionReview<kube::core::DynamicObject> = serde_json::from_slice(&body).unwrap();
                let typed: AdmissionRequest<kube::core::DynamicObject> = typed.try_into().unwrap();
                let mut response = AdmissionResponse::from(&typed);
                if !already {
                    let op: json_patch::PatchOperation = serde_json::from_value(
                        json!({"op": "add", "path": "/spec/initContainers/-", "value": sidecar}),
                    )
                    .unwrap();
                    response = response.with_patch(json_patch::Patch(vec![op])).unwrap();
                }
                let review = serde_json::to_string(&response.into_review()).unwrap();
                return ([(axum::http::header::CONTENT_TYPE, "application/json")], review);
            }
            let mut response = json!({"uid": request["uid"], "allowed": true});
            if !already {
                let patch = if init.is_array() {
                    json!([{"op": "add", "path": "/spec/initContainers/-", "value": sidecar}])
                } else {
                    json!([{"op": "add", "path": "/spec/initContainers", "value": [sidecar]}])
                };
                response["patchType"] = json!("JSONPatch");
                response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
            }
            let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
            ([(axum::http::header::CONTENT_TYPE, "application/json")], review.to_string())
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(identity.config),
    )
    .unwrap()
    .handle(handle.clone());
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    (addr, generated.ca_cert_pem, handle)
}

#[tokio::test]
async fn reinvocation_after_a_sidecar_webhook_leaves_one_block_after_the_sidecar() {
    let client = client().await;
    let ns = namespace(&client, "e2e-reinvoke", &[]).await;
    let webhook = Webhook::start("reinvoke", &[]);
    let (sidecar_addr, sidecar_ca, sidecar) = start_sidecar_webhook(PatchWire::Base64).await;
    // Webhooks are called in the order of their configurations' names: ours
    // ("e2e-reinvoke") before the mesh's ("e2e-reinvoke-z-mesh").
    inject_into(&client, &ns, &webhook, "Fail").await;
    let sidecar_url = format!("https://{sidecar_addr}/mutate");
    register(
        &client,
        "e2e-reinvoke-z-mesh",
        pod_webhook(
            "mesh",
            &sidecar_url,
            &sidecar_ca,
            (LABEL, &ns),
            "Fail",
            "Never",
        ),
    )
    .await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Until the API server calls the mesh's webhook, each attempt creates a pod of its
    // own name.
    let mut attempt = 0;
    let stored = loop {
        attempt += 1;
        let name = format!("meshed-{attempt}");
        let mut spec = app_spec();
        spec["initContainers"] =
            json!([{"name": "setup", "image": "setup:1", "securityContext": restricted()}]);
        let created = pods
            .create(
                &PostParams::default(),
                &pod(&name, json!({"init.example/wait-for": "db:5432"}), spec),
            )
            .await
            .unwrap();
        if init_names(&created).contains(&"mesh-proxy".to_owned()) {
            break created;
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar webhook never became active"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        init_names(&stored),
        ["setup", "mesh-proxy", "wait-for-db-5432"]
    );
    sidecar.shutdown();
    unregister(&client, &[ns.as_str(), "e2e-reinvoke-z-mesh"]).await;
}

/// kube-rs/kube#1781 asks whether the apiserver accepts kube's own patch encoding (a JSON
/// array of numbers instead of base64). It does: Go decodes a number array into []byte.
#[tokio::test]
async fn the_apiserver_accepts_kube_rs_number_array_patches() {
    let client = client().await;
    let ns = namespace(&client, "e2e-kube-wire", &[]).await;
    let (addr, ca, handle) = start_sidecar_webhook(PatchWire::KubeRs).await;
    register(
        &client,
        "e2e-kube-wire",
        pod_webhook(
            "kube-wire",
            &format!("https://{addr}/mutate"),
            &ca,
            (LABEL, &ns),
            "Fail",
            "Never",
        ),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut spec = app_spec();
    spec["initContainers"] =
        json!([{"name": "setup", "image": "setup:1", "securityContext": restricted()}]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dry = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let answer = pods
            .create(&dry, &pod("p", json!({}), spec.clone()))
            .await
            .unwrap();
        if init_names(&answer) == ["setup", "mesh-proxy"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the number-array patch was never applied: {:?}",
            init_names(&answer)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    handle.shutdown();
    unregister(&client, &["e2e-kube-wire"]).await;
}

#[tokio::test]
async fn server_side_dry_run_returns_the_mutated_pod_and_stores_nothing() {
    let client = client().await;
    let ns = namespace(&client, "e2e-dry-run", &[]).await;
    let webhook = Webhook::start("dry-run", &[]);
    inject_into(&client, &ns, &webhook, "Fail").await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let answer = pods
        .create(
            &dry,
            &pod(
                "dry",
                json!({"init.example/wait-for": "db:5432", "init.example/volumes": "v:/v"}),
                app_spec(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(init_names(&answer), ["wait-for-db-5432"]);
    assert!(
        pods.get_opt("dry").await.unwrap().is_none(),
        "a dry run stored the pod"
    );
    unregister(&client, &[ns.as_str()]).await;
}

#[tokio::test]
async fn invalid_annotations_are_refused_or_admitted_with_a_warning() {
    let client = client().await;
    let deny_ns = namespace(&client, "e2e-invalid-deny", &[]).await;
    let warn_ns = namespace(&client, "e2e-invalid-warn", &[]).await;
    let deny = Webhook::start("invalid-deny", &[]);
    let warn = Webhook::start("invalid-warn", &["--on-invalid", "warn"]);
    inject_into(&client, &deny_ns, &deny, "Fail").await;
    inject_into(&client, &warn_ns, &warn, "Fail").await;

    let typo = pod(
        "typo",
        json!({"init.example/wiat-for": "db:5432"}),
        app_spec(),
    );
    let err = Api::<Pod>::namespaced(client.clone(), &deny_ns)
        .create(&PostParams::default(), &typo)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("denied the request"), "{text}");
    assert!(
        text.contains("init.example/wiat-for")
            && text.contains("did you mean init.example/wait-for?"),
        "{text}"
    );

    // Warn mode: admitted unchanged, and the message comes back as a Warning header.
    let request = http::Request::post(format!("/api/v1/namespaces/{warn_ns}/pods"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&typo).unwrap())
        .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let warnings: Vec<String> = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("did you mean init.example/wait-for?")),
        "{warnings:?}"
    );
    let stored = Api::<Pod>::namespaced(client.clone(), &warn_ns)
        .get("typo")
        .await
        .unwrap();
    assert!(init_names(&stored).is_empty());
    unregister(&client, &[deny_ns.as_str(), warn_ns.as_str()]).await;
}

#[tokio::test]
async fn restricted_namespace_admits_the_mutated_pod() {
    let client = client().await;
    let ns = namespace(
        &client,
        "e2e-restricted",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    )
    .await;
    let webhook = Webhook::start("restricted", &[]);
    inject_into(&client, &ns, &webhook, "Fail").await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let annotations = json!({
        "init.example/wait-for": "db:5432,https://vault.svc:8200/v1/sys/health",
        "init.example/run.migrate": "migrate",
        "init.example/volumes": "config:/config",
    });
    let stored = pods
        .create(
            &PostParams::default(),
            &pod("compliant", annotations, app_spec()),
        )
        .await
        .unwrap();
    assert_eq!(init_names(&stored).len(), 3);

    // Pod Security really enforces here: an app container that is not compliant is
    // refused, injection or not.
    let spec = json!({"containers": [{"name": "app", "image": "app:1"}]});
    let err = pods
        .create(
            &PostParams::default(),
            &pod(
                "not-compliant",
                json!({"init.example/wait-for": "db:1"}),
                spec,
            ),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("violates PodSecurity \"restricted"),
        "{err}"
    );
    unregister(&client, &[ns.as_str()]).await;
}

#[tokio::test]
async fn failure_policy_decides_when_the_webhook_is_down() {
    let client = client().await;
    let fail_ns = namespace(&client, "e2e-down-fail", &[]).await;
    let ignore_ns = namespace(&client, "e2e-down-ignore", &[]).await;
    let mut webhook = Webhook::start("down", &[]);
    inject_into(&client, &fail_ns, &webhook, "Fail").await;
    inject_into(&client, &ignore_ns, &webhook, "Ignore").await;
    webhook.stop();

    let annotated = pod("p", json!({"init.example/wait-for": "db:5432"}), app_spec());
    let err = Api::<Pod>::namespaced(client.clone(), &fail_ns)
        .create(&PostParams::default(), &annotated)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("failed calling webhook"), "{err}");
    let admitted = Api::<Pod>::namespaced(client.clone(), &ignore_ns)
        .create(&PostParams::default(), &annotated)
        .await
        .unwrap();
    assert!(init_names(&admitted).is_empty(), "admitted unmutated");
    unregister(&client, &[fail_ns.as_str(), ignore_ns.as_str()]).await;
}

/// The API server fills in defaults after our patch (termination message fields, pull
/// policy, canonical quantities) and, with `reinvocationPolicy: IfNeeded`, may review the
/// pod again: that review, and `inject` over the stored pod, must change nothing.
#[tokio::test]
async fn a_stored_pod_is_recognised_as_injected() {
    let client = client().await;
    let ns = namespace(&client, "e2e-defaults", &[]).await;
    let webhook = Webhook::start("defaults", &[]);
    inject_into(&client, &ns, &webhook, "Fail").await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let annotations = json!({
        "init.example/wait-for": "postgres.db.svc:5432,https://vault.svc:8200/v1/sys/health",
        "init.example/run.migrate": "migrate --to latest",
        "init.example/volumes": "config:/config,scratch:/scratch:Memory:1024Mi",
        "init.example/wait-timeout": "90s",
    });
    pods.create(
        &PostParams::default(),
        &pod("counted", annotations, app_spec()),
    )
    .await
    .unwrap();
    let stored = pods.get("counted").await.unwrap();
    let scratch = stored.spec.as_ref().unwrap().volumes.as_ref().unwrap();
    let size = scratch.iter().find(|v| v.name == "scratch").unwrap();
    assert_eq!(
        size.empty_dir
            .as_ref()
            .unwrap()
            .size_limit
            .as_ref()
            .unwrap()
            .0,
        "1Gi",
        "the API server canonicalises quantities after our patch"
    );
    let waits = stored
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .as_ref()
        .unwrap();
    assert_eq!(
        waits[0].termination_message_path.as_deref(),
        Some("/dev/termination-log"),
        "the API server fills in defaults after our patch"
    );

    let log = std::fs::read_to_string(&webhook.log_path).unwrap();
    let patches: Vec<u64> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["message"] == "review" && entry["pod"] == "counted")
        .map(|entry| entry["patch_ops"].as_u64().unwrap())
        .collect();
    assert!(
        !patches.is_empty() && patches.len() <= 2,
        "reviews of the pod: {patches:?}"
    );
    assert!(patches[0] > 0, "the first review injects: {patches:?}");
    assert!(
        patches[1..].iter().all(|&ops| ops == 0),
        "a later review of the injected pod must be an empty patch: {patches:?}"
    );

    // Offline, the stored pod (as `kubectl get -o yaml` would give it) comes out unchanged.
    let yaml = serde_yaml_ng::to_string(&stored).unwrap();
    if let Ok(logs) = std::env::var("INIT_INJECTOR_E2E_LOGS") {
        std::fs::write(PathBuf::from(logs).join("stored-pod.yaml"), &yaml).unwrap();
    }
    let mut inject = Command::new(env!("CARGO_BIN_EXE_init-injector"))
        .args(["inject", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    inject
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let output = inject.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        yaml,
        "inject changed a pod the API server stored"
    );

    unregister(&client, &[ns.as_str()]).await;
}
