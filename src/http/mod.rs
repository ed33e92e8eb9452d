//! The HTTP surface (axum): `GET /metrics` for Prometheus, the JSON API
//! for agents and supervisors (`api`, tokens from the users file), and the
//! agent's page (`GET /agent`) that lives on the API's event stream.

pub mod api;
pub mod desk;
pub mod users;

use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::warn;

/// The agent's page: one file, no build step.
const AGENT_PAGE: &str = include_str!("agent.html");

pub fn app(metrics: Arc<crate::metrics::Metrics>, api: Arc<api::Api>) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        metrics.render(),
                    )
                }
            }),
        )
        .route(
            "/agent",
            get(|| async { ([(CONTENT_TYPE, "text/html; charset=utf-8")], AGENT_PAGE) }),
        )
        .merge(api::routes(api))
}

pub async fn serve(listener: TcpListener, app: axum::Router) {
    if let Err(e) = axum::serve(listener, app).await {
        warn!(error = %e, "HTTP server stopped");
    }
}
