//! A cluster's node, from start to stop: standby (SIP answered with 503)
//! until it holds the lease, then the hotline, serving until it loses the
//! lease (standby again) or is told to stop. Each change is one line on
//! stdout, the node's word to whoever started it.

use std::sync::Arc;

use tokio::sync::watch;

use super::standby::Standby;
use super::{Fence, Role, Settings};
use crate::config::Config;
use crate::runtime::{Hotline, Loaded, Node};

/// Runs the node until `stop` turns true; an error when it cannot serve
/// at all (a port taken, the store unusable once active).
pub async fn run(
    settings: Settings,
    config: Config,
    loaded: Loaded,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let fence = Fence::default();
    let (roles_tx, mut roles) = watch::channel(Role::Standby);
    tokio::spawn(super::pg::run(
        settings.clone(),
        config.sip.listen.to_string(),
        fence.clone(),
        roles_tx,
    ));
    let node = &settings.node;
    let mut last_term = 0;
    loop {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        metrics.cluster_active.with_label_values(&[node]).set(0);
        metrics.cluster_term.set(last_term);
        let standby = bind_standby(&config, metrics)
            .await
            .map_err(|e| format!("node {node} standby on {}: {e}", config.sip.listen))?;
        say(format_args!(
            "hotline node {node} standby: SIP udp {} answers 503 until this node holds the lease",
            config.sip.listen
        ));
        let (stop_following, told) = tokio::sync::oneshot::channel();
        let following = tokio::spawn(super::follow::follow(
            config.tickets.store.clone(),
            fence.clone(),
            settings.every,
            told,
        ));
        let term = tokio::select! {
            _ = stop.wait_for(|s| *s) => {
                following.abort();
                standby.close().await;
                return Ok(());
            }
            role = roles.wait_for(|r| r.term().is_some()) => match role {
                Ok(r) => r.term().unwrap_or_default(),
                Err(_) => return Err(format!("node {node}: the lease task ended")),
            },
        };
        let _ = stop_following.send(());
        let followed = following.await.ok().flatten();
        standby.close().await;
        last_term = term;
        let node_part = Node {
            name: node.clone(),
            fence: fence.clone(),
            followed,
        };
        let hotline = Hotline::bind(config.clone(), loaded.clone(), Some(node_part))
            .await
            .map_err(|e| format!("node {node} (term {term}): {e}"))?;
        say(format_args!(
            "hotline node {node} active (term {term}): SIP udp+tcp {}",
            hotline.local_addr()
        ));
        let (mut stopped, mut lost) = (stop.clone(), roles.clone());
        let until = async move {
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => {}
                _ = lost.wait_for(|r| r.term() != Some(term)) => {}
            }
        };
        // On a worker, as the single hotline runs (see main).
        tokio::spawn(hotline.serve(until))
            .await
            .map_err(|e| format!("the switch stopped: {e}"))?;
        if *stop.borrow() {
            return Ok(());
        }
        say(format_args!(
            "hotline node {node} stepped down (term {term} lost): standby again"
        ));
    }
}

/// The standby's sockets; a port still held for a moment (by the
/// connections of the hotline that just stopped) is tried again for up to
/// two seconds.
async fn bind_standby(
    config: &Config,
    metrics: Arc<crate::metrics::Metrics>,
) -> std::io::Result<Standby> {
    let mut tries = 0;
    loop {
        match Standby::bind(config.sip.listen, config.http.listen, metrics.clone()).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            bound => return bound,
        }
    }
}

/// A line on stdout that never fails the node (a closed stdout included).
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
