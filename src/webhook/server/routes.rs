//! The routes on the HTTPS port (`POST /mutate`, `/healthz`, `/readyz`) and on the metrics
//! port, and reading a review's body within its size and time limits.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::{App, reviewers};
use crate::webhook::admission;
use crate::webhook::metrics::Metrics;

/// The largest body accepted: the apiserver caps objects at 3 MiB and a CREATE review
/// carries the object once, plus the review's own fields.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// The webhook's routes on the HTTPS port.
pub(super) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            json_error(
                StatusCode::NOT_FOUND,
                "no such path; the webhook serves POST /mutate",
            )
        })
        .with_state(app)
}

pub(super) fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }
        }),
    )
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let gates_open = app.gates.iter().all(|gate| gate.load(Ordering::Acquire));
    if app.ready.load(Ordering::Acquire) && gates_open {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /mutate`. An answered review is logged in one line that carries its uid
/// ([`log_review`]); a request refused before its uid is known, in one line that says why.
/// No span is opened per request: nothing else is logged while a review is answered,
/// and a span (created and formatted per request, entered and left on every poll) cost
/// 3–10 % of a review's CPU only to repeat that uid (docs/performance.md, fourth round).
async fn mutate(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let refuse = |status: StatusCode, message: &str| {
        app.metrics.bad_request(started.elapsed());
        tracing::warn!(status = status.as_u16(), error = message, "request refused");
        json_error(status, message)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // The body's share of the queue's budget first, then the body (see `reviewers`): a
    // body slower than SLOT_HOLD gives its share up and waits for it again once it is in.
    let mut slot = app.reviewers.slot(declared).await;
    let read = tokio::time::timeout(app.request_timeout, read_body(body, declared));
    let read = if slot.is_some() {
        tokio::pin!(read);
        match tokio::time::timeout(reviewers::SLOT_HOLD, &mut read).await {
            Ok(read) => read,
            Err(_) => {
                slot = None;
                let read = read.await;
                // Its length is known now; a body that failed needs no share.
                if let Ok(Ok(bytes)) = &read {
                    slot = app.reviewers.slot(Some(bytes.len())).await;
                }
                read
            }
        }
    } else {
        read.await
    };
    let bytes = match read {
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            );
        }
        Ok(Err(BodyError::TooLarge)) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            );
        }
        Ok(Err(BodyError::Read(err))) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {err}"),
            );
        }
        Ok(Ok(bytes)) => bytes,
    };
    if bytes.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the body is empty; expected an AdmissionReview",
        );
    }
    let reviewed = app.reviewers.review(bytes).await;
    drop(slot);
    match reviewed {
        Err(lost) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &lost.to_string()),
        Ok(Ok(reviewed)) => {
            let elapsed = started.elapsed();
            app.metrics.review(&reviewed.decision, elapsed);
            log_review(&reviewed, elapsed);
            ([(header::CONTENT_TYPE, "application/json")], reviewed.body).into_response()
        }
        // No uid is known: the review cannot be answered as a review.
        Ok(Err(err)) => refuse(StatusCode::BAD_REQUEST, &crate::error::chain(&err)),
    }
}

/// One line per answered review.
fn log_review(reviewed: &admission::Reviewed, elapsed: std::time::Duration) {
    let (decision, detail) = match &reviewed.decision {
        admission::Decision::Skipped(why) => ("skipped", *why),
        other => (other.label(), ""),
    };
    let patch_ops = match reviewed.decision {
        admission::Decision::Mutated { operations } => operations,
        _ => 0,
    };
    tracing::info!(
        uid = %reviewed.uid,
        namespace = %reviewed.namespace,
        pod = %reviewed.name,
        decision,
        detail,
        patch_ops,
        latency_us = elapsed.as_micros() as u64,
        reason = %reviewed.message,
        "review"
    );
}

enum BodyError {
    TooLarge,
    Read(axum::Error),
}

/// Whether a body declared `declared` bytes long is refused whatever it holds: it is
/// declared larger than [`MAX_BODY_BYTES`]. It is drained without being kept.
pub(super) fn refused_unread(declared: Option<usize>) -> bool {
    declared.is_some_and(|declared| declared > MAX_BODY_BYTES)
}

/// Reads the body up to [`MAX_BODY_BYTES`]. Past the limit it keeps reading and
/// discarding (up to a bound), so that the client, still sending, gets to see the 413
/// instead of a reset connection. A body [`refused_unread`] is not kept at all.
async fn read_body(mut body: Body, declared: Option<usize>) -> Result<Vec<u8>, BodyError> {
    use http_body_util::BodyExt;
    const DISCARD_LIMIT: usize = 8 * MAX_BODY_BYTES;
    let too_large = refused_unread(declared);
    let mut buf = if too_large {
        Vec::new()
    } else {
        Vec::with_capacity(declared.unwrap_or(16 * 1024))
    };
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyError::Read)?.into_data() else {
            continue;
        };
        seen += data.len();
        if seen <= MAX_BODY_BYTES && !too_large {
            buf.extend_from_slice(&data);
        } else if seen > DISCARD_LIMIT {
            break;
        }
    }
    if too_large || seen > MAX_BODY_BYTES {
        Err(BodyError::TooLarge)
    } else {
        Ok(buf)
    }
}
