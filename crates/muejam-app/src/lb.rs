//! The group's load balancer (an ALB locally): every request goes to the
//! next running instance, round robin; an instance that refuses the
//! connection is skipped; with none left the answer is 503, as an ALB with
//! no healthy targets gives.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::platform::{running, STATE_FILE};

/// The largest request body forwarded.
const MAX_BODY: usize = 1 << 20;

pub struct Balancer {
    pub home: PathBuf,
    pub group: String,
    pub next: AtomicUsize,
    pub client: reqwest::Client,
}

pub fn router(balancer: Arc<Balancer>) -> Router {
    Router::new().fallback(forward).with_state(balancer)
}

/// The running instances' ports, read fresh for every request.
fn targets(balancer: &Balancer) -> Vec<u16> {
    let Ok(bytes) = std::fs::read(balancer.home.join(STATE_FILE)) else {
        return Vec::new();
    };
    let Ok(state) = serde_json::from_slice::<crate::platform::AppState>(&bytes) else {
        return Vec::new();
    };
    state
        .groups
        .get(&balancer.group)
        .map(|g| {
            g.instances
                .iter()
                .filter(|i| running(i.pid))
                .map(|i| i.port)
                .collect()
        })
        .unwrap_or_default()
}

fn no_targets() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({"error": "no healthy targets"})),
    )
        .into_response()
}

async fn forward(State(balancer): State<Arc<Balancer>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request too large").into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let ports = targets(&balancer);
    if ports.is_empty() {
        return no_targets();
    }
    let start = balancer.next.fetch_add(1, Ordering::Relaxed);
    for k in 0..ports.len() {
        let port = ports[(start + k) % ports.len()];
        let mut outbound = balancer
            .client
            .request(
                parts.method.clone(),
                format!("http://127.0.0.1:{port}{path}"),
            )
            .body(body.clone());
        if let Some(ct) = parts.headers.get(axum::http::header::CONTENT_TYPE) {
            outbound = outbound.header(axum::http::header::CONTENT_TYPE, ct.clone());
        }
        match outbound.send().await {
            Ok(answer) => {
                let status = answer.status();
                let headers = answer.headers().clone();
                let bytes = answer.bytes().await.unwrap_or_default();
                let mut response = Response::new(Body::from(bytes));
                *response.status_mut() = status;
                for (name, value) in &headers {
                    if name != axum::http::header::TRANSFER_ENCODING
                        && name != axum::http::header::CONNECTION
                    {
                        response.headers_mut().insert(name.clone(), value.clone());
                    }
                }
                return response;
            }
            // Refused or silent: the next one.
            Err(_) => continue,
        }
    }
    no_targets()
}
