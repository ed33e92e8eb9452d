//! REGISTER from agents' softphones: digest authentication against the
//! agents file, bindings with expiry (timers as data), unregistration.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::{AgentId, Output, Switch};
use crate::sip::digest::{self, Check, Verdict};
use crate::sip::message::{self, Request};
use crate::sip::transaction::{Peer, TxId};

/// Shortest and longest registration the hotline grants.
const MIN_EXPIRES: u64 = 60;
const MAX_EXPIRES: u64 = 3600;

/// What an agent's phone can dial to change the agent's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureCode {
    /// `*1`
    LogIn,
    /// `*2`
    LogOut,
    /// `*3`
    Pause,
    /// `*4`
    Ready,
}

impl FeatureCode {
    pub fn parse(dialled: &str) -> Option<Self> {
        match dialled {
            "*1" => Some(FeatureCode::LogIn),
            "*2" => Some(FeatureCode::LogOut),
            "*3" => Some(FeatureCode::Pause),
            "*4" => Some(FeatureCode::Ready),
            _ => None,
        }
    }

    /// The confirmation the agent hears.
    fn prompt(self) -> &'static str {
        match self {
            FeatureCode::LogIn => "agent_logged_in",
            FeatureCode::LogOut => "agent_logged_out",
            FeatureCode::Pause => "agent_paused",
            FeatureCode::Ready => "agent_ready",
        }
    }
}

/// An agent's softphone, reachable at `contact` (sent to `peer`, where its
/// REGISTER came from, for NAT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub contact: String,
    pub peer: Peer,
    pub expires_at: Instant,
    pub(super) generation: u32,
}

impl Switch {
    /// Milliseconds since the switch first needed a clock for nonces.
    fn nonce_clock(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(epoch).as_millis() as u64
    }

    pub(super) fn handle_register(
        &mut self,
        now: Instant,
        tx: TxId,
        peer: Peer,
        request: &Request,
    ) {
        let core = request.core.clone();
        if self.cfg.agents.is_none() {
            return self.respond_with(
                now,
                tx,
                &core,
                405,
                "Method Not Allowed",
                None,
                &[("Allow", super::ALLOW)],
                b"",
            );
        }
        let aor = crate::owners::phone::uri_user(&core.to)
            .unwrap_or_default()
            .to_string();
        let Some(user) = self.authenticate(now, tx, peer, request, None) else {
            return; // answered: 401 or 403
        };
        if user != aor {
            // Someone's credentials used for another agent's binding.
            let source = request.origin.unwrap_or(peer.addr).ip();
            self.auth_failed(now, source, &user, "REGISTER", "other_agent");
            return self.respond(now, tx, &core, 403, "Forbidden");
        }
        // What the phone asks for: the Contact's expires, else Expires, else an hour.
        let contact = request.header("Contact").map(str::to_string);
        let header_expires = request
            .header("Expires")
            .and_then(|e| e.trim().parse::<u64>().ok());
        let Some(contact) = contact else {
            // A query: the binding as it stands.
            let current = self.bindings.get(&aor).map(|b| {
                let left = b.expires_at.saturating_duration_since(now).as_secs();
                format!("<{}>;expires={left}", b.contact)
            });
            let extra: Vec<(&str, &str)> = current
                .as_deref()
                .map(|c| vec![("Contact", c)])
                .unwrap_or_default();
            return self.respond_with(now, tx, &core, 200, "OK", None, &extra, b"");
        };
        let param_expires = contact
            .split(';')
            .skip(1)
            .find_map(|p| p.trim().strip_prefix("expires=")?.parse::<u64>().ok());
        let asked = param_expires.or(header_expires).unwrap_or(MAX_EXPIRES);
        if asked == 0 || contact.trim() == "*" {
            // Said even without a binding here (the hotline restarted since
            // the phone registered): the agent's state outlives the binding,
            // and a phone that leaves must take the agent out of the queues.
            let had = self.bindings.remove(&aor).is_some();
            info!(agent = %aor, had_binding = had, "agent unregistered");
            if let Ok(agent) = aor.parse() {
                self.out.push_back(Output::AgentUnregistered {
                    agent,
                    expired: false,
                });
            }
            return self.respond(now, tx, &core, 200, "OK");
        }
        let expires = asked.clamp(MIN_EXPIRES, MAX_EXPIRES);
        let uri = message::addr_uri(&contact).to_string();
        self.binding_generation += 1;
        let generation = self.binding_generation;
        let expires_at = now + Duration::from_secs(expires);
        let fresh = self
            .bindings
            .insert(
                aor.clone(),
                Binding {
                    contact: uri.clone(),
                    peer,
                    expires_at,
                    generation,
                },
            )
            .is_none();
        self.binding_timers
            .push(Reverse((expires_at, aor.clone(), generation)));
        if fresh {
            info!(agent = %aor, contact = %uri, from = %peer.addr, expires, "agent registered");
        }
        // Agents' ids are extensions (checked when the file is loaded).
        if let Ok(agent) = aor.parse() {
            self.out.push_back(Output::AgentRegistered {
                agent,
                contact: uri.clone(),
                peer,
                expires: Duration::from_secs(expires),
            });
        }
        let reply = format!("<{uri}>;expires={expires}");
        self.respond_with(now, tx, &core, 200, "OK", None, &[("Contact", &reply)], b"");
    }

    /// A call from an agent's phone to a feature code (`*1` log in, `*2`
    /// log out, `*3` pause, `*4` ready) must carry the agent's digest
    /// credentials: challenged with 401 first, 403 when wrong, 404 for an
    /// unknown code. On success the code goes out as [`Output::AgentFeature`]
    /// and the prompt to play is returned.
    pub(super) fn authorize_feature(
        &mut self,
        now: Instant,
        tx: TxId,
        peer: Peer,
        request: &Request,
        code: &str,
    ) -> Option<&'static str> {
        let core = request.core.clone();
        self.cfg.agents.as_ref()?;
        let tag = self.tag_for(0);
        let agent = self.authenticate(now, tx, peer, request, Some(&tag))?;
        let Some(feature) = FeatureCode::parse(code) else {
            self.respond_with(now, tx, &core, 404, "Not Found", Some(&tag), &[], b"");
            return None;
        };
        info!(%agent, %code, "agent feature code");
        if let Ok(agent) = agent.parse() {
            self.out.push_back(Output::AgentFeature {
                agent,
                code: feature,
            });
        }
        Some(feature.prompt())
    }

    /// Digest authentication of an agent's request (REGISTER, or INVITE to
    /// a feature code), the way RFC 3261 §22 and RFC 7616 mean it: only from
    /// the agents' networks (elsewhere: 403, no challenge), only the
    /// algorithms the agents file offers, `qop=auth`, the digest `uri` equal
    /// to the Request-URI, nonces bound to the source and short-lived, each
    /// `nc` once. An unknown user is challenged and refused exactly like a
    /// known one. Returns the agent, or None when the request was answered
    /// (401, 403); failures count towards the source's ban.
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        tx: TxId,
        peer: Peer,
        request: &Request,
        to_tag: Option<&str>,
    ) -> Option<String> {
        let agents = self.cfg.agents.clone()?;
        let core = &request.core;
        let method = core.cseq_method.as_str();
        // Behind a trusted proxy, the phone's own address.
        let source = request.origin.unwrap_or(peer.addr);
        let ip = source.ip();
        if !self.cfg.edge.agent_networks.contains(ip) {
            warn!(from = %source, %method, "agent request from outside the agents' networks: 403");
            self.respond_with(now, tx, core, 403, "Forbidden", to_tag, &[], b"");
            return None;
        }
        let clock = self.nonce_clock(now);
        let allowed = agents.algorithms();
        let creds = request
            .header("Authorization")
            .and_then(digest::parse_authorization);
        let verdict = creds.as_ref().map(|c| {
            let request_uri = request.uri.clone();
            let check = Check {
                now_ms: clock,
                source: ip,
                method,
                request_uri: &request_uri,
                allowed: &allowed,
            };
            let realm_ok = c.realm == agents.realm;
            self.nonces.verify(check, c, |alg| {
                realm_ok.then(|| agents.ha1(&c.username, alg)).flatten()
            })
        });
        match (verdict, creds) {
            (Some(Verdict::Ok), Some(c)) => {
                let tls_only = agents.get(&c.username).is_some_and(|a| a.require_tls);
                if tls_only && peer.transport != crate::sip::transaction::Transport::Tls {
                    warn!(agent = %c.username, from = %peer.addr, transport = peer.transport.as_str(), %method, "agent may use SIP over TLS only: 403");
                    self.respond_with(now, tx, core, 403, "Forbidden", to_tag, &[], b"");
                    return None;
                }
                Some(c.username)
            }
            (Some(Verdict::Refused(why)), Some(c)) => {
                self.auth_failed(now, ip, &c.username, method, why.label());
                self.respond_with(now, tx, core, 403, "Forbidden", to_tag, &[], b"");
                None
            }
            (verdict, _) => {
                // No credentials yet, or a nonce that is old, used or not ours.
                let stale = matches!(verdict, Some(Verdict::Stale | Verdict::UnknownNonce));
                let values = self
                    .nonces
                    .challenges(clock, ip, &agents.realm, stale, &allowed);
                let extra: Vec<(&str, &str)> = values
                    .iter()
                    .map(|v| ("WWW-Authenticate", v.as_str()))
                    .collect();
                self.respond_with(now, tx, core, 401, "Unauthorized", to_tag, &extra, b"");
                None
            }
        }
    }

    /// Registrations whose time is up are removed (the agent is logged out).
    pub(super) fn expire_bindings(&mut self, now: Instant) {
        while let Some(Reverse((at, agent, generation))) = self.binding_timers.peek().cloned() {
            if at > now {
                break;
            }
            self.binding_timers.pop();
            if self
                .bindings
                .get(&agent)
                .is_some_and(|b| b.generation == generation)
            {
                self.bindings.remove(&agent);
                info!(%agent, "agent registration expired");
                if let Ok(agent) = agent.parse() {
                    self.out.push_back(Output::AgentUnregistered {
                        agent,
                        expired: true,
                    });
                }
            }
        }
    }

    /// A binding an earlier process made (from the log, when a standby
    /// takes over): the phone is rung there until it expires or the phone
    /// registers again. Told as any registration is.
    pub fn restore_binding(
        &mut self,
        now: Instant,
        agent: AgentId,
        contact: String,
        peer: Peer,
        expires: Duration,
    ) {
        let aor = agent.to_string();
        self.binding_generation += 1;
        let generation = self.binding_generation;
        let expires_at = now + expires;
        info!(agent = %aor, %contact, from = %peer.addr, expires = expires.as_secs(), "agent registration restored from the log");
        self.bindings.insert(
            aor.clone(),
            Binding {
                contact: contact.clone(),
                peer,
                expires_at,
                generation,
            },
        );
        self.binding_timers
            .push(Reverse((expires_at, aor, generation)));
        self.out.push_back(Output::AgentRegistered {
            agent,
            contact,
            peer,
            expires,
        });
    }

    /// Agents registered now.
    pub fn registered_agents(&self) -> usize {
        self.bindings.len()
    }

    /// Where agent `id`'s phone is, if registered.
    pub fn binding(&self, agent: &str) -> Option<&Binding> {
        self.bindings.get(agent)
    }
}
