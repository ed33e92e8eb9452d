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
