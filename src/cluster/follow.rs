//! A standby follows the log: it keeps the log's last day in memory and
//! reads what the active node appends every second, so that taking over
//! reads only the last second's events instead of the whole day. What a
//! node starting needs of the log (the calls an earlier process left
//! unfinished, the agents' phones and desks, the figures over the window)
//! comes from that day, and reading it grows with the centre: 360,000
//! events (60,000 calls) took PostgreSQL and the node 1.4–1.8 s, on top of
//! the lease.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::tickets::unfinished::LOOK_BACK_MS;
use crate::tickets::{Event, EventId, Store, StoreError};

/// Read at most this many events a query.
const BATCH: usize = 10_000;

/// The log's last day, as far as it was read.
#[derive(Debug)]
pub struct Followed {
    events: VecDeque<Event>,
    /// Every event up to this id was read (those of the day are kept).
    last: EventId,
}

impl Followed {
    /// The day before `now_ms` and the id read up to.
    pub async fn load(store: &Store, now_ms: i64) -> Result<Self, StoreError> {
        // The last id first: an event appended meanwhile is then either in
        // the day read or after `last`, and read once either way.
        let before = store.last_id().await?.unwrap_or(EventId(0));
        let events: VecDeque<Event> = store
            .events_between(now_ms - LOOK_BACK_MS, now_ms + 1)
            .await?
            .into();
        let last = events.iter().map(|e| e.id).max().unwrap_or(EventId(0));
        Ok(Self {
            events,
            last: last.max(before),
        })
    }

    /// Reads what was appended since, and forgets what is older than a
    /// day at `now_ms`. The number of events read.
    pub async fn catch_up(&mut self, store: &Store, now_ms: i64) -> Result<usize, StoreError> {
        let mut read = 0;
        loop {
            let batch = store.events_after(self.last, BATCH).await?;
            let full = batch.len() == BATCH;
            read += batch.len();
            if let Some(e) = batch.last() {
                self.last = e.id;
            }
            self.events.extend(batch);
            if !full {
                break;
            }
        }
        let from = now_ms - LOOK_BACK_MS;
        while self.events.front().is_some_and(|e| e.at_ms < from) {
            self.events.pop_front();
        }
        Ok(read)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The day, in log order.
    pub fn into_events(self) -> Vec<Event> {
        self.events.into()
    }
}

/// Follows the log at `location` every `every` until `stop` fires, and
/// returns what it has (`None` when it could not read the day: the node
/// reads it when it takes over, as a single hotline does at start).
pub async fn follow(
    location: String,
    fence: super::Fence,
    every: Duration,
    mut stop: oneshot::Receiver<()>,
) -> Option<Followed> {
    // Fenced with this standby's term (none): it can never write.
    let open = tokio::task::spawn_blocking(move || Store::open_fenced(&location, Some(fence)));
    let store = tokio::select! {
        _ = &mut stop => return None,
        opened = open => match opened {
            Ok(Ok(store)) => store,
            Ok(Err(e)) => {
                warn!(error = %e, "standby: the log cannot be followed");
                return None;
            }
            Err(_) => return None,
        },
    };
    let mut followed: Option<Followed> = None;
    loop {
        let now_ms = crate::runtime::tickets::now_ms();
        // Cut short by `stop` between batches: what was read is whole.
        let step = async {
            match followed.as_mut() {
                None => match Followed::load(&store, now_ms).await {
                    Ok(day) => {
                        info!(events = day.len(), "standby: following the log's last day");
                        followed = Some(day);
                    }
                    Err(e) => warn!(error = %e, "standby: reading the log's last day"),
                },
                Some(day) => {
                    if let Err(e) = day.catch_up(&store, now_ms).await {
                        warn!(error = %e, "standby: following the log");
                    }
                }
            }
        };
        let stopped = tokio::select! {
            _ = &mut stop => true,
            _ = step => false,
        };
        if stopped {
            return followed;
        }
        tokio::select! {
            _ = &mut stop => return followed,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::{Actor, EventKind, NewEvent};

    fn ended(call: &str, at_ms: i64) -> NewEvent {
        NewEvent {
            ticket: None,
            call: Some(call.into()),
            at_ms,
            actor: Actor::System,
            kind: EventKind::CallEnded {
                reason: "caller_hung_up".into(),
                code: None,
            },
        }
    }

    #[tokio::test]
    async fn what_a_standby_followed_is_the_logs_last_day_as_a_start_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("events.db").to_str().unwrap()).unwrap();
        let now = 10 * LOOK_BACK_MS;
        let hour = 3_600_000;
        store
            .append(vec![
                ended("old", now - 25 * hour),
                ended("a", now - 23 * hour),
            ])
            .await
            .unwrap();
        let mut day = Followed::load(&store, now).await.unwrap();
        assert_eq!(day.len(), 1, "only the day: {day:?}");
        // The active node appends more than a batch while we wait.
        let more: Vec<NewEvent> = (0..BATCH + 5)
            .map(|n| ended(&format!("c{n}"), now + n as i64))
            .collect();
        store.append(more).await.unwrap();
        // Two hours on: "a" is more than a day old.
        let later = now + 2 * hour;
        assert_eq!(day.catch_up(&store, later).await.unwrap(), BATCH + 5);
        assert_eq!(day.catch_up(&store, later).await.unwrap(), 0, "read once");
        let followed = day.into_events();
        let read = store
            .events_between(later - LOOK_BACK_MS, later + 1)
            .await
            .unwrap();
        assert_eq!(followed, read);
        assert_eq!(followed.len(), BATCH + 5);
    }
}
