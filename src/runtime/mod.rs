//! The tokio edge: sockets, the one timer of the switch, shutdown.
//!
//! One thread owns the [`Switch`] and the UDP socket (a current-thread
//! runtime of its own, so that its turn never waits in a queue behind the
//! main runtime's tasks): it receives datagrams in batches into reused
//! buffers, feeds them in with `now`, sends what the switch wants sent and
//! sleeps until its next deadline. TCP connections, the media edge, the ACD
//! and the menu's services talk to it through an unbounded channel (their
//! volume is bounded by the calls the switch admitted); the menu's requests
//! are answered on the main runtime.

pub mod acd;
mod datagrams;
mod door;
mod incoming;
pub mod ivr;
pub mod media;
mod pi_mutex;
mod poller;
pub mod threads;
pub mod tickets;
mod warm;
mod workers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::call::{CallId, MediaEvent, Output, Switch};
use crate::config::Config;
use crate::media::prompt::PromptSet;
use crate::sip::message::{self, Framed};
use crate::sip::transaction::{Peer, Transport};
use crate::tickets::Store;
use crate::tickets::group::GroupRule;

/// Inputs to the switch's thread from the other tasks and threads.
// Moved once through a channel; boxing the message would add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    Media(CallId, MediaEvent),
    /// One framed message (or a broken one) from a TCP or TLS connection.
    Stream(
        SocketAddr,
        Transport,
        Result<message::Message, message::ParseError>,
        Bytes,
    ),
    /// A TCP connection was accepted: where to write to it, and how to
    /// close it (a banned source's connections are closed).
    TcpOpened(
        SocketAddr,
        mpsc::UnboundedSender<Bytes>,
        tokio::task::AbortHandle,
    ),
    TcpClosed(SocketAddr),
    /// A return-visit call to place (from the ticket watcher).
    Place(crate::call::PlaceCall),
    /// An on-call call to place (its `OnCallCalled` is in the log).
    PlaceDuty(crate::call::PlaceDutyCall),
    /// The on-call chain of this ticket ended: its calls stop.
    StopDuty(crate::tickets::TicketId),
    /// A callback to queue again in its place.
    Callback(crate::call::QueueCallback),
    /// An emergency's owner to tell that help is coming.
    Notice(crate::call::PlaceNotice),
    /// The answer to a menu request.
    IvrReply(CallId, crate::ivr::Reply),
    /// What the ACD decided, and when.
    Acd(crate::acd::AcdOutput, Instant),
    /// Time to tell a waiting caller their place and wait.
    Announce(crate::acd::announce::Announcement),
    /// The API asks about bans.
    Edge(crate::http::api::EdgeRequest),
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot listen for SIP on {transport} {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the ticket store {location}: {source}")]
    Store {
        location: String,
        source: crate::tickets::StoreError,
    },
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("SIP over TLS: {0}")]
    Tls(String),
    #[error("cannot open the owner database: {0}")]
    Owners(#[from] crate::owners::OwnersError),
}

/// Opens the store off the runtime's workers: opening connects, migrates
/// and starts the writer thread, which may take a moment.
async fn open_store(
    location: &str,
    fence: Option<crate::cluster::Fence>,
) -> Result<Store, crate::tickets::StoreError> {
    let location = location.to_string();
    tokio::task::spawn_blocking(move || Store::open_fenced(&location, fence))
        .await
        .map_err(|e| crate::tickets::StoreError::Io(e.to_string()))?
}

/// Sockets bound and ready: [`Hotline::serve`] runs them.
pub struct Hotline {
    udp: UdpSocket,
    tcp: TcpListener,
    /// SIP over TLS: the listener and its certificate.
    tls: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
    config: Config,
    prompts: PromptSet,
    store: Arc<Store>,
    /// The last event in the log when the hotline started.
    history_until: crate::tickets::EventId,
    menu: Option<Arc<crate::ivr::graph::Graph>>,
    agents: Option<Arc<crate::acd::agents::AgentsFile>>,
    users: Option<crate::http::users::Users>,
    owners: Arc<crate::owners::OwnerDb>,
    /// The on-call rota; none: no on-call chain.
    rota: Option<crate::tickets::rota::Rota>,
    http: TcpListener,
    node: Option<Node>,
}

/// A cluster node's part in serving: its name, the fence its store
/// checks every append against (set to the lease's term), and the log's
/// last day as the node followed it while standby.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub fence: crate::cluster::Fence,
    pub followed: Option<crate::cluster::follow::Followed>,
}

/// What the hotline serves with, loaded (and checked) from the config's
/// files once: a cluster's node serves with it each time it is active.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub prompts: PromptSet,
    pub menu: Option<Arc<crate::ivr::graph::Graph>>,
    pub agents: Option<Arc<crate::acd::agents::AgentsFile>>,
    pub users: Option<crate::http::users::Users>,
    pub rota: Option<crate::tickets::rota::Rota>,
}

impl Hotline {
    pub async fn bind(
        config: Config,
        loaded: Loaded,
        node: Option<Node>,
    ) -> Result<Self, RuntimeError> {
        let Loaded {
            prompts,
            menu,
            agents,
            users,
            rota,
        } = loaded;
        let addr = config.sip.listen;
        let udp = bind_udp(addr).map_err(|source| RuntimeError::Bind {
            transport: "UDP",
            addr,
            source,
        })?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| RuntimeError::Bind {
                transport: "TCP",
                addr,
                source,
            })?;
        let tls = match (config.sip.tls_listen, config.sip.tls_server_config()) {
            (Some(addr), Ok(Some(server))) => {
                let listener =
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| RuntimeError::Bind {
                            transport: "TLS",
                            addr,
                            source,
                        })?;
                Some((listener, server))
            }
            (_, Err(message)) => return Err(RuntimeError::Tls(message)),
            _ => None,
        };
        let location = crate::tickets::store::hide_password(&config.tickets.store);
        let store = open_store(
            &config.tickets.store,
            node.as_ref().map(|n| n.fence.clone()),
        )
        .await
        .map_err(|source| RuntimeError::Store {
            location: location.clone(),
            source,
        })?;
        let history_until = store
            .last_id()
            .await
            .map_err(|source| RuntimeError::Store { location, source })?
            .unwrap_or(crate::tickets::EventId(0));
        let owners = Arc::new(crate::owners::OwnerDb::open(&config.owners.db)?);
        let http_addr = config.http.listen;
        let http = TcpListener::bind(http_addr)
            .await
            .map_err(|source| RuntimeError::Http {
                addr: http_addr,
                source,
            })?;
        Ok(Self {
            udp,
            tcp,
            tls,
            config,
            prompts,
            store: Arc::new(store),
            history_until,
            menu,
            agents,
            users,
            owners,
            rota,
            http,
            node,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.udp.local_addr().expect("bound socket")
    }

    /// Serves until `shutdown` resolves, then ends every call and returns.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        let Hotline {
            udp,
            tcp,
            tls,
            config,
            prompts,
            store,
            history_until,
            menu,
            agents,
            users,
            owners,
            rota,
            http,
            mut node,
        } = self;
        let followed = node.as_mut().and_then(|n| n.followed.take());
        let mut recent = recent_events(&store, followed).await;
        let ended = close_unfinished_calls(&store, &recent).await;
        recent.extend(ended);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        if let Some(n) = &node {
            metrics.cluster_active.with_label_values(&[&n.name]).set(1);
            metrics.cluster_term.set(n.fence.term());
        }
        let desk = Arc::new(crate::http::desk::Desk::default());
        let (to_switch, inbox) = mpsc::unbounded_channel();
        let view = Arc::new(tickets::TicketView::default());
        let visits = match (config.return_visit.gateway, config.return_visit.policy()) {
            (Some(gateway), Ok(policy)) => Some(tickets::Visits {
                core: crate::tickets::return_visit::ReturnVisits::new(policy).with_allowed_numbers(
                    config.return_visit.allowed_numbers().unwrap_or_default(),
                    config.owners.number_plan(),
                ),
                gateway,
                to_switch: to_switch.clone(),
            }),
            _ => None,
        };
        let rota_shown = rota.clone().map(Arc::new);
        // Prompts spoken only when there (both languages): the names of
        // categories and departments.
        let in_both = |p: &str| {
            ["en", "zh"]
                .iter()
                .all(|l| prompts.contains(&format!("{p}_{l}")))
        };
        let oncall = match (rota, config.oncall.gateway.or(config.return_visit.gateway)) {
            (Some(rota), Some(gateway)) => Some(tickets::OnCall {
                core: crate::tickets::oncall::OnCallChains::new(
                    rota,
                    config.chain_policy(),
                    &config.tickets.dispatch,
                ),
                gateway,
                to_switch: to_switch.clone(),
                owners: owners.clone(),
                // Categories spoken by name: those with a prompt in both languages.
                categories: config
                    .tickets
                    .dispatch
                    .keys()
                    .map(|c| format!("category_{c}"))
                    .filter(|p| in_both(p))
                    .collect(),
                departments: crate::tickets::Department::ALL
                    .iter()
                    .map(|d| format!("department_{}", d.as_str()))
                    .filter(|p| in_both(p))
                    .collect(),
            }),
            _ => None,
        };
        if config.recording.retention_days > 0 {
            tokio::spawn(media::retention(
                config.recording.dir.clone(),
                Duration::from_secs(config.recording.retention_days * 86_400),
            ));
        }
        let callbacks = config
            .callback
            .gateway
            .or(config.return_visit.gateway)
            .filter(|_| agents.is_some())
            .map(|_| tickets::CallbackQueue {
                core: crate::tickets::callback::Callbacks::new(config.callback_policy()),
                to_switch: to_switch.clone(),
            });
        let watcher = tokio::spawn(tickets::watch(
            store.clone(),
            visits,
            oncall,
            callbacks,
            config.tickets.sla_policy(),
            GroupRule::default(),
            crate::tickets::dispatch::AutoDispatch::new(&config.tickets.dispatch),
            crate::tickets::webhook::Deliveries::new(
                config.tickets.webhooks.clone(),
                config.tickets.webhook_attempts,
            ),
            history_until,
            metrics.clone(),
            view.clone(),
        ));
        let clock = crate::clock::WallClock::start();
        let acd = agents.as_ref().map(|a| {
            let (router, plan) = acd::router_for(
                a,
                &config.acd,
                Duration::from_secs(config.return_visit.ring_seconds),
            );
            let announcer = crate::acd::announce::Announcer::new(
                Duration::from_secs(config.acd.announce_seconds),
                Duration::from_secs(config.acd.assumed_handle_seconds),
            )
            .with_callback_after(config.callback_after());
            let mut stats = crate::acd::stats::Stats::new(
                config.service_level.stats_config(),
                plan.names().len(),
            );
            // The figures run on from the last process's (the day the log
            // was read for is longer than any window).
            crate::report::seed(&mut stats, &recent, &plan, &clock);
            acd::spawn(
                router,
                Arc::new(plan),
                announcer,
                stats,
                Duration::from_secs(config.service_level.threshold_seconds),
                clock,
                to_switch.clone(),
                metrics.clone(),
            )
        });
        let api = crate::http::api::Api {
            users,
            agents: agents.clone(),
            acd: acd.as_ref().map(|h| (h.tx.clone(), h.snapshot.clone())),
            desk: desk.clone(),
            tickets: view.clone(),
            store: store.clone(),
            owners: owners.clone(),
            plan: config.owners.number_plan(),
            sla: config.tickets.sla_policy(),
            switch: to_switch.clone(),
            streams: crate::edge::Slots::new(
                config.http.max_event_streams,
                config.http.max_event_streams_per_user,
            ),
            metrics: metrics.clone(),
            local: config.site.local_time(),
            report: config.report_settings(),
            targets: crate::http::api::Targets {
                service_level: config.service_level.target,
                abandon_rate: config.service_level.abandon_target,
                asa_seconds: config.service_level.asa_target_seconds,
                threshold_seconds: config.service_level.threshold_seconds,
            },
            recordings: config.recording.dir.clone(),
            rota: rota_shown,
        };
        // RTP sockets come first: connections get the descriptors calls do
        // not need (the caps lowered, and said so, when the limit is tight).
        let limit = open_files_limit().unwrap_or(usize::MAX / 4);
        let budget = crate::edge::fit_to_fd_limit(
            limit,
            config.sip.max_calls,
            config.sip.tcp_max_connections,
            config.http.max_connections,
        );
        let planned = crate::edge::planned_descriptors(
            config.sip.max_calls,
            budget.sip_connections,
            budget.http_connections,
        );
        // Freed ports' sockets are kept bound in what the limit leaves
        // beyond that plan (at most one for every port).
        let ports = usize::from(config.media.rtp_port_max - config.media.rtp_port_min) / 2 + 1;
        let warm = limit.saturating_sub(planned).min(ports);
        info!(
            sockets = warm,
            "freed RTP ports stay bound for their next call (at most this many sockets)"
        );
        // Every descriptor the caps allow, slots made now: growing the
        // table later, with calls up, stalls the switch's thread.
        let slots = limit.min(planned + warm);
        if !reserve_descriptors(&udp, slots) {
            debug!(slots, "could not make the descriptor slots in advance");
        }
        if budget.lowered {
            warn!(
                sip_connections = budget.sip_connections,
                http_connections = budget.http_connections,
                max_calls = config.sip.max_calls,
                "the open-files limit is low for max_calls: connection caps lowered to keep RTP ports for calls (raise LimitNOFILE)"
            );
        }
        let http_task = tokio::spawn(crate::http::serve(
            crate::http::Limited {
                listener: http,
                slots: crate::edge::Slots::new(
                    budget.http_connections,
                    config.http.max_connections_per_source,
                ),
                metrics: metrics.clone(),
            },
            crate::http::app(metrics.clone(), Arc::new(api)),
        ));
        let mut switch_config = config.switch_config(clock, rand::random(), menu, agents);
        switch_config.queues = acd.as_ref().map(|h| h.plan.clone());
        let mut switch = Switch::new(switch_config);
        let (media, media_control, lateness) = media::start(
            tokio::runtime::Handle::current(),
            config.media.ip,
            (config.media.worker_count(), config.media.realtime_priority),
            Duration::from_secs(config.media.rtp_timeout_seconds),
            prompts,
            config.ivr.recordings.clone(),
            config.recording.dir.clone(),
            metrics.clone(),
            to_switch.clone(),
            Arc::new(warm::WarmSockets::new(warm)),
        );
        let services = ivr::Services {
            store: store.clone(),
            owners,
            plan: config.owners.number_plan(),
            sla: config.tickets.sla_policy(),
            utc_offset_minutes: config.site.local_time().offset_minutes,
            to_switch: to_switch.clone(),
            metrics: metrics.clone(),
            tickets: view.clone(),
            desk: desk.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        // SIP over TCP and over TLS share one set of connection caps.
        let sip_slots =
            crate::edge::Slots::new(budget.sip_connections, config.sip.tcp_max_per_source);
        let idle = Duration::from_secs(config.sip.tcp_idle_seconds);
        let acceptor = tokio::spawn(accept(
            tcp,
            None,
            sip_slots.clone(),
            to_switch.clone(),
            idle,
            metrics.clone(),
        ));
        let tls_acceptor = tls.map(|(listener, server)| {
            tokio::spawn(accept(
                listener,
                Some(tokio_rustls::TlsAcceptor::from(server)),
                sip_slots.clone(),
                to_switch.clone(),
                idle,
                metrics.clone(),
            ))
        });
        // Phones and desks as the log left them (a node taking over from
        // a dead one, or a restart): agents stay logged in, and are rung
        // on the phones they registered.
        let desks = crate::tickets::desks::desks(&recent, tickets::now_ms());
        drop(recent);
        restore_phones(&mut switch, &desks.phones);
        // Above the media workers, which are above the switch.
        let door_priority = match config.media.realtime_priority {
            0 => 0,
            p => p.saturating_add(1).min(99),
        };
        let turn = Turn {
            switch,
            door_priority,
            inbox,
            media,
            media_control,
            services,
            acd,
            clock,
            lateness,
            agents: desks.agents,
        };
        let switch = on_own_thread(turn, udp, shutdown).await;
        // Ended and awaited, so that their listeners are closed when this
        // returns (a cluster's node binds the same ports again standby).
        let mut ended = vec![acceptor, watcher, http_task];
        ended.extend(tls_acceptor);
        for task in &ended {
            task.abort();
        }
        for task in ended {
            let _ = task.await;
        }
        if let Some(switch) = switch {
            let stats = switch.stats();
            info!(
                calls_started = stats.calls_started,
                calls_ended = stats.calls_ended,
                bad_messages = stats.bad_messages,
                active_calls = switch.active_calls(),
                ports_in_use = switch.ports_in_use(),
                "hotline stopped"
            );
        }
    }
}

/// Runs the switch on a thread of its own until `shutdown` resolves (or the
/// thread ends by itself); gives the switch back, none when it could not
/// run. Its turn is never queued behind the runtime's tasks (the receive
/// tasks of thousands of calls), so what it measures as late is its socket.
async fn on_own_thread(
    turn: Turn,
    udp: UdpSocket,
    shutdown: impl std::future::Future<Output = ()>,
) -> Option<Switch> {
    let udp = match udp.into_std() {
        Ok(udp) => udp,
        Err(e) => {
            error!(error = %e, "cannot hand the SIP socket to the switch's thread");
            return None;
        }
    };
    // New calls refused at once while the switch is behind.
    let door = Arc::new(door::Shared::default());
    match udp.try_clone() {
        Ok(copy) => {
            if let Err(e) = door::start(copy, door.clone(), turn.switch.door(), turn.door_priority)
            {
                warn!(error = %e, "no SIP door: refusals wait for the switch");
            }
        }
        Err(e) => warn!(error = %e, "no SIP door: refusals wait for the switch"),
    }
    let (mut stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (done, finished) = tokio::sync::oneshot::channel();
    let started = std::thread::Builder::new()
        .name("switch".into())
        .spawn(move || {
            if let Err(e) = threads::set_batch() {
                warn!(error = %e, "the switch's thread stays an ordinary one (SCHED_BATCH refused)");
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let ended = runtime.and_then(|r| {
                r.block_on(async move {
                    let udp = UdpSocket::from_std(udp)?;
                    Ok(turn.run(udp, &door, stopped).await)
                })
            });
            let _ = done.send(ended);
        });
    if let Err(e) = started {
        error!(error = %e, "cannot start the switch's thread");
        return None;
    }
    tokio::select! {
        _ = shutdown => {}
        // The switch's thread ended by itself: there is nothing to serve.
        _ = stop.closed() => {}
    }
    // Dropped, the sender tells the switch to end every call and stop.
    drop(stop);
    match finished.await {
        Ok(Ok(switch)) => Some(switch),
        Ok(Err(e)) => {
            error!(error = %e, "the switch's thread could not run");
            None
        }
        Err(_) => {
            error!("the switch's thread ended abnormally");
            None
        }
    }
}

/// What the switch's thread owns: the switch, its inbox, and the ways to
/// the media edge, the menu's services and the ACD.
struct Turn {
    switch: Switch,
    /// The SIP door's real-time priority (0: an ordinary thread).
    door_priority: u8,
    inbox: mpsc::UnboundedReceiver<Input>,
    media: media::Link,
    /// Runs beside the switch on its thread; ended with it (its inbox has
    /// senders in every media worker, so it is not drained: dropping its
    /// sessions closes the ports).
    media_control: media::Control,
    services: ivr::Services,
    acd: Option<acd::AcdHandle>,
    clock: crate::clock::WallClock,
    lateness: Arc<workers::Lateness>,
    /// Agents' desks as the log left them, restored once the switch runs.
    agents: Vec<(String, crate::tickets::desks::Desk)>,
}

impl Turn {
    /// Serves SIP on `udp` (and what comes through the inbox) until `stop`
    /// resolves or is dropped, then ends every call; gives the switch back
    /// for its figures.
    async fn run(
        self,
        udp: UdpSocket,
        door: &door::Shared,
        stop: tokio::sync::oneshot::Receiver<()>,
    ) -> Switch {
        let Turn {
            mut switch,
            door_priority: _,
            mut inbox,
            media,
            media_control,
            services,
            acd,
            clock,
            lateness,
            agents,
        } = self;
        // On this thread's runtime: ended when the thread's runtime is.
        tokio::spawn(media_control);
        let metrics = services.metrics.clone();
        let mut tcp_writers: HashMap<SocketAddr, mpsc::UnboundedSender<Bytes>> = HashMap::new();
        let mut tcp_tasks: HashMap<SocketAddr, tokio::task::AbortHandle> = HashMap::new();
        let mut edge_seen = crate::edge::GuardStats::default();
        let mut edge_synced = Instant::now();
        let mut media_looked = Instant::now();
        let mut datagrams = datagrams::Datagrams::new();
        datagrams::Datagrams::stamp_arrivals(&udp);
        let hands = Hands {
            media: &media,
            services: &services,
            acd: acd.as_ref(),
            clock: &clock,
        };
        // A turn's UDP datagrams, sent when it ends.
        let mut outgoing = datagrams::Outgoing::default();
        let _ = carry_out(&mut switch, hands, &tcp_writers, &mut outgoing);
        outgoing.flush(&udp).await;
        if let Some(acd) = acd.as_ref() {
            restore_agents(acd, agents);
        }
        tokio::pin!(stop);
        // One timer, moved only when the deadline moves: a fresh one each
        // turn was put in the runtime's wheel and taken out again, and one
        // due sooner than the runtime last meant to wake woke its poller
        // (a write and an empty turn, a quarter of the calls at 2,000 a
        // second).
        let mut armed = Instant::now();
        let timer = tokio::time::sleep_until(armed.into());
        tokio::pin!(timer);
        loop {
            // Woken for the media's look too, so that it is never older
            // than that when a call comes.
            let deadline = switch
                .poll_timeout()
                .map_or(media_looked + MEDIA_LOOK, |at| {
                    at.min(media_looked + MEDIA_LOOK)
                });
            if deadline != armed {
                armed = deadline;
                timer.as_mut().reset(deadline.into());
            }
            // Sources the switch banned in this turn.
            let mut banned = Vec::new();
            tokio::select! {
                received = datagrams.read(&udp, door) => match received {
                    Ok(datagrams::Read::Door) => {
                        let held = door.take();
                        let now = Instant::now();
                        if let Some(waited) = held.front().and_then(|h| h.arrived).and_then(datagrams::waited_since) {
                            switch.datagrams_waited(now, waited);
                            metrics.sip_read_wait.observe(waited.as_secs_f64());
                        }
                        // As from the socket: each one carried out before the next.
                        let last = held.len().saturating_sub(1);
                        for (i, h) in held.into_iter().enumerate() {
                            let peer = Peer { transport: Transport::Udp, addr: h.from };
                            match h.answer {
                                Some(answer) => switch.handle_answered(now, peer, &h.bytes, answer),
                                None => switch.handle_datagram(now, peer, &h.bytes),
                            }
                            if i < last {
                                banned.extend(carry_out(&mut switch, hands, &tcp_writers, &mut outgoing));
                                if outgoing.due(Instant::now()) {
                                    outgoing.flush(&udp).await;
                                }
                            }
                        }
                    }
                    Ok(datagrams::Read::Socket(n)) => {
                        let now = Instant::now();
                        if let Some(waited) = datagrams.waited() {
                            switch.datagrams_waited(now, waited);
                            metrics.sip_read_wait.observe(waited.as_secs_f64());
                        }
                        // Each datagram carried out before the next is taken
                        // (its ports, its ban); what they send leaves
                        // together at the turn's end (`Outgoing`).
                        for i in 0..n {
                            if let Some((bytes, from)) = datagrams.get(i) {
                                let peer = Peer { transport: Transport::Udp, addr: from };
                                switch.handle_datagram(now, peer, bytes);
                                if i + 1 < n {
                                    banned.extend(carry_out(&mut switch, hands, &tcp_writers, &mut outgoing));
                                    if outgoing.due(Instant::now()) {
                                        outgoing.flush(&udp).await;
                                    }
                                }
                            }
                        }
                    }
                    // ICMP errors from earlier sends surface here on Linux.
                    Err(e) => debug!(error = %e, "UDP receive error"),
                },
                Some(input) = inbox.recv() => {
                    let now = Instant::now();
                    match input {
                        Input::Media(call, event) => switch.handle_media(now, call, event),
                        Input::Stream(from, transport, parsed, raw) => {
                            let peer = Peer { transport, addr: from };
                            switch.handle_parsed(now, peer, parsed, &raw);
                        }
                        Input::TcpOpened(addr, writer, task) => {
                            if switch.is_banned(now, addr.ip()) {
                                task.abort();
                                metrics.connections_refused.with_label_values(&["banned", "sip_tcp"]).inc();
                            } else {
                                tcp_writers.insert(addr, writer);
                                tcp_tasks.insert(addr, task);
                            }
                        }
                        Input::TcpClosed(addr) => {
                            tcp_writers.remove(&addr);
                            tcp_tasks.remove(&addr);
                        }
                        Input::Place(call) => { switch.place_call(now, call); }
                        Input::PlaceDuty(call) => { switch.place_duty_call(now, call); }
                        Input::StopDuty(ticket) => switch.stop_duty_calls(now, ticket),
                        Input::Callback(q) => { switch.queue_callback(now, q); }
                        Input::Notice(n) => { switch.place_owner_notice(now, n); }
                        Input::IvrReply(call, reply) => switch.handle_ivr_reply(now, call, reply),
                        Input::Acd(out, at) => handle_acd(&mut switch, now, out, at, &services, &clock),
                        Input::Announce(a) => switch.announce(now, a.call, a.position, a.wait_minutes, a.offer_callback),
                        Input::Edge(crate::http::api::EdgeRequest::Bans(reply)) => {
                            let _ = reply.send(switch.bans(now));
                        }
                        Input::Edge(crate::http::api::EdgeRequest::Lift(ip, reply)) => {
                            let _ = reply.send(switch.lift_ban(now, ip));
                        }
                        Input::Edge(crate::http::api::EdgeRequest::PauseRecording { call, paused, by, reply }) => {
                            let _ = reply.send(switch.pause_recording(now, call, paused, &by));
                        }
                        Input::Edge(crate::http::api::EdgeRequest::Conference { call, add, agent, reply }) => {
                            let _ = reply.send(switch.conference(now, call, &add, agent));
                        }
                        Input::Edge(crate::http::api::EdgeRequest::Monitor { call, mode, phone, by, reply }) => {
                            let _ = reply.send(switch.monitor(now, call, phone, mode, &by));
                        }
                        Input::Edge(crate::http::api::EdgeRequest::Transfer { call, to, agent, reply }) => {
                            let _ = reply.send(switch.transfer(now, call, &to, agent));
                        }
                    }
                }
                _ = &mut timer => switch.handle_timeout(Instant::now()),
                _ = &mut stop => break,
            }
            banned.extend(carry_out(&mut switch, hands, &tcp_writers, &mut outgoing));
            outgoing.flush(&udp).await;
            for ip in banned {
                // A banned source's connections are closed.
                tcp_tasks.retain(|addr, task| {
                    let keep = addr.ip() != ip;
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                tcp_writers.retain(|addr, _| addr.ip() != ip);
            }
            let now = Instant::now();
            if switch.refusing(now) {
                door.refusing(now);
            }
            let since = now.duration_since(media_looked);
            if since >= MEDIA_LOOK {
                media_looked = now;
                let busy = lateness.busy_percent(since);
                metrics.media_busy.set(f64::from(busy) / 100.0);
                switch.media_busy(busy);
            }
            if now.duration_since(edge_synced) >= Duration::from_secs(1) {
                edge_synced = now;
                let late = lateness.take();
                metrics.media_late.set(late.worst.as_secs_f64());
                metrics.media_late_share.set(late.late_share);
                switch.second_passed(late);
                metrics.sync_edge(
                    switch.edge_stats(),
                    &mut edge_seen,
                    switch.banned_sources(now),
                );
            }
        }
        door.close();
        info!(active_calls = switch.active_calls(), "shutting down");
        switch.shutdown(Instant::now());
        let _ = carry_out(&mut switch, hands, &tcp_writers, &mut outgoing);
        outgoing.flush(&udp).await;
        // Let the BYEs leave and the media edge close its ports.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for task in tcp_tasks.values() {
            task.abort();
        }
        switch
    }
}

/// Restores the registrations still valid in the switch: UDP phones (a
/// TCP or TLS phone's connection ended with its process).
fn restore_phones(switch: &mut Switch, phones: &[crate::tickets::desks::Phone]) {
    let now_ms = tickets::now_ms();
    let now = Instant::now();
    for p in phones {
        let (Ok(agent), Some(peer)) = (p.agent.parse(), tickets::udp_source(&p.source)) else {
            continue;
        };
        let left = Duration::from_millis((p.expires_ms - now_ms).max(0) as u64);
        switch.restore_binding(now, agent, p.contact.clone(), peer, left);
    }
}

/// Logs the agents who were logged in back in (after their phones: an
/// agent logs in with a phone to ring), paused ones paused.
fn restore_agents(acd: &acd::AcdHandle, agents: Vec<(String, crate::tickets::desks::Desk)>) {
    for (agent, desk) in agents {
        let Ok(id) = agent.parse() else {
            continue;
        };
        info!(%agent, ?desk, "agent's state restored from the log");
        let _ = acd.tx.send(acd::AcdIn::Login(id));
        if let crate::tickets::desks::Desk::Paused { reason } = desk {
            let _ = acd.tx.send(acd::AcdIn::Pause(id, reason));
        }
    }
}

/// The log's last day, for what an earlier process left: unfinished
/// calls, phones, desks and the figures. A cluster's standby that followed
/// the log reads only what came since its last look.
async fn recent_events(
    store: &Store,
    followed: Option<crate::cluster::follow::Followed>,
) -> Vec<crate::tickets::Event> {
    let now = tickets::now_ms();
    if let Some(mut day) = followed {
        match day.catch_up(store, now).await {
            Ok(read) => {
                info!(
                    events = day.len(),
                    read, "the log's last day as this node followed it"
                );
                return day.into_events();
            }
            Err(e) => warn!(error = %e, "catching up with the log; reading its last day"),
        }
    }
    let from = now - crate::tickets::unfinished::LOOK_BACK_MS;
    match store.events_between(from, now + 1).await {
        Ok(events) => events,
        Err(e) => {
            warn!(error = %e, "reading the log's last day at start");
            Vec::new()
        }
    }
}

/// Ends the calls an earlier process (a killed one, or a cluster's node
/// that died or lost its lease) left unfinished in the log: before this
/// one takes any call, so every unfinished call is that process's. The
/// ends, as written.
async fn close_unfinished_calls(
    store: &Store,
    recent: &[crate::tickets::Event],
) -> Vec<crate::tickets::Event> {
    let ends = crate::tickets::unfinished::close_unfinished(recent, tickets::now_ms());
    if ends.is_empty() {
        return Vec::new();
    }
    let calls = ends
        .iter()
        .filter(|e| e.kind.name() == "call_ended")
        .count();
    match store.append(ends).await {
        Ok(written) => {
            warn!(
                calls,
                "calls an earlier process left unfinished: ended, reason node_failed"
            );
            written
        }
        Err(e) => {
            warn!(error = %e, "ending the calls an earlier process left unfinished");
            Vec::new()
        }
    }
}

/// The soft limit on open files of this process (Linux), if it can be read.
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Turns transparent huge pages off for this process (Linux; true when it
/// did): its memory then grows 4 KB at a time, not 2 MB.
///
/// The allocator asks for huge pages (mimalloc advises them for its
/// arenas), and the first touch of each one makes the kernel clear 2 MB
/// on the spot. Under overload, while the calls' memory grew, that took
/// the switch's thread 5 to 22 ms of CPU at a time (`perf`: page faults
/// in `clear_page`), and the requests waiting meanwhile were answered
/// late. A telephony process wants even latency more than the last few
/// per cent of throughput that fewer TLB misses give. It also halves the
/// memory a call holds (`benches/held.sh 2000`: 30 KB a call against 63,
/// the audio as clean).
pub fn without_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only
        // how this process's later page faults are served.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// Makes the process's table of open files hold `slots` descriptors at
/// once (Linux; true when it does), by duplicating `socket` to the last
/// slot and closing the copy: the table grows then and never shrinks.
///
/// Grown on demand instead, each time the calls' RTP sockets pass a power
/// of two (1,024, 2,048, 4,096, ...), the thread opening the socket, the
/// switch's, waits in the kernel for an RCU grace period: 10 to 14 ms
/// each time, measured under overload (`perf`: `socket` → `alloc_fd` →
/// `expand_files` → `synchronize_rcu`), so every request behind it was
/// answered late. The table costs 8 bytes a slot.
#[cfg(target_os = "linux")]
fn reserve_descriptors(socket: &impl std::os::fd::AsRawFd, slots: usize) -> bool {
    let Ok(last) = libc::c_int::try_from(slots.saturating_sub(1)) else {
        return false;
    };
    // SAFETY: F_DUPFD_CLOEXEC only reads a valid descriptor and returns a
    // new one (or -1), which is closed at once and never used.
    let copy = unsafe { libc::fcntl(socket.as_raw_fd(), libc::F_DUPFD_CLOEXEC, last) };
    if copy < 0 {
        return false;
    }
    // SAFETY: `copy` is this function's own descriptor.
    unsafe { libc::close(copy) };
    true
}

#[cfg(not(target_os = "linux"))]
fn reserve_descriptors(_socket: &impl std::os::fd::AsRawFd, _slots: usize) -> bool {
    false
}

/// The SIP socket's receive buffer: a burst of requests while the switch
/// is busy for a moment waits in the kernel instead of being dropped there
/// (the kernel's default, 208 KB, held too little at 1,600 short calls a
/// second: an ACK and an INFO lost together left a caller waiting for a
/// retransmission). Kamailio probes up to 4 MB too.
const SIP_RECEIVE_BUFFER: usize = 4 << 20;

/// How often the switch's loop looks at how busy the media workers are
/// (`Switch::media_busy`): often enough that a burst of admitted calls is
/// seen within a few hundred of them, seldom enough to cost nothing.
const MEDIA_LOOK: Duration = Duration::from_millis(100);

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    let got = grow_receive_buffer(&socket, SIP_RECEIVE_BUFFER);
    if got < SIP_RECEIVE_BUFFER {
        warn!(
            asked = SIP_RECEIVE_BUFFER,
            got, "the SIP socket's receive buffer is small: raise net.core.rmem_max (sysctl)"
        );
    }
    UdpSocket::from_std(socket)
}

/// Asks for a receive buffer of `bytes` (beyond net.core.rmem_max when
/// the process may, as root); returns what the kernel gave, in the same
/// terms (Linux reports twice the size set: its bookkeeping counted).
#[cfg(target_os = "linux")]
fn grow_receive_buffer(socket: &std::net::UdpSocket, bytes: usize) -> usize {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let size = bytes.min(i32::MAX as usize) as libc::c_int;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let current = || {
        let mut value: libc::c_int = 0;
        let mut value_len = len;
        // SAFETY: getsockopt writes at most `value_len` bytes into `value`,
        // a c_int that lives through the call.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&mut value as *mut libc::c_int).cast(),
                &mut value_len,
            )
        };
        if rc == 0 {
            value.max(0) as usize / 2
        } else {
            0
        }
    };
    for option in [libc::SO_RCVBUF, libc::SO_RCVBUFFORCE] {
        // SAFETY: setsockopt reads `len` bytes from `size`, a c_int that
        // lives through the call; the socket is ours and open.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                len,
            );
        }
        if current() >= bytes {
            break;
        }
    }
    current()
}

#[cfg(not(target_os = "linux"))]
fn grow_receive_buffer(_socket: &std::net::UdpSocket, bytes: usize) -> usize {
    bytes
}

/// What carries out the switch's outputs: the same for every turn of
/// its thread (the TCP writers, which change, are passed each time).
#[derive(Clone, Copy)]
struct Hands<'a> {
    media: &'a media::Link,
    services: &'a ivr::Services,
    acd: Option<&'a acd::AcdHandle>,
    clock: &'a crate::clock::WallClock,
}

/// Carries out what the switch wants done; returns the sources it banned.
fn carry_out(
    switch: &mut Switch,
    hands: Hands<'_>,
    tcp: &HashMap<SocketAddr, mpsc::UnboundedSender<Bytes>>,
    outgoing: &mut datagrams::Outgoing,
) -> Vec<std::net::IpAddr> {
    let Hands {
        media,
        services,
        acd,
        clock,
    } = hands;
    let metrics = &services.metrics;
    let mut banned = Vec::new();
    loop {
        let Some(out) = switch.poll_output() else {
            // The turn's end (its 100 Trying) may ask for more.
            if switch.end_turn(Instant::now()) {
                continue;
            }
            break;
        };
        match out {
            Output::Transmit(t) => {
                metrics.sip_sent(&t.bytes);
                match t.peer.transport {
                    Transport::Udp => outgoing.push(t.bytes, t.peer.addr),
                    Transport::Tcp | Transport::Tls => match tcp.get(&t.peer.addr) {
                        Some(w) => {
                            let _ = w.send(t.bytes);
                        }
                        None => warn!(to = %t.peer.addr, "TCP connection gone; message dropped"),
                    },
                }
            }
            Output::Media(crate::call::MediaCommand::Open { call, port, params }) => {
                let opened = media.open(call, port, params);
                switch.handle_media(Instant::now(), call, opened);
            }
            Output::Media(cmd) => media.send(cmd),
            Output::Event(ev) => hear(&ev, services, acd, clock),
            Output::IdentifyCaller { call, number } => {
                // On the switch's turn, like the port: one indexed read on
                // a connection of its own (a WAL reader waits for no
                // writer), cheaper than a hand-off to a thread and back.
                let found = services.identify(&number);
                switch.handle_owner(Instant::now(), call, found);
            }
            Output::IvrRequest {
                call,
                sip_call_id,
                number,
                request,
            } => services.request(call, sip_call_id, number, request),
            Output::AgentFeature { agent: id, code } => {
                if let Some(acd) = acd {
                    use crate::call::FeatureCode;
                    let _ = acd.tx.send(match code {
                        FeatureCode::LogIn => acd::AcdIn::Login(id),
                        FeatureCode::LogOut => acd::AcdIn::Logout(id),
                        FeatureCode::Pause => acd::AcdIn::Pause(id, "break".into()),
                        FeatureCode::Ready => acd::AcdIn::Ready(id),
                    });
                }
            }
            Output::AgentUnregistered { agent: id, expired } => {
                tickets::record(&services.store, tickets::unregistered_entry(id, expired));
                services.desk.phone(&id.to_string(), false);
                // An agent whose phone is gone cannot take calls.
                if let Some(acd) = acd {
                    let _ = acd.tx.send(acd::AcdIn::Phone(id, false));
                    let _ = acd.tx.send(acd::AcdIn::Logout(id));
                }
            }
            Output::AgentRegistered {
                agent: id,
                contact,
                peer,
                expires,
            } => {
                tickets::record(
                    &services.store,
                    tickets::registered_entry(id, contact, peer, expires),
                );
                services.desk.phone(&id.to_string(), true);
                if let Some(acd) = acd {
                    let _ = acd.tx.send(acd::AcdIn::Phone(id, true));
                }
            }
            Output::Banned { ip } => banned.push(ip),
            Output::Shed { why } => metrics.calls_shed.with_label_values(&[why]).inc(),
        }
    }
    metrics.active_calls.set(switch.active_calls() as i64);
    metrics
        .agents_registered
        .set(switch.registered_agents() as i64);
    banned
}

/// A call event for each listener: the metrics, the agents' desk, the ACD
/// (routing and the live figures) and the log.
fn hear(
    ev: &crate::call::CallEvent,
    services: &ivr::Services,
    acd: Option<&acd::AcdHandle>,
    clock: &crate::clock::WallClock,
) {
    services.metrics.hear(ev);
    services.desk.hear(ev);
    if let Some(acd) = acd {
        acd.hear(ev, |owner| services.tickets.agent_for(owner));
    }
    tickets::record(&services.store, tickets::log_entry(ev, clock));
}

/// What the ACD decided, carried out by the switch; an agent's new state
/// goes to their screen and the log.
fn handle_acd(
    switch: &mut Switch,
    now: Instant,
    out: crate::acd::AcdOutput,
    at: Instant,
    services: &ivr::Services,
    clock: &crate::clock::WallClock,
) {
    use crate::acd::{AcdOutput, LeftReason};
    match out {
        AcdOutput::Offer { call, agent } => switch.offer_to_agent(now, call, agent),
        AcdOutput::Withdraw { call, .. } => switch.withdraw_agent(now, call),
        AcdOutput::TransferRefused { call, agent } => switch.transfer_refused(now, call, agent),
        AcdOutput::AgentChanged { agent, state } => {
            let until_ms = match state {
                crate::acd::AgentState::WrapUp { until } => Some(clock.ms(until)),
                _ => None,
            };
            services
                .desk
                .agent_changed(agent, &state, clock.ms(at), until_ms);
            tickets::record(
                &services.store,
                tickets::agent_entry(agent, &state, at, clock),
            );
        }
        AcdOutput::Left {
            call,
            reason: reason @ (LeftReason::MaxWait | LeftReason::NoAgents),
        } => switch.queue_left(now, call, reason == LeftReason::NoAgents),
        AcdOutput::Left { .. } | AcdOutput::Connected { .. } | AcdOutput::Missed { .. } => {}
    }
}

/// Accepts SIP connections on one listener (TCP, or TLS when `tls` is
/// given); both listeners share `slots`, the caps in all and per source.
async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    slots: crate::edge::Slots<std::net::IpAddr>,
    to_switch: mpsc::UnboundedSender<Input>,
    idle: Duration,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let label = if tls.is_some() { "sip_tls" } else { "sip_tcp" };
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                // Over a limit: closed at once, before a task or a buffer.
                let slot = match slots.take(from.ip()) {
                    Ok(slot) => slot,
                    Err(full) => {
                        metrics
                            .connections_refused
                            .with_label_values(&[full.label(), label])
                            .inc();
                        debug!(%from, why = full.label(), "SIP connection refused");
                        continue;
                    }
                };
                // The task learns its own abort handle (so the switch can
                // close it), then says it is open before reading anything:
                // the switch's inbox keeps that order.
                let (go, handle) = tokio::sync::oneshot::channel();
                let task = tokio::spawn(open_connection(
                    stream,
                    from,
                    tls.clone(),
                    to_switch.clone(),
                    (slot, handle),
                    idle,
                ));
                let _ = go.send(task.abort_handle());
            }
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// How long a TLS client may take over its handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Completes a TLS handshake when there is one to do, tells the switch the
/// connection is open, and serves it.
async fn open_connection(
    stream: TcpStream,
    from: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    to_switch: mpsc::UnboundedSender<Input>,
    (slot, handle): (
        crate::edge::Slot<std::net::IpAddr>,
        tokio::sync::oneshot::Receiver<tokio::task::AbortHandle>,
    ),
    idle: Duration,
) {
    let Ok(handle) = handle.await else {
        return;
    };
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    match tls {
        None => {
            let _ = to_switch.send(Input::TcpOpened(from, tx, handle));
            connection(stream, from, Transport::Tcp, to_switch, rx, idle).await;
        }
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = to_switch.send(Input::TcpOpened(from, tx, handle));
                    connection(stream, from, Transport::Tls, to_switch, rx, idle).await;
                }
                Ok(Err(e)) => debug!(%from, error = %e, "TLS handshake failed"),
                Err(_) => debug!(%from, "TLS handshake took too long"),
            }
        }
    }
    drop(slot);
}

/// Reads one stream connection (TCP or TLS), framing messages by
/// Content-Length; closed after `idle` without a byte from the peer.
async fn connection<S>(
    stream: S,
    from: SocketAddr,
    transport: Transport,
    to_switch: mpsc::UnboundedSender<Input>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    idle: Duration,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut buf = BytesMut::with_capacity(8192);
    'read: loop {
        match tokio::time::timeout(idle, reader.read_buf(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Err(_) => {
                debug!(%from, "SIP connection idle: closed");
                break;
            }
            Ok(Ok(_)) => {}
        }
        loop {
            match message::frame_stream(&buf) {
                Framed::NeedMore => break,
                Framed::KeepAlive { consumed } => {
                    let _ = buf.split_to(consumed);
                }
                Framed::Message { consumed, parsed } => {
                    let raw = buf.split_to(consumed).freeze();
                    let _ = to_switch.send(Input::Stream(from, transport, parsed, raw));
                }
                Framed::Broken(e) => {
                    // Without a trustworthy Content-Length the stream cannot
                    // be resynchronised: answer if possible, then close.
                    let raw = buf.split().freeze();
                    let _ = to_switch.send(Input::Stream(from, transport, Err(e), raw));
                    break 'read;
                }
            }
        }
    }
    let _ = to_switch.send(Input::TcpClosed(from));
    // Give the switch a moment to send a final reply before closing.
    tokio::time::sleep(Duration::from_millis(50)).await;
    write_task.abort();
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The size of this process's table of open files (`FDSize`).
    fn descriptor_table() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("FDSize:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn the_descriptor_table_is_grown_at_once_to_the_slots_asked_for() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = descriptor_table();
        let slots = (before * 8).min(open_files_limit().unwrap());
        assert!(
            slots > before,
            "the open-files limit leaves no room to grow"
        );
        assert!(reserve_descriptors(&socket, slots));
        assert!(descriptor_table() >= slots);
        // The copy made to grow it is closed, and the table stays grown.
        // SAFETY: F_GETFD only asks whether a descriptor is open.
        let last = unsafe { libc::fcntl(slots as libc::c_int - 1, libc::F_GETFD) };
        assert_eq!(last, -1);
        assert!(descriptor_table() >= slots);
        // Past the limit, it says it could not.
        let limit = open_files_limit().unwrap();
        assert!(!reserve_descriptors(&socket, limit + 1));
        assert!(!reserve_descriptors(&socket, usize::MAX));
    }

    #[test]
    fn huge_pages_are_turned_off_for_the_process() {
        assert!(without_huge_pages());
        // SAFETY: PR_GET_THP_DISABLE takes no pointers.
        let off = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(off, 1);
    }
}
