//! Helpers of the tests that run pods on the e2e node (`tests/e2e_node*.rs`): the
//! images and taint that `tests/e2e/run.sh` sets up, pod polling with diagnostics, and
//! small servers on the node's IP for pods to wait for.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::Client;
use kube::api::{Api, ListParams, LogParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The test pods' image: Debian's static busybox, user 65532 (tests/e2e/images.sh).
pub const BUSYBOX: &str = "docker.io/local/busybox:e2e";
/// The node's NoSchedule taint: pods of the other e2e tests stay off the node.
pub const NODE_TAINT: &str = "init-injector.e2e/node";

pub async fn client() -> Client {
    Client::try_default()
        .await
        .expect("KUBECONFIG points at the e2e cluster (run tests/e2e/run.sh)")
}

/// The network namespace's private address: the node's IP, where CoreDNS answers and
/// where these tests run the servers that pods wait for.
pub fn host_ip() -> IpAddr {
    std::env::var("INIT_INJECTOR_E2E_HOST_IP")
        .expect("INIT_INJECTOR_E2E_HOST_IP is set by tests/e2e/run.sh")
        .parse()
        .expect("INIT_INJECTOR_E2E_HOST_IP is an IP address")
}

pub fn logs_dir() -> PathBuf {
    std::env::var_os("INIT_INJECTOR_E2E_LOGS")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// The last `lines` lines of a component's log in the logs directory.
pub fn log_tail(name: &str, lines: usize) -> String {
    let text = std::fs::read_to_string(logs_dir().join(name)).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `spec` with the toleration for the node's taint.
pub fn on_node(mut spec: Value) -> Value {
    spec["tolerations"] =
        json!([{"key": NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}]);
    spec
}

pub fn pod(name: &str, annotations: Value, spec: Value) -> Pod {
    let spec = on_node(spec);
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations},
        "spec": spec,
    }))
    .unwrap()
}

/// The Pod Security "restricted" securityContext, read-only root filesystem included.
pub fn restricted() -> Value {
    json!({"runAsNonRoot": true, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
           "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}})
}

/// An app container running `script` in busybox's shell.
pub fn app(script: &str) -> Value {
    json!({"name": "app", "image": BUSYBOX, "imagePullPolicy": "Never",
           "command": ["sh", "-c", script], "securityContext": restricted()})
}

/// Everything worth knowing when a pod did not do what a test expected.
pub async fn diagnose(client: &Client, ns: &str, name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let status = match pods.get_opt(name).await {
        Ok(Some(pod)) => serde_json::to_string_pretty(&pod.status).unwrap(),
        other => format!("{other:?}"),
    };
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let events = events
        .list(&ListParams::default())
        .await
        .map(|list| {
            list.items
                .iter()
                .map(|e| {
                    format!(
                        "{} {}: {}",
                        e.involved_object.name.as_deref().unwrap_or(""),
                        e.reason.as_deref().unwrap_or(""),
                        e.message.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    format!(
        "pod {ns}/{name} status:\n{status}\nevents in {ns}:\n{events}\n\
         ---- kubelet.log (tail)\n{}\n---- containerd.log (tail)\n{}",
        log_tail("kubelet.log", 30),
        log_tail("containerd.log", 15)
    )
}

/// Polls pod `name` until `done` holds, failing after `limit` with the pod's status,
/// the namespace's events and the node's log tails.
pub async fn wait_for_pod(
    client: &Client,
    ns: &str,
    name: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&Pod) -> bool,
) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + limit;
    loop {
        if let Some(pod) = pods.get_opt(name).await.unwrap()
            && done(&pod)
        {
            return pod;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: not within {limit:?}\n{}",
                diagnose(client, ns, name).await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn init_statuses(pod: &Pod) -> Vec<ContainerStatus> {
    pod.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.clone())
        .unwrap_or_default()
}

pub fn app_status(pod: &Pod) -> Option<ContainerStatus> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == "app").cloned())
}

pub fn is_running(status: &ContainerStatus) -> bool {
    status.state.as_ref().is_some_and(|s| s.running.is_some())
}

/// (started, finished, exit code) of a terminated container, times in Unix seconds.
pub fn terminated(status: &ContainerStatus) -> Option<(i64, i64, i32)> {
    let t = status.state.as_ref()?.terminated.as_ref()?;
    Some((
        t.started_at.as_ref()?.0.as_second(),
        t.finished_at.as_ref()?.0.as_second(),
        t.exit_code,
    ))
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub async fn container_log(client: &Client, ns: &str, pod: &str, container: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.logs(
        pod,
        &LogParams {
            container: Some(container.to_owned()),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("logs of {ns}/{pod}/{container}: {e}"))
}

/// A port on the host IP that nothing listens on yet.
pub async fn free_port() -> u16 {
    let listener = TcpListener::bind((host_ip(), 0)).await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A TCP server on the host IP that accepts and closes connections; counts them.
pub async fn tcp_server(port: u16) -> (tokio::task::JoinHandle<()>, Arc<Mutex<u32>>) {
    let listener = TcpListener::bind((host_ip(), port)).await.unwrap();
    let count = Arc::new(Mutex::new(0));
    let seen = count.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            *seen.lock().unwrap() += 1;
            drop(stream);
        }
    });
    (task, count)
}

/// An HTTP server on the host IP answering 200 to everything; records request lines.
pub async fn http_server(port: u16) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((host_ip(), port)).await.unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut len = 0;
                while len < buf.len() && !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf[len..]))
                        .await
                    {
                        Ok(Ok(n)) if n > 0 => len += n,
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&buf[..len]);
                seen.lock()
                    .unwrap()
                    .push(text.lines().next().unwrap_or("").to_owned());
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (task, requests)
}
