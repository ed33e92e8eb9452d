//! Where a caller waits and how urgently: the domain's answer, asked by
//! the call layer when the menu hands a caller over, so that the call's
//! story, the agent's screen and the figures all name the same queue.

use super::{QueueId, priority};
use crate::owners::OwnerClass;

/// The queues by name, in router order, and where VIPs of each go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueuePlan {
    names: Vec<String>,
    vip: Vec<Option<usize>>,
}

/// A caller's place: the queue and the priority they wait at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement<'a> {
    pub queue: QueueId,
    pub name: &'a str,
    pub priority: u8,
}

/// The priority a class of owner waits at, at least.
pub fn class_priority(class: Option<OwnerClass>) -> u8 {
    match class {
        Some(OwnerClass::Key) => priority::KEY_CUSTOMER,
        Some(OwnerClass::Vip) => priority::VIP,
        _ => priority::ORDINARY,
    }
}

impl QueuePlan {
    /// `queues` in router order, each with its VIP queue's name if any (an
    /// unknown VIP queue name is ignored: config checks catch it first).
    pub fn new<'a>(queues: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Self {
        let (names, vip_names): (Vec<String>, Vec<Option<&str>>) =
            queues.into_iter().map(|(n, v)| (n.to_string(), v)).unzip();
        let vip = vip_names
            .iter()
            .map(|v| v.and_then(|v| names.iter().position(|n| n == v)))
            .collect();
        Self { names, vip }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn id(&self, name: &str) -> Option<QueueId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| QueueId(i as u16))
    }

    /// The queue a caller waits in: the named one (or `general`, or the
    /// first, for a name the configuration does not know), or its VIP
    /// queue for VIPs and key customers; at the menu's priority or the
    /// class's, whichever is higher. None when there are no queues.
    pub fn place(
        &self,
        name: &str,
        class: Option<OwnerClass>,
        menu_priority: u8,
    ) -> Option<Placement<'_>> {
        let q = self
            .names
            .iter()
            .position(|n| n == name)
            .or_else(|| self.names.iter().position(|n| n == "general"))
            .or((!self.names.is_empty()).then_some(0))?;
        let class_priority = class_priority(class);
        let q = if class_priority > priority::ORDINARY {
            self.vip[q].unwrap_or(q)
        } else {
            q
        };
        Some(Placement {
            queue: QueueId(q as u16),
            name: &self.names[q],
            priority: menu_priority.max(class_priority),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vips_and_key_customers_go_to_the_vip_queue_at_their_class_priority() {
        let plan = QueuePlan::new([("general", Some("vip")), ("repair", None), ("vip", None)]);
        let p = plan.place("general", Some(OwnerClass::Vip), 0).unwrap();
        assert_eq!((p.name, p.priority), ("vip", priority::VIP));
        let p = plan.place("repair", Some(OwnerClass::Key), 0).unwrap();
        assert_eq!((p.name, p.priority), ("repair", priority::KEY_CUSTOMER));
        let p = plan.place("nowhere", None, priority::EMERGENCY).unwrap();
        assert_eq!((p.name, p.priority), ("general", priority::EMERGENCY));
        assert_eq!(p.queue, QueueId(0));
        assert!(QueuePlan::default().place("general", None, 0).is_none());
    }
}
