//! Caps on things held open at once (connections, event streams), in all
//! and per key (a source address, a user), without IO: a [`Slot`] is taken
//! when one opens and given back when it is dropped, on every path out.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Why a slot was refused (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The cap in all.
    Total,
    /// The cap for this key.
    PerKey,
}

impl Full {
    pub fn label(self) -> &'static str {
        match self {
            Full::Total => "max_connections",
            Full::PerKey => "per_source",
        }
    }
}

#[derive(Debug)]
struct Counts<K> {
    total: usize,
    by_key: HashMap<K, usize>,
}

/// At most `max` held at once, and `per_key` for any one key.
#[derive(Debug, Clone)]
pub struct Slots<K: Hash + Eq + Clone> {
    max: usize,
    per_key: usize,
    // A plain mutex: held for one counter update, never across an await.
    counts: Arc<Mutex<Counts<K>>>,
}

/// One place taken; given back on drop.
#[derive(Debug)]
pub struct Slot<K: Hash + Eq + Clone> {
    key: K,
    counts: Arc<Mutex<Counts<K>>>,
}

impl<K: Hash + Eq + Clone> Slots<K> {
    pub fn new(max: usize, per_key: usize) -> Self {
        Self {
            max,
            per_key,
            counts: Arc::new(Mutex::new(Counts {
                total: 0,
                by_key: HashMap::new(),
            })),
        }
    }

    pub fn take(&self, key: K) -> Result<Slot<K>, Full> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.max {
            return Err(Full::Total);
        }
        let n = c.by_key.entry(key.clone()).or_default();
        if *n >= self.per_key {
            return Err(Full::PerKey);
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            key,
            counts: self.counts.clone(),
        })
    }

    /// Held now, in all.
    pub fn in_use(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl<K: Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total -= 1;
        if let Some(n) = c.by_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.by_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_in_all_and_per_key_and_given_back_on_drop() {
        let slots = Slots::new(3, 2);
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        assert_eq!(slots.take("a").unwrap_err(), Full::PerKey);
        let _b1 = slots.take("b").unwrap();
        assert_eq!(slots.take("c").unwrap_err(), Full::Total);
        drop(a1);
        assert_eq!(slots.in_use(), 2);
        let _c1 = slots.take("c").unwrap();
        assert_eq!(slots.take("a").unwrap_err(), Full::Total);
    }
}
