//! A bare admission webhook: what kube-rs's `examples/admission_controller.rs` does, on
//! the same HTTP/1.1 + rustls (ring) setup as `init-injector serve`. It decodes each
//! AdmissionReview into a `DynamicObject`, adds the label `admission` unless present,
//! and answers with kube's own serialization. `benches/load.sh` drives it with the
//! same reviews as `serve` to show what the stack alone costs.
//!
//!     admission-baseline ADDR CERT_PEM KEY_PEM

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use axum_server::tls_rustls::RustlsConfig;
use json_patch::jsonptr::PointerBuf;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube_core::{DynamicObject, Resource, ResourceExt};
use tower_http::trace::{DefaultMakeSpan, TraceLayer};
use tracing::{Level, info, warn};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .init();
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("no other provider is installed");

    let mut args = std::env::args().skip(1);
    let usage = "usage: admission-baseline ADDR CERT_PEM KEY_PEM";
    let addr: SocketAddr = args.next().expect(usage).parse().expect("ADDR");
    let (cert, key) = (args.next().expect(usage), args.next().expect(usage));
    let tls = RustlsConfig::from_pem_file(cert, key)
        .await
        .expect("certificate and key load");
    // HTTP/1.1 only, as the API server speaks to webhooks behind a Service.
    let mut config = (*tls.get_inner()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tls.reload_from_config(Arc::new(config));

    let app = Router::new().route("/mutate", post(mutate_handler)).layer(
        TraceLayer::new_for_http().make_span_with(DefaultMakeSpan::new().level(Level::INFO)),
    );
    info!(%addr, "listening");
    let mut server = axum_server::bind_rustls(addr, tls).http1_only();
    server.http_builder().http1().keep_alive(true);
    server
        .serve(app.into_make_service())
        .await
        .expect("server runs");
}

async fn mutate_handler(Json(review): Json<AdmissionReview<DynamicObject>>) -> impl IntoResponse {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(err) => {
            warn!(error = %err, "invalid request");
            return (
                StatusCode::BAD_REQUEST,
                Json(AdmissionResponse::invalid(err.to_string()).into_review()),
            );
        }
    };
    let mut response = AdmissionResponse::from(&request);
    if let Some(object) = &request.object {
        let name = object.name_any();
        response = match add_label(response.clone(), object) {
            Ok(response) => {
                info!("accepted: {:?} on {}", request.operation, name);
                response
            }
            Err(err) => {
                warn!("denied: {:?} on {} ({})", request.operation, name, err);
                response.deny(err.to_string())
            }
        };
    }
    (StatusCode::OK, Json(response.into_review()))
}

/// Adds the label `admission`, creating `labels` first when the object has none.
fn add_label(
    response: AdmissionResponse,
    object: &DynamicObject,
) -> Result<AdmissionResponse, Box<dyn std::error::Error>> {
    if object.labels().contains_key("illegal") {
        return Err("the object carries the label 'illegal'".into());
    }
    if object.labels().contains_key("admission") {
        return Ok(response);
    }
    let mut patches = Vec::new();
    if object.meta().labels.is_none() {
        patches.push(json_patch::PatchOperation::Add(json_patch::AddOperation {
            path: PointerBuf::from_tokens(["metadata", "labels"]),
            value: serde_json::json!({}),
        }));
    }
    patches.push(json_patch::PatchOperation::Add(json_patch::AddOperation {
        path: PointerBuf::from_tokens(["metadata", "labels", "admission"]),
        value: serde_json::Value::String("modified-by-admission-controller".into()),
    }));
    Ok(response.with_patch(json_patch::Patch(patches))?)
}
