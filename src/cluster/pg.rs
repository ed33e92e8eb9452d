//! The lease in PostgreSQL: the statements, the task that renews or tries
//! for it (feeding [`Lease`]), and what `hotline cluster status` reads.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::Client;
use tracing::{info, warn};

use super::lease::{Answer, Ask, Change, Lease, Role};
use super::{Fence, Settings};
use crate::tickets::StoreError;

/// Takes the lease if it has run out (on the database's clock): a new term.
const ACQUIRE: &str = "UPDATE cluster_lease SET holder = $1, term = term + 1, \
     expires_at = now() + make_interval(secs => $2) \
     WHERE id = 1 AND expires_at < now() RETURNING term";

/// Extends the lease this node holds with this term; nothing when another
/// node took it meanwhile.
const RENEW: &str = "UPDATE cluster_lease SET expires_at = now() + make_interval(secs => $3) \
     WHERE id = 1 AND holder = $1 AND term = $2 RETURNING term";

const HEARTBEAT: &str = "INSERT INTO cluster_nodes (node, role, term, sip, heartbeat_at) \
     VALUES ($1, $2, $3, $4, now()) ON CONFLICT (node) DO UPDATE SET \
     role = EXCLUDED.role, term = EXCLUDED.term, sip = EXCLUDED.sip, heartbeat_at = now()";

async fn answer(client: &Client, s: &Settings, ask: Ask) -> Result<Answer, StoreError> {
    let secs = s.lease.as_secs_f64();
    let rows = match ask {
        Ask::Acquire => client.query(ACQUIRE, &[&s.node, &secs]).await?,
        Ask::Renew { term } => client.query(RENEW, &[&s.node, &term, &secs]).await?,
    };
    Ok(match rows.first() {
        Some(row) => Answer::Held(row.try_get(0)?),
        None => Answer::Refused,
    })
}

/// A connection with the schema in place (a standby may start before any
/// node opened the store).
async fn connect(url: &str) -> Result<Client, StoreError> {
    let mut client = crate::tickets::postgres::connect(url).await?;
    // "already exists, skipping" once a second is noise.
    client
        .batch_execute("SET client_min_messages TO warning")
        .await?;
    crate::tickets::postgres::migrate(&mut client).await?;
    Ok(client)
}

/// Keeps this node's lease: tries for it while standby, renews it while
/// active, and publishes each change of role (the fence first, so a node
/// stepping down writes nothing more from that moment). Runs for the
/// process's life.
pub async fn run(settings: Settings, sip: String, fence: Fence, roles: watch::Sender<Role>) {
    let mut lease = Lease::new(Instant::now(), settings.lease, settings.every);
    let mut client: Option<Client> = None;
    loop {
        if let Some(change) = lease.handle_timeout(Instant::now()) {
            publish(&settings, change, &fence, &roles);
        }
        if let Some(ask) = lease.poll_ask(Instant::now()) {
            let asked = async {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    // A new connection (TCP, authentication, the schema
                    // check) may take longer than a renewal on a loaded
                    // machine; a standby has nothing to lose by waiting
                    // for it, an active node must keep its renewals'
                    // pace (its lease runs out otherwise).
                    let budget = match lease.role() {
                        Role::Standby => settings.lease.max(settings.every),
                        Role::Active { .. } => settings.every,
                    };
                    let connected = tokio::time::timeout(budget, connect(&settings.url))
                        .await
                        .map_err(|_| Late)?;
                    client = Some(connected.map_err(Failed)?);
                }
                let c = client.as_ref().expect("connected");
                let answered = tokio::time::timeout(settings.every, answer(c, &settings, ask))
                    .await
                    .map_err(|_| Late)?
                    .map_err(Failed)?;
                Ok::<_, Unanswered>((answered, c))
            }
            .await;
            let got = match asked {
                Ok((a, c)) => {
                    let role = lease_role_after(&lease, a);
                    let hb = c
                        .execute(
                            HEARTBEAT,
                            &[
                                &settings.node,
                                &role.label(),
                                &role.term().unwrap_or(0),
                                &sip,
                            ],
                        )
                        .await;
                    if let Err(e) = hb {
                        warn!(error = %StoreError::from(e), "cluster heartbeat not written");
                    }
                    a
                }
                Err(Failed(e)) => {
                    warn!(error = %e, "cluster lease: the database did not answer");
                    client = None;
                    Answer::Failed
                }
                Err(Late) => {
                    warn!("cluster lease: the database answered too late");
                    client = None;
                    Answer::Failed
                }
            };
            if let Some(change) = lease.handle_answer(Instant::now(), got) {
                publish(&settings, change, &fence, &roles);
            }
        }
        tokio::time::sleep_until(lease.poll_timeout().into()).await;
    }
}

/// Why the lease's question got no answer.
enum Unanswered {
    Failed(StoreError),
    /// Not within its time: the connection is dropped (what it was doing
    /// is unknown).
    Late,
}
use Unanswered::{Failed, Late};

/// The role the heartbeat reports, the answer taken into account.
fn lease_role_after(lease: &Lease, answer: Answer) -> Role {
    match (lease.role(), answer) {
        (Role::Standby, Answer::Held(term)) => Role::Active { term },
        (Role::Active { .. }, Answer::Refused) => Role::Standby,
        (role, _) => role,
    }
}

fn publish(settings: &Settings, change: Change, fence: &Fence, roles: &watch::Sender<Role>) {
    match change {
        Change::BecameActive { term } => {
            fence.set(term);
            info!(node = %settings.node, term, "cluster: this node is active");
            roles.send_replace(Role::Active { term });
        }
        Change::SteppedDown { term, why } => {
            fence.set(0);
            warn!(node = %settings.node, term, why = why.label(), "cluster: this node stepped down to standby");
            roles.send_replace(Role::Standby);
        }
    }
}

/// Who is active, as `hotline cluster status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The lease's holder while it has not run out.
    pub active: Option<String>,
    pub term: i64,
    /// Until the lease runs out (negative: ran out that long ago).
    pub lease_left: f64,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub node: String,
    pub role: String,
    pub term: i64,
    pub sip: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age: f64,
}

pub async fn status(url: &str) -> Result<Status, StoreError> {
    let client = crate::tickets::postgres::connect(url).await?;
    let known: Option<String> = client
        .query_one("SELECT to_regclass('cluster_lease')::text", &[])
        .await?
        .try_get(0)?;
    if known.is_none() {
        return Err(StoreError::Invalid(
            "no cluster has run on this store yet (no lease table): start a node with [cluster] node".into(),
        ));
    }
    let lease = client
        .query_one(
            "SELECT holder, term, EXTRACT(EPOCH FROM (expires_at - now()))::float8 \
             FROM cluster_lease WHERE id = 1",
            &[],
        )
        .await?;
    let holder: Option<String> = lease.try_get(0)?;
    let lease_left: f64 = lease.try_get(2)?;
    let nodes = client
        .query(
            "SELECT node, role, term, sip, EXTRACT(EPOCH FROM (now() - heartbeat_at))::float8 \
             FROM cluster_nodes ORDER BY node",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| {
            Ok(NodeStatus {
                node: r.try_get(0)?,
                role: r.try_get(1)?,
                term: r.try_get(2)?,
                sip: r.try_get(3)?,
                heartbeat_age: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Status {
        active: holder.filter(|_| lease_left > 0.0),
        term: lease.try_get(1)?,
        lease_left,
        nodes,
    })
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.active {
            Some(node) => writeln!(
                f,
                "active: {node} (term {}, lease {:.1} s left)",
                self.term, self.lease_left
            )?,
            None => writeln!(
                f,
                "active: none (term {}, the lease ran out {:.1} s ago)",
                self.term, -self.lease_left
            )?,
        }
        writeln!(
            f,
            "{:<12} {:<8} {:>6}  {:<22} last heartbeat",
            "node", "role", "term", "sip"
        )?;
        for n in &self.nodes {
            // A node that said it was active and has not been heard of
            // since the lease passed on (killed, frozen, cut off).
            let role = match n.role.as_str() {
                "active" if self.active.as_deref() != Some(n.node.as_str()) => "gone",
                role => role,
            };
            writeln!(
                f,
                "{:<12} {:<8} {:>6}  {:<22} {:.1} s ago",
                n.node, role, n.term, n.sip, n.heartbeat_age
            )?;
        }
        Ok(())
    }
}

/// How often a lease of `lease` is renewed: three times within it.
pub fn renew_every(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(200))
}
