//! One id type per thing, shared by every layer: the switch, the ACD, the
//! desk and the API all speak of the same `CallId` and `AgentId`.

use serde::{Deserialize, Serialize};

/// A call as this process knows it (`c17` in logs). The log keys a call
/// by its SIP Call-ID, which outlives a restart; this one does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CallId(pub u64);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// An agent: their extension number, which is also their SIP username.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentId(pub u32);

impl std::fmt::Display for AgentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for AgentId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // Digits only: no sign, no spaces, no leading "+".
        if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{s:?} is not an agent's extension (1-9 digits)"));
        }
        s.parse().map(AgentId).map_err(|e| format!("{s:?}: {e}"))
    }
}

/// A map keyed by an id the hotline hands out itself ([`CallId`], a SIP
/// transaction's): hashed with one multiplication instead of std's SipHash.
/// SipHash is there so that keys a peer chooses cannot be made to collide;
/// these keys are counters no peer chooses. Maps keyed by what comes off
/// the wire (a Call-ID, a branch, an address) keep std's hasher.
pub type IdMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

/// [`IdMap`]'s hasher: Fibonacci hashing of the id's integer, which spreads
/// consecutive ids over the high bits (the table's tags) and the low bits
/// (its buckets) alike.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_spread_over_buckets_and_tags() {
        use std::hash::BuildHasher;
        let hasher = std::hash::BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (0..4096).map(|n| hasher.hash_one(CallId(n))).collect();
        // The low 12 bits (a 4,096-bucket table's index) of 4,096 consecutive ids.
        let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 0xfff).collect();
        assert_eq!(buckets.len(), 4096);
        // The top 7 bits (hashbrown's tag): every value used.
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(tags.len(), 128);
        let mut map: IdMap<CallId, u64> = IdMap::default();
        for n in 0..10_000 {
            map.insert(CallId(n), n);
        }
        assert!((0..10_000).all(|n| map[&CallId(n)] == n));
    }
}
