//! The edge guard: who may talk to the hotline, and how much (sans-IO).
//!
//! Everything that arrives over the network passes here before it is
//! parsed further, the way Kamailio's `pike` and `htable` bans and
//! Asterisk's ACLs guard theirs:
//! * **Trunks** ([`Networks`] of the carrier's addresses) are the only
//!   sources whose caller ID is believed; they get limits of their own,
//!   sized to the hotline's capacity, and are never banned (one carrier
//!   brings every owner's call, so one party's failures must not cut off
//!   the others).
//! * **Per-source token buckets** for INVITE, REGISTER and everything else.
//!   A source over its rate gets one `503` with `Retry-After` per class per
//!   second and silence otherwise ([`Verdict`]).
//! * **Bans**: `failures` failed authentications within `window` ban the
//!   source for `duration`; its datagrams are dropped and its connections
//!   closed. A ban is reported once ([`Banned`]) so the runtime writes the
//!   one log line fail2ban reads.
//!
//! Memory is bounded whatever a flood sends: at most `max_sources` sources
//! are tracked (idle ones are forgotten after [`IDLE`]; when the table is
//! full of busy ones, new sources share one bucket), and failure times are
//! a ring of at most `failures` instants per source.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

mod cidr;
pub mod door;
mod slots;
pub use cidr::{Cidr, CidrError, Networks, PRIVATE};
pub use slots::{Full, Slot, Slots};

/// A source not heard from for this long is forgotten (its buckets are
/// full again by then at any sane rate).
pub const IDLE: Duration = Duration::from_secs(60);

/// Which bucket a request is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Invite,
    Register,
    Other,
}

impl Class {
    pub fn of_method(method: &str) -> Self {
        match method {
            "INVITE" => Class::Invite,
            "REGISTER" => Class::Register,
            _ => Class::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Class::Invite => "invite",
            Class::Register => "register",
            Class::Other => "other",
        }
    }
}

/// Requests per second allowed on average, and how many at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// One rate per [`Class`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub invite: Rate,
    pub register: Rate,
    pub other: Rate,
}

impl Limits {
    fn rate(&self, class: Class) -> Rate {
        match class {
            Class::Invite => self.invite,
            Class::Register => self.register,
            Class::Other => self.other,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// Carrier trunks and gateways: their caller ID is trusted.
    pub trunks: Networks,
    /// Limits for everyone else, and for trunks.
    pub limits: Limits,
    pub trunk_limits: Limits,
    /// `failures` failed authentications within `window` ban for `duration`.
    pub ban_failures: u32,
    pub ban_window: Duration,
    pub ban_duration: Duration,
    pub max_sources: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        let rate = |per_second, burst| Rate { per_second, burst };
        Self {
            trunks: Networks::default(),
            // A phone sends a handful of requests a second at most; a
            // caller's whole call is a few requests.
            limits: Limits {
                invite: rate(5.0, 20.0),
                register: rate(5.0, 20.0),
                other: rate(50.0, 200.0),
            },
            // A trunk carries every owner's call: the hotline's capacity.
            trunk_limits: Limits {
                invite: rate(2_000.0, 4_000.0),
                register: rate(100.0, 200.0),
                other: rate(20_000.0, 40_000.0),
            },
            ban_failures: 10,
            ban_window: Duration::from_secs(60),
            ban_duration: Duration::from_secs(15 * 60),
            max_sources: 100_000,
        }
    }
}

/// What happens to a call that does not come from a trunk.
#[derive(Debug, Clone, Copy, serde::Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UntrustedCalls {
    /// Served as an unknown caller: no owner recognition until the caller
    /// proves who they are.
    #[default]
    Anonymous,
    /// Refused with 403.
    Reject,
}

/// How much the switch takes on at once (checked before an RTP port is
/// bound); beyond it, 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub max_calls: usize,
    /// Calls answered (or ringing) whose ACK has not come yet.
    pub max_unconfirmed: usize,
    pub max_unconfirmed_per_source: usize,
    pub max_transactions: usize,
    /// New calls wait while the busiest media worker spent more than this
    /// share of the last look working (percent; 100: never); the switch
    /// lowers it for a while when it reads late. Real-time workers near
    /// their core's end leave the switch none: its answers and refusals
    /// would queue behind their audio.
    pub max_media_busy: u8,
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            max_calls: 2000,
            max_unconfirmed: 200,
            max_unconfirmed_per_source: 20,
            max_transactions: 20_000,
            max_media_busy: 80,
        }
    }
}

/// Everything the switch needs to guard its door.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    pub guard: GuardConfig,
    /// Proxies in front (Kamailio) whose `X-Hotline-Source` is believed.
    pub proxies: Networks,
    /// Where agents' phones may register and dial feature codes from.
    pub agent_networks: Networks,
    pub untrusted_calls: UntrustedCalls,
    pub admission: Admission,
    /// How long a digest nonce is good for.
    pub nonce_lifetime: Duration,
    /// The `Server` header; empty: none.
    pub server: String,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            guard: GuardConfig::default(),
            proxies: Networks::default(),
            agent_networks: Networks::parse(&PRIVATE).expect("literal ranges"),
            untrusted_calls: UntrustedCalls::Anonymous,
            admission: Admission::default(),
            nonce_lifetime: Duration::from_secs(60),
            server: String::new(),
        }
    }
}

/// What to do with a request from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Over its rate: answer 503 with this `Retry-After` (seconds).
    Refuse {
        retry_after: u32,
    },
    /// Banned, or over its rate and already told this second: silence.
    Drop,
}

/// A source was banned just now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Banned {
    pub ip: IpAddr,
    pub failures: u32,
    pub duration: Duration,
}

/// What a failed authentication led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Log this one (at most one line per source per second).
    pub log: bool,
    pub banned: Option<Banned>,
}

/// A ban in force, for the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanInfo {
    pub ip: IpAddr,
    pub remaining: Duration,
    pub failures: u32,
}

/// What the guard counted (the edge exports them as metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    pub refused: [u64; 3],
    pub dropped: [u64; 3],
    pub auth_failures: u64,
    pub bans: u64,
    pub dropped_banned: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            at: now,
        }
    }

    /// Takes one token if there is one; else the seconds until there is.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), u32> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if rate.per_second > 0.0 {
            Err(((1.0 - self.tokens) / rate.per_second).ceil().max(1.0) as u32)
        } else {
            Err(3600)
        }
    }
}

#[derive(Debug)]
struct Source {
    buckets: [Bucket; 3],
    /// When this source was last sent a 503, per class.
    told: [Option<Instant>; 3],
    failures: VecDeque<Instant>,
    failure_logged: Option<Instant>,
    seen: Instant,
}

impl Source {
    fn new(limits: &Limits, now: Instant) -> Self {
        Self {
            buckets: [
                Bucket::full(limits.invite, now),
                Bucket::full(limits.register, now),
                Bucket::full(limits.other, now),
            ],
            told: [None; 3],
            failures: VecDeque::new(),
            failure_logged: None,
            seen: now,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Ban {
    until: Instant,
    failures: u32,
}

/// Per-source limits and bans. See the module doc.
#[derive(Debug)]
pub struct Guard {
    cfg: GuardConfig,
    sources: HashMap<IpAddr, Source>,
    /// Shared by new sources while the table is full.
    overflow: Option<Source>,
    bans: HashMap<IpAddr, Ban>,
    next_sweep: Option<Instant>,
    stats: GuardStats,
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Self {
        Self {
            cfg,
            sources: HashMap::new(),
            overflow: None,
            bans: HashMap::new(),
            next_sweep: None,
            stats: GuardStats::default(),
        }
    }

    pub fn is_trunk(&self, ip: IpAddr) -> bool {
        self.cfg.trunks.contains(ip)
    }

    pub fn stats(&self) -> GuardStats {
        self.stats
    }

    /// Sources tracked now (bounded by `max_sources`).
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// Whether `ip` is banned now.
    pub fn is_banned(&self, now: Instant, ip: IpAddr) -> bool {
        self.bans.get(&ip).is_some_and(|b| b.until > now)
    }

    /// Whether a datagram from `ip` may be read (not while it is banned).
    pub fn handle_datagram(&mut self, now: Instant, ip: IpAddr) -> bool {
        match self.bans.get(&ip) {
            Some(ban) if ban.until > now => {
                self.stats.dropped_banned += 1;
                false
            }
            Some(_) => {
                self.bans.remove(&ip);
                true
            }
            None => true,
        }
    }

    /// A request of `class` from `ip`: within its rate or not.
    pub fn handle_request(&mut self, now: Instant, ip: IpAddr, class: Class) -> Verdict {
        let limits = if self.is_trunk(ip) {
            self.cfg.trunk_limits
        } else {
            self.cfg.limits
        };
        let rate = limits.rate(class);
        let source = self.source(now, ip, &limits);
        let i = class as usize;
        match source.buckets[i].take(rate, now) {
            Ok(()) => Verdict::Pass,
            Err(retry_after) => {
                let told_recently = source.told[i]
                    .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1));
                if told_recently {
                    self.stats.dropped[i] += 1;
                    Verdict::Drop
                } else {
                    source.told[i] = Some(now);
                    self.stats.refused[i] += 1;
                    Verdict::Refuse { retry_after }
                }
            }
        }
    }

    /// A failed authentication from `ip`; may ban it.
    pub fn handle_auth_failure(&mut self, now: Instant, ip: IpAddr) -> Failure {
        self.stats.auth_failures += 1;
        let trunk = self.is_trunk(ip);
        let limits = self.cfg.limits;
        let (n, window, duration) = (
            self.cfg.ban_failures,
            self.cfg.ban_window,
            self.cfg.ban_duration,
        );
        let source = self.source(now, ip, &limits);
        let log = source
            .failure_logged
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if log {
            source.failure_logged = Some(now);
        }
        while source
            .failures
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= window)
        {
            source.failures.pop_front();
        }
        source.failures.push_back(now);
        if source.failures.len() > n as usize {
            source.failures.pop_front();
        }
        let count = source.failures.len() as u32;
        if trunk || n == 0 || count < n {
            return Failure { log, banned: None };
        }
        source.failures.clear();
        self.bans.insert(
            ip,
            Ban {
                until: now + duration,
                failures: count,
            },
        );
        self.stats.bans += 1;
        Failure {
            log,
            banned: Some(Banned {
                ip,
                failures: count,
                duration,
            }),
        }
    }

    /// How many bans are in force.
    pub fn banned(&self, now: Instant) -> usize {
        self.bans.values().filter(|b| b.until > now).count()
    }

    /// Bans in force, longest remaining first.
    pub fn bans(&self, now: Instant) -> Vec<BanInfo> {
        let mut out: Vec<BanInfo> = self
            .bans
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(ip, b)| BanInfo {
                ip: *ip,
                remaining: b.until.saturating_duration_since(now),
                failures: b.failures,
            })
            .collect();
        out.sort_by(|a, b| b.remaining.cmp(&a.remaining).then(a.ip.cmp(&b.ip)));
        out
    }

    /// Lifts a ban (a supervisor's decision); whether there was one. The
    /// source's failures are forgotten with it.
    pub fn lift(&mut self, now: Instant, ip: IpAddr) -> bool {
        if let Some(s) = self.sources.get_mut(&ip) {
            s.failures.clear();
        }
        self.bans.remove(&ip).is_some_and(|b| b.until > now)
    }

    /// When idle sources and ended bans are next swept.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_sweep
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|at| at <= now) {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.sources
            .retain(|_, s| now.saturating_duration_since(s.seen) < IDLE);
        self.bans.retain(|_, b| b.until > now);
        if self
            .overflow
            .as_ref()
            .is_some_and(|s| now.saturating_duration_since(s.seen) >= IDLE)
        {
            self.overflow = None;
        }
        self.next_sweep =
            (!self.sources.is_empty() || self.overflow.is_some()).then(|| now + IDLE / 4);
        if self.sources.capacity() > 4 * self.sources.len().max(1024) {
            self.sources.shrink_to_fit();
        }
    }

    fn source(&mut self, now: Instant, ip: IpAddr, limits: &Limits) -> &mut Source {
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + IDLE / 4);
        }
        // Trunks are few and always tracked on their own.
        if !self.sources.contains_key(&ip)
            && self.sources.len() >= self.cfg.max_sources
            && !self.cfg.trunks.contains(ip)
        {
            self.sweep(now);
            if self.sources.len() >= self.cfg.max_sources {
                let shared = self
                    .overflow
                    .get_or_insert_with(|| Source::new(limits, now));
                shared.seen = now;
                return shared;
            }
        }
        let source = self
            .sources
            .entry(ip)
            .or_insert_with(|| Source::new(limits, now));
        source.seen = now;
        source
    }
}

#[cfg(test)]
mod tests;

/// File descriptors held back for RTP: each call may hold two sockets (the
/// caller's and an agent leg's), and a few dozen go to the store, the
/// listeners and the runtime. Connections (SIP over TCP/TLS, HTTP) get what
/// is left of the process's limit, shared in proportion to their caps, so a
/// flood of connections can never leave a caller without an RTP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    pub sip_connections: usize,
    pub http_connections: usize,
    /// The caps had to be lowered to fit.
    pub lowered: bool,
}

/// Descriptors kept for everything but calls and connections.
pub const FD_OVERHEAD: usize = 64;

/// The descriptors the caps allow at once: two per call (its RTP socket
/// and another leg's), the connections, and the hotline's own.
pub fn planned_descriptors(max_calls: usize, sip: usize, http: usize) -> usize {
    max_calls
        .saturating_mul(2)
        .saturating_add(sip)
        .saturating_add(http)
        .saturating_add(FD_OVERHEAD)
}

pub fn fit_to_fd_limit(limit: usize, max_calls: usize, sip: usize, http: usize) -> FdBudget {
    let left = limit.saturating_sub(2 * max_calls + FD_OVERHEAD);
    if sip + http <= left {
        return FdBudget {
            sip_connections: sip,
            http_connections: http,
            lowered: false,
        };
    }
    // Shared in proportion, at least one each (so each listener still works).
    let sip_share = (left * sip / (sip + http).max(1)).max(1);
    let http_share = left.saturating_sub(sip_share).max(1);
    FdBudget {
        sip_connections: sip_share.min(sip),
        http_connections: http_share.min(http),
        lowered: true,
    }
}
