//! Properties over generated pods and annotations: injecting twice equals injecting
//! once, the pod's own init containers keep their order, names are valid and unique,
//! the patch yields exactly the engine's mutated pod, and no input makes it panic.

use std::collections::{BTreeMap, BTreeSet};

use init_injector::engine::config::EngineConfig;
use init_injector::engine::names::is_dns1123_label;
use init_injector::engine::patch::PatchJson;
use init_injector::engine::{Outcome, PodContext, plan_injection, plan_injection_with};
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;
use proptest::sample::subsequence;

mod common;
use common::{apply_checked, init_names, wire_makes_the_owned_pod};

const TARGETS: &[&str] = &[
    "postgres:5432",
    "redis.cache.svc:6379",
    "tcp://mq:5672",
    "[::1]:9000",
    "10.0.0.1:80",
    "http://api:8080/healthz",
    "https://vault.vault.svc:8200/v1/sys/health",
    "a-very-long-service-name-that-goes-on.and-on.in-a-namespace.svc.cluster.local:5432",
    "a-very-long-service-name-that-goes-on.and-on.in-a-namespace.svc.cluster.local:5433",
];
const STEP_NAMES: &[&str] = &["01-migrate", "02-fetch", "seed", "warm-cache", "z"];
const OWN_NAMES: &[&str] = &[
    "setup",
    "proxy",
    "istio-init",
    "render",
    "linkerd-proxy",
    "chmod",
];
const VOLUMES: &[&str] = &[
    "config:/config",
    "secrets:/secrets:Memory",
    "cache:/cache:Memory:64Mi",
    "work:/work:1Gi",
];

fn container(name: &str, sidecar: bool) -> Container {
    Container {
        name: name.to_owned(),
        image: Some(format!("{name}:1")),
        restart_policy: sidecar.then(|| "Always".to_owned()),
        ..Default::default()
    }
}

prop_compose! {
    fn pods()(
        own in subsequence(OWN_NAMES, 0..=OWN_NAMES.len()).prop_shuffle(),
        sidecars in prop::collection::vec(any::<bool>(), OWN_NAMES.len()),
        app_count in 1usize..4,
        data_mount in any::<bool>(),
        waits in subsequence(TARGETS, 0..=4).prop_shuffle(),
        steps in subsequence(STEP_NAMES, 0..=3),
        explicit_order in any::<bool>(),
        volumes in subsequence(VOLUMES, 0..=3),
        position in 0usize..5,
        anchor in any::<prop::sample::Index>(),
        with_env in 0u8..8,
    ) -> Pod {
        let init: Vec<Container> = own.iter().zip(&sidecars).map(|(n, s)| container(n, *s)).collect();
        let containers: Vec<Container> = (0..app_count)
            .map(|i| Container {
                volume_mounts: data_mount.then(|| vec![VolumeMount { name: "data".into(), mount_path: "/data".into(), ..Default::default() }]),
                // Run steps share the env of the app container they copy (a copy in the
                // webhook's patch); some app containers have one, some an empty one.
                env: match (with_env >> i) & 1 {
                    1 => Some((0..=i).map(|n| EnvVar { name: format!("VAR_{n}"), value: Some(format!("v{n}")), ..Default::default() }).collect()),
                    _ if i == 2 => Some(Vec::new()),
                    _ => None,
                },
                ..container(&format!("app-{i}"), false)
            })
            .collect();
        let mut annotations = BTreeMap::new();
        if !waits.is_empty() {
            annotations.insert("init.example/wait-for".to_owned(), waits.join(","));
        }
        for step in &steps {
            annotations.insert(format!("init.example/run.{step}"), format!("run {step} --flag 'two words'"));
        }
        if explicit_order && !steps.is_empty() {
            let mut order = steps.clone();
            order.reverse();
            annotations.insert("init.example/steps".to_owned(), order.join(","));
        }
        if !volumes.is_empty() {
            annotations.insert("init.example/volumes".to_owned(), volumes.join(","));
        }
        // Anchor to one of the pod's own init containers; with none, fall back to "last".
        let anchor = if own.is_empty() { None } else { Some(own[anchor.index(own.len())]) };
        let position = match (position, anchor) {
            (3 | 4, None) => 2,
            (p, _) => p,
        };
        let anchor = anchor.unwrap_or_default();
        let position = match position {
            0 => None,
            1 => Some("first".to_owned()),
            2 => Some("last".to_owned()),
            3 => Some(format!("before:{anchor}")),
            _ => Some(format!("after:{anchor}")),
        };
        if let Some(position) = position {
            annotations.insert("init.example/position".to_owned(), position);
        }
        Pod {
            metadata: ObjectMeta { name: Some("p".into()), annotations: Some(annotations), ..Default::default() },
            spec: Some(PodSpec {
                init_containers: Some(init),
                containers,
                volumes: data_mount.then(|| vec![Volume { name: "data".into(), ..Default::default() }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Applies the engine's patch to `pod`; `None` when the engine skips or refuses.
fn inject_once(pod: &Pod) -> Option<(Pod, usize)> {
    let outcome = plan_injection(&PodContext::new(
        &pod.metadata,
        pod.spec.as_ref().unwrap(),
        &EngineConfig::default(),
    ));
    let Ok(Outcome::Injected(injection)) = outcome else {
        return None;
    };
    let patched = apply_checked(pod, &injection);
    Some((patched, injection.patch.len()))
}

/// The webhook's patch bytes (written straight from the plan) and the engine's
/// operations serialized: one patch, byte for byte. Checked on the way: those bytes make
/// the pod that json-patch's owned form makes (which adds whole what the webhook's
/// copies).
fn both_patch_forms(pod: &Pod) -> Option<(Vec<u8>, Vec<u8>)> {
    let config = EngineConfig::default();
    let context = PodContext::new(&pod.metadata, pod.spec.as_ref().unwrap(), &config);
    let Ok(Outcome::Injected(operations)) =
        plan_injection_with(&context, |ops, _| serde_json::to_vec(&ops).unwrap())
    else {
        return None;
    };
    let Ok(Outcome::Injected(json)) = plan_injection_with(&context, PatchJson::from_ops) else {
        panic!("plan_injection_with disagrees with itself on whether to inject");
    };
    let Ok(Outcome::Injected(owned)) = plan_injection(&context) else {
        panic!("plan_injection and plan_injection_with disagree on whether to inject");
    };
    let wire: json_patch::Patch = serde_json::from_slice(&json.patch.bytes).unwrap();
    assert_eq!(json.patch.operations, wire.len());
    wire_makes_the_owned_pod(pod, &wire, &owned);
    Some((json.patch.bytes, operations.patch))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn webhook_patch_bytes_equal_the_operations(pod in pods()) {
        if let Some((json, operations)) = both_patch_forms(&pod) {
            prop_assert_eq!(String::from_utf8(json).unwrap(), String::from_utf8(operations).unwrap());
            let (once, _) = inject_once(&pod).unwrap();
            if let Some((json, operations)) = both_patch_forms(&once) {
                prop_assert_eq!(json, operations);
            }
        }
    }

    #[test]
    fn inject_twice_equals_inject_once(pod in pods()) {
        if let Some((once, _)) = inject_once(&pod) {
            let (twice, ops) = inject_once(&once).expect("an injected pod is injected again");
            prop_assert_eq!(ops, 0, "second patch not empty");
            prop_assert_eq!(once, twice);
        }
    }

    #[test]
    fn own_init_containers_keep_their_order(pod in pods()) {
        if let Some((mutated, _)) = inject_once(&pod) {
            let own = init_names(&pod);
            let kept: Vec<String> = init_names(&mutated).into_iter().filter(|n| own.contains(n)).collect();
            prop_assert_eq!(kept, own);
        }
    }

    #[test]
    fn names_are_valid_and_unique(pod in pods()) {
        if let Some((mutated, _)) = inject_once(&pod) {
            let spec = mutated.spec.as_ref().unwrap();
            let mut seen = BTreeSet::new();
            for c in spec.init_containers.iter().flatten().chain(&spec.containers) {
                prop_assert!(is_dns1123_label(&c.name), "invalid name {}", c.name);
                prop_assert!(seen.insert(c.name.clone()), "duplicate name {}", c.name);
            }
            let mut volumes = BTreeSet::new();
            for v in spec.volumes.iter().flatten() {
                prop_assert!(volumes.insert(v.name.clone()), "duplicate volume {}", v.name);
            }
        }
    }

    #[test]
    fn reinvocation_after_a_sidecar_keeps_one_block(pod in pods(), at in 0usize..8) {
        if let Some((mut once, _)) = inject_once(&pod) {
            let init = once.spec.as_mut().unwrap().init_containers.get_or_insert_with(Vec::new);
            let at = at.min(init.len());
            init.insert(at, container("mesh-proxy", true));
            let (again, _) = inject_once(&once).expect("still injected");
            let names = init_names(&again);
            let unique: BTreeSet<&String> = names.iter().collect();
            prop_assert_eq!(unique.len(), names.len(), "duplicated block: {:?}", names);
            prop_assert_eq!(names.len(), init_names(&once).len());
            let (third, ops) = inject_once(&again).expect("still injected");
            prop_assert_eq!(ops, 0);
            prop_assert_eq!(again, third);
        }
    }

    #[test]
    fn arbitrary_annotations_never_panic(
        entries in prop::collection::btree_map(
            prop_oneof![
                Just("init.example/wait-for".to_owned()),
                Just("init.example/volumes".to_owned()),
                Just("init.example/position".to_owned()),
                Just("init.example/steps".to_owned()),
                Just("init.example/status".to_owned()),
                "init\\.example/[a-z.\\-]{0,20}",
                "init\\.example/run\\.[a-zA-Z0-9.\\-]{0,12}",
                ".{0,30}",
            ],
            ".{0,80}",
            0..8,
        )
    ) {
        let meta = ObjectMeta { annotations: Some(entries), ..Default::default() };
        let spec = PodSpec { containers: vec![container("app", false)], ..Default::default() };
        match plan_injection(&PodContext::new(&meta, &spec, &EngineConfig::default())) {
            Ok(_) => {}
            Err(invalid) => {
                prop_assert!(!invalid.0.is_empty());
                for error in &invalid.0 {
                    prop_assert!(!error.message.is_empty());
                }
            }
        }
    }
}

/// Guards the generator: the properties above only say something about pods the engine
/// injects, so most generated pods must be injected, not skipped or refused.
#[test]
fn generator_mostly_yields_injectable_pods() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = pods();
    let total = 300;
    let (mut injected, mut copying) = (0, 0);
    for _ in 0..total {
        let pod = strategy.new_tree(&mut runner).unwrap().current();
        if let Some((json, _)) = both_patch_forms(&pod) {
            injected += 1;
            copying += String::from_utf8(json).unwrap().contains(r#""op":"copy""#) as usize;
        }
    }
    assert!(
        injected * 10 >= total * 7,
        "only {injected} of {total} generated pods were injected"
    );
    assert!(
        copying * 4 >= total,
        "only {copying} of {total} generated pods have a run step sharing an env"
    );
}
