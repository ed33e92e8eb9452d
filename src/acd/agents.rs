//! The agents file (`config/agents.toml`): who may register, with what
//! credentials (HA1 hashes, never passwords), skills, languages and wrap-up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::sip::digest::Algorithm;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    /// The agent's extension: their SIP user name.
    pub id: String,
    pub name: String,
    /// H(id:realm:password) with MD5 and with SHA-256 (`hotline agents hash`).
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
    /// Skill -> level 0-10.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    #[serde(default = "default_languages")]
    pub languages: Vec<String>,
    #[serde(default = "default_wrap_up")]
    pub wrap_up_seconds: u64,
    /// This agent's phone may register (and dial feature codes) only over
    /// SIP over TLS (`[sip] tls_listen`): a phone outside the building.
    #[serde(default)]
    pub require_tls: bool,
}

fn default_languages() -> Vec<String> {
    vec!["zh".into()]
}

fn default_wrap_up() -> u64 {
    30
}

fn default_digest() -> Vec<String> {
    vec!["MD5".into()]
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentsFile {
    /// The digest realm the hashes were made with.
    pub realm: String,
    /// Digest algorithms offered, most preferred first (RFC 8760). MD5 only
    /// by default: older softphones (baresip 1.0 among them) give up when
    /// any SHA-256 challenge is present, even after an MD5 one.
    #[serde(default = "default_digest")]
    pub digest: Vec<String>,
    #[serde(rename = "agent", default)]
    pub agents: Vec<AgentEntry>,
    /// Supervisors' phones: they register like agents' (their skills are
    /// ignored and the ACD never offers them calls); the hotline rings one
    /// to listen in, whisper or barge.
    #[serde(rename = "supervisor", default)]
    pub supervisors: Vec<AgentEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentsError {
    #[error("{file}: {message}")]
    Read { file: PathBuf, message: String },
    #[error("{file}: agent {agent}: {message}")]
    Agent {
        file: PathBuf,
        agent: String,
        message: String,
    },
}

impl AgentsFile {
    pub fn load(file: &Path) -> Result<Self, AgentsError> {
        let text = std::fs::read_to_string(file).map_err(|e| AgentsError::Read {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text, file)
    }

    pub fn parse(text: &str, file: &Path) -> Result<Self, AgentsError> {
        let parsed: AgentsFile = toml::from_str(text).map_err(|e| AgentsError::Read {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        let err = |agent: &str, message: String| AgentsError::Agent {
            file: file.to_path_buf(),
            agent: agent.to_string(),
            message,
        };
        if parsed.digest.is_empty() {
            return Err(AgentsError::Read {
                file: file.to_path_buf(),
                message: "digest: at least one of \"SHA-256\", \"MD5\"".into(),
            });
        }
        if let Some(bad) = parsed
            .digest
            .iter()
            .find(|d| Algorithm::parse(d).is_none() || d.is_empty())
        {
            return Err(AgentsError::Read {
                file: file.to_path_buf(),
                message: format!("digest: {bad:?} is not \"SHA-256\" or \"MD5\""),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for a in parsed.agents.iter().chain(&parsed.supervisors) {
            if a.id.parse::<crate::ids::AgentId>().is_err() {
                return Err(err(
                    &a.id,
                    "id must be digits (the extension, 1-9 of them)".into(),
                ));
            }
            if !seen.insert(&a.id) {
                return Err(err(&a.id, "listed twice".into()));
            }
            for (field, value, len) in [
                ("ha1_md5", &a.ha1_md5, 32),
                ("ha1_sha256", &a.ha1_sha256, 64),
            ] {
                if let Some(v) = value
                    && (v.len() != len || !v.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    return Err(err(
                        &a.id,
                        format!("{field} must be {len} hex digits (hotline agents hash)"),
                    ));
                }
            }
            if a.ha1_md5.is_none() && a.ha1_sha256.is_none() {
                return Err(err(&a.id, "needs ha1_md5 or ha1_sha256".into()));
            }
            if let Some((skill, level)) = a.skills.iter().find(|(_, l)| **l > 10) {
                return Err(err(
                    &a.id,
                    format!("skill {skill} level {level} is above 10"),
                ));
            }
            if let Some(l) = a
                .languages
                .iter()
                .find(|l| !["en", "zh"].contains(&l.as_str()))
            {
                return Err(err(&a.id, format!("language {l:?} is not en or zh")));
            }
        }
        Ok(parsed)
    }

    /// The algorithms to challenge with, in order.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        self.digest
            .iter()
            .filter_map(|d| Algorithm::parse(d))
            .collect()
    }

    /// An agent's or a supervisor's phone entry.
    pub fn get(&self, id: &str) -> Option<&AgentEntry> {
        self.agents
            .iter()
            .chain(&self.supervisors)
            .find(|a| a.id == id)
    }

    /// The stored HA1 of `id` for `algorithm`.
    pub fn ha1(&self, id: &str, algorithm: Algorithm) -> Option<String> {
        let a = self.get(id)?;
        match algorithm {
            Algorithm::Md5 => a.ha1_md5.clone(),
            Algorithm::Sha256 => a.ha1_sha256.clone(),
        }
        .map(|h| h.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_file_loads_and_bad_entries_are_named() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/agents.toml");
        let file = AgentsFile::load(&sample).unwrap();
        assert!(file.agents.len() >= 3);
        assert_eq!(
            file.ha1("2001", Algorithm::Md5).unwrap(),
            crate::sip::digest::ha1(Algorithm::Md5, "2001", &file.realm, "agent2001"),
            "the sample's demo password"
        );
        for (text, expected) in [
            (
                "realm = \"h\"\n[[agent]]\nid = \"2001\"\nname = \"A\"\nha1_md5 = \"xyz\"\n",
                "agent 2001: ha1_md5 must be 32 hex digits",
            ),
            (
                "realm = \"h\"\n[[agent]]\nid = \"li\"\nname = \"A\"\nha1_md5 = \"00000000000000000000000000000000\"\n",
                "agent li: id must be digits",
            ),
            (
                "realm = \"h\"\n[[agent]]\nid = \"1\"\nname = \"A\"\nha1_md5 = \"00000000000000000000000000000000\"\nskills = { repair = 11 }\n",
                "skill repair level 11 is above 10",
            ),
            (
                "realm = \"h\"\n[[agent]]\nid = \"1\"\nname = \"A\"\npassword = \"x\"\n",
                "unknown field `password`",
            ),
        ] {
            let e = AgentsFile::parse(text, Path::new("agents.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{e}");
        }
    }
}
