//! The projection. The store and the SLA timers over it are in
//! `tests/store.rs`, run against both back ends.

use super::*;

const MIN: i64 = 60_000;
const T0: i64 = 1_790_000_000_000;

fn opened(at_ms: i64, severity: Severity, building: &str) -> NewEvent {
    NewEvent {
        ticket: None,
        call: Some("call-1".into()),
        at_ms,
        actor: Actor::Agent("2001".into()),
        kind: EventKind::TicketOpened {
            category: "water".into(),
            severity,
            owner: Some("O-0001".into()),
            building: Some(building.into()),
            summary: "leak under the sink".into(),
            phone: None,
        },
    }
}

fn on(ticket: TicketId, at_ms: i64, kind: EventKind) -> NewEvent {
    NewEvent {
        ticket: Some(ticket),
        call: None,
        at_ms,
        actor: Actor::System,
        kind,
    }
}

#[test]
fn a_ticket_closes_only_when_the_owner_confirms() {
    let mut tickets = Tickets::default();
    let mut id = 0;
    let mut apply = |tickets: &mut Tickets, e: NewEvent| {
        id += 1;
        let ticket = e.ticket.or(Some(TicketId(id)));
        tickets.apply(&Event {
            id: EventId(id),
            ticket,
            call: e.call,
            at_ms: e.at_ms,
            actor: e.actor,
            kind: e.kind,
        });
    };
    apply(&mut tickets, opened(T0, Severity::Major, "B1"));
    let t = TicketId(1);
    apply(
        &mut tickets,
        on(
            t,
            T0 + MIN,
            EventKind::Resolved {
                note: String::new(),
            },
        ),
    );
    assert_eq!(tickets.get(t).unwrap().status, Status::Resolved);
    apply(
        &mut tickets,
        on(
            t,
            T0 + 2 * MIN,
            EventKind::Reopened {
                reason: "still leaking".into(),
            },
        ),
    );
    assert_eq!(tickets.get(t).unwrap().status, Status::Open);
    apply(
        &mut tickets,
        on(
            t,
            T0 + 3 * MIN,
            EventKind::Resolved {
                note: String::new(),
            },
        ),
    );
    apply(
        &mut tickets,
        on(t, T0 + 4 * MIN, EventKind::ConfirmedByOwner),
    );
    let t = tickets.get(t).unwrap();
    assert_eq!((t.status, t.reopened), (Status::Closed, 1));
}
