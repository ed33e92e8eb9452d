//! The lease as this node sees it (sans-IO): when to ask the database for
//! the lease or to renew it, what its answers mean, and when a lease not
//! renewed in time has run out by our own clock.
//!
//! The database decides who holds the lease (its clock, one row); this core
//! only decides what this node believes, and errs on the side of stepping
//! down: a renewal counts from the moment it was *sent*, so our deadline
//! falls before the database's, and a node cut off from the database stops
//! being active before anyone else may start.

use std::time::{Duration, Instant};

/// What this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Follows the log, answers SIP with 503, tries for the lease.
    Standby,
    /// Holds the lease with this fencing term.
    Active { term: i64 },
}

impl Role {
    pub fn term(self) -> Option<i64> {
        match self {
            Role::Active { term } => Some(term),
            Role::Standby => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Active { .. } => "active",
            Role::Standby => "standby",
        }
    }
}

/// What to ask the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Take the lease if it ran out (a new term).
    Acquire,
    /// Extend the lease held with `term`.
    Renew { term: i64 },
}

/// The database's answer to an [`Ask`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Acquired (the new term) or renewed.
    Held(i64),
    /// Someone else holds it (or took it).
    Refused,
    /// No answer: the database is unreachable or too slow.
    Failed,
}

/// A change of role, for the edge to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    BecameActive { term: i64 },
    SteppedDown { term: i64, why: StepDown },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepDown {
    /// The database says another node holds the lease now.
    Taken,
    /// Not renewed in time (the database unreachable, or this process was
    /// frozen): by our clock the lease has run out.
    Expired,
}

impl StepDown {
    pub fn label(self) -> &'static str {
        match self {
            StepDown::Taken => "lease taken by another node",
            StepDown::Expired => "lease not renewed in time",
        }
    }
}

#[derive(Debug)]
pub struct Lease {
    lease: Duration,
    every: Duration,
    role: Role,
    /// Active: the lease holds until then, by our clock.
    valid_until: Option<Instant>,
    /// When the next ask is due.
    next_at: Instant,
    /// The ask on its way, and when it was sent.
    in_flight: Option<(Ask, Instant)>,
}

impl Lease {
    /// A standby node that asks for the lease at once, then every `every`;
    /// the lease lasts `lease` (renewed every `every` while active).
    pub fn new(now: Instant, lease: Duration, every: Duration) -> Self {
        Self {
            lease,
            every,
            role: Role::Standby,
            valid_until: None,
            next_at: now,
            in_flight: None,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The ask due now, if any (one at a time).
    pub fn poll_ask(&mut self, now: Instant) -> Option<Ask> {
        if self.in_flight.is_some() || now < self.next_at {
            return None;
        }
        let ask = match self.role {
            Role::Standby => Ask::Acquire,
            Role::Active { term } => Ask::Renew { term },
        };
        self.in_flight = Some((ask, now));
        self.next_at = now + self.every;
        Some(ask)
    }

    /// The database answered the ask in flight.
    pub fn handle_answer(&mut self, now: Instant, answer: Answer) -> Option<Change> {
        let (ask, sent) = self.in_flight.take()?;
        // A lease that ran out while we waited is gone, whatever came back.
        if let Some(change) = self.handle_timeout(now) {
            return Some(change);
        }
        match (ask, answer, self.role) {
            (Ask::Acquire, Answer::Held(term), Role::Standby) => {
                self.role = Role::Active { term };
                self.valid_until = Some(sent + self.lease);
                Some(Change::BecameActive { term })
            }
            (Ask::Renew { term }, Answer::Held(_), Role::Active { term: held }) if term == held => {
                self.valid_until = Some(sent + self.lease);
                None
            }
            (Ask::Renew { term }, Answer::Refused, Role::Active { term: held }) if term == held => {
                Some(self.step_down(StepDown::Taken))
            }
            _ => None,
        }
    }

    /// Steps down when the lease ran out by our clock.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Change> {
        match self.valid_until {
            Some(until) if now >= until => Some(self.step_down(StepDown::Expired)),
            _ => None,
        }
    }

    /// The next moment something is due: an ask, or the lease's end.
    pub fn poll_timeout(&self) -> Instant {
        let ask = match self.in_flight {
            Some(_) => None,
            None => Some(self.next_at),
        };
        [ask, self.valid_until]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.next_at + self.every)
    }

    fn step_down(&mut self, why: StepDown) -> Change {
        let term = self.role.term().unwrap_or_default();
        self.role = Role::Standby;
        self.valid_until = None;
        Change::SteppedDown { term, why }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(3);
    const EVERY: Duration = Duration::from_secs(1);

    fn active(now: Instant) -> Lease {
        let mut l = Lease::new(now, LEASE, EVERY);
        assert_eq!(l.poll_ask(now), Some(Ask::Acquire));
        assert_eq!(
            l.handle_answer(now, Answer::Held(7)),
            Some(Change::BecameActive { term: 7 })
        );
        l
    }

    #[test]
    fn a_standby_asks_for_the_lease_every_interval_until_it_gets_it() {
        let t0 = Instant::now();
        let mut l = Lease::new(t0, LEASE, EVERY);
        assert_eq!(l.poll_ask(t0), Some(Ask::Acquire));
        assert_eq!(l.poll_ask(t0), None, "one ask at a time");
        assert_eq!(l.handle_answer(t0, Answer::Refused), None);
        assert_eq!(l.poll_ask(t0 + EVERY / 2), None);
        assert_eq!(l.poll_timeout(), t0 + EVERY);
        assert_eq!(l.poll_ask(t0 + EVERY), Some(Ask::Acquire));
        assert_eq!(
            l.handle_answer(t0 + EVERY, Answer::Held(3)),
            Some(Change::BecameActive { term: 3 })
        );
        assert_eq!(l.role(), Role::Active { term: 3 });
        assert_eq!(l.poll_ask(t0 + 2 * EVERY), Some(Ask::Renew { term: 3 }));
    }

    #[test]
    fn renewals_keep_the_lease_counted_from_when_they_were_sent() {
        let t0 = Instant::now();
        let mut l = active(t0);
        for i in 1..10u32 {
            let at = t0 + EVERY * i;
            assert_eq!(l.poll_ask(at), Some(Ask::Renew { term: 7 }));
            // A slow answer: the lease still counts from the send.
            assert_eq!(
                l.handle_answer(at + Duration::from_millis(400), Answer::Held(7)),
                None
            );
            assert_eq!(
                l.handle_timeout(at + LEASE - Duration::from_millis(1)),
                None
            );
        }
        assert_eq!(l.role(), Role::Active { term: 7 });
    }

    #[test]
    fn an_active_node_cut_off_from_the_database_steps_down_when_its_lease_runs_out() {
        let t0 = Instant::now();
        let mut l = active(t0);
        let mut now = t0;
        let mut change = None;
        while change.is_none() {
            now += Duration::from_millis(100);
            change = l.handle_timeout(now);
            if change.is_none() && l.poll_ask(now).is_some() {
                change = l.handle_answer(now, Answer::Failed);
            }
        }
        assert_eq!(
            change,
            Some(Change::SteppedDown {
                term: 7,
                why: StepDown::Expired
            })
        );
        assert_eq!(
            now,
            t0 + LEASE,
            "exactly when the last renewal's lease ends"
        );
        assert_eq!(l.role(), Role::Standby);
        assert_eq!(l.poll_ask(now + EVERY), Some(Ask::Acquire));
    }

    #[test]
    fn a_frozen_node_that_wakes_past_its_lease_steps_down_before_anything_else() {
        let t0 = Instant::now();
        let mut l = active(t0);
        assert_eq!(l.poll_ask(t0 + EVERY), Some(Ask::Renew { term: 7 }));
        // SIGSTOP for ten seconds; the renewal's answer comes after.
        let woke = t0 + Duration::from_secs(11);
        assert_eq!(
            l.handle_answer(woke, Answer::Held(7)),
            Some(Change::SteppedDown {
                term: 7,
                why: StepDown::Expired
            })
        );
    }

    #[test]
    fn a_lease_another_node_took_is_given_up_at_the_next_renewal() {
        let t0 = Instant::now();
        let mut l = active(t0);
        assert_eq!(l.poll_ask(t0 + EVERY), Some(Ask::Renew { term: 7 }));
        assert_eq!(
            l.handle_answer(t0 + EVERY, Answer::Refused),
            Some(Change::SteppedDown {
                term: 7,
                why: StepDown::Taken
            })
        );
        assert_eq!(l.poll_timeout(), t0 + 2 * EVERY);
    }
}
