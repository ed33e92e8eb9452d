//! The menu's edge: answers the switch's questions from the owner database
//! and the ticket log. Who is calling is answered on the switch's turn (one
//! indexed read); each menu request off it, its answer sent back through
//! the switch's inbox.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::warn;

use super::Input;
use super::tickets::now_ms;
use crate::call::CallId;
use crate::ivr::{GiftInfo, OwnerInfo, Reply, Request, TicketInfo};
use crate::owners::phone::{NumberPlan, normalize};
use crate::owners::{Owner, OwnerDb, Redeemed};
use crate::tickets::sla::SlaPolicy;
use crate::tickets::{Actor, EventKind, NewEvent, Store, TicketId, Tickets};

/// What the menu's requests need.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<Store>,
    pub owners: Arc<OwnerDb>,
    pub plan: NumberPlan,
    pub sla: SlaPolicy,
    /// The centre's local time minus UTC, for the dates said to callers.
    pub utc_offset_minutes: i16,
    pub to_switch: mpsc::UnboundedSender<Input>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Who handles each owner's open tickets (from the log).
    pub tickets: Arc<super::tickets::TicketView>,
    /// Calls and agents as the agents' screens see them.
    pub desk: Arc<crate::http::desk::Desk>,
    /// Where a request is answered: the main runtime (the switch runs on a
    /// thread of its own).
    pub runtime: tokio::runtime::Handle,
}

fn owner_info(o: Owner) -> OwnerInfo {
    OwnerInfo {
        id: o.id,
        language: o.language,
        class: o.class,
        points: o.points,
        fee_balance_cents: o.fee_balance_cents,
        building: o.building,
    }
}

impl Services {
    /// Looks the caller's number up; always answers (None when unknown or
    /// when the database fails), so the call is never held up.
    pub fn identify(&self, number: &str) -> Option<OwnerInfo> {
        let e164 = normalize(number, &self.plan)?;
        match self.owners.caller(&e164) {
            Ok(o) => o.map(owner_info),
            Err(e) => {
                warn!(error = %e, "owner lookup failed");
                None
            }
        }
    }

    pub fn request(&self, call: CallId, sip_call_id: String, number: String, request: Request) {
        let svc = self.clone();
        self.runtime.spawn(async move {
            let reply = svc.answer(&sip_call_id, &number, request).await;
            let _ = svc.to_switch.send(Input::IvrReply(call, reply));
        });
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&OwnerDb) -> Result<T, crate::owners::OwnersError> + Send + 'static,
    ) -> Option<T> {
        let owners = self.owners.clone();
        match tokio::task::spawn_blocking(move || f(&owners)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                warn!(error = %e, "owner database");
                None
            }
            Err(_) => None,
        }
    }

    async fn answer(&self, sip_call_id: &str, number: &str, request: Request) -> Reply {
        match request {
            Request::OwnerByUnit {
                site,
                building,
                unit,
                pin,
            } => match self
                .blocking(move |db| {
                    // The unit's owner, only with their PIN: a unit number
                    // is no secret, and an owner without a PIN cannot be
                    // confirmed here (an agent can).
                    let owner = db.by_typed_unit(&site, &building, &unit)?;
                    match owner {
                        Some(o) if db.check_pin(&o.id, &pin, now_ms())? => Ok(Some(o)),
                        _ => Ok(None),
                    }
                })
                .await
            {
                Some(o) => Reply::Owner(o.map(owner_info)),
                None => Reply::Failed,
            },
            Request::Gifts => match self.blocking(|db| db.gifts()).await {
                Some(gifts) => Reply::Gifts(
                    gifts
                        .into_iter()
                        .map(|g| GiftInfo {
                            id: g.id,
                            points: g.points,
                        })
                        .collect(),
                ),
                None => Reply::Failed,
            },
            Request::Redeem {
                owner,
                gift,
                attempt,
            } => {
                let request = format!("{sip_call_id}/{attempt}");
                match self
                    .blocking(move |db| db.redeem(&request, &owner, &gift, now_ms()))
                    .await
                {
                    Some(
                        Redeemed::Done { points_left } | Redeemed::AlreadyDone { points_left },
                    ) => Reply::Redeemed {
                        points_left: Some(points_left),
                    },
                    Some(_) => Reply::Redeemed { points_left: None },
                    None => Reply::Failed,
                }
            }
            // From the watcher's view of the log; from the log itself in
            // the moment after a start, before the view has read it.
            Request::LatestTicket { owner } => match self.tickets.of_owner(&owner) {
                Some(rows) => Reply::Ticket(
                    rows.iter()
                        .map(|r| &r.ticket)
                        .max_by_key(|t| (t.opened_at_ms, t.id))
                        .map(|t| self.ticket_info(t)),
                ),
                None => self.latest_from_log(&owner).await,
            },
            Request::TicketByNumber { number } => {
                match self.store.ticket_events(TicketId(number)).await {
                    Ok(events) => {
                        let tickets = Tickets::replay(&events);
                        Reply::Ticket(tickets.get(TicketId(number)).map(|t| self.ticket_info(t)))
                    }
                    Err(e) => {
                        warn!(error = %e, "ticket log");
                        Reply::Failed
                    }
                }
            }
            Request::OpenTicket {
                category,
                severity,
                summary,
                owner,
                building,
                recording,
            } => {
                let now = now_ms();
                let summary = match recording {
                    Some(file) => format!("{summary} (voice message {file})"),
                    None => summary,
                };
                let opened = NewEvent {
                    ticket: None,
                    call: Some(sip_call_id.to_string()),
                    at_ms: now,
                    actor: Actor::Caller(number.to_string()),
                    kind: EventKind::TicketOpened {
                        category,
                        severity,
                        owner,
                        building,
                        summary,
                        phone: normalize(number, &self.plan),
                    },
                };
                match super::tickets::open_ticket(&self.store, &self.sla, opened).await {
                    Ok(ticket) => {
                        self.tickets.appended();
                        Reply::TicketOpened(ticket.0)
                    }
                    Err(e) => {
                        warn!(error = %e, "ticket not opened");
                        Reply::Failed
                    }
                }
            }
        }
    }

    /// The owner's latest ticket, replaying the whole log.
    async fn latest_from_log(&self, owner: &str) -> Reply {
        match self.store.all_events().await {
            Ok(events) => {
                let tickets = Tickets::replay(&events);
                let latest = tickets
                    .iter()
                    .filter(|t| t.owner.as_deref() == Some(owner))
                    .max_by_key(|t| (t.opened_at_ms, t.id));
                Reply::Ticket(latest.map(|t| self.ticket_info(t)))
            }
            Err(e) => {
                warn!(error = %e, "ticket log");
                Reply::Failed
            }
        }
    }

    fn ticket_info(&self, t: &crate::tickets::Ticket) -> TicketInfo {
        let local_ms = t.opened_at_ms + self.utc_offset_minutes as i64 * 60_000;
        let (_, month, day) = civil_date(local_ms.div_euclid(86_400_000));
        let status = t.status.as_str();
        TicketInfo {
            number: t.id.0,
            status: status.into(),
            month,
            day,
        }
    }
}

pub use crate::site::civil_date;
