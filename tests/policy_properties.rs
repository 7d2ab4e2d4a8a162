//! Properties over generated InitPolicies, namespaces and pods: checking and ordering
//! policies never panics and does not depend on the order they were listed in; an
//! accepted policy never makes the engine panic; with policies in force, injecting twice
//! equals injecting once, the policies' waits come first in the order the policies
//! apply, and `P/status` names exactly the policies that select the pod.

use std::collections::BTreeMap;

use init_injector::engine::config::EngineConfig;
use init_injector::engine::policy::crd::{
    InitPolicy, InitPolicySpec, PolicyDefaults, PolicyStep, PolicyVolume,
};
use init_injector::engine::policy::select::{NamespaceInfo, Policies};
use init_injector::engine::{Outcome, PodContext, plan_injection};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

mod common;
use common::apply_checked;

const TARGETS: &[&str] = &[
    "vault:8200",
    "postgres:5432",
    "http://config:8080/healthz",
    "[::1]:9000",
];
const LABEL_KEYS: &[&str] = &["tier", "team", "app.kubernetes.io/component"];
const LABEL_VALUES: &[&str] = &["prod", "dev", "api", "shop"];
const OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist"];
const DURATIONS: &[&str] = &["90s", "2m", "1h"];
const STEP_NAMES: &[&str] = &["fetch", "verify-deps", "warm", "app"];
const VOLUME_NAMES: &[&str] = &["secrets", "cache"];
const MOUNT_PATHS: &[&str] = &["/secrets", "/cache", "/data"];

/// One mistake the policy check must catch, applied to a generated policy.
#[derive(Clone, Copy, Debug)]
enum Breakage {
    None,
    Target,
    StepName,
    NeitherCommandNorImage,
    RelativeMountPath,
    NegativeTimeout,
    BogusOperator,
}

fn breakage() -> impl Strategy<Value = Breakage> {
    prop_oneof![
        12 => Just(Breakage::None),
        1 => Just(Breakage::Target),
        1 => Just(Breakage::StepName),
        1 => Just(Breakage::NeitherCommandNorImage),
        1 => Just(Breakage::RelativeMountPath),
        1 => Just(Breakage::NegativeTimeout),
        1 => Just(Breakage::BogusOperator),
    ]
}

fn break_policy(spec: &mut InitPolicySpec, breakage: Breakage) {
    let bad_step = |name: &str, command: bool| PolicyStep {
        name: name.to_owned(),
        command: command.then(|| vec!["true".to_owned()]),
        ..Default::default()
    };
    match breakage {
        Breakage::None => {}
        Breakage::Target => spec.wait_for.push("nowhere".to_owned()),
        Breakage::StepName => spec.steps.push(bad_step("Bad_Name", true)),
        Breakage::NeitherCommandNorImage => spec.steps.push(bad_step("noop", false)),
        Breakage::RelativeMountPath => spec.volumes.push(PolicyVolume {
            name: "broken".to_owned(),
            mount_path: "relative".to_owned(),
            ..Default::default()
        }),
        Breakage::NegativeTimeout => {
            spec.defaults = Some(PolicyDefaults {
                wait_timeout: Some("-1m".to_owned()),
                ..Default::default()
            })
        }
        Breakage::BogusOperator => {
            spec.pod_selector = Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "tier".to_owned(),
                    operator: "Bogus".to_owned(),
                    values: None,
                }]),
                ..Default::default()
            })
        }
    }
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        select(LABEL_KEYS).prop_map(str::to_owned),
        select(LABEL_VALUES).prop_map(str::to_owned),
        0..3,
    )
}

fn selector() -> impl Strategy<Value = Option<LabelSelector>> {
    let requirement = (
        select(LABEL_KEYS),
        select(OPERATORS),
        subsequence(LABEL_VALUES, 0..3),
    )
        .prop_map(|(key, operator, values)| LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: Some(values.into_iter().map(str::to_owned).collect()),
        });
    prop::option::weighted(
        0.4,
        (labels(), prop::collection::vec(requirement, 0..2)).prop_map(|(labels, exprs)| {
            LabelSelector {
                match_labels: (!labels.is_empty()).then_some(labels),
                match_expressions: (!exprs.is_empty()).then_some(exprs),
            }
        }),
    )
}

fn step() -> impl Strategy<Value = PolicyStep> {
    (
        select(STEP_NAMES),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, image, command, args)| PolicyStep {
            name: name.to_owned(),
            image: image.then(|| "registry.example.com/tools:1".to_owned()),
            // Never neither: that mistake is a Breakage of its own.
            command: (command || !image).then(|| vec!["run".to_owned(), name.to_owned()]),
            args: args.then(|| vec!["--flag".to_owned()]),
            ..Default::default()
        })
}

fn volume() -> impl Strategy<Value = PolicyVolume> {
    (
        select(VOLUME_NAMES),
        select(MOUNT_PATHS),
        prop::option::of(select(&["Memory", ""][..])),
    )
        .prop_map(|(name, path, medium)| PolicyVolume {
            name: name.to_owned(),
            mount_path: path.to_owned(),
            medium: medium.map(str::to_owned),
            size_limit: None,
        })
}

prop_compose! {
    fn policy()(
        name in select(&["a", "b", "c", "d", "e"][..]),
        priority in -2i32..3,
        namespace_selector in selector(),
        pod_selector in selector(),
        wait_for in subsequence(TARGETS, 0..3),
        volumes in prop::collection::vec(volume(), 0..2),
        steps in prop::collection::vec(step(), 0..2),
        templates in prop::collection::vec(step(), 0..2),
        timeout in prop::option::of(select(DURATIONS)),
        enforce in any::<bool>(),
        breakage in breakage(),
    ) -> InitPolicy {
        let mut spec = InitPolicySpec {
            namespace_selector,
            pod_selector,
            wait_for: wait_for.into_iter().map(str::to_owned).collect(),
            volumes,
            steps,
            templates,
            defaults: timeout.map(|t| PolicyDefaults { wait_timeout: Some(t.to_owned()), ..Default::default() }),
            enforce,
            priority,
        };
        break_policy(&mut spec, breakage);
        let mut policy = InitPolicy::new(name, spec);
        policy.metadata.name = Some(name.to_owned());
        policy
    }
}

prop_compose! {
    fn pod()(
        pod_labels in labels(),
        waits in subsequence(&["postgres:5432", "vault:8200", "redis:6379"][..], 0..3),
        run in any::<bool>(),
        opted_out in any::<bool>(),
        template in prop::option::weighted(0.3, select(&["verify-deps", "warm"][..])),
    ) -> Pod {
        let mut annotations = BTreeMap::new();
        if !waits.is_empty() {
            annotations.insert("init.example/wait-for".to_owned(), waits.join(","));
        }
        if run {
            annotations.insert("init.example/run.migrate".to_owned(), "npm run migrate".to_owned());
        }
        if let Some(template) = template {
            let mut order = vec![template.to_owned()];
            if run {
                order.push("migrate".to_owned());
            }
            annotations.insert("init.example/steps".to_owned(), order.join(","));
        }
        if opted_out {
            annotations.insert("init.example/inject".to_owned(), "false".to_owned());
        }
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                labels: Some(pod_labels),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("app:1".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

fn namespace(labels: BTreeMap<String, String>) -> NamespaceInfo {
    let mut namespace = NamespaceInfo::unseen("ns".to_owned());
    namespace.labels.extend(labels);
    namespace
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn policies_are_checked_and_ordered_the_same_whatever_their_listed_order(
        policies in prop::collection::vec(policy(), 0..5),
    ) {
        // Names repeat in the generator; the API server keeps one object per name.
        let mut by_name = BTreeMap::new();
        for policy in policies {
            by_name.insert(policy.metadata.name.clone(), policy);
        }
        let listed: Vec<InitPolicy> = by_name.into_values().collect();
        let forward = Policies::new(&listed);
        let backward = Policies::new(listed.iter().rev());
        let names = |p: &Policies| -> (Vec<String>, Vec<String>) {
            (
                p.accepted.iter().map(|a| a.name.clone()).collect(),
                p.rejected.iter().map(|r| r.name.clone()).collect(),
            )
        };
        prop_assert_eq!(names(&forward), names(&backward));
        prop_assert_eq!(forward.accepted.len() + forward.rejected.len(), listed.len());
        for rejected in &forward.rejected {
            prop_assert!(!rejected.problems.is_empty());
        }
        for pair in forward.accepted.windows(2) {
            prop_assert!(
                (pair[0].spec.priority, &pair[0].name) < (pair[1].spec.priority, &pair[1].name)
            );
        }
    }

    #[test]
    fn every_kind_of_mistake_leaves_the_policy_out(
        policy in policy(),
        breakage in breakage(),
    ) {
        let mut broken = policy.clone();
        break_policy(&mut broken.spec, breakage);
        let policies = Policies::new([&broken]);
        let expect_rejected = !matches!(breakage, Breakage::None);
        if expect_rejected {
            prop_assert!(policies.accepted.is_empty(), "{breakage:?} accepted: {:?}", broken.spec);
            prop_assert_eq!(policies.rejected.len(), 1);
        }
    }

    #[test]
    fn with_policies_in_force_injecting_twice_equals_once(
        policies in prop::collection::vec(policy(), 0..4),
        namespace_labels in labels(),
        pod in pod(),
    ) {
        let mut by_name = BTreeMap::new();
        for policy in policies {
            by_name.insert(policy.metadata.name.clone(), policy);
        }
        let policies = Policies::new(by_name.values());
        let namespace = namespace(namespace_labels);
        let config = EngineConfig::default();
        let context = |pod: &Pod| -> Result<Outcome, _> {
            plan_injection(
                &PodContext::new(&pod.metadata, pod.spec.as_ref().unwrap(), &config)
                    .in_scope(&namespace, &policies),
            )
        };
        let Ok(Outcome::Injected(injection)) = context(&pod) else {
            return Ok(());
        };
        let selected = policies.for_pod(&namespace.labels, pod.metadata.labels.as_ref().unwrap());
        let opted_out = pod.metadata.annotations.as_ref().unwrap().contains_key("init.example/inject");
        let applying: Vec<&str> = selected
            .iter()
            .filter(|p| !opted_out || p.spec.enforce)
            .map(|p| p.name.as_str())
            .collect();
        let status = injection.status.clone().expect("an injection that adds something has a status");
        prop_assert_eq!(&status.policies, &applying);

        // The policies' waits lead the block, in the order the policies apply.
        let mut policy_targets: Vec<String> = Vec::new();
        for policy in selected.iter().filter(|p| !opted_out || p.spec.enforce) {
            for target in &policy.spec.wait_for {
                let target = init_injector::engine::target::WaitTarget::parse(target).unwrap().to_string();
                if !policy_targets.contains(&target) {
                    policy_targets.push(target);
                }
            }
        }
        let leading: Vec<String> = injection.plan.steps.iter().take(policy_targets.len()).map(|step| {
            let args = step.container.args.clone().unwrap_or_default();
            args.last().cloned().unwrap_or_default()
        }).collect();
        prop_assert_eq!(leading, policy_targets);

        let once = apply_checked(&pod, &injection);
        match context(&once) {
            Ok(Outcome::Injected(again)) => {
                prop_assert!(again.is_already_injected(), "second patch: {:?}", again.patch);
            }
            other => prop_assert!(false, "second pass: {:?}", other),
        }
    }
}

/// The property above returns early for pods the engine skips or refuses; most
/// generated cases must still reach its checks, many with a policy applied.
#[test]
fn the_generator_mostly_yields_injections_with_policies() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (prop::collection::vec(policy(), 0..4), labels(), pod());
    let config = EngineConfig::default();
    let (mut injected, mut with_policies) = (0, 0);
    for _ in 0..500 {
        let (policies, namespace_labels, pod) = strategy.new_tree(&mut runner).unwrap().current();
        let policies = Policies::new(&policies);
        let namespace = namespace(namespace_labels);
        let outcome = plan_injection(
            &PodContext::new(&pod.metadata, pod.spec.as_ref().unwrap(), &config)
                .in_scope(&namespace, &policies),
        );
        if let Ok(Outcome::Injected(injection)) = outcome {
            injected += 1;
            if !injection.plan.policies.is_empty() {
                with_policies += 1;
            }
        }
    }
    assert!(injected >= 150, "only {injected} of 500 cases injected");
    assert!(
        with_policies >= 75,
        "only {with_policies} of 500 had a policy applied"
    );
}
