//! The menu graph, loaded from `config/ivr.toml` and checked before the
//! hotline takes a call: every reference resolves, every node is reachable,
//! every prompt exists in every language.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::site::hours::{Calendars, Opening};
use crate::tickets::Severity;

/// One or several prompt names, played in order.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Prompts {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Prompts {
    pub fn names(&self) -> Vec<String> {
        match self {
            Prompts::None => Vec::new(),
            Prompts::One(p) => vec![p.clone()],
            Prompts::Many(ps) => ps.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub id: String,
    pub name: String,
    /// Called numbers (user part of the Request-URI) that reach this site.
    pub numbers: Vec<String>,
    pub greeting: Prompts,
    pub start: String,
    /// Language before the caller chooses or is recognised.
    #[serde(default = "default_language")]
    pub language: String,
}

fn default_language() -> String {
    "zh".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub timeout_seconds: u64,
    pub inter_digit_seconds: u64,
    /// Wrong keys or silence allowed before `agent` takes over.
    pub retries: u32,
    pub invalid_prompt: Prompts,
    pub timeout_prompt: Prompts,
    /// Where `0` goes from any menu, and every menu after its retries.
    pub agent: String,
    /// Where a node that needs the owner sends an unknown caller first.
    pub identify: String,
}

/// What a `say` node speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SayValue {
    FeeBalance,
    Points,
    /// The ticket in hand (just opened, or looked up).
    TicketNumber,
    /// The status of the ticket in hand.
    TicketStatus,
    /// The date the ticket in hand was opened.
    TicketDate,
    /// Points left after a redemption.
    PointsLeft,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupWhat {
    /// The owner of the unit typed into `building` and `unit`.
    OwnerByUnit,
    /// The owner's most recent ticket.
    LatestTicket,
    /// The ticket whose number was typed into `ticket`.
    TicketByNumber,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NodeConfig {
    Menu {
        #[serde(default)]
        prompt: Prompts,
        options: BTreeMap<String, String>,
        timeout_seconds: Option<u64>,
        retries: Option<u32>,
        invalid_prompt: Option<Prompts>,
        timeout_prompt: Option<Prompts>,
        on_failure: Option<String>,
    },
    Language {
        #[serde(default)]
        prompt: Prompts,
        /// key -> language ("en" / "zh").
        options: BTreeMap<String, String>,
        next: String,
        /// A recognised owner's saved language is used without asking.
        #[serde(default)]
        skip_if_known: bool,
    },
    Collect {
        #[serde(default)]
        prompt: Prompts,
        var: String,
        min_digits: usize,
        max_digits: usize,
        #[serde(default = "hash")]
        terminator: String,
        next: String,
        on_failure: Option<String>,
    },
    Play {
        prompt: Prompts,
        next: String,
    },
    Say {
        #[serde(default)]
        prompt: Prompts,
        value: SayValue,
        #[serde(default)]
        after: Prompts,
        next: String,
        #[serde(default)]
        needs_owner: bool,
    },
    Lookup {
        what: LookupWhat,
        found: String,
        missing: String,
        #[serde(default)]
        needs_owner: bool,
    },
    Record {
        #[serde(default)]
        prompt: Prompts,
        max_seconds: u64,
        silence_seconds: u64,
        next: String,
    },
    Ticket {
        category: String,
        severity: Severity,
        summary: String,
        next: String,
    },
    Queue {
        queue: String,
        #[serde(default)]
        skills: Vec<String>,
        /// Higher first; emergencies at the top.
        #[serde(default)]
        priority: u8,
        /// The hold prompt (looped while waiting), then what is said when
        /// no agent comes in time.
        #[serde(default)]
        prompt: Prompts,
        /// Where a caller goes who presses 0 while waiting, or whom no
        /// agent took in time (a voice message that becomes a ticket).
        voicemail: Option<String>,
    },
    /// Says the catalogue (gift N costs P points) and takes a choice.
    Catalogue {
        #[serde(default)]
        prompt: Prompts,
        next: String,
        /// No gift the owner can afford, or an empty catalogue.
        empty: String,
        #[serde(default)]
        needs_owner: bool,
    },
    /// Spends the chosen gift's points (once, even if confirmed twice).
    Redeem {
        done: String,
        refused: String,
    },
    Survey {
        #[serde(default)]
        prompt: Prompts,
        next: String,
    },
    Hangup {
        #[serde(default)]
        prompt: Prompts,
    },
    /// Branches on the site's opening hours (`[ivr] hours`) at the moment
    /// the caller gets here; a holiday goes to `closed` when `holiday` is
    /// left out. A site without a schedule is always open.
    Hours {
        open: String,
        closed: String,
        holiday: Option<String>,
    },
}

fn hash() -> String {
    "#".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvrConfig {
    #[serde(rename = "site")]
    pub sites: Vec<SiteConfig>,
    pub defaults: Defaults,
    #[serde(rename = "node")]
    pub nodes: BTreeMap<String, NodeConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("{file}: {message}")]
    Read { file: PathBuf, message: String },
    #[error("{file}: node {node}: {message}")]
    Node {
        file: PathBuf,
        node: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Graph { file: PathBuf, message: String },
}

/// Index of a node in [`Graph::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub usize);

/// The checked graph: node names resolved to indexes.
#[derive(Debug)]
pub struct Graph {
    pub sites: Vec<SiteConfig>,
    pub defaults: Defaults,
    pub names: Vec<String>,
    pub nodes: Vec<NodeConfig>,
    index: HashMap<String, NodeId>,
    /// Called number -> site.
    by_number: HashMap<String, usize>,
    /// Opening hours and holidays by site (none: always open).
    hours: Calendars,
}

/// Keys a menu may offer.
const KEYS: &str = "0123456789*#";

impl Graph {
    pub fn load(file: &Path, prompt_exists: impl Fn(&str) -> bool) -> Result<Self, GraphError> {
        let text = std::fs::read_to_string(file).map_err(|e| GraphError::Read {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text, file, prompt_exists)
    }

    /// Parses and checks; `prompt_exists` answers for a full file name
    /// (`main_menu_zh`).
    pub fn parse(
        text: &str,
        file: &Path,
        prompt_exists: impl Fn(&str) -> bool,
    ) -> Result<Self, GraphError> {
        let config: IvrConfig = toml::from_str(text).map_err(|e| GraphError::Read {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        let names: Vec<String> = config.nodes.keys().cloned().collect();
        let index: HashMap<String, NodeId> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), NodeId(i)))
            .collect();
        let node_err = |node: &str, message: String| GraphError::Node {
            file: file.to_path_buf(),
            node: node.to_string(),
            message,
        };
        let graph_err = |message: String| GraphError::Graph {
            file: file.to_path_buf(),
            message,
        };
        let target = |node: &str, what: &str, to: &str| -> Result<(), GraphError> {
            if index.contains_key(to) || (to == "return" && what != "start") {
                Ok(())
            } else {
                Err(node_err(
                    node,
                    format!("{what} goes to {to:?}, which is not a node"),
                ))
            }
        };
        if config.sites.is_empty() {
            return Err(graph_err("no [[site]]".into()));
        }
        let mut by_number = HashMap::new();
        let mut roots = Vec::new();
        for (i, site) in config.sites.iter().enumerate() {
            if !index.contains_key(&site.start) {
                return Err(graph_err(format!(
                    "site {}: start {:?} is not a node",
                    site.id, site.start
                )));
            }
            if !["en", "zh"].contains(&site.language.as_str()) {
                return Err(graph_err(format!(
                    "site {}: language {:?} is not en or zh",
                    site.id, site.language
                )));
            }
            roots.push(site.start.clone());
            for n in &site.numbers {
                if let Some(other) = by_number.insert(n.clone(), i) {
                    return Err(graph_err(format!(
                        "number {n} belongs to sites {} and {}",
                        config.sites[other].id, site.id
                    )));
                }
            }
        }
        for (what, to) in [
            ("defaults.agent", &config.defaults.agent),
            ("defaults.identify", &config.defaults.identify),
        ] {
            if !index.contains_key(to) {
                return Err(graph_err(format!("{what} {to:?} is not a node")));
            }
            roots.push(to.clone());
        }
        // References and per-kind rules; collect each node's successors.
        let mut edges: HashMap<&str, Vec<String>> = HashMap::new();
        let mut prompts: Vec<(String, String)> = Vec::new(); // (node, prompt)
        for site in &config.sites {
            for p in site.greeting.names() {
                prompts.push((format!("site {}", site.id), p));
            }
        }
        for p in config
            .defaults
            .invalid_prompt
            .names()
            .into_iter()
            .chain(config.defaults.timeout_prompt.names())
        {
            prompts.push(("defaults".into(), p));
        }
        for (name, node) in &config.nodes {
            let mut next: Vec<(&str, String)> = Vec::new();
            let mut own_prompts: Vec<String> = Vec::new();
            match node {
                NodeConfig::Menu {
                    prompt,
                    options,
                    invalid_prompt,
                    timeout_prompt,
                    on_failure,
                    ..
                } => {
                    if options.is_empty() {
                        return Err(node_err(name, "a menu needs options".into()));
                    }
                    for (key, to) in options {
                        if key.chars().count() != 1 || !KEYS.contains(key.as_str()) {
                            return Err(node_err(
                                name,
                                format!("option {key:?} is not one key of 0-9, * or #"),
                            ));
                        }
                        next.push(("an option", to.clone()));
                    }
                    if let Some(f) = on_failure {
                        next.push(("on_failure", f.clone()));
                    }
                    own_prompts.extend(prompt.names());
                    own_prompts.extend(invalid_prompt.iter().flat_map(Prompts::names));
                    own_prompts.extend(timeout_prompt.iter().flat_map(Prompts::names));
                }
                NodeConfig::Language {
                    prompt,
                    options,
                    next: to,
                    ..
                } => {
                    for (key, lang) in options {
                        if key.chars().count() != 1 || !KEYS.contains(key.as_str()) {
                            return Err(node_err(name, format!("option {key:?} is not one key")));
                        }
                        if !["en", "zh"].contains(&lang.as_str()) {
                            return Err(node_err(
                                name,
                                format!("option {key} chooses {lang:?}, not en or zh"),
                            ));
                        }
                    }
                    next.push(("next", to.clone()));
                    own_prompts.extend(prompt.names());
                }
                NodeConfig::Collect {
                    prompt,
                    min_digits,
                    max_digits,
                    terminator,
                    next: to,
                    on_failure,
                    var,
                } => {
                    if *min_digits == 0 || min_digits > max_digits || *max_digits > 32 {
                        return Err(node_err(
                            name,
                            format!(
                                "min_digits {min_digits} / max_digits {max_digits}: need 1 <= min <= max <= 32"
                            ),
                        ));
                    }
                    if terminator.chars().count() > 1
                        || !terminator.chars().all(|c| "#*".contains(c))
                    {
                        return Err(node_err(
                            name,
                            format!("terminator {terminator:?} is not # or *"),
                        ));
                    }
                    if !["building", "unit", "pin", "ticket"].contains(&var.as_str()) {
                        return Err(node_err(
                            name,
                            format!(
                                "var {var:?} is not one the lookups read (building, unit, pin, ticket)"
                            ),
                        ));
                    }
                    next.push(("next", to.clone()));
                    if let Some(f) = on_failure {
                        next.push(("on_failure", f.clone()));
                    }
                    own_prompts.extend(prompt.names());
                }
                NodeConfig::Play { prompt, next: to } => {
                    if prompt.names().is_empty() {
                        return Err(node_err(name, "a play node needs a prompt".into()));
                    }
                    next.push(("next", to.clone()));
                    own_prompts.extend(prompt.names());
                }
                NodeConfig::Say {
                    prompt,
                    after,
                    next: to,
                    value,
                    ..
                } => {
                    next.push(("next", to.clone()));
                    own_prompts.extend(prompt.names());
                    own_prompts.extend(after.names());
                    own_prompts.extend(super::value_prompts(*value));
                }
                NodeConfig::Lookup { found, missing, .. } => {
                    next.push(("found", found.clone()));
                    next.push(("missing", missing.clone()));
                }
                NodeConfig::Record {
                    prompt,
                    max_seconds,
                    silence_seconds,
                    next: to,
                } => {
                    if *max_seconds == 0 || *max_seconds > 600 || *silence_seconds == 0 {
                        return Err(node_err(
                            name,
                            "max_seconds must be 1-600 and silence_seconds above 0".into(),
                        ));
                    }
                    next.push(("next", to.clone()));
                    own_prompts.extend(prompt.names());
                }
                NodeConfig::Ticket {
                    category, next: to, ..
                } => {
                    if category.is_empty() {
                        return Err(node_err(name, "category is empty".into()));
                    }
                    next.push(("next", to.clone()));
                }
                NodeConfig::Queue {
                    prompt,
                    queue,
                    voicemail,
                    ..
                } => {
                    if queue.is_empty() {
                        return Err(node_err(name, "queue is empty".into()));
                    }
                    if let Some(v) = voicemail {
                        next.push(("voicemail", v.clone()));
                    }
                    own_prompts.extend(prompt.names());
                }
                NodeConfig::Catalogue {
                    prompt,
                    next: to,
                    empty,
                    ..
                } => {
                    next.push(("next", to.clone()));
                    next.push(("empty", empty.clone()));
                    own_prompts.extend(prompt.names());
                    own_prompts.extend(super::CATALOGUE_PROMPTS.map(String::from));
                }
                NodeConfig::Redeem { done, refused } => {
                    next.push(("done", done.clone()));
                    next.push(("refused", refused.clone()));
                }
                NodeConfig::Survey { prompt, next: to } => {
                    next.push(("next", to.clone()));
                    own_prompts.extend(prompt.names());
                }
                NodeConfig::Hangup { prompt } => own_prompts.extend(prompt.names()),
                NodeConfig::Hours {
                    open,
                    closed,
                    holiday,
                } => {
                    next.push(("open", open.clone()));
                    next.push(("closed", closed.clone()));
                    if let Some(h) = holiday {
                        next.push(("holiday", h.clone()));
                    }
                }
            }
            for (what, to) in &next {
                target(name, what, to)?;
            }
            edges.insert(
                name.as_str(),
                next.into_iter()
                    .map(|(_, to)| to)
                    .filter(|to| to != "return")
                    .collect(),
            );
            prompts.extend(own_prompts.into_iter().map(|p| (name.clone(), p)));
        }
        // Every node reachable from a site's start, the agent or identify node.
        let mut seen: HashSet<String> = HashSet::new();
        let mut queue: VecDeque<String> = roots.into_iter().collect();
        while let Some(n) = queue.pop_front() {
            if seen.insert(n.clone()) {
                queue.extend(edges.get(n.as_str()).into_iter().flatten().cloned());
            }
        }
        if let Some(lost) = names.iter().find(|n| !seen.contains(*n)) {
            return Err(node_err(
                lost,
                "is not reachable from any site's start".into(),
            ));
        }
        // Every prompt in both languages, and what say nodes speak.
        for lang in ["en", "zh"] {
            for (node, p) in &prompts {
                let file = format!("{p}_{lang}");
                if !prompt_exists(&file) {
                    return Err(node_err(node, format!("prompt {p}: {file}.wav is missing")));
                }
            }
            for f in super::say::fragments(lang) {
                let file = format!("{f}_{lang}");
                if !prompt_exists(&file) {
                    return Err(graph_err(format!(
                        "say fragment {f}: {file}.wav is missing"
                    )));
                }
            }
        }
        let nodes = names.iter().map(|n| config.nodes[n].clone()).collect();
        Ok(Self {
            sites: config.sites,
            defaults: config.defaults,
            names,
            nodes,
            index,
            by_number,
            hours: Calendars::default(),
        })
    }

    /// The sites' opening hours, for the `hours` nodes: every site the
    /// schedule names must be one of this menu's.
    pub fn with_hours(mut self, hours: Calendars, file: &Path) -> Result<Self, GraphError> {
        if let Some(unknown) = hours
            .sites()
            .find(|s| !self.sites.iter().any(|site| site.id == *s))
        {
            return Err(GraphError::Graph {
                file: file.to_path_buf(),
                message: format!(
                    "opening hours for site {unknown:?}, which the menu does not have"
                ),
            });
        }
        self.hours = hours;
        Ok(self)
    }

    /// Whether `site` (an index in `sites`) is open at `at_ms`.
    pub fn opening(&self, site: usize, at_ms: i64) -> Opening<'_> {
        self.hours.opening(&self.sites[site].id, at_ms)
    }

    /// Every queue node and the queue it names.
    pub fn queues(&self) -> impl Iterator<Item = (&str, &str)> {
        self.names
            .iter()
            .zip(&self.nodes)
            .filter_map(|(name, node)| match node {
                NodeConfig::Queue { queue, .. } => Some((name.as_str(), queue.as_str())),
                _ => None,
            })
    }

    pub fn node(&self, name: &str) -> Option<NodeId> {
        self.index.get(name).copied()
    }

    /// The site a called number reaches; the first site for any other number.
    pub fn site_for(&self, called: &str) -> usize {
        self.by_number.get(called).copied().unwrap_or(0)
    }
}
