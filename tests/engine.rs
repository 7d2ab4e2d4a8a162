//! Table-driven tests of the engine through its public entry point: ordering rules,
//! run-step copies, clashes, patch shapes and idempotency. Every patch is proven by
//! applying it with json-patch and comparing with the engine's own mutated pod.

use init_injector::engine::config::EngineConfig;
use init_injector::engine::{Injection, Outcome, PodContext, Skip, plan_injection};
use jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

mod common;
use common::{apply_checked, init_names, volume_names};

fn pod(value: Value) -> Pod {
    serde_json::from_value(value).expect("test pod")
}

fn annotated(annotations: Value, spec: Value) -> Pod {
    pod(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": annotations}, "spec": spec}),
    )
}

fn app() -> Value {
    json!([{"name": "app", "image": "app:1"}])
}

/// Runs the engine, applies its patch and checks that the result is the engine's own
/// idea of the mutated pod; returns the patched pod and the injection.
fn inject(pod: &Pod) -> (Pod, Injection) {
    let outcome = plan_injection(&PodContext::new(
        &pod.metadata,
        pod.spec.as_ref().unwrap(),
        &EngineConfig::default(),
    ))
    .unwrap_or_else(|e| panic!("engine refused: {e}"));
    let Outcome::Injected(injection) = outcome else {
        panic!("skipped: {outcome:?}")
    };
    let patched = apply_checked(pod, &injection);
    (patched, *injection)
}

fn errors(pod: &Pod) -> Vec<String> {
    match plan_injection(&PodContext::new(
        &pod.metadata,
        pod.spec.as_ref().unwrap(),
        &EngineConfig::default(),
    )) {
        Err(invalid) => invalid.0.iter().map(ToString::to_string).collect(),
        Ok(outcome) => panic!("accepted: {outcome:?}"),
    }
}

fn sidecar(name: &str) -> Value {
    json!({"name": name, "image": "proxy:1", "restartPolicy": "Always"})
}

fn plain(name: &str) -> Value {
    json!({"name": name, "image": "tool:1"})
}

#[test]
fn placement_rules() {
    let w = "wait-for-db-5432";
    let cases: Vec<(&str, &str, Value, Vec<&str>)> = vec![
        ("no own init containers", "first", json!([]), vec![w]),
        (
            "front without a sidecar",
            "first",
            json!([plain("a"), plain("b")]),
            vec![w, "a", "b"],
        ),
        (
            "after the only sidecar",
            "first",
            json!([sidecar("proxy"), plain("istio-init")]),
            vec!["proxy", w, "istio-init"],
        ),
        (
            "after the last of several sidecars",
            "first",
            json!([
                plain("a"),
                sidecar("s1"),
                plain("b"),
                sidecar("s2"),
                plain("c")
            ]),
            vec!["a", "s1", "b", "s2", w, "c"],
        ),
        (
            "last",
            "last",
            json!([sidecar("s"), plain("a")]),
            vec!["s", "a", w],
        ),
        (
            "before",
            "before:b",
            json!([plain("a"), plain("b")]),
            vec!["a", w, "b"],
        ),
        (
            "after",
            "after:a",
            json!([plain("a"), plain("b")]),
            vec!["a", w, "b"],
        ),
        (
            "after the last one",
            "after:b",
            json!([plain("a"), plain("b")]),
            vec!["a", "b", w],
        ),
    ];
    for (what, position, init, want) in cases {
        let pod = annotated(
            json!({"init.example/wait-for": "db:5432", "init.example/position": position}),
            json!({"initContainers": init, "containers": app()}),
        );
        let (patched, _) = inject(&pod);
        assert_eq!(init_names(&patched), want, "{what}");
    }
}

#[test]
fn block_order_is_waits_then_steps() {
    let pod = annotated(
        json!({
            "init.example/wait-for": "redis:6379,postgres:5432",
            "init.example/run.b-second": "echo b",
            "init.example/run.a-first": "echo a",
        }),
        json!({"containers": app()}),
    );
    let (patched, injection) = inject(&pod);
    assert_eq!(
        init_names(&patched),
        [
            "wait-for-redis-6379",
            "wait-for-postgres-5432",
            "a-first",
            "b-second"
        ]
    );
    let args = injection.plan.steps[1].container.args.clone().unwrap();
    assert_eq!(
        args,
        [
            "--timeout",
            "5m",
            "--interval",
            "2s",
            "--step",
            "2/4",
            "postgres:5432"
        ]
    );

    let pod = annotated(
        json!({"init.example/run.b": "echo b", "init.example/run.a": "echo a", "init.example/steps": "b,a"}),
        json!({"containers": app()}),
    );
    assert_eq!(init_names(&inject(&pod).0), ["b", "a"]);
}

#[test]
fn wait_steps_are_restricted_and_bounded() {
    let pod = annotated(
        json!({"init.example/wait-for": "db:1", "init.example/wait-timeout": "90s", "init.example/wait-interval": "500ms"}),
        json!({"containers": app()}),
    );
    let (patched, _) = inject(&pod);
    let step = &patched.spec.unwrap().init_containers.unwrap()[0];
    let sc = step.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    let resources = step.resources.as_ref().unwrap();
    assert!(resources.requests.as_ref().unwrap().contains_key("memory"));
    assert!(resources.limits.as_ref().unwrap().contains_key("cpu"));
    assert_eq!(
        step.args.as_ref().unwrap()[..4],
        ["--timeout", "90s", "--interval", "500ms"]
    );
    assert_eq!(
        step.image.as_deref(),
        Some(EngineConfig::default().wait_image.as_str())
    );
}

#[test]
fn run_steps_copy_their_source_container() {
    let spec = json!({"containers": [
        {"name": "sidecar-logger", "image": "logger:1"},
        {"name": "app", "image": "app:2", "imagePullPolicy": "Always", "workingDir": "/srv",
         "env": [{"name": "A", "value": "1"}], "envFrom": [{"configMapRef": {"name": "cm"}}],
         "volumeMounts": [{"name": "data", "mountPath": "/data"}],
         "securityContext": {"runAsUser": 1000}, "resources": {"limits": {"memory": "1Gi"}},
         "ports": [{"containerPort": 80}], "readinessProbe": {"tcpSocket": {"port": 80}}},
    ], "volumes": [{"name": "data", "emptyDir": {}}]});

    // kubectl's default-container annotation picks the source.
    let pod = annotated(
        json!({"init.example/run.migrate": "migrate --up 'all of it'", "kubectl.kubernetes.io/default-container": "app"}),
        spec.clone(),
    );
    let (_, injection) = inject(&pod);
    let pod_spec = pod.spec.as_ref().unwrap();
    // The env is the app container's, not copied into the plan: the patch copies it.
    assert_eq!(injection.plan.steps[0].env_of, Some(1));
    assert_eq!(injection.plan.steps[0].container.env, None);
    let step = &*injection.plan.steps[0].container_in(pod_spec);
    let source = &pod_spec.containers[1];
    assert!(source.env.as_ref().is_some_and(|env| !env.is_empty()));
    assert_eq!(
        step.command.as_deref().unwrap(),
        ["migrate", "--up", "all of it"]
    );
    assert_eq!(step.args, None);
    assert_eq!(
        (&step.image, &step.image_pull_policy),
        (&source.image, &source.image_pull_policy)
    );
    assert_eq!(
        (&step.env, &step.env_from, &step.working_dir),
        (&source.env, &source.env_from, &source.working_dir)
    );
    assert_eq!(
        (&step.security_context, &step.resources),
        (&source.security_context, &source.resources)
    );
    assert_eq!(step.volume_mounts, source.volume_mounts);
    assert_eq!(
        (&step.ports, &step.readiness_probe),
        (&None, &None),
        "init containers take no ports or probes"
    );

    // Without it, the first container; .container and .image override.
    let pod = annotated(json!({"init.example/run.m": "m"}), spec.clone());
    assert_eq!(
        inject(&pod).1.plan.steps[0].container.image.as_deref(),
        Some("logger:1")
    );
    let pod = annotated(
        json!({"init.example/run.m": "m", "init.example/run.m.container": "app", "init.example/run.m.image": "tool:9"}),
        spec,
    );
    let (_, injection) = inject(&pod);
    let step = &*injection.plan.steps[0].container_in(pod.spec.as_ref().unwrap());
    assert_eq!(
        (step.image.as_deref(), step.image_pull_policy.as_deref()),
        (Some("tool:9"), None)
    );
    assert_eq!(step.working_dir.as_deref(), Some("/srv"));
}

#[test]
fn shared_volumes_reach_every_step_and_app_container() {
    let pod = annotated(
        json!({"init.example/wait-for": "db:1", "init.example/run.fetch": "fetch", "init.example/volumes": "config:/config,tmp:/scratch:Memory:64Mi"}),
        json!({"containers": [{"name": "app", "image": "a"}, {"name": "worker", "image": "w", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}],
               "initContainers": [plain("own")], "volumes": [{"name": "x", "emptyDir": {}}]}),
    );
    let (patched, _) = inject(&pod);
    let spec = patched.spec.unwrap();
    let mounts = |c: &k8s_openapi::api::core::v1::Container| -> Vec<String> {
        c.volume_mounts
            .iter()
            .flatten()
            .map(|m| format!("{}:{}", m.name, m.mount_path))
            .collect()
    };
    let init = spec.init_containers.unwrap();
    assert_eq!(mounts(&init[0]), ["config:/config", "tmp:/scratch"]);
    assert_eq!(mounts(&init[1]), ["config:/config", "tmp:/scratch"]);
    assert_eq!(
        mounts(&init[2]),
        Vec::<String>::new(),
        "the pod's own init container is untouched"
    );
    assert_eq!(
        mounts(&spec.containers[0]),
        ["config:/config", "tmp:/scratch"]
    );
    assert_eq!(
        mounts(&spec.containers[1]),
        ["x:/x", "config:/config", "tmp:/scratch"]
    );
    let volumes = serde_json::to_value(spec.volumes.unwrap()).unwrap();
    assert_eq!(
        volumes,
        json!([
            {"name": "x", "emptyDir": {}},
            {"name": "config", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ])
    );
}

#[test]
fn clashes_are_refused_with_the_key() {
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        (
            "wait name taken",
            json!({"init.example/wait-for": "db:1"}),
            json!({"initContainers": [plain("wait-for-db-1")], "containers": app()}),
            "init.example/wait-for: \"db:1\": the pod already has a container named \"wait-for-db-1\"",
        ),
        (
            "step name taken by an app container",
            json!({"init.example/run.app": "x"}),
            json!({"containers": app()}),
            "init.example/run.app: \"x\": the pod already has a container named \"app\"",
        ),
        (
            "volume name taken",
            json!({"init.example/volumes": "data:/d"}),
            json!({"containers": app(), "volumes": [{"name": "data", "emptyDir": {}}]}),
            "the pod already has a volume named \"data\"",
        ),
        (
            "mount path taken",
            json!({"init.example/volumes": "cfg:/etc/app/"}),
            json!({"containers": [{"name": "app", "volumeMounts": [{"name": "v", "mountPath": "/etc/app"}]}]}),
            "container \"app\" already mounts volume \"v\" at /etc/app",
        ),
        (
            "unknown anchor",
            json!({"init.example/wait-for": "db:1", "init.example/position": "before:setup"}),
            json!({"initContainers": [plain("prepare")], "containers": app()}),
            "init.example/position: \"before:setup\": the pod has no init container named \"setup\"; expected one of: prepare",
        ),
        (
            "unknown source container",
            json!({"init.example/run.m": "m", "init.example/run.m.container": "ap"}),
            json!({"containers": app()}),
            "init.example/run.m.container: \"ap\": the pod has no app container of that name; expected one of: app",
        ),
        (
            "no container at all",
            json!({"init.example/run.m": "m"}),
            json!({"containers": []}),
            "no app container",
        ),
    ];
    for (what, annotations, spec, want) in cases {
        let errors = errors(&annotated(annotations, spec));
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{what}: {errors:#?}"
        );
    }
}

#[test]
fn skips_and_opt_out() {
    let cfg = EngineConfig::default();
    let root = PointerBuf::new();
    let plain_pod = pod(
        json!({"metadata": {"annotations": {"other.io/x": "y"}}, "spec": {"containers": app()}}),
    );
    let outcome = plan_injection(
        &PodContext::new(&plain_pod.metadata, plain_pod.spec.as_ref().unwrap(), &cfg).at(&root),
    )
    .unwrap();
    assert_eq!(outcome, Outcome::Skipped(Skip::NotAnnotated));
    let opted = annotated(
        json!({"init.example/wait-for": "db:1", "init.example/inject": "false"}),
        json!({"containers": app()}),
    );
    let outcome = plan_injection(
        &PodContext::new(&opted.metadata, opted.spec.as_ref().unwrap(), &cfg).at(&root),
    )
    .unwrap();
    assert_eq!(outcome, Outcome::Skipped(Skip::OptedOut));
}

#[test]
fn second_pass_is_a_no_op() {
    let pod = annotated(
        json!({"init.example/wait-for": "db:1,http://api/x", "init.example/run.m": "m", "init.example/volumes": "v:/v"}),
        json!({"initContainers": [sidecar("proxy"), plain("own")], "containers": app()}),
    );
    let (once, _) = inject(&pod);
    let (twice, second) = inject(&once);
    assert!(second.patch.is_empty(), "{:#?}", second.patch);
    assert_eq!(once, twice);
}

#[test]
fn reinvocation_replaces_the_block_after_a_new_sidecar() {
    let pod = annotated(
        json!({"init.example/wait-for": "db:1", "init.example/volumes": "v:/v"}),
        json!({"initContainers": [plain("own")], "containers": app()}),
    );
    let (mut once, _) = inject(&pod);
    assert_eq!(init_names(&once), ["wait-for-db-1", "own"]);
    // A mesh injector runs after us and prepends its native sidecar: the block already
    // stands right after it, so nothing moves.
    let mut prepended = once.clone();
    let init = prepended
        .spec
        .as_mut()
        .unwrap()
        .init_containers
        .as_mut()
        .unwrap();
    init.insert(0, serde_json::from_value(sidecar("istio-proxy")).unwrap());
    init.push(serde_json::from_value(plain("istio-init")).unwrap());
    let (same, injection) = inject(&prepended);
    assert!(injection.patch.is_empty(), "{:#?}", injection.patch);
    assert_eq!(
        init_names(&same),
        ["istio-proxy", "wait-for-db-1", "own", "istio-init"]
    );

    // One that appends its sidecar: the block moves behind it, once.
    let init = once
        .spec
        .as_mut()
        .unwrap()
        .init_containers
        .as_mut()
        .unwrap();
    init.push(serde_json::from_value(plain("linkerd-init")).unwrap());
    init.push(serde_json::from_value(sidecar("linkerd-proxy")).unwrap());
    let (again, injection) = inject(&once);
    assert_eq!(
        init_names(&again),
        ["own", "linkerd-init", "linkerd-proxy", "wait-for-db-1"]
    );
    assert!(!injection.patch.is_empty());
    assert_eq!(volume_names(&again), ["v"], "volumes are not duplicated");
    assert!(
        inject(&again).1.patch.is_empty(),
        "and it is stable from then on"
    );
}

#[test]
fn a_changed_spec_replaces_what_status_lists() {
    let pod = annotated(
        json!({"init.example/wait-for": "db:1,cache:2", "init.example/volumes": "old:/old"}),
        json!({"containers": app()}),
    );
    let (mut cloned, _) = inject(&pod);
    let annotations = cloned.metadata.annotations.as_mut().unwrap();
    annotations.insert("init.example/wait-for".into(), "queue:3".into());
    annotations.insert("init.example/volumes".into(), "new:/new".into());
    let (again, injection) = inject(&cloned);
    assert_eq!(init_names(&again), ["wait-for-queue-3"]);
    assert_eq!(volume_names(&again), ["new"]);
    let spec = again.spec.as_ref().unwrap();
    let mounts: Vec<&str> = spec.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(mounts, ["new"]);
    assert_eq!(
        injection.status.unwrap().init_containers,
        ["wait-for-queue-3"]
    );

    // Annotations removed entirely but the status left behind: the injection goes too.
    let mut stale = again.clone();
    stale
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .retain(|k, _| k == "init.example/status");
    let (cleaned, injection) = inject(&stale);
    assert_eq!(injection.status, None);
    assert!(init_names(&cleaned).is_empty());
    assert_eq!(cleaned.metadata.annotations, Some(Default::default()));
}

#[test]
fn patch_shapes() {
    // Absent annotations map, initContainers and volumes: each is added whole.
    let bare = pod(
        json!({"metadata": {"name": "p", "annotations": {"init.example/wait-for": "db:1"}}, "spec": {"containers": app()}}),
    );
    let (_, injection) = inject(&bare);
    let paths: Vec<String> = injection
        .patch
        .iter()
        .map(|op| format!("{} {}", op_name(op), op.path()))
        .collect();
    assert_eq!(
        paths,
        [
            "add /spec/initContainers",
            "add /metadata/annotations/init.example~1status"
        ]
    );

    // Existing lists are extended in place, never replaced.
    let full = annotated(
        json!({"init.example/wait-for": "db:1", "init.example/volumes": "v:/v", "init.example/position": "last"}),
        json!({"initContainers": [plain("a")], "containers": [{"name": "app", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}, {"name": "b"}],
               "volumes": [{"name": "x", "emptyDir": {}}]}),
    );
    let (_, injection) = inject(&full);
    let paths: Vec<String> = injection
        .patch
        .iter()
        .map(|op| format!("{} {}", op_name(op), op.path()))
        .collect();
    assert_eq!(
        paths,
        [
            "add /spec/initContainers/1",
            "add /spec/volumes/1",
            "add /spec/containers/0/volumeMounts/1",
            "add /spec/containers/1/volumeMounts",
            "add /metadata/annotations/init.example~1status",
        ]
    );

    // Patches under a workload's template root.
    let root = PointerBuf::parse("/spec/template").unwrap();
    let outcome = plan_injection(
        &PodContext::new(
            &bare.metadata,
            bare.spec.as_ref().unwrap(),
            &EngineConfig::default(),
        )
        .at(&root),
    )
    .unwrap();
    let Outcome::Injected(injection) = outcome else {
        panic!()
    };
    assert!(
        injection
            .patch
            .iter()
            .all(|op| op.path().to_string().starts_with("/spec/template/"))
    );
}

fn op_name(op: &json_patch::PatchOperation) -> &'static str {
    match op {
        json_patch::PatchOperation::Add(_) => "add",
        json_patch::PatchOperation::Remove(_) => "remove",
        json_patch::PatchOperation::Replace(_) => "replace",
        _ => "other",
    }
}

#[test]
fn annotation_prefix_is_configurable() {
    let pod = annotated(
        json!({"acme.io/wait-for": "db:1", "init.example/wait-for": "x:2"}),
        json!({"containers": app()}),
    );
    let config = EngineConfig {
        prefix: "acme.io".into(),
        ..EngineConfig::default()
    };
    let outcome = plan_injection(&PodContext::new(
        &pod.metadata,
        pod.spec.as_ref().unwrap(),
        &config,
    ))
    .unwrap();
    let Outcome::Injected(injection) = outcome else {
        panic!()
    };
    let names: Vec<&str> = injection
        .plan
        .steps
        .iter()
        .map(|s| s.container.name.as_str())
        .collect();
    assert_eq!(names, ["wait-for-db-1"]);
    assert!(
        injection
            .mutated_annotations(None)
            .contains_key("acme.io/status")
    );
}

#[test]
fn output_is_deterministic() {
    let pod = annotated(
        json!({"init.example/wait-for": "b:1,a:2", "init.example/run.z": "z", "init.example/run.y": "y", "init.example/volumes": "q:/q,p:/p"}),
        json!({"containers": app()}),
    );
    let first = serde_json::to_string(&inject(&pod).1.patch).unwrap();
    for _ in 0..5 {
        assert_eq!(serde_json::to_string(&inject(&pod).1.patch).unwrap(), first);
    }
}

/// The spec a plan is built from when the pod carries an earlier injection: the pod's own
/// containers, init containers and volumes, nothing injected, and none of the fields the
/// plan does not read; `strip` takes out the same and keeps the rest.
#[test]
fn stripped_keeps_the_pods_own_parts_and_only_what_the_plan_reads() {
    use init_injector::engine::plan::{strip, stripped};
    use init_injector::engine::status::Status;

    let text = std::fs::read_to_string("tests/fixtures/stored-pod.yaml").unwrap();
    let stored: Pod = serde_yaml_ng::from_str(&text).unwrap();
    let spec = stored.spec.as_ref().unwrap();
    let status =
        Status::parse(&stored.metadata.annotations.as_ref().unwrap()["init.example/status"])
            .unwrap();
    assert_eq!(status.init_containers.len(), 3);
    assert_eq!(status.volumes, ["config", "scratch"]);

    let lean = stripped(spec, &status);
    fn names<T>(list: &Option<Vec<T>>, name: impl Fn(&T) -> &str) -> Vec<&str> {
        list.iter().flatten().map(name).collect()
    }
    // Every init container of the stored pod was injected: the list stays, empty.
    assert_eq!(
        names(&spec.init_containers, |c| &c.name),
        status.init_containers
    );
    assert_eq!(lean.init_containers, Some(vec![]));
    assert_eq!(names(&lean.volumes, |v| &v.name), ["kube-api-access-v68t7"]);
    assert_eq!(lean.containers.len(), 1);
    assert_eq!(
        names(&lean.containers[0].volume_mounts, |m| &m.name),
        ["kube-api-access-v68t7"]
    );
    // The app container is otherwise whole.
    assert_eq!(
        lean.containers[0].security_context,
        spec.containers[0].security_context
    );
    // Fields the plan does not read are not copied.
    assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(lean.dns_policy, None);

    let mut whole = spec.clone();
    strip(&mut whole, &status);
    assert_eq!(whole.containers, lean.containers);
    assert_eq!(whole.init_containers, lean.init_containers);
    assert_eq!(whole.volumes, lean.volumes);
    assert_eq!(whole.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(whole.service_account_name.as_deref(), Some("default"));
}
