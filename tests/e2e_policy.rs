//! `serve --watch-policies` against the real kube-apiserver that `tests/e2e/run.sh`
//! starts: the chart's InitPolicy CRD (its `crds/` file), the chart's policy ClusterRole
//! bound to a ServiceAccount whose token is all the webhook has, and a registration by URL
//! with no annotation-only matchConditions (the chart's `podFilter: all`). The webhook
//! reaches the API server through a relay the test controls ([`common::proxy`]), so the
//! API server can be made slow or unreachable for the webhook alone.
//!
//! Every assertion is on pods as the API server stored them, and on the policies'
//! status as the webhook wrote it.
#![cfg(feature = "e2e")]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use init_injector::engine::policy::crd::InitPolicy;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

mod common;
use common::accounts::{create_service_account, service_account_kubeconfig};
use common::helm::{CHART, helm_ok};
use common::node::client;
use common::proxy::{Mode, Proxy};
use common::webhook::{Webhook, create_namespace, pod_webhook, register, wait_until_active};
use common::{init_names, volume_names};

const MANAGER: &str = "init-injector-e2e";
/// Where the ServiceAccounts of the webhooks below live.
const SYSTEM: &str = "policy-e2e-system";

/// Polls `check` every 200 ms until it returns `Some`, for at most `seconds`.
async fn poll<T, F, Fut>(what: &str, seconds: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let limit = Duration::from_secs(seconds);
    common::eventually_every(Duration::from_millis(200), limit, async || {
        check().await.ok_or_else(|| format!("waiting for {what}"))
    })
    .await
}

fn apply_params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// Applies the chart's CRD file and waits until the API server serves the kind.
async fn install_crd(client: &Client) {
    let text =
        std::fs::read_to_string(format!("{CHART}/crds/initpolicies.init.example.yaml")).unwrap();
    let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&text).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "initpolicies.init.example",
        &apply_params(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    poll("the InitPolicy CRD established", 30, || async {
        let crd = crds.get("initpolicies.init.example").await.ok()?;
        let established = crd
            .status?
            .conditions?
            .into_iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await;
}

/// The chart's policy ClusterRole and binding for release `release` in [`SYSTEM`], as
/// `helm template` renders them, applied; and the ServiceAccount they bind.
async fn chart_policy_rbac(client: &Client, release: &str) -> String {
    let rendered = helm_ok(&[
        "template",
        release,
        CHART,
        "-n",
        SYSTEM,
        "--kube-version",
        "1.36.3",
        "--set",
        "policies.enabled=true",
        "--show-only",
        "templates/policies-rbac.yaml",
    ]);
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&rendered)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|doc: &Value| !doc.is_null())
        .collect();
    assert_eq!(docs.len(), 2, "{rendered}");
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for doc in docs {
        let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
        match doc["kind"].as_str().unwrap() {
            "ClusterRole" => {
                roles
                    .patch(&name, &apply_params(), &Patch::Apply(&doc))
                    .await
                    .unwrap();
            }
            "ClusterRoleBinding" => {
                bindings
                    .patch(&name, &apply_params(), &Patch::Apply(&doc))
                    .await
                    .unwrap();
            }
            other => panic!("unexpected {other} in the policy RBAC"),
        }
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(SYSTEM).await.unwrap().is_none() {
        // Both tests may get here at once.
        let _ = namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": SYSTEM}})).unwrap(),
            )
            .await;
    }
    let account = format!("{release}-init-injector");
    create_service_account(client, SYSTEM, &account).await;
    account
}

/// A kubeconfig with the ServiceAccount's token whose server is `proxy`.
async fn kubeconfig_through(client: &Client, account: &str, proxy: &Proxy, dir: &Path) -> String {
    let path = service_account_kubeconfig(client, SYSTEM, account, dir).await;
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["clusters"][0]["cluster"]["server"] = json!(format!("https://{}", proxy.addr));
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    path.display().to_string()
}

/// The API server's address in `$KUBECONFIG`.
fn api_server_addr() -> SocketAddr {
    let admin: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(std::env::var("KUBECONFIG").unwrap()).unwrap(),
    )
    .unwrap();
    let server = admin["clusters"][0]["cluster"]["server"].as_str().unwrap();
    let url = url::Url::parse(server).unwrap();
    let host = url.host_str().unwrap().parse().unwrap();
    SocketAddr::new(host, url.port_or_known_default().unwrap())
}

/// The metrics address in the webhook's JSON log.
fn metrics_addr(webhook: &Webhook) -> SocketAddr {
    std::fs::read_to_string(&webhook.log_path)
        .unwrap()
        .lines()
        .find_map(|line| {
            let entry: Value = serde_json::from_str(line).ok()?;
            entry.get("metrics_addr")?.as_str()?.parse().ok()
        })
        .expect("serve logs its metrics address")
}

/// A metric's value, if the metrics port serves it.
async fn metric(webhook: &Webhook, name: &str) -> Option<f64> {
    let text = common::metrics(metrics_addr(webhook)).await;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.parse().ok())?
    })
}

/// `/readyz`'s status code.
async fn readyz(webhook: &Webhook) -> u16 {
    let http = common::client(&[&webhook.ca_pem], false);
    http.get(format!("https://localhost:{}/readyz", webhook.addr.port()))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Applies an InitPolicy named `name` with `spec` (server-side apply: create or update).
async fn apply_policy(client: &Client, name: &str, spec: Value) {
    let policies: Api<InitPolicy> = Api::all(client.clone());
    let policy = json!({
        "apiVersion": "init.example/v1alpha1", "kind": "InitPolicy",
        "metadata": {"name": name}, "spec": spec,
    });
    policies
        .patch(name, &apply_params(), &Patch::Apply(&policy))
        .await
        .unwrap();
}

async fn delete_policy(client: &Client, name: &str) {
    let policies: Api<InitPolicy> = Api::all(client.clone());
    let _ = policies.delete(name, &DeleteParams::default()).await;
}

/// The policy's `Accepted` condition once the webhook has written it for the policy's
/// current generation: (status, reason, message).
async fn accepted(client: &Client, name: &str) -> (String, String, String) {
    let policies: Api<InitPolicy> = Api::all(client.clone());
    poll(&format!("the Accepted condition of {name}"), 30, || async {
        let policy = policies.get(name).await.ok()?;
        let generation = policy.metadata.generation;
        let status = policy.status?;
        let condition = status
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Accepted")?;
        (condition.observed_generation == generation && status.observed_generation == generation)
            .then_some((condition.status, condition.reason, condition.message))
    })
    .await
}

fn pod(name: &str, annotations: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]},
    }))
    .unwrap()
}

/// Creates a pod and returns it as the API server stored it.
async fn create(client: &Client, ns: &str, name: &str, annotations: Value) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(&PostParams::default(), &pod(name, annotations))
        .await
        .unwrap_or_else(|err| panic!("pod {ns}/{name} refused: {err}"))
}

/// Creates pods named `NAME-1`, `NAME-2`, … until one satisfies `done` (the watch
/// delivers a change a moment after it is made); returns that pod.
async fn next_pod_where(
    client: &Client,
    ns: &str,
    name: &str,
    annotations: Value,
    what: &str,
    done: impl Fn(&Pod) -> bool,
) -> Pod {
    let mut attempt = 0;
    poll(what, 20, || {
        attempt += 1;
        let annotations = annotations.clone();
        let done = &done;
        async move {
            let pod = create(client, ns, &format!("{name}-{attempt}"), annotations).await;
            done(&pod).then_some(pod)
        }
    })
    .await
}

/// The `init.example/status` annotation, parsed.
fn status(pod: &Pod) -> Option<Value> {
    let text = pod
        .metadata
        .annotations
        .as_ref()?
        .get("init.example/status")?;
    Some(serde_json::from_str(text).unwrap())
}

fn policies_in_status(pod: &Pod) -> Vec<String> {
    status(pod)
        .and_then(|s| s.get("policies").cloned())
        .map(|p| serde_json::from_value(p).unwrap())
        .unwrap_or_default()
}

/// The args of the init container `name`.
fn args_of(pod: &Pod, name: &str) -> Vec<String> {
    pod.spec
        .as_ref()
        .unwrap()
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no init container {name}: {:?}", init_names(pod)))
        .args
        .clone()
        .unwrap_or_default()
}

/// `--timeout`'s value in `args`.
fn timeout_arg(args: &[String]) -> &str {
    let at = args
        .iter()
        .position(|a| a == "--timeout")
        .expect("--timeout");
    &args[at + 1]
}

fn log_of(webhook: &Webhook) -> String {
    std::fs::read_to_string(&webhook.log_path).unwrap()
}

/// A webhook watching policies as `release`'s ServiceAccount through `proxy` (in the mode
/// it is in), registered for namespaces labelled `e2e-policy=LABEL`.
async fn start_webhook(client: &Client, release: &str, proxy: &Proxy, dir: &Path) -> Webhook {
    install_crd(client).await;
    let account = chart_policy_rbac(client, release).await;
    let kubeconfig = kubeconfig_through(client, &account, proxy, dir).await;
    Webhook::start_with_env(
        release,
        &["--watch-policies"],
        &[("KUBECONFIG", std::ffi::OsStr::new(&kubeconfig))],
    )
}

#[tokio::test]
async fn policies_apply_live_and_survive_an_api_outage() {
    init_injector::crypto::install_provider();
    let client = client().await;
    let dir = tempfile::tempdir().unwrap();
    let label = ("e2e-policy", "live");
    let (prod, dev) = ("policy-live-prod", "policy-live-dev");

    // Not ready while the first lists cannot complete.
    let proxy = Proxy::start(api_server_addr(), Mode::Hold).await;
    let mut webhook = start_webhook(&client, "live", &proxy, dir.path()).await;
    for _ in 0..3 {
        assert_eq!(readyz(&webhook).await, 503, "ready before listing");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    proxy.set(Mode::Open);
    poll("/readyz once both kinds are listed", 30, || async {
        (readyz(&webhook).await == 200).then_some(())
    })
    .await;
    assert_eq!(
        metric(&webhook, "init_injector_policy_watch_stale_seconds").await,
        Some(0.0)
    );

    register(
        &client,
        "policy-live.init-injector.e2e",
        pod_webhook(
            "policy-live",
            &webhook.url(),
            &webhook.ca_pem,
            label,
            "Fail",
            "IfNeeded",
        ),
    )
    .await;
    create_namespace(&client, prod, &[label, ("tier", "prod")]).await;
    create_namespace(&client, dev, &[label, ("tier", "dev")]).await;
    let spec = json!({"containers": [{"name": "app", "image": "registry.example.com/app:1"}]});
    wait_until_active(&client, dev, spec).await;

    // A policy for namespaces labelled tier=prod (and this test's label).
    let selector = json!({"matchLabels": {"tier": "prod", "e2e-policy": "live"}});
    apply_policy(
        &client,
        "live-vault",
        json!({
            "namespaceSelector": selector,
            "waitFor": ["vault:8200"],
            "volumes": [{"name": "policy-cache", "mountPath": "/policy-cache"}],
        }),
    )
    .await;
    assert_eq!(accepted(&client, "live-vault").await.0, "True");
    let annotated = json!({"init.example/wait-for": "db:5432"});
    let pod = next_pod_where(
        &client,
        prod,
        "vault",
        annotated.clone(),
        "the policy applied",
        |p| init_names(p).contains(&"wait-for-vault-8200".to_owned()),
    )
    .await;
    assert_eq!(
        init_names(&pod),
        ["wait-for-vault-8200", "wait-for-db-5432"]
    );
    assert!(
        volume_names(&pod).contains(&"policy-cache".to_owned()),
        "{:?}",
        volume_names(&pod)
    );
    let app = &pod.spec.as_ref().unwrap().containers[0];
    assert!(
        app.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "policy-cache" && m.mount_path == "/policy-cache"),
        "the app container mounts the policy volume: {:?}",
        app.volume_mounts
    );
    assert_eq!(policies_in_status(&pod), ["live-vault"]);
    let bare = create(&client, prod, "bare", json!({})).await;
    assert_eq!(
        init_names(&bare),
        ["wait-for-vault-8200"],
        "a pod without annotations that a policy selects is injected"
    );

    // Not selected: untouched by the policy.
    let other = create(&client, dev, "other", annotated.clone()).await;
    assert_eq!(init_names(&other), ["wait-for-db-5432"]);
    assert!(
        policies_in_status(&other).is_empty(),
        "{:?}",
        status(&other)
    );
    let plain = create(&client, dev, "plain", json!({})).await;
    assert!(init_names(&plain).is_empty());
    assert_eq!(status(&plain), None);

    // A change applies to the next pod, without a restart.
    let pid = webhook.child.id();
    apply_policy(
        &client,
        "live-vault",
        json!({"namespaceSelector": selector, "waitFor": ["secrets:9000"]}),
    )
    .await;
    let changed = next_pod_where(
        &client,
        prod,
        "changed",
        annotated.clone(),
        "the change",
        |p| !init_names(p).contains(&"wait-for-vault-8200".to_owned()),
    )
    .await;
    assert_eq!(
        init_names(&changed),
        ["wait-for-secrets-9000", "wait-for-db-5432"]
    );
    assert!(!volume_names(&changed).contains(&"policy-cache".to_owned()));
    assert!(webhook.child.try_wait().unwrap().is_none() && webhook.child.id() == pid);

    // Deleted: the next pod is untouched by it.
    delete_policy(&client, "live-vault").await;
    let after = next_pod_where(
        &client,
        prod,
        "deleted",
        annotated.clone(),
        "the deletion",
        |p| policies_in_status(p).is_empty(),
    )
    .await;
    assert_eq!(init_names(&after), ["wait-for-db-5432"]);

    // enforce: true injects the enforced policy's parts into a pod that opted out.
    apply_policy(
        &client,
        "live-enforced",
        json!({"namespaceSelector": selector, "waitFor": ["audit:7000"], "enforce": true}),
    )
    .await;
    assert_eq!(accepted(&client, "live-enforced").await.0, "True");
    let opted_out = json!({"init.example/inject": "false", "init.example/wait-for": "db:5432"});
    let enforced = next_pod_where(
        &client,
        prod,
        "enforced",
        opted_out.clone(),
        "enforcement",
        |p| !init_names(p).is_empty(),
    )
    .await;
    assert_eq!(init_names(&enforced), ["wait-for-audit-7000"]);
    assert_eq!(policies_in_status(&enforced), ["live-enforced"]);
    let opted_out_dev = create(&client, dev, "opted-out", opted_out).await;
    assert!(
        init_names(&opted_out_dev).is_empty(),
        "no enforced policy selects it"
    );

    // A namespace's P/wait-timeout is the default for its pods; the pod's own wins.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            prod,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"init.example/wait-timeout": "2m"}}}),
            ),
        )
        .await
        .unwrap();
    let defaulted = next_pod_where(
        &client,
        prod,
        "ns-timeout",
        annotated.clone(),
        "the namespace default",
        |p| timeout_arg(&args_of(p, "wait-for-db-5432")) == "2m",
    )
    .await;
    assert_eq!(
        timeout_arg(&args_of(&defaulted, "wait-for-audit-7000")),
        "2m"
    );
    let own = create(
        &client,
        prod,
        "own-timeout",
        json!({"init.example/wait-for": "db:5432", "init.example/wait-timeout": "30s"}),
    )
    .await;
    assert_eq!(timeout_arg(&args_of(&own, "wait-for-db-5432")), "30s");

    // The API server unreachable for the webhook: the last known state keeps serving,
    // and the staleness counts from the break.
    proxy.set(Mode::Cut);
    let stale = poll("a stale watch reported", 30, || async {
        metric(&webhook, "init_injector_policy_watch_stale_seconds")
            .await
            .filter(|s| *s > 0.0)
    })
    .await;
    let during = create(&client, prod, "during-outage", annotated.clone()).await;
    assert_eq!(
        init_names(&during),
        ["wait-for-audit-7000", "wait-for-db-5432"]
    );
    assert_eq!(
        readyz(&webhook).await,
        200,
        "an outage does not take the webhook out"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = metric(&webhook, "init_injector_policy_watch_stale_seconds")
        .await
        .unwrap();
    assert!(
        later >= stale + 1.5,
        "staleness grows: {stale} then {later}"
    );
    assert!(log_of(&webhook).contains("cannot watch; serving the last known state"));
    proxy.set(Mode::Open);
    poll("the watch restored", 60, || async {
        metric(&webhook, "init_injector_policy_watch_stale_seconds")
            .await
            .filter(|s| *s == 0.0)
    })
    .await;
    assert!(
        log_of(&webhook).contains("watch restored"),
        "{}",
        log_of(&webhook)
    );
    // The watch is live again: a deletion made after the outage applies.
    delete_policy(&client, "live-enforced").await;
    let restored = next_pod_where(
        &client,
        prod,
        "restored",
        annotated,
        "a change after the outage",
        |p| policies_in_status(p).is_empty(),
    )
    .await;
    assert_eq!(init_names(&restored), ["wait-for-db-5432"]);

    webhook.stop();
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let _ = configs
        .delete("policy-live.init-injector.e2e", &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn an_invalid_policy_is_reported_and_never_blocks_admission() {
    init_injector::crypto::install_provider();
    let client = client().await;
    let dir = tempfile::tempdir().unwrap();
    let label = ("e2e-policy", "invalid");
    let ns = "policy-invalid-apps";
    let proxy = Proxy::start(api_server_addr(), Mode::Open).await;
    let mut webhook = start_webhook(&client, "invalid", &proxy, dir.path()).await;
    poll("/readyz", 30, || async {
        (readyz(&webhook).await == 200).then_some(())
    })
    .await;
    register(
        &client,
        "policy-invalid.init-injector.e2e",
        pod_webhook(
            "policy-invalid",
            &webhook.url(),
            &webhook.ca_pem,
            label,
            "Fail",
            "IfNeeded",
        ),
    )
    .await;
    create_namespace(&client, ns, &[label]).await;
    let spec = json!({"containers": [{"name": "app", "image": "registry.example.com/app:1"}]});
    wait_until_active(&client, ns, spec).await;

    let selector = json!({"matchLabels": {"e2e-policy": "invalid"}});
    let rejected_before = metric(&webhook, "init_injector_policies_rejected")
        .await
        .unwrap();
    apply_policy(
        &client,
        "invalid-nowhere",
        json!({"namespaceSelector": selector, "waitFor": ["nowhere"]}),
    )
    .await;
    apply_policy(
        &client,
        "invalid-no-command",
        json!({"namespaceSelector": selector, "steps": [{"name": "setup"}]}),
    )
    .await;
    apply_policy(
        &client,
        "invalid-good",
        json!({"namespaceSelector": selector, "waitFor": ["good:1234"]}),
    )
    .await;

    let (status, reason, message) = accepted(&client, "invalid-nowhere").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(
        message.contains("spec.waitFor[0]") && message.contains("nowhere"),
        "{message}"
    );
    let (status, reason, message) = accepted(&client, "invalid-no-command").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(
        message.contains("spec.steps[0]") && message.contains("neither a command nor an image"),
        "{message}"
    );
    assert_eq!(accepted(&client, "invalid-good").await.0, "True");

    // Pods keep being admitted, with the valid policy.
    let pod = next_pod_where(
        &client,
        ns,
        "admitted",
        json!({"init.example/wait-for": "db:5432"}),
        "the valid policy",
        |p| !policies_in_status(p).is_empty(),
    )
    .await;
    assert_eq!(init_names(&pod), ["wait-for-good-1234", "wait-for-db-5432"]);
    assert_eq!(policies_in_status(&pod), ["invalid-good"]);
    let rejected = metric(&webhook, "init_injector_policies_rejected")
        .await
        .unwrap();
    assert!(
        rejected >= rejected_before + 2.0,
        "rejected policies counted: {rejected_before} then {rejected}"
    );
    let log = log_of(&webhook);
    assert!(
        log.contains("InitPolicy rejected") && log.contains("invalid-nowhere"),
        "{log}"
    );

    // Fixed: accepted, with a new generation observed.
    apply_policy(
        &client,
        "invalid-nowhere",
        json!({"namespaceSelector": selector, "waitFor": ["somewhere:80"]}),
    )
    .await;
    let (status, reason, _) = accepted(&client, "invalid-nowhere").await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Valid"));
    let fixed = next_pod_where(&client, ns, "fixed", json!({}), "the fixed policy", |p| {
        policies_in_status(p).len() == 2
    })
    .await;
    assert_eq!(
        init_names(&fixed),
        ["wait-for-good-1234", "wait-for-somewhere-80"]
    );

    for name in ["invalid-nowhere", "invalid-no-command", "invalid-good"] {
        delete_policy(&client, name).await;
    }
    webhook.stop();
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let _ = configs
        .delete("policy-invalid.init-injector.e2e", &DeleteParams::default())
        .await;
}
