//! The Helm chart against a real helm and a real kube-apiserver, started by
//! `tests/e2e/run.sh` inside a network namespace of its own (kube-apiserver runs with
//! `--enable-aggregator-routing`, so it calls a webhook's Service at the addresses in the
//! Service's EndpointSlices).
//!
//! The chart's own pods are kept off any node (a nodeSelector nothing matches); the test
//! plays their part: it runs `init-injector serve` with the chart's arguments on the
//! namespace's private address, with a token of the chart's ServiceAccount (so the
//! chart's RBAC is what allows or refuses every call), and publishes an EndpointSlice
//! for the chart's Service that points at it. Every pod below reaches the webhook the
//! way it does in a cluster: API server → Service → endpoint → TLS checked against the
//! `caBundle`.
#![cfg(feature = "e2e")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use serde_json::{Value, json};

mod common;
use common::accounts::service_account_kubeconfig;
use common::helm::{CHART, helm, helm_ok};
use common::init_names;
use common::node::{client, host_ip, logs_dir};
use common::webhook::create_namespace;

fn template(extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "template",
        "rel",
        CHART,
        "--namespace",
        "init-system",
        "--kube-version",
        "1.36.3",
        "--skip-tests",
    ];
    args.extend_from_slice(extra);
    let text = helm_ok(&args);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = docs
        .iter()
        .map(|doc| doc["kind"].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    kinds
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|doc| doc["kind"] == kind).collect()
}

fn values_file(dir: &Path, name: &str, values: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(values).unwrap()).unwrap();
    path.display().to_string()
}

#[test]
fn lint_and_render_every_certificate_mode() {
    helm_ok(&["lint", "--strict", CHART, "--kube-version", "1.36.3"]);

    let self_mode = template(&[]);
    assert_eq!(
        kinds(&self_mode),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "MutatingWebhookConfiguration",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    let webhook = &of_kind(&self_mode, "MutatingWebhookConfiguration")[0]["webhooks"][0];
    assert!(
        webhook["clientConfig"].get("caBundle").is_none(),
        "self mode renders no caBundle: the binary writes it, so GitOps sees no drift"
    );
    assert_eq!(webhook["failurePolicy"], "Fail");
    assert_eq!(webhook["sideEffects"], "None");
    assert_eq!(webhook["reinvocationPolicy"], "IfNeeded");
    assert_eq!(webhook["timeoutSeconds"], 5);
    assert_eq!(webhook["rules"][0]["operations"], json!(["CREATE"]));
    let excluded = &webhook["namespaceSelector"]["matchExpressions"][0];
    assert_eq!(excluded["key"], "kubernetes.io/metadata.name");
    assert_eq!(excluded["values"], json!(["kube-system", "init-system"]));
    let condition = webhook["matchConditions"][0]["expression"]
        .as_str()
        .unwrap();
    assert!(
        condition.contains("startsWith(\"init.example/\")"),
        "{condition}"
    );
    // Every rule names its object, except `create` on Secrets (no name exists yet).
    for role in of_kind(&self_mode, "Role")
        .into_iter()
        .chain(of_kind(&self_mode, "ClusterRole"))
    {
        for rule in role["rules"].as_array().unwrap() {
            let verbs = rule["verbs"].as_array().unwrap();
            assert!(
                rule.get("resourceNames").is_some() || verbs == &[json!("create")],
                "an unrestricted rule: {rule}"
            );
        }
    }
    let deployment = &of_kind(&self_mode, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .unwrap();
    assert!(
        pause < grace,
        "preStop {pause}s must end before the grace period {grace}s"
    );

    // `helm test`: a pod of the webhook's image running `self-test`, and its RBAC.
    let with_tests = helm_ok(&[
        "template",
        "rel",
        CHART,
        "-n",
        "init-system",
        "--kube-version",
        "1.36.3",
        "--show-only",
        "templates/tests/self-test.yaml",
    ]);
    let hooks: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&with_tests)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect();
    let test_pod = &of_kind(&hooks, "Pod")[0];
    assert_eq!(test_pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    assert_eq!(test_pod["spec"]["containers"][0]["args"][0], "self-test");
    assert_eq!(
        of_kind(&hooks, "Role")[0]["metadata"]["namespace"],
        "default"
    );

    let cert_manager = template(&["--set", "certificates.mode=cert-manager"]);
    assert!(kinds(&cert_manager).contains(&"Certificate".to_owned()));
    assert!(kinds(&cert_manager).contains(&"Issuer".to_owned()));
    assert!(
        !kinds(&cert_manager).contains(&"Role".to_owned()),
        "no RBAC without self mode"
    );
    let config = &of_kind(&cert_manager, "MutatingWebhookConfiguration")[0];
    assert_eq!(
        config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "init-system/rel-init-injector"
    );
    assert_eq!(
        of_kind(&cert_manager, "Certificate")[0]["spec"]["dnsNames"][0],
        "rel-init-injector.init-system.svc"
    );

    let dir = tempfile::tempdir().unwrap();
    let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let values = values_file(
        dir.path(),
        "secret.json",
        &json!({"certificates": {"mode": "secret", "secret": {"name": "my-tls", "caBundle": ca}}}),
    );
    let secret_mode = template(&["-f", &values]);
    let webhook = &of_kind(&secret_mode, "MutatingWebhookConfiguration")[0]["webhooks"][0];
    use base64::Engine as _;
    assert_eq!(
        webhook["clientConfig"]["caBundle"],
        base64::engine::general_purpose::STANDARD.encode(ca)
    );
    let volumes = &of_kind(&secret_mode, "Deployment")[0]["spec"]["template"]["spec"]["volumes"];
    assert_eq!(volumes[0]["secret"]["secretName"], "my-tls");
}

/// The webhook's matchConditions, or `None` when there are none.
fn match_conditions(docs: &[Value]) -> Option<Value> {
    let webhook = &of_kind(docs, "MutatingWebhookConfiguration")[0]["webhooks"][0];
    webhook.get("matchConditions").cloned()
}

fn webhook_args(docs: &[Value]) -> Vec<String> {
    let deployment = of_kind(docs, "Deployment")[0];
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arg| arg.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn policies_and_every_pod_filter_render_what_they_say() {
    helm_ok(&[
        "lint",
        "--strict",
        CHART,
        "--kube-version",
        "1.36.3",
        "--set",
        "policies.enabled=true",
    ]);

    // Off (the default): today's chart, annotated pods only, no policy RBAC.
    let off = template(&[]);
    assert!(!webhook_args(&off).contains(&"--watch-policies".to_owned()));
    let conditions = match_conditions(&off).expect("annotated pods only by default");
    assert!(
        conditions[0]["expression"]
            .as_str()
            .unwrap()
            .contains("startsWith(\"init.example/\")"),
        "{conditions}"
    );
    assert!(
        of_kind(&off, "ClusterRole")
            .iter()
            .all(|role| role["metadata"]["name"] != "rel-init-injector-policies")
    );

    // serve picks its review threads unless told.
    assert!(
        !webhook_args(&off)
            .iter()
            .any(|arg| arg.starts_with("--review-threads"))
    );
    let told = template(&["--set", "reviewThreads=0"]);
    assert!(webhook_args(&told).contains(&"--review-threads=0".to_owned()));

    // On: --watch-policies, every pod sent (auto), exactly the watch's RBAC.
    let on = template(&["--set", "policies.enabled=true"]);
    assert!(webhook_args(&on).contains(&"--watch-policies".to_owned()));
    assert_eq!(
        match_conditions(&on),
        None,
        "podFilter auto sends every pod when policies are on"
    );
    let role = of_kind(&on, "ClusterRole")
        .into_iter()
        .find(|role| role["metadata"]["name"] == "rel-init-injector-policies")
        .expect("a ClusterRole for the policy watch");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": ["init.example"], "resources": ["initpolicies"], "verbs": ["list", "watch"]},
            {"apiGroups": ["init.example"], "resources": ["initpolicies/status"], "verbs": ["get", "patch"]},
        ])
    );
    let binding = of_kind(&on, "ClusterRoleBinding")
        .into_iter()
        .find(|b| b["metadata"]["name"] == "rel-init-injector-policies")
        .expect("its binding");
    assert_eq!(binding["roleRef"]["name"], "rel-init-injector-policies");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "rel-init-injector", "namespace": "init-system"}])
    );

    // Every mode talks to the API server once policies are on: the token is mounted.
    let cert_manager = template(&[
        "--set",
        "policies.enabled=true",
        "--set",
        "certificates.mode=cert-manager",
    ]);
    let pod = &of_kind(&cert_manager, "Deployment")[0]["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], true);
    let without = template(&["--set", "certificates.mode=cert-manager"]);
    let pod = &of_kind(&without, "Deployment")[0]["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);

    // An explicit podFilter wins over auto, with policies on or off.
    for (policies, filter, annotated_only) in [
        ("true", "annotated", true),
        ("true", "all", false),
        ("false", "annotated", true),
        ("false", "all", false),
        ("false", "auto", true),
        ("true", "auto", false),
    ] {
        let docs = template(&[
            "--set",
            &format!("policies.enabled={policies}"),
            "--set",
            &format!("webhook.podFilter={filter}"),
        ]);
        assert_eq!(
            match_conditions(&docs).is_some(),
            annotated_only,
            "policies.enabled={policies} webhook.podFilter={filter}"
        );
    }
}

/// NOTES.txt as `helm install --dry-run` prints it (helm renders NOTES only on install).
fn notes(values: &[&str]) -> String {
    let mut args = vec![
        "install",
        "notes",
        CHART,
        "-n",
        "notes-system",
        "--dry-run=client",
    ];
    args.extend_from_slice(values);
    let text = helm_ok(&args);
    text.split_once("NOTES:")
        .map(|(_, notes)| notes.to_owned())
        .unwrap_or_else(|| panic!("no NOTES in:\n{text}"))
}

#[test]
fn notes_warn_when_policies_reach_only_annotated_pods() {
    let warning = "WARNING: policies.enabled with webhook.podFilter=annotated";
    let warned = notes(&[
        "--set",
        "policies.enabled=true",
        "--set",
        "webhook.podFilter=annotated",
    ]);
    assert!(warned.contains(warning), "{warned}");
    let every_pod = notes(&["--set", "policies.enabled=true"]);
    assert!(!every_pod.contains(warning), "{every_pod}");
    assert!(
        every_pod.contains("refuses EVERY pod in those namespaces"),
        "podFilter all with failurePolicy Fail says what an outage does: {every_pod}"
    );
    let default = notes(&[]);
    assert!(
        !default.contains("WARNING") && !default.contains("EVERY"),
        "{default}"
    );
}

#[test]
fn the_schema_refuses_bad_values_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(Value, &str); 9] = [
        (json!({"replicaCount": "two"}), "/replicaCount"),
        (json!({"bogus": 1}), "'bogus' not allowed"),
        (
            json!({"certificates": {"mode": "vault"}}),
            "/certificates/mode",
        ),
        (
            json!({"webhook": {"failurePolicy": "Sometimes"}}),
            "/webhook/failurePolicy",
        ),
        (
            json!({"webhook": {"timeoutSeconds": 31}}),
            "/webhook/timeoutSeconds",
        ),
        (
            json!({"certificates": {"mode": "secret"}}),
            "/certificates/secret",
        ),
        (
            json!({"webhook": {"podFilter": "annotations"}}),
            "/webhook/podFilter",
        ),
        (json!({"policies": {"enabled": "yes"}}), "/policies/enabled"),
        (json!({"reviewThreads": 65}), "/reviewThreads"),
    ];
    for (index, (values, expected)) in cases.iter().enumerate() {
        let file = values_file(dir.path(), &format!("bad-{index}.json"), values);
        let output = helm(&[
            "template",
            "rel",
            CHART,
            "--kube-version",
            "1.36.3",
            "-f",
            &file,
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{values} was accepted");
        assert!(
            stderr.contains(expected),
            "the error for {values} does not name {expected}: {stderr}"
        );
    }
}

/// A replica of the webhook played by the test: `serve` with the chart's arguments.
struct Replica {
    child: Child,
    port: u16,
}

impl Replica {
    fn start(name: &str, port: u16, kubeconfig: Option<&Path>, args: &[String]) -> Replica {
        let log = std::fs::File::create(logs_dir().join(format!("chart-{name}.log"))).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_init-injector"));
        command
            .args([
                "--log-format",
                "json",
                "serve",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .arg(format!("--addr={}", SocketAddr::new(host_ip(), port)))
            .args(args)
            .stderr(log);
        if let Some(kubeconfig) = kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        Replica {
            child: command.spawn().unwrap(),
            port,
        }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((host_ip(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 200 ms until it holds, for at most `seconds`.
async fn poll<F, Fut>(what: &str, seconds: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let limit = Duration::from_secs(seconds);
    common::eventually_every(Duration::from_millis(200), limit, async || {
        check()
            .await
            .then_some(())
            .ok_or_else(|| format!("waiting for {what}"))
    })
    .await
}

/// Points the chart's Service at `port` on the namespace's private address, as the
/// EndpointSlice controller would for a Ready pod.
async fn publish_endpoint(client: &Client, namespace: &str, service: &str, port: u16) {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let name = format!("{service}-e2e");
    let _ = slices.delete(&name, &DeleteParams::default()).await;
    let slice: EndpointSlice = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/service-name": service,
            "endpointslice.kubernetes.io/managed-by": "init-injector-e2e"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [host_ip().to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }))
    .unwrap();
    slices.create(&PostParams::default(), &slice).await.unwrap();
}

fn annotated_pod(name: &str, annotations: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]},
    }))
    .unwrap()
}

/// Creates pods until one comes back injected (the API server's webhook and endpoint
/// caches follow changes a moment later), then returns its init containers.
async fn injected(client: &Client, namespace: &str, name: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let pod = annotated_pod(
            &format!("{name}-{attempt}"),
            json!({"init.example/wait-for": "db:5432"}),
        );
        let outcome = pods.create(&PostParams::default(), &pod).await;
        match outcome {
            Ok(pod) if !init_names(&pod).is_empty() => return init_names(&pod),
            other => assert!(
                Instant::now() < deadline,
                "no pod came back injected in {namespace}; last answer: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Values for a test's release. Its webhook is scoped to `apps` alone (tests run in
/// parallel, and an unscoped release's webhook would also be called for the other tests'
/// pods, with no endpoint behind it).
fn chart_values(dir: &Path, apps: &[&str], extra: Value) -> String {
    let mut values = json!({
        // No node runs the chart's pods here: the test plays them.
        "nodeSelector": {"init-injector.example/e2e": "no-such-node"},
        "webhook": {
            "timeoutSeconds": 3,
            "namespaceSelectorExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": apps}
            ],
        },
    });
    if let (Value::Object(base), Value::Object(extra)) = (&mut values, extra) {
        base.extend(extra);
    }
    values_file(dir, "values.json", &values)
}

/// `helm install` of `release` in `self` mode (webhook scoped to `apps`), and a kubeconfig
/// with a token of the chart's ServiceAccount; returns the values file and the kubeconfig.
async fn install_self_mode(
    client: &Client,
    release: &str,
    ns: &str,
    apps: &[&str],
    dir: &Path,
) -> (String, PathBuf) {
    let values = chart_values(dir, apps, json!({}));
    helm_ok(&[
        "install",
        release,
        CHART,
        "-n",
        ns,
        "--create-namespace",
        "-f",
        &values,
    ]);
    let account = format!("{release}-init-injector");
    let kubeconfig = service_account_kubeconfig(client, ns, &account, dir).await;
    (values, kubeconfig)
}

fn self_mode_args(release: &str, namespace: &str, dir: &Path) -> Vec<String> {
    let full = format!("{release}-init-injector");
    vec![
        format!("--cert-secret={full}-tls"),
        format!("--webhook-config={full}"),
        format!("--service={full}"),
        format!("--secret-owner={full}"),
        format!("--namespace={namespace}"),
        format!("--self-signed-dir={}", dir.display()),
    ]
}

async fn ca_bundle(client: &Client, name: &str) -> Option<Vec<u8>> {
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let config = configs.get_opt(name).await.unwrap()?;
    config
        .webhooks?
        .first()?
        .client_config
        .ca_bundle
        .clone()
        .map(|b| b.0)
}

/// `/readyz` of a replica, over TLS verified against `ca` for the Service's DNS name.
async fn ready(replica: &Replica, ca: &[u8], dns_name: &str) -> bool {
    let cert = reqwest::Certificate::from_pem(ca).unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .resolve(dns_name, SocketAddr::new(host_ip(), replica.port))
        .build()
        .unwrap();
    let url = format!("https://{dns_name}:{}/readyz", replica.port);
    http.get(url)
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

#[tokio::test]
async fn self_mode_install_upgrade_uninstall() {
    init_injector::crypto::install_provider();
    let client = client().await;
    let (release, ns, apps) = ("selfca", "chart-self", "chart-self-apps");
    let full = format!("{release}-init-injector");
    let dns_name = format!("{full}.{ns}.svc");
    create_namespace(&client, apps, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    // The release namespace is in the test's scope, so that the chart's own exclusion
    // of it is what keeps its pods from the webhook.
    let (values, kubeconfig) =
        install_self_mode(&client, release, ns, &[apps, ns], dir.path()).await;
    assert_eq!(
        ca_bundle(&client, &full).await,
        None,
        "helm renders no caBundle"
    );

    // Two replicas start at the same moment, each with the chart's ServiceAccount.
    let dirs = [dir.path().join("a"), dir.path().join("b")];
    let mut replicas: Vec<Replica> = dirs
        .iter()
        .enumerate()
        .map(|(i, tls_dir)| {
            Replica::start(
                &format!("self-{i}"),
                free_port(),
                Some(&kubeconfig),
                &self_mode_args(release, ns, tls_dir),
            )
        })
        .collect();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret_name = format!("{full}-tls");
    poll("the caBundle written by the replicas", 30, || async {
        ca_bundle(&client, &full).await.is_some()
    })
    .await;
    let secret = secrets.get(&secret_name).await.unwrap();
    let ca = secret.data.as_ref().unwrap()["ca.crt"].0.clone();
    assert_eq!(
        ca_bundle(&client, &full).await,
        Some(ca.clone()),
        "one CA, in the Secret and in caBundle"
    );
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Deployment", full.as_str())
    );
    for replica in &replicas {
        poll(
            "both replicas ready, serving a certificate of that CA",
            30,
            || ready(replica, &ca, &dns_name),
        )
        .await;
    }
    for tls_dir in &dirs {
        assert_eq!(
            std::fs::read(tls_dir.join("ca.pem")).unwrap(),
            ca,
            "a replica converged on another CA"
        );
    }

    // Annotated pods reach a replica through the Service.
    publish_endpoint(&client, ns, &full, replicas[0].port).await;
    let names = injected(&client, apps, "annotated").await;
    assert_eq!(names, ["wait-for-db-5432"]);
    let self_test = Command::new(env!("CARGO_BIN_EXE_init-injector"))
        .args(["self-test", "--namespace", apps])
        .output()
        .unwrap();
    assert!(
        self_test.status.success(),
        "self-test failed: {}",
        String::from_utf8_lossy(&self_test.stderr)
    );

    // With every replica down, failurePolicy Fail holds back only pods that asked.
    for replica in &mut replicas {
        replica.stop();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), apps);
    let plain = annotated_pod("plain", json!({"team": "shop"}));
    pods.create(&PostParams::default(), &plain)
        .await
        .expect("a pod without our annotations never reaches the webhook");
    let refused = pods
        .create(
            &PostParams::default(),
            &annotated_pod("refused", json!({"init.example/wait-for": "db:5432"})),
        )
        .await
        .expect_err("an annotated pod is refused while the webhook is down");
    assert!(
        refused.to_string().contains("pods.init.example"),
        "{refused}"
    );
    let own: Api<Pod> = Api::namespaced(client.clone(), ns);
    own.create(
        &PostParams::default(),
        &annotated_pod("own", json!({"init.example/wait-for": "db:5432"})),
    )
    .await
    .expect("the release namespace is never sent to the webhook");

    // helm upgrade keeps the CA and the caBundle the binary wrote.
    helm_ok(&[
        "upgrade",
        release,
        CHART,
        "-n",
        ns,
        "-f",
        &values,
        "--set",
        "webhook.timeoutSeconds=4",
    ]);
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let upgraded = configs.get(&full).await.unwrap();
    assert_eq!(
        upgraded.webhooks.as_ref().unwrap()[0].timeout_seconds,
        Some(4)
    );
    assert_eq!(
        ca_bundle(&client, &full).await,
        Some(ca.clone()),
        "helm upgrade dropped the caBundle"
    );
    let restarted = Replica::start(
        "self-restarted",
        free_port(),
        Some(&kubeconfig),
        &self_mode_args(release, ns, &dirs[0]),
    );
    poll("the restarted replica ready", 30, || {
        ready(&restarted, &ca, &dns_name)
    })
    .await;
    let after = secrets.get(&secret_name).await.unwrap();
    assert_eq!(
        after.data.unwrap()["ca.crt"].0,
        ca,
        "the CA changed across upgrade and restart"
    );
    publish_endpoint(&client, ns, &full, restarted.port).await;
    assert_eq!(
        injected(&client, apps, "after-upgrade").await,
        ["wait-for-db-5432"]
    );
    drop(restarted);

    // helm uninstall leaves nothing behind, and pods are admitted afterwards.
    helm_ok(&["uninstall", release, "-n", ns, "--wait", "--timeout", "60s"]);
    assert!(configs.get_opt(&full).await.unwrap().is_none());
    // The API server drops the webhook from its cache a moment after the deletion.
    let mut attempt = 0;
    poll(
        "an annotated pod admitted once the chart is gone",
        20,
        || {
            attempt += 1;
            let pod = annotated_pod(
                &format!("after-uninstall-{attempt}"),
                json!({"init.example/wait-for": "db:5432"}),
            );
            let pods = pods.clone();
            async move { pods.create(&PostParams::default(), &pod).await.is_ok() }
        },
    )
    .await;
    poll(
        "the garbage collector deleting the Secret with its Deployment",
        60,
        || async { secrets.get_opt(&secret_name).await.unwrap().is_none() },
    )
    .await;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    assert!(roles.get_opt(&full).await.unwrap().is_none());
}

#[tokio::test]
async fn self_mode_renews_the_serving_certificate_without_a_restart() {
    init_injector::crypto::install_provider();
    let client = client().await;
    let (release, ns) = ("renew", "chart-renew");
    let full = format!("{release}-init-injector");
    let dns_name = format!("{full}.{ns}.svc");
    let dir = tempfile::tempdir().unwrap();
    let (_, kubeconfig) =
        install_self_mode(&client, release, ns, &["chart-renew-apps"], dir.path()).await;
    // A 15 s lifetime: renewed when 5 s are left, re-checked every 1.5 s.
    let mut args = self_mode_args(release, ns, dir.path());
    args.push("--cert-validity=15s".into());
    args.push("--cert-reload-interval=200ms".into());
    let replica = Replica::start("renew", free_port(), Some(&kubeconfig), &args);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret_name = format!("{full}-tls");
    poll("the first certificate", 30, || async {
        secrets.get_opt(&secret_name).await.unwrap().is_some()
    })
    .await;
    let first = secrets.get(&secret_name).await.unwrap().data.unwrap();
    let ca = first["ca.crt"].0.clone();
    poll("the replica ready", 30, || ready(&replica, &ca, &dns_name)).await;
    poll(
        "a renewed serving certificate in the Secret",
        30,
        || async {
            let now = secrets.get(&secret_name).await.unwrap().data.unwrap();
            now["tls.crt"] != first["tls.crt"]
        },
    )
    .await;
    let renewed = secrets.get(&secret_name).await.unwrap().data.unwrap();
    assert_eq!(
        renewed["ca.crt"].0, ca,
        "renewal keeps the CA, so caBundle stays valid"
    );
    poll(
        "the replica serving the renewed certificate",
        10,
        || async {
            std::fs::read(dir.path().join("tls.crt")).unwrap() == renewed["tls.crt"].0
                && std::fs::read_to_string(logs_dir().join("chart-renew.log"))
                    .unwrap()
                    .contains("serving certificate reloaded")
        },
    )
    .await;
    assert!(
        ready(&replica, &ca, &dns_name).await,
        "the replica stays ready"
    );
    drop(replica);
    helm_ok(&["uninstall", release, "-n", ns]);
}

#[tokio::test]
async fn self_mode_rbac_refuses_what_the_chart_does_not_grant() {
    init_injector::crypto::install_provider();
    let client = client().await;
    let (release, ns) = ("rbacca", "chart-rbac");
    let full = format!("{release}-init-injector");
    let dir = tempfile::tempdir().unwrap();
    let (_, kubeconfig) =
        install_self_mode(&client, release, ns, &["chart-rbac-apps"], dir.path()).await;
    // A Secret name the Role does not list: the replica must fail, not fall back.
    let mut args = self_mode_args(release, ns, dir.path());
    args[0] = "--cert-secret=some-other-secret".into();
    let mut replica = Replica::start("rbac", free_port(), Some(&kubeconfig), &args);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = replica.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve kept running without access to its Secret"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!status.success());
    let log = std::fs::read_to_string(logs_dir().join("chart-rbac.log")).unwrap();
    assert!(
        log.contains("some-other-secret") && log.contains("forbidden"),
        "{log}"
    );
    replica.stop();
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    assert!(roles.get_opt(&full).await.unwrap().is_some());
    helm_ok(&["uninstall", release, "-n", ns]);
}

#[tokio::test]
async fn secret_mode_serves_the_given_certificate() {
    init_injector::crypto::install_provider();
    let client = client().await;
    let (release, ns, apps) = ("given", "chart-secret", "chart-secret-apps");
    let full = format!("{release}-init-injector");
    create_namespace(&client, ns, &[]).await;
    create_namespace(&client, apps, &[]).await;
    let generated =
        init_injector::webhook::certs::generate(&[format!("{full}.{ns}.svc")], &[], 30).unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("given-tls".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        string_data: Some(BTreeMap::from([
            ("tls.crt".to_owned(), generated.cert_pem.clone()),
            ("tls.key".to_owned(), generated.key_pem.clone()),
        ])),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let values = chart_values(
        dir.path(),
        &[apps],
        json!({"certificates": {"mode": "secret", "secret": {"name": "given-tls", "caBundle": generated.ca_cert_pem}}}),
    );
    helm_ok(&["install", release, CHART, "-n", ns, "-f", &values]);
    assert_eq!(
        ca_bundle(&client, &full).await,
        Some(generated.ca_cert_pem.as_bytes().to_vec())
    );
    // The replica reads the Secret's files, as the mounted volume gives them.
    init_injector::webhook::certs::write(&generated, dir.path()).unwrap();
    let replica = Replica::start(
        "secret",
        free_port(),
        None,
        &[
            format!("--tls-cert={}", dir.path().join("tls.crt").display()),
            format!("--tls-key={}", dir.path().join("tls.key").display()),
        ],
    );
    let dns_name = format!("{full}.{ns}.svc");
    poll("the replica ready", 30, || {
        ready(&replica, generated.ca_cert_pem.as_bytes(), &dns_name)
    })
    .await;
    publish_endpoint(&client, ns, &full, replica.port).await;
    assert_eq!(injected(&client, apps, "given").await, ["wait-for-db-5432"]);
    helm_ok(&["uninstall", release, "-n", ns]);
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    assert!(configs.get_opt(&full).await.unwrap().is_none());
    assert!(
        secrets.get_opt("given-tls").await.unwrap().is_some(),
        "the user's own Secret is not the chart's to delete"
    );
}
