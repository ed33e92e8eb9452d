//! Who may use the HTTP API: agents (their own state, calls and tickets)
//! and supervisors (every agent, queue and ticket). Each user has a token,
//! stored in the users file as its SHA-256 hash, never in the clear.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    Supervisor,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The agent an agent user is (their extension).
    pub agent: Option<String>,
    /// A supervisor's phone: an extension of the agents file, rung to
    /// listen in, whisper or barge.
    pub phone: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("users file {file}: {message}")]
    Read { file: PathBuf, message: String },
    #[error("users file {file}: user {user:?}: {message}")]
    User {
        file: PathBuf,
        user: String,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersToml {
    #[serde(default)]
    user: Vec<UserToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserToml {
    name: String,
    role: Role,
    agent: Option<String>,
    /// A supervisor's phone (an extension in the agents file).
    phone: Option<String>,
    token_sha256: String,
}

#[derive(Debug, Default, Clone)]
pub struct Users {
    by_hash: HashMap<[u8; 32], User>,
}

/// The hex SHA-256 of a token, as the users file stores it.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token (256 bits, hex).
pub fn new_token() -> String {
    (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Users {
    /// Loads and checks the file: every agent user names an agent of the
    /// agents file (when there is one), no name or token twice.
    pub fn load(file: &Path, agents: Option<&[String]>) -> Result<Self, UsersError> {
        let text = std::fs::read_to_string(file).map_err(|e| UsersError::Read {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text, file, agents)
    }

    pub fn parse(text: &str, file: &Path, agents: Option<&[String]>) -> Result<Self, UsersError> {
        let parsed: UsersToml = toml::from_str(text).map_err(|e| UsersError::Read {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut users = Users::default();
        let mut names = std::collections::HashSet::new();
        for u in parsed.user {
            let bad = |message: String| UsersError::User {
                file: file.to_path_buf(),
                user: u.name.clone(),
                message,
            };
            if !names.insert(u.name.clone()) {
                return Err(bad("named twice".into()));
            }
            let hash = parse_hash(&u.token_sha256.to_ascii_lowercase()).ok_or_else(|| {
                bad(
                    "token_sha256 must be 64 hex digits (`hotline users token NAME` makes one)"
                        .into(),
                )
            })?;
            match (u.role, &u.agent) {
                (Role::Agent, None) => return Err(bad("an agent user needs `agent`".into())),
                (Role::Supervisor, Some(_)) => {
                    return Err(bad("a supervisor is not an agent: no `agent`".into()));
                }
                (Role::Agent, Some(a)) => {
                    if let Some(known) = agents
                        && !known.contains(a)
                    {
                        return Err(bad(format!("agent {a:?} is not in the agents file")));
                    }
                }
                (Role::Supervisor, None) => {}
            }
            match (u.role, &u.phone) {
                (Role::Agent, Some(_)) => {
                    return Err(bad(
                        "an agent's phone is their `agent` extension: no `phone`".into(),
                    ));
                }
                (Role::Supervisor, Some(p)) => {
                    if let Some(known) = agents
                        && !known.contains(p)
                    {
                        return Err(bad(format!("phone {p:?} is not in the agents file")));
                    }
                }
                _ => {}
            }
            let user = User {
                name: u.name.clone(),
                role: u.role,
                agent: u.agent.clone(),
                phone: u.phone.clone(),
            };
            if users.by_hash.insert(hash, user).is_some() {
                return Err(bad("has the same token as another user".into()));
            }
        }
        Ok(users)
    }

    pub fn authenticate(&self, token: &str) -> Option<&User> {
        let hash = parse_hash(&token_hash(token))?;
        self.by_hash.get(&hash)
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Users, UsersError> {
        Users::parse(text, Path::new("users.toml"), Some(&["2001".into()]))
    }

    #[test]
    fn tokens_are_found_by_their_hash_only() {
        let text = format!(
            "[[user]]\nname = \"li\"\nrole = \"agent\"\nagent = \"2001\"\ntoken_sha256 = \"{}\"\n\
             [[user]]\nname = \"boss\"\nrole = \"supervisor\"\ntoken_sha256 = \"{}\"\n",
            token_hash("t-li"),
            token_hash("t-boss").to_uppercase()
        );
        let users = parse(&text).unwrap();
        assert_eq!(
            users.authenticate("t-li").unwrap().agent.as_deref(),
            Some("2001")
        );
        assert_eq!(users.authenticate("t-boss").unwrap().role, Role::Supervisor);
        assert!(users.authenticate("t-nobody").is_none());
        assert!(
            users.authenticate(&token_hash("t-li")).is_none(),
            "the hash is no token"
        );
    }

    #[test]
    fn bad_users_are_named() {
        let h = token_hash("x");
        for (text, says) in [
            (
                format!("[[user]]\nname = \"a\"\nrole = \"agent\"\ntoken_sha256 = \"{h}\"\n"),
                "needs `agent`",
            ),
            (
                format!(
                    "[[user]]\nname = \"a\"\nrole = \"agent\"\nagent = \"9999\"\ntoken_sha256 = \"{h}\"\n"
                ),
                "not in the agents file",
            ),
            (
                format!(
                    "[[user]]\nname = \"a\"\nrole = \"supervisor\"\nagent = \"2001\"\ntoken_sha256 = \"{h}\"\n"
                ),
                "not an agent",
            ),
            (
                "[[user]]\nname = \"a\"\nrole = \"supervisor\"\ntoken_sha256 = \"abc\"\n".into(),
                "64 hex digits",
            ),
            (
                format!("[[user]]\nname = \"a\"\nrole = \"boss\"\ntoken_sha256 = \"{h}\"\n"),
                "unknown variant",
            ),
            (
                format!(
                    "[[user]]\nname = \"a\"\nrole = \"supervisor\"\ntoken_sha256 = \"{h}\"\ncolour = 1\n"
                ),
                "colour",
            ),
            (
                format!(
                    "[[user]]\nname = \"a\"\nrole = \"supervisor\"\ntoken_sha256 = \"{h}\"\n[[user]]\nname = \"b\"\nrole = \"supervisor\"\ntoken_sha256 = \"{h}\"\n"
                ),
                "same token",
            ),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(
                err.contains(says) && err.contains("users.toml"),
                "{text}: {err}"
            );
        }
    }
}
