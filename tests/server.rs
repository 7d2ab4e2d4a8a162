//! Integration tests of `serve`: the real server on 127.0.0.1:0 with rcgen certificates,
//! driven by real TLS clients.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use init_injector::engine::config::EngineConfig;
use init_injector::engine::{Outcome, PodContext, plan_injection};
use init_injector::webhook::admission::OnInvalid;
use init_injector::webhook::server::reviewers;
use init_injector::webhook::server::{MAX_BODY_BYTES, READ_BUFFER_BYTES};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// The answer as JSON (`null` when it is not JSON).
async fn post(server: &TestServer, body: Vec<u8>) -> (u16, Value) {
    let (status, bytes) = post_bytes(server, body).await;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

/// The answer's bytes as sent.
async fn post_bytes(server: &TestServer, body: Vec<u8>) -> (u16, Vec<u8>) {
    let response = server
        .client()
        .post(server.url("/mutate"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

/// The patch as the apiserver decodes it: a base64 string, as Go writes `[]byte`.
fn decoded_patch(response: &Value) -> Option<Value> {
    use base64::Engine;
    let text = response
        .get("patch")?
        .as_str()
        .expect("the patch is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

fn snapshot_response(name: &str, review: &Value) {
    let mut review = review.clone();
    if let Some(patch) = decoded_patch(&review["response"]) {
        review["response"]["patch"] = patch;
    }
    insta::with_settings!({ sort_maps => true }, {
        insta::assert_json_snapshot!(name, review, { ".response.uid" => "[uid]" });
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_pod_gets_the_engines_patch() {
    let server = TestServer::start(OnInvalid::Deny).await;
    let (status, review) = post(&server, example("review.json").into_bytes()).await;
    assert_eq!(status, 200);
    let response = &review["response"];
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    assert_eq!(response["uid"], "0d3c6b5e-8f21-4a7c-9b1e-3f2d4c5b6a71");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");

    // The wire patch decodes to exactly the engine's patch for the same pod.
    let source: Value = serde_json::from_str(&example("review.json")).unwrap();
    let pod: Pod = serde_json::from_value(source["request"]["object"].clone()).unwrap();
    let Ok(Outcome::Injected(injection)) = plan_injection(&PodContext::new(
        &pod.metadata,
        pod.spec.as_ref().unwrap(),
        &EngineConfig::default(),
    )) else {
        panic!("the example pod is injected")
    };
    // It makes the pod that the engine's owned patch makes; where the owned patch adds a
    // run step whole, the wire's adds it without the app container's env and copies that.
    let wire: json_patch::Patch = serde_json::from_value(decoded_patch(response).unwrap()).unwrap();
    assert_eq!(
        wire_makes_the_owned_pod(&pod, &wire, &injection),
        2,
        "both run steps copy the app container's env"
    );
    snapshot_response("annotated", &review);
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_without_patch() {
    let server = TestServer::start(OnInvalid::Deny).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "unannotated",
            example("review-unannotated.json").into_bytes(),
        ),
        ("update", review_with(|r| r["operation"] = json!("UPDATE"))),
        ("delete", review_with(|r| r["operation"] = json!("DELETE"))),
        (
            "not a pod",
            review_with(|r| {
                r["resource"] = json!({"group": "apps", "version": "v1", "resource": "deployments"})
            }),
        ),
        (
            "subresource",
            review_with(|r| r["subResource"] = json!("ephemeralcontainers")),
        ),
        (
            "opted out",
            review_with(|r| {
                r["object"]["metadata"]["annotations"]["init.example/inject"] = json!("false")
            }),
        ),
    ];
    for (what, body) in cases {
        let (status, review) = post(&server, body).await;
        assert_eq!(status, 200, "{what}");
        assert_eq!(review["response"]["allowed"], true, "{what}");
        assert!(
            review["response"].get("patch").is_none(),
            "{what}: {review}"
        );
    }
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_gets_the_same_answer() {
    let server = TestServer::start(OnInvalid::Deny).await;
    let (_, normal) = post(&server, example("review.json").into_bytes()).await;
    let (status, dry) = post(&server, review_with(|r| r["dryRun"] = json!(true))).await;
    assert_eq!(status, 200);
    assert_eq!(dry["response"]["patch"], normal["response"]["patch"]);
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_injected_pod_gets_no_patch() {
    let server = TestServer::start(OnInvalid::Deny).await;
    let (_, first) = post(&server, example("review.json").into_bytes()).await;
    let patch: json_patch::Patch =
        serde_json::from_value(decoded_patch(&first["response"]).unwrap()).unwrap();
    let body = review_with(|r| json_patch::patch(&mut r["object"], &patch).unwrap());
    let (status, second) = post(&server, body).await;
    assert_eq!(status, 200);
    assert_eq!(second["response"]["allowed"], true);
    assert!(second["response"].get("patch").is_none(), "{second}");
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_annotations_deny_or_warn() {
    let typo = |r: &mut Value| {
        r["object"]["metadata"]["annotations"]["init.example/wiat-for"] = json!("db:5432");
    };
    let server = TestServer::start(OnInvalid::Deny).await;
    let (status, review) = post(&server, review_with(typo)).await;
    assert_eq!(status, 200);
    assert_eq!(review["response"]["allowed"], false);
    let message = review["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("init.example/wiat-for")
            && message.contains("did you mean init.example/wait-for?"),
        "{message}"
    );
    snapshot_response("denied", &review);
    server.running.shutdown().await.unwrap();

    let server = TestServer::start(OnInvalid::Warn).await;
    let (status, review) = post(&server, review_with(typo)).await;
    assert_eq!(status, 200);
    assert_eq!(review["response"]["allowed"], true);
    assert!(review["response"].get("patch").is_none());
    let warnings = review["response"]["warnings"].as_array().unwrap();
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("did you mean init.example/wait-for?"),
        "{warnings:?}"
    );
    snapshot_response("warned", &review);
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_4xx_and_the_server_keeps_serving() {
    let server = TestServer::start(OnInvalid::Deny).await;
    let deep = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"object":{{"x":{}{}}}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not JSON", b"hello".to_vec(), 400, "not an AdmissionReview"),
        ("empty", Vec::new(), 400, "body is empty"),
        ("deeply nested", deep.into_bytes(), 400, "recursion limit"),
        (
            "wrong kind",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#.to_vec(),
            400,
            "expected apiVersion admission.k8s.io/v1",
        ),
        (
            "v1beta1",
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#.to_vec(),
            400,
            "admission.k8s.io/v1beta1",
        ),
        (
            "no request",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            400,
            "has no request",
        ),
        ("too large", vec![b' '; 7 * 1024 * 1024], 413, "larger than"),
    ];
    for (what, body, want_status, want_error) in cases {
        let (status, error) = post(&server, body).await;
        assert_eq!(status, want_status, "{what}: {error}");
        let text = error["error"].as_str().unwrap_or_default();
        assert!(text.contains(want_error), "{what}: {text}");
    }

    // Known uid, wrong object: a 200 review that refuses, with the reason.
    let (status, review) = post(
        &server,
        review_with(|r| r["object"]["kind"] = json!("Deployment")),
    )
    .await;
    assert_eq!(
        (status, &review["response"]["allowed"]),
        (200, &json!(false))
    );
    assert!(
        review["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("not a valid v1 Pod")
    );
    let (_, review) = post(
        &server,
        review_with(|r| r["object"]["spec"]["containers"] = json!("x")),
    )
    .await;
    assert!(
        review["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("not a valid v1 Pod: invalid type: string"),
        "{review}"
    );

    // A huge annotation value and 10,000 annotations are answered, not choked on.
    let (status, review) = post(
        &server,
        review_with(|r| {
            r["object"]["metadata"]["annotations"]["init.example/wait-for"] =
                json!(format!("{}:1", "a".repeat(1_000_000)));
        }),
    )
    .await;
    assert_eq!(status, 200);
    let message = review["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.len() < 1000,
        "the message quotes a bounded part of the value ({} bytes)",
        message.len()
    );
    let (status, review) = post(
        &server,
        review_with(|r| {
            let annotations = r["object"]["metadata"]["annotations"]
                .as_object_mut()
                .unwrap();
            for i in 0..10_000 {
                annotations.insert(format!("example.com/key-{i}"), json!("value"));
            }
        }),
    )
    .await;
    assert_eq!(
        (status, &review["response"]["allowed"]),
        (200, &json!(true))
    );
    assert!(decoded_patch(&review["response"]).is_some());

    // Wrong method and unknown path.
    let response = server
        .client()
        .get(server.url("/mutate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let response = server
        .client()
        .get(server.url("/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);

    let (status, _) = post(&server, example("review.json").into_bytes()).await;
    assert_eq!(status, 200, "still serving");
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_without_blocking_others() {
    let server = TestServer::start(OnInvalid::Deny).await;
    let addr = server.running.addr;
    // Sends headers, promises a body, then stalls.
    let mut stalled = raw_tls(addr, &server.ca_pem).await;
    write_all(&mut stalled, b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{").await;
    // Sends half a header line and stalls.
    let mut half = raw_tls(addr, &server.ca_pem).await;
    write_all(&mut half, b"POST /mutate HTTP/1.1\r\nhost: loc").await;

    let (status, _) = post(&server, example("review.json").into_bytes()).await;
    assert_eq!(status, 200, "others are served meanwhile");

    let answer = read_response(&mut stalled, Duration::from_secs(10)).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "stalled body: {answer:?}"
    );
    let answer = read_response(&mut half, Duration::from_secs(10)).await;
    assert!(
        !answer.starts_with("HTTP/1.1 200"),
        "stalled headers end without a review: {answer:?}"
    );
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_threads_answer_as_the_inline_mode_does() {
    let threaded = TestServer::start(OnInvalid::Deny).await;
    let inline = TestServer::start_with(OnInvalid::Deny, |config| config.review_threads = 0).await;
    let invalid = review_with(|review| {
        review["object"]["metadata"]["annotations"]["init.example/wait-for"] =
            json!("postgres:notaport");
    });
    let bodies = [
        example("review.json").into_bytes(),
        example("review-unannotated.json").into_bytes(),
        std::fs::read("tests/fixtures/review-reinvoked.json").unwrap(),
        invalid,
        b"{\"kind\": \"AdmissionReview\"".to_vec(),
    ];
    for body in bodies {
        let (threaded_status, threaded_answer) = post_bytes(&threaded, body.clone()).await;
        let (inline_status, inline_answer) = post_bytes(&inline, body.clone()).await;
        assert_eq!(threaded_status, inline_status);
        assert_eq!(
            String::from_utf8_lossy(&threaded_answer),
            String::from_utf8_lossy(&inline_answer)
        );
        assert!(!threaded_answer.is_empty());
    }
    assert_eq!(threaded.running.app.reviewers.threads(), 2);
    assert_eq!(inline.running.app.reviewers.threads(), 0);
    threaded.running.shutdown().await.unwrap();
    inline.running.shutdown().await.unwrap();
}

/// Three clients that stall inside bodies declared at three quarters of the queue's byte
/// budget each must not keep a small review waiting until their deadline: without
/// `SLOT_HOLD`, the first holds its share, the second waits for one the first keeps, and
/// the small review queues behind the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_give_their_share_of_the_queue_up() {
    let server = TestServer::start_with(OnInvalid::Deny, |config| {
        config.review_threads = 1;
        config.request_timeout = Duration::from_secs(20);
    })
    .await;
    let declared = reviewers::QUEUE_BYTES / 4 * 3;
    assert!(declared <= MAX_BODY_BYTES);
    let head = format!(
        "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n{{"
    );
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut stream = raw_tls(server.running.addr, &server.ca_pem).await;
        write_all(&mut stream, head.as_bytes()).await;
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        post(&server, example("review.json").into_bytes()),
    )
    .await;
    let (status, review) = answered.expect("a review waited behind stalled bodies");
    assert_eq!(status, 200);
    assert_eq!(review["response"]["allowed"], json!(true));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    drop(stalled);
    server.running.shutdown().await.unwrap();
}

/// The read buffer is capped at `READ_BUFFER_BYTES`: a request head larger than that is
/// refused with 431, and a body many times larger is read in pieces and answered whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_the_read_buffer_is_refused_and_a_large_body_is_not() {
    let server = TestServer::start(OnInvalid::Deny).await;
    let mut stream = raw_tls(server.running.addr, &server.ca_pem).await;
    let filler = "x".repeat(READ_BUFFER_BYTES);
    let head = format!(
        "POST /mutate HTTP/1.1\r\nhost: localhost\r\nx-filler: {filler}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    write_all(&mut stream, head.as_bytes()).await;
    let answer = read_response(&mut stream, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "a {} byte head: {answer:?}",
        head.len()
    );

    // 2,000 env vars on the app container: a body of about 100 KB.
    let env: Vec<Value> = (0..2000)
        .map(|i| json!({"name": format!("VARIABLE_{i}"), "value": format!("value-{i}-{}", "v".repeat(20))}))
        .collect();
    let body = review_with(|review| review["object"]["spec"]["containers"][0]["env"] = json!(env));
    assert!(body.len() > 4 * READ_BUFFER_BYTES, "{} bytes", body.len());
    let (status, review) = post(&server, body).await;
    assert_eq!(status, 200, "{review}");
    assert_eq!(review["response"]["allowed"], json!(true));
    assert_eq!(review["response"]["patchType"], json!("JSONPatch"));
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let server = TestServer::start(OnInvalid::Deny).await;
    let client = server.client();
    for path in ["/healthz", "/readyz"] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    post(&server, example("review.json").into_bytes()).await;
    post(&server, example("review-unannotated.json").into_bytes()).await;
    post(&server, b"x".to_vec()).await;
    let text = metrics(server.running.metrics_addr).await;
    for line in [
        "init_injector_reviews_total{outcome=\"mutated\"} 1",
        "init_injector_reviews_total{outcome=\"skipped\"} 1",
        "init_injector_bad_requests_total 1",
        // 6 operations and the copies of the app's env into the 2 run steps.
        "init_injector_patch_operations_total 8",
        "init_injector_certificate_reloads_total{result=\"success\"} 1",
        "init_injector_review_duration_seconds_bucket{le=\"0.0001\"}",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let expiry = text
        .lines()
        .find(|l| l.starts_with("init_injector_certificate_expiry_timestamp_seconds "))
        .unwrap();
    let seconds: f64 = expiry.split_whitespace().nth(1).unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        seconds > now + 29.0 * 86400.0 && seconds < now + 31.0 * 86400.0,
        "{seconds}"
    );
    server.running.shutdown().await.unwrap();
}

/// Fires requests on fresh connections until `stop`; returns (ok, failed).
async fn hammer(server: &TestServer, cas: Vec<String>, stop: Arc<AtomicUsize>) -> (usize, usize) {
    let client = client(&cas.iter().map(String::as_str).collect::<Vec<_>>(), false);
    let body = example("review.json").into_bytes();
    let (mut ok, mut failed) = (0, 0);
    while stop.load(Ordering::Relaxed) == 0 {
        let result = match client
            .post(server.url("/mutate"))
            .body(body.clone())
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                r.bytes().await.map(|_| ()).map_err(|e| e.to_string())
            }
            Ok(r) => Err(format!("status {}", r.status())),
            Err(err) => Err(err.to_string()),
        };
        match result {
            Ok(()) => ok += 1,
            Err(err) => {
                eprintln!("request failed: {err}");
                failed += 1
            }
        }
    }
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_by_symlink_swap_fails_no_request() {
    let server = Arc::new(TestServer::start(OnInvalid::Deny).await);
    let rotated = generate();
    let cas = vec![server.ca_pem.clone(), rotated.ca_cert_pem.clone()];
    let stop = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (server, cas, stop) = (server.clone(), cas.clone(), stop.clone());
            tokio::spawn(async move { hammer(&server, cas, stop).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    write_secret_volume(server.dir.path(), "v2", &rotated);

    // The new certificate is served: a client trusting only the new CA gets through.
    let only_new = client(&[&rotated.ca_cert_pem], false);
    let mut served_new = false;
    for _ in 0..100 {
        if only_new.get(server.url("/healthz")).send().await.is_ok() {
            served_new = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served_new, "the rotated certificate was never served");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(1, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for worker in workers {
        let (o, f) = worker.await.unwrap();
        ok += o;
        failed += f;
    }
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during rotation",
        ok + failed
    );
    assert!(ok > 20, "too few requests to prove anything: {ok}");
    // The old CA alone no longer works.
    assert!(
        client(&[&server.ca_pem], false)
            .get(server.url("/healthz"))
            .send()
            .await
            .is_err()
    );

    // A broken pair keeps the current certificate.
    let broken = generate();
    let mixed = init_injector::webhook::certs::Generated {
        key_pem: broken.key_pem.clone(),
        ..rotated.clone()
    };
    write_secret_volume(server.dir.path(), "v3", &mixed);
    // Once the reloader has looked at the broken pair (and counted it), the good
    // certificate must still be the one served.
    eventually(Duration::from_secs(10), async || {
        let metrics = metrics(server.running.metrics_addr).await;
        if metrics.contains("init_injector_certificate_reloads_total{result=\"failure\"} 1") {
            Ok(())
        } else {
            Err(format!(
                "the broken pair not counted as a failed reload: {metrics}"
            ))
        }
    })
    .await;
    assert!(
        only_new.get(server.url("/healthz")).send().await.is_ok(),
        "a bad pair must not replace a good one"
    );

    let server = Arc::into_inner(server).expect("workers are done");
    server.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests() {
    let server = TestServer::start(OnInvalid::Deny).await;
    let addr = server.running.addr;
    let body = example("review.json");
    // Requests whose bodies are still arriving when shutdown starts.
    let mut in_flight = Vec::new();
    for _ in 0..5 {
        let mut stream = raw_tls(addr, &server.ca_pem).await;
        let head = format!(
            "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        write_all(&mut stream, head.as_bytes()).await;
        await_continue(&mut stream, Duration::from_secs(5)).await;
        write_all(&mut stream, &body.as_bytes()[..100]).await;
        in_flight.push(stream);
    }
    let app = server.running.app.clone();
    let shutdown = tokio::spawn(server.running.shutdown());
    // While the five requests wait for their bodies: readiness drops and the listener
    // closes (polled, as the shutdown task runs when the scheduler gets to it).
    eventually(Duration::from_secs(5), async || {
        let ready = app.ready.load(Ordering::Acquire);
        let open = accepting(addr).await;
        if !ready && !open {
            Ok(())
        } else {
            Err(format!(
                "in shutdown: ready {ready}, accepting new connections {open}"
            ))
        }
    })
    .await;
    for stream in &mut in_flight {
        write_all(stream, &body.as_bytes()[100..]).await;
    }
    for stream in &mut in_flight {
        let answer = read_response(stream, Duration::from_secs(5)).await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "in-flight request failed: {answer:.200}"
        );
        assert!(answer.contains("\"patchType\":\"JSONPatch\""));
    }
    shutdown.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_binary_drains_in_flight_requests_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines, line) = spawn_serve(&mut serve_command(), dir.path());
    let addr = logged_addr(&line).unwrap();
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let body = example("review.json");
    let mut stream = raw_tls(addr, &ca).await;
    let head = format!(
        "POST /mutate HTTP/1.1\r\nhost: localhost\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    // SIGTERM closes a connection whose request the server has not started reading (as
    // hyper and Go's net/http both do), so wait until the server is reading the body.
    write_all(&mut stream, head.as_bytes()).await;
    await_continue(&mut stream, Duration::from_secs(5)).await;
    write_all(&mut stream, &body.as_bytes()[..10]).await;

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The rest of the body only once the server has stopped accepting: the request is
    // then answered in the drain.
    eventually(Duration::from_secs(5), async || {
        if accepting(addr).await {
            Err("still accepting after SIGTERM".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    write_all(&mut stream, &body.as_bytes()[10..]).await;
    let answer = read_response(&mut stream, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "in-flight request failed: {answer:.200}"
    );
    drop(stream);
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
}

/// The start-up line says how many review threads run, as the flag or the environment
/// asked.
#[test]
fn the_start_up_line_says_how_many_review_threads_run() {
    let started = |command: &mut std::process::Command| {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, _, line) = spawn_serve(command, dir.path());
        child.kill().unwrap();
        child.wait().unwrap();
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
        entry["review_threads"].clone()
    };
    assert_eq!(
        started(serve_command().arg("--review-threads=3")),
        serde_json::json!(3)
    );
    assert_eq!(
        started(serve_command().env("INIT_INJECTOR_REVIEW_THREADS", "0")),
        serde_json::json!(0)
    );
}

/// A SIGTERM while `serve` is still starting (here: self-managed certificate mode waiting
/// on an API server that accepts the connection and never answers) stops it at once with
/// exit 0, instead of being held until serving starts or killing it with the default action.
#[test]
fn sigterm_while_starting_stops_at_once() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: silent\n  cluster:\n    server: http://{}\ncontexts:\n- name: silent\n  context:\n    cluster: silent\n    user: nobody\nusers:\n- name: nobody\n  user: {{}}\ncurrent-context: silent\n",
            silent.local_addr().unwrap()
        ),
    )
    .unwrap();
    let mut child = serve_command()
        .args([
            "--cert-secret",
            "init-injector-tls",
            "--webhook-config",
            "init-injector",
            "--service",
            "init-injector",
            "--namespace",
            "init-injector",
            "--self-signed-dir",
        ])
        .arg(dir.path().join("tls"))
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first request to the API server: the server is starting, its handlers installed.
    let (_held, _) = silent.accept().unwrap();
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert_eq!(exit.code(), Some(0), "{log}");
    assert!(log.contains("stopped before serving"), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
}

/// `--max-connections`: with every permit held, a new connection is closed at once
/// (its TLS handshake fails), counted and logged; once one closes, new ones are served.
#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once_and_counted() {
    let generated = common::generate();
    let dir = tempfile::tempdir().unwrap();
    common::write_secret_volume(dir.path(), "v1", &generated);
    let mut config = common::config(dir.path(), OnInvalid::Deny);
    config.max_connections = 3;
    let running = init_injector::webhook::server::start(config).await.unwrap();
    let ca = generated.ca_cert_pem.as_str();

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(common::raw_tls(running.addr, ca).await);
    }
    let connector =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(common::tls_config(&[ca])));
    let started = std::time::Instant::now();
    let tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let over = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .expect("the connection over the limit is closed, not left waiting");
    assert!(over.is_err(), "a fourth connection was served");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let metrics = metrics(running.metrics_addr).await;
    assert!(
        metrics.contains("init_injector_connections_refused_total 1"),
        "{metrics}"
    );

    // One held connection closes: its permit comes back and a new client is served.
    drop(held.pop());
    let client = common::client(&[ca], false);
    let url = format!("https://localhost:{}/healthz", running.addr.port());
    let response = eventually(Duration::from_secs(5), async || {
        client
            .get(&url)
            .send()
            .await
            .map_err(|err| format!("not served again: {err}"))
    })
    .await;
    assert_eq!(response.status(), 200);
    drop(held);
    running.shutdown().await.unwrap();
}
