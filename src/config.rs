//! TOML configuration. Every section and key is optional: with no file at
//! all the hotline runs on the embedded defaults below. Unknown keys, bad
//! addresses and missing prompts are errors that name the key or file.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::call::SwitchConfig;
use crate::media::prompt::{PromptError, PromptSet};
use crate::sip::transaction::TimerValues;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    #[error("config {path}: prompts: {source}")]
    Prompt { path: PathBuf, source: PromptError },
    #[error("config {path}: acd.agents: {source}")]
    Agents {
        path: PathBuf,
        source: crate::acd::agents::AgentsError,
    },
    #[error("config {path}: http.users: {source}")]
    Users {
        path: PathBuf,
        source: crate::http::users::UsersError,
    },
    #[error("config {path}: ivr.menu: {source}")]
    Menu {
        path: PathBuf,
        source: crate::ivr::graph::GraphError,
    },
    #[error("config {path}: oncall.rota: {source}")]
    Rota {
        path: PathBuf,
        source: crate::tickets::rota::RotaError,
    },
    #[error("config {path}: ivr.hours: {source}")]
    Hours {
        path: PathBuf,
        source: crate::site::hours::HoursError,
    },
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub site: SiteConfig,
    pub recording: RecordingConfig,
    pub transfer: TransferConfig,
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub prompts: PromptsConfig,
    pub call: CallConfig,
    pub tickets: TicketsConfig,
    pub return_visit: ReturnVisitConfig,
    pub callback: CallbackConfig,
    pub oncall: OnCallConfig,
    pub owners: OwnersConfig,
    pub ivr: IvrSettings,
    pub acd: AcdSettings,
    pub service_level: ServiceLevelSettings,
    pub http: HttpSettings,
    pub cluster: ClusterConfig,
}

/// Two or more nodes on one PostgreSQL store, one active (see
/// `src/cluster`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster (`a`, `b`); empty: no
    /// cluster, this process is the hotline on its own.
    pub node: String,
    /// How long the active node's lease lasts unrenewed (renewed three
    /// times within it): a standby takes over within about this much
    /// after the active node dies.
    pub lease_seconds: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node: String::new(),
            lease_seconds: 3,
        }
    }
}

/// Agents handing callers to numbers outside the centre.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransferConfig {
    /// The outside numbers an agent may transfer a caller to (E.164
    /// patterns as `return_visit.allowed_numbers`, e.g. the duty
    /// engineer's mobile "+8613800138000"); none by default: no call
    /// leaves the centre through a transfer.
    pub allowed_numbers: Vec<String>,
    /// The gateway those calls go through (`return_visit.gateway` when
    /// left out).
    pub gateway: Option<SocketAddr>,
}

/// Recording the conversations between callers and agents.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Record every conversation (a site or queue below may say otherwise).
    pub enabled: bool,
    /// Where the stereo WAVs go (caller left, agent right).
    pub dir: PathBuf,
    /// Older recordings are deleted by the hotline (0: kept for ever).
    pub retention_days: u64,
    /// Per site id and per queue: true or false, over `enabled`.
    pub sites: BTreeMap<String, bool>,
    pub queues: BTreeMap<String, bool>,
    /// The prompt a caller hears when queued for a recorded conversation,
    /// before any agent answers ("" for none).
    pub notice: String,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: PathBuf::from("recordings/calls"),
            retention_days: 90,
            sites: BTreeMap::new(),
            queues: BTreeMap::new(),
            notice: "recording_notice".into(),
        }
    }
}

impl RecordingConfig {
    pub fn policy(&self) -> crate::call::RecordingPolicy {
        crate::call::RecordingPolicy {
            enabled: self.enabled,
            sites: self.sites.clone(),
            queues: self.queues.clone(),
            notice: (!self.notice.is_empty()).then(|| self.notice.clone()),
        }
    }
}

/// The centre itself.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    /// The centre's local time against UTC, "+HH:MM": dates said to
    /// callers, times on the pages, in call history and in reports.
    pub utc_offset: String,
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            utc_offset: "+08:00".into(),
        }
    }
}

impl SiteConfig {
    /// The site's local time (checked at load).
    pub fn local_time(&self) -> crate::site::LocalTime {
        crate::site::LocalTime::parse(&self.utc_offset).unwrap_or_default()
    }
}

/// How the service level and the other queue figures are computed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceLevelSettings {
    /// A call answered within this many seconds meets the target.
    pub threshold_seconds: u64,
    /// Abandons within the threshold: "ignore" (left out of the count),
    /// "fail" (missing the target) or "meet" (meeting it).
    pub short_abandons: crate::acd::stats::ShortAbandons,
    /// The ratios and means cover this many minutes back.
    pub window_minutes: u64,
    /// The centre's targets, shown red on the wallboard when missed: the
    /// share answered within the threshold (offered definition), the
    /// share abandoned at most, the mean wait of answered calls at most.
    pub target: f64,
    pub abandon_target: f64,
    pub asa_target_seconds: f64,
}

impl Default for ServiceLevelSettings {
    fn default() -> Self {
        Self {
            threshold_seconds: 20,
            short_abandons: crate::acd::stats::ShortAbandons::Ignore,
            window_minutes: 30,
            target: 0.8,
            abandon_target: 0.05,
            asa_target_seconds: 20.0,
        }
    }
}

impl ServiceLevelSettings {
    pub fn stats_config(&self) -> crate::acd::stats::StatsConfig {
        crate::acd::stats::StatsConfig {
            threshold: Duration::from_secs(self.threshold_seconds),
            short_abandons: self.short_abandons,
            window: Duration::from_secs(self.window_minutes * 60),
        }
    }
}

/// The HTTP surface: `/metrics` for Prometheus, the API and the agent's
/// page.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// The API's users and their token hashes; empty: the API answers 401.
    pub users: PathBuf,
    /// Connections at once, in all and per source address.
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    /// Event streams (agents' pages) at once, in all and per user.
    pub max_event_streams: usize,
    pub max_event_streams_per_user: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("literal"),
            users: PathBuf::new(),
            max_connections: 512,
            max_connections_per_source: 64,
            max_event_streams: 256,
            max_event_streams_per_user: 4,
        }
    }
}

/// Agents and their queues.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AcdSettings {
    /// The agents file (credentials as hashes, skills); empty: no agents,
    /// REGISTER is refused. `config/agents.toml` has demo agents.
    pub agents: PathBuf,
    /// An agent's phone ringing this long without an answer is a miss.
    pub offer_seconds: u64,
    /// Misses in a row that pause the agent with reason `no-answer`.
    pub max_misses: u32,
    /// After a missed offer the agent is not offered another call for this
    /// long (0: at once).
    pub miss_rest_seconds: u64,
    /// A caller with an open ticket waits this long for the agent who
    /// handled it before anyone else may take the call.
    pub sticky_seconds: u64,
    /// Waiting callers hear their place and the estimated wait this often.
    pub announce_seconds: u64,
    /// The handle time estimates start from, until real calls are measured.
    pub assumed_handle_seconds: u64,
    /// Queues by name (the menu's queue nodes name them). A table here
    /// replaces the defaults.
    pub queues: BTreeMap<String, QueueSettings>,
    /// With nobody logged in who could serve a queue: "fallback" (callers
    /// go to the queue's fallback at once, told why, and waiting callers
    /// when the last agent leaves) or "wait". A queue may say otherwise.
    pub when_empty: crate::acd::WhenEmpty,
    /// Where agents' phones may REGISTER and dial feature codes from
    /// (CIDR ranges); anywhere else gets 403 without a challenge.
    pub agent_networks: Vec<String>,
    /// How long a digest nonce is good for (RFC 7616 leaves it to us).
    pub nonce_seconds: u64,
}

impl Default for AcdSettings {
    fn default() -> Self {
        let queue = |skill: &str| QueueSettings {
            skill: Some(skill.into()),
            ..QueueSettings::default()
        };
        let mut queues = BTreeMap::new();
        queues.insert(
            "general".into(),
            QueueSettings {
                vip_queue: Some("vip".into()),
                ..queue("general")
            },
        );
        for name in ["repair", "complaint", "gifts"] {
            queues.insert(
                name.into(),
                QueueSettings {
                    neighbours: vec!["general".into()],
                    ..queue(name)
                },
            );
        }
        queues.insert("self_service".into(), queue("general"));
        queues.insert(
            "vip".into(),
            QueueSettings {
                good_level: 7,
                min_level: 5,
                ..queue("general")
            },
        );
        Self {
            agents: PathBuf::new(),
            offer_seconds: 15,
            max_misses: 3,
            miss_rest_seconds: 5,
            when_empty: crate::acd::WhenEmpty::Fallback,
            sticky_seconds: 20,
            announce_seconds: 30,
            assumed_handle_seconds: 180,
            queues,
            agent_networks: crate::edge::PRIVATE.map(String::from).to_vec(),
            nonce_seconds: 60,
        }
    }
}

impl AcdSettings {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, value) in [
            ("acd.offer_seconds", self.offer_seconds),
            ("acd.announce_seconds", self.announce_seconds),
            ("acd.assumed_handle_seconds", self.assumed_handle_seconds),
            ("acd.max_misses", self.max_misses as u64),
        ] {
            if value == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        if self.queues.is_empty() {
            return Err(("acd.queues", "at least one queue is needed".into()));
        }
        for (name, q) in &self.queues {
            let bad = |m: String| Err(("acd.queues", format!("queue {name:?}: {m}")));
            if !(1..=10).contains(&q.good_level)
                || !(1..=10).contains(&q.min_level)
                || !(1..=10).contains(&q.widened_level)
            {
                return bad("levels run from 1 to 10".into());
            }
            if q.min_level > q.good_level || q.widened_level > q.min_level {
                return bad(format!(
                    "levels must not rise: good_level {} >= min_level {} >= widened_level {}",
                    q.good_level, q.min_level, q.widened_level
                ));
            }
            if q.max_wait_seconds == 0 {
                return bad("max_wait_seconds must be at least 1".into());
            }
            if let Some(v) = &q.vip_queue
                && !self.queues.contains_key(v)
            {
                return bad(format!("vip_queue {v:?} is not a queue"));
            }
        }
        let mut codes = std::collections::BTreeSet::new();
        for (code, queue) in self.transfer_queues() {
            let usable = !code.is_empty()
                && code.len() <= 32
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && !code.bytes().all(|b| b.is_ascii_digit());
            if !usable {
                return Err((
                    "acd.queues",
                    format!(
                        "queue {queue:?}: transfer_code {code:?} must be 1-32 letters, digits, '-', '_' or '.', not digits alone (those are agents)"
                    ),
                ));
            }
            if !codes.insert(code.clone()) {
                return Err((
                    "acd.queues",
                    format!("queue {queue:?}: transfer_code {code:?} is another queue's"),
                ));
            }
        }
        Ok(())
    }

    /// Transfer codes and the queue each sends a caller to.
    pub fn transfer_queues(&self) -> Vec<(String, String)> {
        self.queues
            .iter()
            .map(|(name, q)| {
                let code = q
                    .transfer_code
                    .clone()
                    .unwrap_or_else(|| format!("q-{name}"));
                (code, name.clone())
            })
            .collect()
    }

    /// The skill a queue needs.
    pub fn skill_of<'a>(&'a self, queue: &'a str) -> &'a str {
        self.queues
            .get(queue)
            .and_then(|q| q.skill.as_deref())
            .unwrap_or(queue)
    }
}

/// One queue: the skill it needs and how far it widens while callers wait.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// The skill agents need (levels 1-10 in the agents file); the queue's
    /// own name when left out.
    pub skill: Option<String>,
    /// Agents at this level and up are offered the call first ...
    pub good_level: u8,
    /// ... then agents down to this level.
    pub min_level: u8,
    /// Once the first caller has waited this long, agents down to
    /// `widened_level` and agents of the `neighbours` skills may take it.
    pub widen_after_seconds: u64,
    pub widened_level: u8,
    pub neighbours: Vec<String>,
    /// A caller waiting this long goes to the menu's fallback (a voice
    /// message that becomes a ticket).
    pub max_wait_seconds: u64,
    /// VIPs and key customers asking for this queue wait in that one.
    pub vip_queue: Option<String>,
    /// This queue's `[acd] when_empty`, when it differs.
    pub when_empty: Option<crate::acd::WhenEmpty>,
    /// What an agent transfers a caller to this queue with (a phone's
    /// Refer-To `sip:<code>@...`, or the desk): `q-<name>` when left out.
    pub transfer_code: Option<String>,
    /// Waiting callers are offered a callback that keeps their place when
    /// the estimated wait is at least this (0: never).
    pub callback_after_seconds: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            skill: None,
            good_level: 5,
            min_level: 3,
            widen_after_seconds: 60,
            widened_level: 1,
            neighbours: Vec::new(),
            max_wait_seconds: 300,
            vip_queue: None,
            when_empty: None,
            transfer_code: None,
            callback_after_seconds: 60,
        }
    }
}

/// The voice menu.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IvrSettings {
    /// The menu graph; empty: no menu, the line test (answer, collect
    /// digits, goodbye), which SIP load tests use.
    pub menu: PathBuf,
    /// Where callers' voice messages are written.
    pub recordings: PathBuf,
    /// The sites' opening hours and holidays, for the menu's `hours`
    /// nodes; empty: every site is open around the clock.
    pub hours: PathBuf,
}

impl Default for IvrSettings {
    fn default() -> Self {
        let local = PathBuf::from("config/ivr.toml");
        Self {
            menu: if local.is_file() {
                local
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ivr.toml")
            },
            recordings: PathBuf::from("recordings"),
            hours: PathBuf::new(),
        }
    }
}

/// The owner database and how caller numbers are written here.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OwnersConfig {
    /// SQLite file (created on first use; `hotline owners import` fills it).
    pub db: PathBuf,
    /// Country calling code, without `+`.
    pub country_code: String,
    /// The area code of local numbers (without the national prefix 0).
    pub area_code: Option<String>,
}

impl Default for OwnersConfig {
    fn default() -> Self {
        Self {
            db: PathBuf::from("hotline-owners.db"),
            country_code: "86".into(),
            area_code: None,
        }
    }
}

impl OwnersConfig {
    pub fn number_plan(&self) -> crate::owners::phone::NumberPlan {
        crate::owners::phone::NumberPlan {
            country_code: self.country_code.clone(),
            area_code: self.area_code.clone(),
            ..Default::default()
        }
    }
}

/// Callbacks that keep the caller's place.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackConfig {
    /// The gateway owners are called back through (`return_visit.gateway`
    /// when left out); neither: no callbacks offered.
    pub gateway: Option<SocketAddr>,
    /// Calls per callback when the owner does not answer.
    pub attempts: u32,
    /// Between them (outside `return_visit.quiet_hours`).
    pub retry_seconds: u64,
    /// The numbers a caller may be called back on (E.164 patterns).
    pub allowed_numbers: Vec<String>,
    /// Who is rung first when a callback's place comes up.
    pub order: CallbackOrder,
}

/// Who is rung first for a callback.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CallbackOrder {
    /// The owner, greeted, then the agent: no agent waits on a phone
    /// nobody answers.
    #[default]
    OwnerFirst,
    /// The agent, then (the agent hearing ringback) the owner: the owner
    /// who answers talks to a person at once.
    AgentFirst,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            gateway: None,
            attempts: 3,
            retry_seconds: 300,
            allowed_numbers: crate::owners::phone::DOMESTIC_NUMBERS
                .map(String::from)
                .to_vec(),
            order: CallbackOrder::OwnerFirst,
        }
    }
}

impl CallbackConfig {
    pub fn allowed_numbers(&self) -> Result<Vec<crate::owners::phone::DialPattern>, String> {
        self.allowed_numbers
            .iter()
            .map(|p| crate::owners::phone::DialPattern::parse(p))
            .collect()
    }
}

/// The emergency on-call chain.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OnCallConfig {
    /// The rota (people, duties); empty: no chain, an emergency only
    /// jumps the queue.
    pub rota: PathBuf,
    /// The gateway the calls go through (`return_visit.gateway` when left
    /// out).
    pub gateway: Option<SocketAddr>,
    /// Accepting promises the owner someone on site within this.
    pub arrival_minutes: u64,
    /// After the supervisor too declined, before the chain starts over.
    pub round_pause_seconds: u64,
    /// Once someone accepts, call the owner (the ticket's callback number)
    /// to say help is coming and within how long.
    pub tell_owner: bool,
}

impl Default for OnCallConfig {
    fn default() -> Self {
        Self {
            rota: PathBuf::new(),
            gateway: None,
            arrival_minutes: 30,
            round_pause_seconds: 60,
            tell_owner: false,
        }
    }
}

/// Prompts the on-call calls speak (with the numbers and `ticket_word`).
pub const ONCALL_PROMPTS: [&str; 9] = [
    "oncall_owner_notice",
    "oncall_owner_coming",
    "oncall_emergency",
    "building_word",
    "unit_word",
    "callback_word",
    "oncall_press",
    "oncall_accepted",
    "oncall_passed",
];

/// The call back to the owner after a work order is resolved.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReturnVisitConfig {
    /// SIP gateway (trunk) to call owners through; none: no return visits.
    pub gateway: Option<SocketAddr>,
    /// Calls per visit when nobody answers: the first and the retries.
    pub attempts: u32,
    pub retry_seconds: u64,
    /// From the resolution to the first call.
    pub delay_seconds: u64,
    pub ring_seconds: u64,
    /// Silence after a question before it is asked again (once).
    pub question_seconds: u64,
    /// Local times with no calls, "HH:MM-HH:MM" (may wrap midnight).
    pub quiet_hours: String,
    /// The centre's local time as an offset from UTC, "+HH:MM" (empty:
    /// `[site] utc_offset`).
    pub utc_offset: String,
    /// Credentials for a gateway that challenges our INVITEs (digest, RFC
    /// 3261 §22; MD5 or SHA-256 as it asks). Keep this file private.
    pub username: Option<String>,
    pub password: Option<String>,
    /// The numbers the hotline may call back (E.164 patterns: digits, X any
    /// digit, N 2-9, [..] a set); by default this country's mobile and
    /// landline numbers, nothing international.
    pub allowed_numbers: Vec<String>,
}

impl Default for ReturnVisitConfig {
    fn default() -> Self {
        Self {
            gateway: None,
            attempts: 3,
            retry_seconds: 1800,
            delay_seconds: 0,
            ring_seconds: 30,
            question_seconds: 8,
            quiet_hours: "21:00-08:00".into(),
            utc_offset: "+08:00".into(),
            username: None,
            password: None,
            allowed_numbers: crate::owners::phone::DOMESTIC_NUMBERS
                .map(String::from)
                .to_vec(),
        }
    }
}

impl ReturnVisitConfig {
    /// The policy for the ticket core; the strings were checked at load.
    /// The numbers return visits may call, parsed.
    pub fn allowed_numbers(&self) -> Result<Vec<crate::owners::phone::DialPattern>, String> {
        self.allowed_numbers
            .iter()
            .map(|p| crate::owners::phone::DialPattern::parse(p))
            .collect()
    }

    pub fn policy(&self) -> Result<crate::tickets::return_visit::VisitPolicy, String> {
        let quiet =
            crate::tickets::return_visit::QuietHours::parse(&self.quiet_hours, &self.utc_offset)?;
        Ok(crate::tickets::return_visit::VisitPolicy {
            attempts: self.attempts,
            retry_ms: self.retry_seconds as i64 * 1000,
            delay_ms: self.delay_seconds as i64 * 1000,
            // Ringing, two questions asked twice, and some slack.
            lost_after_ms: (self.ring_seconds + 4 * self.question_seconds + 600) as i64 * 1000,
            quiet,
        })
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsConfig {
    /// The event store: a SQLite file path (the embedded default) or a
    /// `postgres://user:password@host:port/database` URL.
    pub store: String,
    /// Commitments by severity, in minutes.
    pub ordinary_minutes: u32,
    pub major_minutes: u32,
    pub emergency_minutes: u32,
    /// Category -> department for automatic dispatch.
    pub dispatch: std::collections::BTreeMap<String, crate::tickets::Department>,
    /// Department -> URL that receives each dispatch as a JSON POST.
    pub webhooks: std::collections::BTreeMap<crate::tickets::Department, String>,
    /// POSTs per dispatch before it is recorded as failed.
    pub webhook_attempts: u32,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        Self {
            store: "hotline-events.db".into(),
            ordinary_minutes: 30,
            major_minutes: 360,
            emergency_minutes: 30,
            dispatch: crate::tickets::dispatch::default_rules(),
            webhooks: std::collections::BTreeMap::new(),
            webhook_attempts: 8,
        }
    }
}

impl TicketsConfig {
    pub fn sla_policy(&self) -> crate::tickets::sla::SlaPolicy {
        crate::tickets::sla::SlaPolicy {
            ordinary_ms: self.ordinary_minutes as i64 * 60_000,
            major_ms: self.major_minutes as i64 * 60_000,
            emergency_ms: self.emergency_minutes as i64 * 60_000,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Address for SIP over UDP and TCP.
    pub listen: SocketAddr,
    /// Ringing time before the hotline answers; 0: answered at once,
    /// without a 180.
    pub answer_after_ms: u64,
    /// RFC 3261 T1 (retransmission base); T2 and T4 are the RFC's values.
    pub t1_ms: u64,
    /// Carrier trunks and gateways (addresses or CIDR ranges): only their
    /// calls carry a caller ID the hotline believes.
    pub trunks: Vec<String>,
    /// SIP proxies in front of the hotline (Kamailio, `deploy/kamailio`;
    /// addresses or CIDR ranges): the source a request from them names in
    /// `X-Hotline-Source` is the one the trunks, the agents' networks, the
    /// rate limits and bans see. Believed from these addresses only.
    pub proxies: Vec<String>,
    /// A call from anywhere else: "anonymous" (served as an unknown
    /// caller) or "reject" (403).
    pub untrusted_calls: UntrustedCalls,
    /// Per source address (not a trunk), and per trunk.
    pub limits: RateSettings,
    pub trunk_limits: RateSettings,
    /// Failed authentications that ban a source, and for how long.
    pub ban_failures: u32,
    pub ban_window_seconds: u64,
    pub ban_minutes: u64,
    /// Calls at once; calls answered but not yet ACKed, in all and per source.
    pub max_calls: usize,
    pub max_unconfirmed: usize,
    pub max_unconfirmed_per_source: usize,
    /// Server transactions at once (new requests beyond it get 503).
    pub max_transactions: usize,
    /// SIP over TCP: connections in all, per source, and how long one may
    /// stay silent.
    pub tcp_max_connections: usize,
    pub tcp_max_per_source: usize,
    pub tcp_idle_seconds: u64,
    /// The `Server` header of our responses; empty: none (nothing to tell
    /// a scanner).
    pub server: String,
    /// SIP over TLS (agents' phones outside the building): the address,
    /// and the certificate chain and private key (PEM files).
    pub tls_listen: Option<SocketAddr>,
    pub tls_certificate: PathBuf,
    pub tls_private_key: PathBuf,
}

pub use crate::edge::UntrustedCalls;

impl SipConfig {
    /// The TLS server configuration from the certificate and key files;
    /// None without a TLS listener.
    pub fn tls_server_config(
        &self,
    ) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        if self.tls_listen.is_none() {
            return Ok(None);
        }
        let (cert, key) = (&self.tls_certificate, &self.tls_private_key);
        if cert.as_os_str().is_empty() || key.as_os_str().is_empty() {
            return Err("tls_listen needs tls_certificate and tls_private_key (PEM files)".into());
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| format!("tls_certificate {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "tls_certificate {}: no certificate in it",
                cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("tls_private_key {}: {e}", key.display()))?;
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("tls_certificate and tls_private_key do not go together: {e}"))?;
        Ok(Some(std::sync::Arc::new(config)))
    }
}

/// Requests per second and burst, per class of request.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateSettings {
    pub invite_per_second: f64,
    pub invite_burst: f64,
    pub register_per_second: f64,
    pub register_burst: f64,
    pub other_per_second: f64,
    pub other_burst: f64,
}

impl RateSettings {
    fn from_limits(l: crate::edge::Limits) -> Self {
        Self {
            invite_per_second: l.invite.per_second,
            invite_burst: l.invite.burst,
            register_per_second: l.register.per_second,
            register_burst: l.register.burst,
            other_per_second: l.other.per_second,
            other_burst: l.other.burst,
        }
    }

    fn limits(&self) -> crate::edge::Limits {
        use crate::edge::Rate;
        crate::edge::Limits {
            invite: Rate {
                per_second: self.invite_per_second,
                burst: self.invite_burst,
            },
            register: Rate {
                per_second: self.register_per_second,
                burst: self.register_burst,
            },
            other: Rate {
                per_second: self.other_per_second,
                burst: self.other_burst,
            },
        }
    }

    fn check(&self) -> Result<(), String> {
        let l = self.limits();
        for (name, r) in [
            ("invite", l.invite),
            ("register", l.register),
            ("other", l.other),
        ] {
            let sane = r.per_second > 0.0
                && r.per_second.is_finite()
                && r.burst >= 1.0
                && r.burst.is_finite();
            if !sane {
                return Err(format!(
                    "{name}: per_second must be above 0 and burst at least 1"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Address RTP binds to and SDP announces.
    pub ip: IpAddr,
    /// First and last RTP port (even ports are used, one per call).
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// A caller who sends no RTP this long (and is not holding) is hung up.
    pub rtp_timeout_seconds: u64,
    /// Threads sending and receiving RTP (see runtime::workers); 0: one per core.
    pub workers: usize,
    /// Their real-time priority (SCHED_FIFO, 1-99; 0: ordinary threads).
    pub realtime_priority: u8,
    /// New calls are refused (503) while the busiest worker spent more
    /// than this percent of the last 100 ms working (100: never); the
    /// switch lowers it for a while when it reads its datagrams late.
    pub max_busy_percent: u8,
}

/// At most this many media workers: more threads than cores only add
/// switches between them.
pub const MAX_MEDIA_WORKERS: usize = 64;

impl MediaConfig {
    /// The media workers to start: as configured, else one per core.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(MAX_MEDIA_WORKERS)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PromptsConfig {
    /// Folder with `<name>_<language>.wav` files.
    pub dir: PathBuf,
    /// Language of the prompts played (`en` or `zh`).
    pub language: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CallConfig {
    pub inter_digit_timeout_ms: u64,
    pub max_digits: usize,
    /// No call lasts longer than this.
    pub max_seconds: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5060".parse().expect("literal"),
            answer_after_ms: 200,
            t1_ms: 500,
            trunks: Vec::new(),
            proxies: Vec::new(),
            untrusted_calls: UntrustedCalls::Anonymous,
            limits: RateSettings::from_limits(crate::edge::GuardConfig::default().limits),
            trunk_limits: RateSettings::from_limits(
                crate::edge::GuardConfig::default().trunk_limits,
            ),
            ban_failures: 10,
            ban_window_seconds: 60,
            ban_minutes: 15,
            max_calls: crate::edge::Admission::default().max_calls,
            max_unconfirmed: crate::edge::Admission::default().max_unconfirmed,
            max_unconfirmed_per_source: crate::edge::Admission::default()
                .max_unconfirmed_per_source,
            max_transactions: crate::edge::Admission::default().max_transactions,
            tcp_max_connections: 1000,
            tcp_max_per_source: 20,
            tcp_idle_seconds: 120,
            server: String::new(),
            tls_listen: None,
            tls_certificate: PathBuf::new(),
            tls_private_key: PathBuf::new(),
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            ip: "127.0.0.1".parse().expect("literal"),
            rtp_port_min: 20000,
            rtp_port_max: 29999,
            rtp_timeout_seconds: 60,
            workers: 0,
            realtime_priority: 10,
            max_busy_percent: crate::edge::Admission::default().max_media_busy,
        }
    }
}

impl Default for PromptsConfig {
    fn default() -> Self {
        Self {
            dir: default_prompt_dir(),
            language: "en".into(),
        }
    }
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            inter_digit_timeout_ms: 5000,
            max_digits: 32,
            max_seconds: 2 * 3600,
        }
    }
}

/// `prompts/` of the working directory, else the one in the source tree the
/// binary was built from (so `cargo run` works from anywhere in it).
fn default_prompt_dir() -> PathBuf {
    let local = PathBuf::from("prompts");
    if local.is_dir() {
        local
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")
    }
}

/// Prompt names the current call flow plays.
pub const FLOW_PROMPTS: [&str; 15] = [
    "welcome",
    "goodbye",
    "return_visit",
    "survey",
    "agent_logged_in",
    "agent_logged_out",
    "agent_paused",
    "agent_ready",
    "position_is",
    "in_line",
    "wait_is",
    "minutes_word",
    "ringback",
    "hold",
    "no_agents",
];

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if cfg.return_visit.utc_offset.is_empty() {
            cfg.return_visit.utc_offset = cfg.site.utc_offset.clone();
        }
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        if let Err(e) = crate::site::LocalTime::parse(&self.site.utc_offset) {
            return Err(invalid("site.utc_offset", e));
        }
        let sl = &self.service_level;
        if !(0.0..=1.0).contains(&sl.target) || !(0.0..=1.0).contains(&sl.abandon_target) {
            return Err(invalid(
                "service_level.target",
                "target and abandon_target are shares between 0 and 1".into(),
            ));
        }
        if sl.asa_target_seconds.is_nan() || sl.asa_target_seconds < 0.0 {
            return Err(invalid(
                "service_level.asa_target_seconds",
                "must be 0 or more".into(),
            ));
        }
        let m = &self.media;
        if m.rtp_port_min >= m.rtp_port_max || m.rtp_port_min < 1024 {
            return Err(invalid(
                "media.rtp_port_min",
                format!(
                    "RTP range {}..{} must be increasing and above 1023",
                    m.rtp_port_min, m.rtp_port_max
                ),
            ));
        }
        if m.ip.is_unspecified() {
            return Err(invalid(
                "media.ip",
                "must be an address callers can send RTP to, not 0.0.0.0".into(),
            ));
        }
        if self.sip.t1_ms == 0 {
            return Err(invalid("sip.t1_ms", "must be above 0".into()));
        }
        if let Err(e) = crate::edge::Networks::parse(&self.sip.trunks) {
            return Err(invalid("sip.trunks", e.to_string()));
        }
        if let Err(e) = crate::edge::Networks::parse(&self.sip.proxies) {
            return Err(invalid("sip.proxies", e.to_string()));
        }
        if let Err(e) = crate::edge::Networks::parse(&self.acd.agent_networks) {
            return Err(invalid("acd.agent_networks", e.to_string()));
        }
        if let Err(e) = self.sip.limits.check() {
            return Err(invalid("sip.limits", e));
        }
        if let Err(e) = self.sip.trunk_limits.check() {
            return Err(invalid("sip.trunk_limits", e));
        }
        if self.sip.ban_window_seconds == 0 || self.sip.ban_minutes == 0 {
            return Err(invalid(
                "sip.ban_window_seconds",
                "ban_window_seconds and ban_minutes must be above 0 (ban_failures = 0 turns bans off)".into(),
            ));
        }
        let s = &self.sip;
        if [
            s.max_calls,
            s.max_unconfirmed,
            s.max_unconfirmed_per_source,
            s.max_transactions,
            s.tcp_max_connections,
            s.tcp_max_per_source,
        ]
        .contains(&0)
            || s.tcp_idle_seconds == 0
        {
            return Err(invalid(
                "sip.max_calls",
                "max_calls, max_unconfirmed(_per_source), max_transactions, tcp_max_connections, tcp_max_per_source and tcp_idle_seconds must be above 0".into(),
            ));
        }
        if let Err(e) = self.sip.tls_server_config() {
            return Err(invalid("sip.tls_listen", e));
        }
        if s.server.chars().any(|c| c.is_control()) {
            return Err(invalid("sip.server", "must be one line of text".into()));
        }
        if self.media.rtp_timeout_seconds == 0 {
            return Err(invalid(
                "media.rtp_timeout_seconds",
                "must be above 0".into(),
            ));
        }
        if self.media.realtime_priority > 99 {
            return Err(invalid(
                "media.realtime_priority",
                "1 to 99, or 0 for none".into(),
            ));
        }
        if !(1..=100).contains(&self.media.max_busy_percent) {
            return Err(invalid(
                "media.max_busy_percent",
                "1 to 100 (100: never refuse calls for it)".into(),
            ));
        }
        if self.media.workers > MAX_MEDIA_WORKERS {
            return Err(invalid(
                "media.workers",
                format!("at most {MAX_MEDIA_WORKERS} (0: one per core)"),
            ));
        }
        if self.acd.nonce_seconds == 0 {
            return Err(invalid("acd.nonce_seconds", "must be above 0".into()));
        }
        if self.call.max_seconds == 0 {
            return Err(invalid("call.max_seconds", "must be above 0".into()));
        }
        if self.call.max_digits == 0 {
            return Err(invalid("call.max_digits", "must be above 0".into()));
        }
        let t = &self.tickets;
        if t.ordinary_minutes == 0 || t.major_minutes == 0 || t.emergency_minutes == 0 {
            return Err(invalid(
                "tickets.ordinary_minutes",
                "SLA commitments must be above 0 minutes".into(),
            ));
        }
        if let Err(e) = crate::tickets::store::Location::parse(&t.store) {
            return Err(invalid("tickets.store", e.to_string()));
        }
        let c = &self.cluster;
        if !c.node.is_empty() {
            let name_ok = c.node.len() <= 32
                && c.node
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                return Err(invalid(
                    "cluster.node",
                    format!("{:?}: up to 32 letters, digits, - or _", c.node),
                ));
            }
            if !matches!(
                crate::tickets::store::Location::parse(&t.store),
                Ok(crate::tickets::store::Location::Postgres(_))
            ) {
                return Err(invalid(
                    "cluster.node",
                    "a cluster's nodes share one PostgreSQL store: set tickets.store to a postgres:// URL".into(),
                ));
            }
            if !(2..=60).contains(&c.lease_seconds) {
                return Err(invalid(
                    "cluster.lease_seconds",
                    format!("{}: from 2 to 60 seconds", c.lease_seconds),
                ));
            }
        }
        for (department, url) in &t.webhooks {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "tickets.webhooks",
                    format!(
                        "{}: {url:?} is not an http:// or https:// URL",
                        department.as_str()
                    ),
                ));
            }
        }
        if t.webhook_attempts == 0 {
            return Err(invalid(
                "tickets.webhook_attempts",
                "must be above 0".into(),
            ));
        }
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(&self.owners.country_code) {
            return Err(invalid(
                "owners.country_code",
                format!("{:?} is not 1 to 4 digits", self.owners.country_code),
            ));
        }
        if let Some(area) = &self.owners.area_code
            && !digits(area)
        {
            return Err(invalid(
                "owners.area_code",
                format!("{area:?} is not 1 to 4 digits"),
            ));
        }
        let r = &self.return_visit;
        if let Err(e) = r.policy() {
            return Err(invalid("return_visit.quiet_hours", e));
        }
        if let Err(e) = r.allowed_numbers() {
            return Err(invalid("return_visit.allowed_numbers", e));
        }
        if let Err(e) = self.callback.allowed_numbers() {
            return Err(invalid("callback.allowed_numbers", e));
        }
        if self.callback.attempts == 0 || self.callback.retry_seconds == 0 {
            return Err(invalid(
                "callback.attempts",
                "attempts and retry_seconds must be above 0".into(),
            ));
        }
        let t = &self.transfer;
        if let Some(bad) = t
            .allowed_numbers
            .iter()
            .find_map(|p| crate::owners::phone::DialPattern::parse(p).err())
        {
            return Err(invalid("transfer.allowed_numbers", bad));
        }
        if !t.allowed_numbers.is_empty() && t.gateway.or(r.gateway).is_none() {
            return Err(invalid(
                "transfer.gateway",
                "outside numbers need a gateway (here or return_visit.gateway)".into(),
            ));
        }
        let o = &self.oncall;
        if !o.rota.as_os_str().is_empty() && o.gateway.or(r.gateway).is_none() {
            return Err(invalid(
                "oncall.gateway",
                "the on-call chain calls through a gateway (here or return_visit.gateway)".into(),
            ));
        }
        if o.arrival_minutes == 0 || o.round_pause_seconds == 0 {
            return Err(invalid(
                "oncall.arrival_minutes",
                "arrival_minutes and round_pause_seconds must be above 0".into(),
            ));
        }
        if r.attempts == 0 {
            return Err(invalid("return_visit.attempts", "must be above 0".into()));
        }
        if r.ring_seconds == 0 || r.question_seconds == 0 {
            return Err(invalid(
                "return_visit.ring_seconds",
                "ring_seconds and question_seconds must be above 0".into(),
            ));
        }
        if !["en", "zh"].contains(&self.prompts.language.as_str()) {
            return Err(invalid(
                "prompts.language",
                format!("{:?} is not one of \"en\", \"zh\"", self.prompts.language),
            ));
        }
        self.acd
            .validate()
            .map_err(|(key, message)| invalid(key, message))?;
        if self.return_visit.username.is_some() != self.return_visit.password.is_some() {
            return Err(invalid(
                "return_visit.username",
                "a gateway username needs its password, and a password its username".into(),
            ));
        }
        let h = &self.http;
        if [
            h.max_connections,
            h.max_connections_per_source,
            h.max_event_streams,
            h.max_event_streams_per_user,
        ]
        .contains(&0)
        {
            return Err(invalid(
                "http.max_connections",
                "max_connections(_per_source) and max_event_streams(_per_user) must be above 0"
                    .into(),
            ));
        }
        if self.service_level.threshold_seconds == 0 {
            return Err(invalid(
                "service_level.threshold_seconds",
                "must be at least 1".into(),
            ));
        }
        // A process that starts reads the log's last day to run the
        // figures on from the last one's; longer periods are reports.
        if !(1..=24 * 60).contains(&self.service_level.window_minutes) {
            return Err(invalid(
                "service_level.window_minutes",
                "must be 1 to 1440 (a day; longer periods are reports)".into(),
            ));
        }
        Ok(())
    }

    /// Loads every prompt the call flow needs, in both languages.
    pub fn load_prompts(&self, path: &Path) -> Result<PromptSet, ConfigError> {
        let notice = (!self.recording.notice.is_empty()).then_some(self.recording.notice.as_str());
        let oncall = match self.oncall.rota.as_os_str().is_empty() {
            true => &[][..],
            false => &ONCALL_PROMPTS[..],
        };
        let callback = match self.callback.gateway.or(self.return_visit.gateway) {
            Some(_) => &crate::ivr::CALLBACK_PROMPTS[..],
            None => &[][..],
        };
        let names: Vec<String> = FLOW_PROMPTS
            .iter()
            .copied()
            .chain(notice)
            .chain(oncall.iter().copied())
            .chain(callback.iter().copied())
            .flat_map(|p| ["en", "zh"].map(|l| format!("{p}_{l}")))
            .collect();
        PromptSet::load_dir(&self.prompts.dir, &names).map_err(|source| ConfigError::Prompt {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Loads and checks the on-call rota; None without one.
    pub fn load_rota(
        &self,
        path: &Path,
    ) -> Result<Option<crate::tickets::rota::Rota>, ConfigError> {
        if self.oncall.rota.as_os_str().is_empty() {
            return Ok(None);
        }
        crate::tickets::rota::Rota::load(&self.oncall.rota)
            .map(Some)
            .map_err(|source| ConfigError::Rota {
                path: path.to_path_buf(),
                source,
            })
    }

    /// This node's cluster settings; none: not clustered.
    pub fn cluster_settings(&self) -> Option<crate::cluster::Settings> {
        if self.cluster.node.is_empty() {
            return None;
        }
        let lease = Duration::from_secs(self.cluster.lease_seconds);
        Some(crate::cluster::Settings {
            node: self.cluster.node.clone(),
            url: self.tickets.store.clone(),
            lease,
            every: crate::cluster::pg::renew_every(lease),
        })
    }

    /// What the callback core runs with.
    pub fn callback_policy(&self) -> crate::tickets::callback::CallbackPolicy {
        crate::tickets::callback::CallbackPolicy {
            attempts: self.callback.attempts,
            retry_ms: self.callback.retry_seconds as i64 * 1000,
            quiet: self.return_visit.policy().unwrap_or_default().quiet,
            ..Default::default()
        }
    }

    /// Each queue's callback offer threshold, in the queue plan's order.
    pub fn callback_after(&self) -> Vec<std::time::Duration> {
        self.acd
            .queues
            .values()
            .map(|q| std::time::Duration::from_secs(q.callback_after_seconds))
            .collect()
    }

    /// What the on-call chain core runs with.
    pub fn chain_policy(&self) -> crate::tickets::oncall::ChainPolicy {
        crate::tickets::oncall::ChainPolicy {
            round_pause_ms: self.oncall.round_pause_seconds as i64 * 1000,
            arrival_ms: self.oncall.arrival_minutes as i64 * 60_000,
            tell_owner: self.oncall.tell_owner,
            ..Default::default()
        }
    }

    /// Loads and checks the agents file; None without one.
    pub fn load_agents(
        &self,
        path: &Path,
    ) -> Result<Option<std::sync::Arc<crate::acd::agents::AgentsFile>>, ConfigError> {
        if self.acd.agents.as_os_str().is_empty() {
            return Ok(None);
        }
        crate::acd::agents::AgentsFile::load(&self.acd.agents)
            .map(|a| Some(std::sync::Arc::new(a)))
            .map_err(|source| ConfigError::Agents {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Loads and checks the API's users (agent users must be agents of
    /// the agents file); None without a users file.
    pub fn load_users(
        &self,
        path: &Path,
        agents: Option<&crate::acd::agents::AgentsFile>,
    ) -> Result<Option<crate::http::users::Users>, ConfigError> {
        if self.http.users.as_os_str().is_empty() {
            return Ok(None);
        }
        // Agents' extensions, and supervisors' phones.
        let ids: Vec<String> = agents
            .map(|a| {
                a.agents
                    .iter()
                    .chain(&a.supervisors)
                    .map(|x| x.id.clone())
                    .collect()
            })
            .unwrap_or_default();
        crate::http::users::Users::load(&self.http.users, Some(&ids))
            .map(Some)
            .map_err(|source| ConfigError::Users {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Loads and checks the menu against the prompts; None without a menu.
    pub fn load_menu(
        &self,
        path: &Path,
        prompts: &PromptSet,
    ) -> Result<Option<std::sync::Arc<crate::ivr::graph::Graph>>, ConfigError> {
        if self.ivr.menu.as_os_str().is_empty() {
            return Ok(None);
        }
        let graph = crate::ivr::graph::Graph::load(&self.ivr.menu, |name| prompts.contains(name))
            .map_err(|source| ConfigError::Menu {
            path: path.to_path_buf(),
            source,
        })?;
        let graph = if self.ivr.hours.as_os_str().is_empty() {
            graph
        } else {
            let hours = crate::site::hours::Calendars::load(&self.ivr.hours).map_err(|source| {
                ConfigError::Hours {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
            graph
                .with_hours(hours, &self.ivr.hours)
                .map_err(|source| ConfigError::Menu {
                    path: path.to_path_buf(),
                    source,
                })?
        };
        // Every queue the menu hands callers to must exist.
        for (node, queue) in graph.queues() {
            if !self.acd.queues.contains_key(queue) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: "acd.queues",
                    message: format!(
                        "{}: node {node} hands callers to queue {queue:?}, which is not configured (queues: {})",
                        self.ivr.menu.display(),
                        self.acd
                            .queues
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        Ok(Some(std::sync::Arc::new(graph)))
    }

    /// The queues in router order and their VIP queues.
    pub fn queue_plan(&self) -> crate::acd::QueuePlan {
        crate::acd::QueuePlan::new(
            self.acd
                .queues
                .iter()
                .map(|(n, q)| (n.as_str(), q.vip_queue.as_deref())),
        )
    }

    /// What reports are computed with.
    pub fn report_settings(&self) -> crate::report::Settings {
        crate::report::Settings {
            plan: self.queue_plan(),
            threshold: Duration::from_secs(self.service_level.threshold_seconds),
            short_abandons: self.service_level.short_abandons,
            local: self.site.local_time(),
        }
    }

    pub fn switch_config(
        &self,
        clock: crate::clock::WallClock,
        seed: u64,
        ivr: Option<std::sync::Arc<crate::ivr::graph::Graph>>,
        agents: Option<std::sync::Arc<crate::acd::agents::AgentsFile>>,
    ) -> SwitchConfig {
        let t1 = Duration::from_millis(self.sip.t1_ms);
        SwitchConfig {
            clock,
            sip_addr: self.sip.listen,
            tls_addr: self.sip.tls_listen,
            media_ip: self.media.ip,
            rtp_ports: (self.media.rtp_port_min, self.media.rtp_port_max),
            answer_after: Duration::from_millis(self.sip.answer_after_ms),
            inter_digit_timeout: Duration::from_millis(self.call.inter_digit_timeout_ms),
            max_digits: self.call.max_digits,
            language: self.prompts.language.clone(),
            ring_timeout: Duration::from_secs(self.return_visit.ring_seconds),
            question_timeout: Duration::from_secs(self.return_visit.question_seconds),
            timers: TimerValues {
                t1,
                ..TimerValues::default()
            },
            seed,
            ivr,
            agents,
            queues: None,
            recording: self.recording.policy(),
            transfer_queues: self.acd.transfer_queues().into_iter().collect(),
            transfer_out: self
                .transfer
                .gateway
                .or(self.return_visit.gateway)
                .filter(|_| !self.transfer.allowed_numbers.is_empty())
                .map(|gateway| crate::call::TransferOut {
                    gateway,
                    allowed: self
                        .transfer
                        .allowed_numbers
                        .iter()
                        .filter_map(|p| crate::owners::phone::DialPattern::parse(p).ok())
                        .collect(),
                    plan: self.owners.number_plan(),
                }),
            callback: self
                .callback
                .gateway
                .or(self.return_visit.gateway)
                .filter(|_| {
                    self.acd
                        .queues
                        .values()
                        .any(|q| q.callback_after_seconds > 0)
                })
                .map(|gateway| crate::call::CallbackPolicy {
                    gateway,
                    allowed: self.callback.allowed_numbers().unwrap_or_default(),
                    plan: self.owners.number_plan(),
                    agent_first: self.callback.order == CallbackOrder::AgentFirst,
                }),
            edge: crate::edge::EdgeConfig {
                guard: crate::edge::GuardConfig {
                    trunks: crate::edge::Networks::parse(&self.sip.trunks).unwrap_or_default(),
                    limits: self.sip.limits.limits(),
                    trunk_limits: self.sip.trunk_limits.limits(),
                    ban_failures: self.sip.ban_failures,
                    ban_window: Duration::from_secs(self.sip.ban_window_seconds),
                    ban_duration: Duration::from_secs(self.sip.ban_minutes * 60),
                    ..crate::edge::GuardConfig::default()
                },
                proxies: crate::edge::Networks::parse(&self.sip.proxies).unwrap_or_default(),
                agent_networks: crate::edge::Networks::parse(&self.acd.agent_networks)
                    .unwrap_or_default(),
                untrusted_calls: self.sip.untrusted_calls,
                admission: crate::edge::Admission {
                    max_calls: self.sip.max_calls,
                    max_unconfirmed: self.sip.max_unconfirmed,
                    max_unconfirmed_per_source: self.sip.max_unconfirmed_per_source,
                    max_transactions: self.sip.max_transactions,
                    max_media_busy: self.media.max_busy_percent,
                },
                nonce_lifetime: Duration::from_secs(self.acd.nonce_seconds),
                server: self.sip.server.clone(),
            },
            rtp_timeout: Duration::from_secs(self.media.rtp_timeout_seconds),
            max_call: Duration::from_secs(self.call.max_seconds),
            gateway_auth: match (&self.return_visit.username, &self.return_visit.password) {
                (Some(u), Some(p)) => Some((u.clone(), p.clone())),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("[sip]\nlisten = \"127.0.0.1:5070\"\nlsiten = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("lsiten") && text.contains("test.toml"),
            "{text}"
        );
    }

    #[test]
    fn bad_address_is_named() {
        let err = parse("[sip]\nlisten = \"127.0.0.1\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen") || err.contains("line 2"), "{err}");
    }

    #[test]
    fn bad_edge_settings_are_named() {
        for (text, key) in [
            ("[sip]\ntrunks = [\"10.0.0.0/33\"]\n", "sip.trunks"),
            ("[sip]\ntrunks = [\"carrier.example\"]\n", "sip.trunks"),
            (
                "[acd]\nagent_networks = [\"192.168.1\"]\n",
                "acd.agent_networks",
            ),
            (
                "[sip.limits]\ninvite_per_second = 0.0\ninvite_burst = 20.0\nregister_per_second = 5.0\nregister_burst = 20.0\nother_per_second = 50.0\nother_burst = 200.0\n",
                "sip.limits",
            ),
            ("[sip]\nmax_calls = 0\n", "sip.max_calls"),
            ("[sip]\nban_minutes = 0\n", "sip.ban_window_seconds"),
            ("[sip]\ntls_listen = \"127.0.0.1:5061\"\n", "sip.tls_listen"),
            (
                "[sip]\ntls_listen = \"127.0.0.1:5061\"\ntls_certificate = \"/nonexistent.pem\"\ntls_private_key = \"/nonexistent.key\"\n",
                "sip.tls_listen",
            ),
            (
                "[return_visit]\nallowed_numbers = [\"+86*\"]\n",
                "return_visit.allowed_numbers",
            ),
            (
                "[media]\nrtp_timeout_seconds = 0\n",
                "media.rtp_timeout_seconds",
            ),
            ("[media]\nworkers = 1000\n", "media.workers"),
            (
                "[media]\nrealtime_priority = 100\n",
                "media.realtime_priority",
            ),
            ("[media]\nmax_busy_percent = 0\n", "media.max_busy_percent"),
            (
                "[media]\nmax_busy_percent = 101\n",
                "media.max_busy_percent",
            ),
            ("[http]\nmax_event_streams = 0\n", "http.max_connections"),
            ("[sip]\nuntrusted_calls = \"maybe\"\n", "untrusted_calls"),
            (
                "[service_level]\nwindow_minutes = 1441\n",
                "service_level.window_minutes",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn bad_range_and_language_are_named() {
        let err = parse("[media]\nrtp_port_min = 30000\nrtp_port_max = 20000\n").unwrap_err();
        assert!(err.to_string().contains("media.rtp_port_min"));
        let err = parse("[prompts]\nlanguage = \"fr\"\n").unwrap_err();
        assert!(err.to_string().contains("prompts.language"));
    }

    #[test]
    fn store_must_be_a_path_or_a_postgres_url() {
        assert!(parse("[tickets]\nstore = \"postgres://h:pw@127.0.0.1/hotline\"\n").is_ok());
        let err = parse("[tickets]\nstore = \"redis://x\"\n").unwrap_err();
        assert!(err.to_string().contains("tickets.store"), "{err}");
        let err = parse("[tickets]\nstore = \"postgres://h:pw@x:port/db\"\n").unwrap_err();
        assert!(err.to_string().contains("tickets.store"), "{err}");
    }

    #[test]
    fn webhook_must_be_an_http_url_and_department_known() {
        let err = parse("[tickets.webhooks]\nengineering = \"ftp://x\"\n").unwrap_err();
        assert!(err.to_string().contains("tickets.webhooks"), "{err}");
        let err = parse("[tickets.webhooks]\nplumbing = \"http://x\"\n").unwrap_err();
        assert!(err.to_string().contains("plumbing"), "{err}");
    }

    #[test]
    fn queues_replace_the_defaults_and_bad_ones_are_named() {
        let cfg = parse(
            "[acd.queues.repair]\nneighbours = [\"general\"]\n[acd.queues.general]\nmax_wait_seconds = 60\n",
        )
        .unwrap();
        assert_eq!(
            cfg.acd.queues.keys().collect::<Vec<_>>(),
            ["general", "repair"]
        );
        assert_eq!(cfg.acd.skill_of("repair"), "repair");
        assert_eq!(cfg.acd.queues["general"].max_wait_seconds, 60);
        for (text, says) in [
            (
                "[acd.queues.x]\ngood_level = 11\n",
                "queue \"x\": levels run from 1 to 10",
            ),
            (
                "[acd.queues.x]\ngood_level = 3\nmin_level = 5\n",
                "levels must not rise",
            ),
            (
                "[acd.queues.x]\nvip_queue = \"gold\"\n",
                "vip_queue \"gold\" is not a queue",
            ),
            ("[acd.queues.x]\nmax_wait_seconds = 0\n", "max_wait_seconds"),
            ("[acd.queues.x]\nwiden_after = 3\n", "widen_after"),
            ("[acd]\noffer_seconds = 0\n", "acd.offer_seconds"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn a_menu_naming_a_queue_that_is_not_configured_is_refused() {
        let cfg = parse(&format!(
            "[ivr]\nmenu = \"{}/config/ivr.toml\"\n[acd.queues.general]\n",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mut cfg = cfg;
        cfg.prompts.dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let prompts = PromptSet::load_dir(&cfg.prompts.dir, &[]).unwrap();
        let err = cfg
            .load_menu(Path::new("test.toml"), &prompts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("acd.queues") && err.contains("queue \"complaint\""),
            "{err}"
        );
    }

    #[test]
    fn missing_prompt_dir_is_an_error_naming_the_file() {
        let cfg = parse("[prompts]\ndir = \"/nonexistent\"\n").unwrap();
        let err = cfg
            .load_prompts(Path::new("test.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent") && err.contains("welcome_en"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    /// `config/demo.toml` (agents and API users on) loads with its files.
    #[test]
    fn demo_config_loads_with_its_agents_and_users() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = root.join("config/demo.toml");
        let mut cfg = Config::load(&path).unwrap();
        cfg.acd.agents = root.join(&cfg.acd.agents);
        cfg.http.users = root.join(&cfg.http.users);
        let agents = cfg.load_agents(&path).unwrap().expect("agents");
        let users = cfg
            .load_users(&path, Some(&agents))
            .unwrap()
            .expect("users");
        assert_eq!(agents.agents.len(), 4);
        assert!(users.authenticate("demo-2004").is_some());
        assert!(users.authenticate("demo-supervisor").is_some());
    }

    /// `config/hotline.toml` documents every key with its default value.
    #[test]
    fn sample_config_is_valid_and_equals_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hotline.toml");
        let mut cfg = Config::load(&path).unwrap();
        cfg.prompts.dir = Config::default().prompts.dir;
        assert_eq!(cfg, Config::default());
    }
}
