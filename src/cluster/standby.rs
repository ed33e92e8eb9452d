//! A standby node's face: SIP over UDP answered with 503 and `Retry-After`
//! (OPTIONS too, so Kamailio's probe sends nothing here; INVITE and
//! REGISTER refused at once, never half-handled), no TCP or TLS listener
//! (a connection is refused outright), and `/metrics` saying this node is
//! standby. Nothing is written to the store.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::sip::message::{self, Message};

/// The standby's sockets and the tasks serving them.
pub struct Standby {
    tasks: Vec<JoinHandle<()>>,
}

impl Standby {
    /// Binds SIP (UDP) and HTTP on the addresses the active node uses.
    pub async fn bind(
        sip: SocketAddr,
        http: SocketAddr,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> std::io::Result<Self> {
        let udp = UdpSocket::bind(sip).await?;
        let listener = TcpListener::bind(http).await?;
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        );
        Ok(Self {
            tasks: vec![
                tokio::spawn(answer_503(udp)),
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                }),
            ],
        })
    }

    /// Stops serving and frees the ports (the active node binds them next).
    pub async fn close(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn answer_503(udp: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = reply_503(&buf[..n], from) {
            let _ = udp.send_to(&reply, from).await;
        }
    }
}

/// The standby's answer to one datagram: 503 to any request but ACK
/// (answered to where it came from), nothing to responses or garbage.
pub fn reply_503(bytes: &[u8], from: SocketAddr) -> Option<Bytes> {
    let Ok(Message::Request(mut r)) = message::parse_datagram(bytes) else {
        return None;
    };
    if r.core.cseq_method == "ACK" {
        return None;
    }
    message::stamp_via(&mut r.core, from);
    Some(message::response(
        &r.core,
        503,
        "Service Unavailable",
        Some("standby"),
        &[("Retry-After", "1")],
        b"",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str) -> String {
        format!(
            "{method} sip:hotline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKk1\r\n\
             From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:hotline@127.0.0.1>\r\nCall-ID: probe-1\r\n\
             CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn a_standby_refuses_options_invite_and_register_with_503_and_ignores_ack() {
        let from: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        for method in ["OPTIONS", "INVITE", "REGISTER", "BYE"] {
            let reply = reply_503(request(method).as_bytes(), from).expect(method);
            let text = String::from_utf8(reply.to_vec()).unwrap();
            assert!(
                text.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
                "{text}"
            );
            assert!(text.contains("Retry-After: 1\r\n") && text.contains("Call-ID: probe-1\r\n"));
            assert!(text.contains(&format!("CSeq: 1 {method}\r\n")), "{text}");
        }
        assert_eq!(reply_503(request("ACK").as_bytes(), from), None);
        assert_eq!(reply_503(b"SIP/2.0 200 OK\r\n\r\n", from), None);
        assert_eq!(reply_503(b"\x00garbage", from), None);
    }
}
