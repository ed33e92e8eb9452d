//! The HTTP surface (axum): `GET /metrics` for Prometheus, the JSON API
//! for agents and supervisors (`api`, tokens from the users file), the
//! agent's page (`GET /agent`) and the supervisor's wallboard (`GET
//! /supervisor`), which live on the API's event streams.

pub mod api;
pub mod desk;
pub mod users;

use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::warn;

/// The agent's page and the supervisor's wallboard: one file each, no
/// build step, both living on the API's event streams.
const AGENT_PAGE: &str = include_str!("agent.html");
const SUPERVISOR_PAGE: &str = include_str!("supervisor.html");

pub fn app(metrics: Arc<crate::metrics::Metrics>, api: Arc<api::Api>) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    // Read when asked (from the kernel's memory, no disk),
                    // never on the switch's or the media workers' turn.
                    metrics.sync_threads(crate::runtime::threads::shares());
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
        .route(
            "/supervisor",
            get(|| async {
                (
                    [(CONTENT_TYPE, "text/html; charset=utf-8")],
                    SUPERVISOR_PAGE,
                )
            }),
        )
        .merge(api::routes(api))
}

pub async fn serve(listener: Limited, app: axum::Router) {
    if let Err(e) = axum::serve(listener, app).await {
        warn!(error = %e, "HTTP server stopped");
    }
}

/// The HTTP listener with its caps: connections in all and per source
/// address; one over a cap is closed as soon as it is accepted.
pub struct Limited {
    pub listener: TcpListener,
    pub slots: crate::edge::Slots<std::net::IpAddr>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// An accepted connection holding its place in the caps until it closes.
pub struct Held {
    stream: tokio::net::TcpStream,
    _slot: crate::edge::Slot<std::net::IpAddr>,
}

impl axum::serve::Listener for Limited {
    type Io = Held;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, from) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait, do not spin.
                    warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self.slots.take(from.ip()) {
                Ok(slot) => {
                    return (
                        Held {
                            stream,
                            _slot: slot,
                        },
                        from,
                    );
                }
                Err(full) => {
                    self.metrics
                        .connections_refused
                        .with_label_values(&[full.label(), "http"])
                        .inc();
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

impl tokio::io::AsyncRead for Held {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Held {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
