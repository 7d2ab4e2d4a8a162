//! The webhook as the e2e tests register it by `clientConfig.url` (the API server runs in
//! the same network namespace): a `serve` process on 127.0.0.1 with a fresh certificate
//! (its JSON log in `webhook-NAME.log` in the e2e logs directory), its registration, and
//! the namespaces it is registered for.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use serde_json::{Value, json};

use super::node::logs_dir;
use super::{generate, init_names, logged_addr, serve_command};

pub struct Webhook {
    pub child: Child,
    pub addr: SocketAddr,
    /// The CA that signed its certificate, for the `caBundle`.
    pub ca_pem: String,
    pub log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Webhook {
    /// Starts `serve` with `extra` flags and returns once it listens.
    pub fn start(name: &str, extra: &[&str]) -> Webhook {
        Webhook::start_with_env(name, extra, &[])
    }

    /// [`Webhook::start`] with environment variables, such as the `KUBECONFIG` that
    /// `--watch-policies` uses.
    pub fn start_with_env(name: &str, extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Webhook {
        let dir = tempfile::tempdir().unwrap();
        let generated = generate();
        init_injector::webhook::certs::write(&generated, dir.path()).unwrap();
        let log_path = logs_dir().join(format!("webhook-{name}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = serve_command()
            .arg("--tls-cert")
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .args(extra)
            .envs(env.iter().copied())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(addr) = text.lines().find_map(logged_addr) {
                break addr;
            }
            assert!(Instant::now() < deadline, "serve did not start: {text}");
            std::thread::sleep(Duration::from_millis(50));
        };
        Webhook {
            child,
            addr,
            ca_pem: generated.ca_cert_pem,
            log_path,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}/mutate", self.addr)
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pods/CREATE registration by `clientConfig.url` and `caBundle`, for the namespaces
/// labelled `selector` (key, value).
pub fn pod_webhook(
    name: &str,
    url: &str,
    ca_pem: &str,
    selector: (&str, &str),
    failure_policy: &str,
    reinvocation: &str,
) -> MutatingWebhook {
    MutatingWebhook {
        name: format!("{name}.init-injector.e2e"),
        admission_review_versions: vec!["v1".into()],
        side_effects: "None".into(),
        client_config: WebhookClientConfig {
            url: Some(url.to_owned()),
            ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
            ..Default::default()
        },
        rules: Some(vec![RuleWithOperations {
            api_groups: Some(vec!["".into()]),
            api_versions: Some(vec!["v1".into()]),
            operations: Some(vec!["CREATE".into()]),
            resources: Some(vec!["pods".into()]),
            scope: Some("Namespaced".into()),
        }]),
        failure_policy: Some(failure_policy.into()),
        reinvocation_policy: Some(reinvocation.into()),
        timeout_seconds: Some(5),
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                selector.0.to_owned(),
                selector.1.to_owned(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Replaces the MutatingWebhookConfiguration `name` with one that holds `webhook`.
pub async fn register(client: &Client, name: &str, webhook: MutatingWebhook) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let config = MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        webhooks: Some(vec![webhook]),
    };
    let _ = api.delete(name, &DeleteParams::default()).await;
    api.create(&PostParams::default(), &config).await.unwrap();
}

/// A registration reaches the API server's webhook cache a moment after the create:
/// dry-runs a probe pod (with `spec`) in `ns` until it comes back injected.
pub async fn wait_until_active(client: &Client, ns: &str, spec: Value) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let probe: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "probe", "annotations": {"init.example/wait-for": "probe:1"}},
        "spec": spec,
    }))
    .unwrap();
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = pods.create(&dry, &probe).await;
        if created.is_ok_and(|pod| init_names(&pod).contains(&"wait-for-probe-1".to_owned())) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the webhook never became active for {ns}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates namespace `name` with `labels`; returns once its `default` ServiceAccount
/// exists (pods need it).
pub async fn create_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &ns).await.unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    let deadline = Instant::now() + Duration::from_secs(30);
    while accounts.get_opt("default").await.unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "no default ServiceAccount in {name}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
