//! Planning + patching cost (`engine::mutate`): a typical pod (3 waits, 2 steps, 2
//! volumes) and large pods (20 containers, up to 2,000 env vars) to show the cost
//! grows linearly with pod size. The pod is decoded once, outside the measurement.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use init_injector::engine::config::EngineConfig;
use init_injector::engine::{PodContext, plan_injection};
use jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn annotations() -> BTreeMap<String, String> {
    [
        (
            "init.example/wait-for",
            "postgres.db.svc:5432,redis.cache.svc:6379,http://config.svc:8080/healthz",
        ),
        ("init.example/run.01-migrate", "npm run migration:run"),
        (
            "init.example/run.02-fetch",
            "fetch-config --out /config/app.yaml",
        ),
        ("init.example/run.02-fetch.image", "tools/fetch:1.0"),
        (
            "init.example/volumes",
            "config:/config,secrets:/secrets:Memory",
        ),
        ("app.kubernetes.io/name", "shop"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `containers` app containers sharing `env_vars` env vars between them.
fn pod(containers: usize, env_vars: usize) -> (ObjectMeta, PodSpec) {
    let per = env_vars / containers.max(1);
    let containers = (0..containers)
        .map(|c| Container {
            name: format!("c-{c}"),
            image: Some(format!("registry.example.com/app-{c}:1.0")),
            env: Some(
                (0..per)
                    .map(|i| EnvVar {
                        name: format!("VAR_{c}_{i}"),
                        value: Some(format!("value-{i}")),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        })
        .collect();
    let meta = ObjectMeta {
        name: Some("p".into()),
        annotations: Some(annotations()),
        ..Default::default()
    };
    (
        meta,
        PodSpec {
            containers,
            ..Default::default()
        },
    )
}

fn bench(c: &mut Criterion) {
    let config = EngineConfig::default();
    let root = PointerBuf::new();

    let (meta, spec) = pod(1, 10);
    c.bench_function("mutate/typical", |b| {
        b.iter(|| {
            plan_injection(&PodContext::new(black_box(&meta), black_box(&spec), &config).at(&root))
        })
    });

    let mut group = c.benchmark_group("mutate/large-20-containers");
    for env_vars in [500, 1000, 2000] {
        let (meta, spec) = pod(20, env_vars);
        group.bench_with_input(BenchmarkId::from_parameter(env_vars), &spec, |b, spec| {
            b.iter(|| {
                plan_injection(
                    &PodContext::new(black_box(&meta), black_box(spec), &config).at(&root),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, review);
criterion_main!(benches);

/// A whole review as the server answers it: decode, decide, patch, encode.
fn review(c: &mut Criterion) {
    use init_injector::webhook::admission::{AdmissionConfig, review};
    let config = AdmissionConfig::default();
    let read = |file| std::fs::read(file).expect("run from the repository root");
    for (name, body) in [
        ("annotated", read("examples/review.json")),
        ("unannotated", read("examples/review-unannotated.json")),
        (
            "large-2000-env",
            large_review(&read("examples/review.json")),
        ),
    ] {
        c.bench_function(&format!("review/{name}"), |b| {
            b.iter(|| review(black_box(&body), &config).unwrap())
        });
    }
}

/// The annotated review, compact, with 2,000 env vars on its app container (which both
/// run steps copy): the large case of `benches/load.sh`.
fn large_review(annotated: &[u8]) -> Vec<u8> {
    let mut review: serde_json::Value = serde_json::from_slice(annotated).unwrap();
    let env = review["request"]["object"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap();
    env.extend((0..2000).map(|i| {
        serde_json::json!({
            "name": format!("SETTING_{}", i + 10000),
            "value": format!("value-{}", i * 7919 % 90000 + 10000),
        })
    }));
    serde_json::to_vec(&review).unwrap()
}
