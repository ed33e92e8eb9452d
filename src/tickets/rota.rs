//! The on-call rota (`[oncall] rota`, e.g. `config/oncall.toml`): who is on
//! duty when, per department and building, in the order they are called,
//! and the supervisor behind them. Checked at load; supervisors swap
//! shifts through the API, and each swap is an event in the log
//! (`OnCallShiftSwapped`), so a restart knows it.
//!
//! A duty names the days its shift starts on and its local hours; one
//! whose `to` is not after its `from` runs into the next day ("18:00" to
//! "08:00"). When several duties cover a moment, the first in the file
//! wins. Sans-IO: every question takes the moment as Unix ms.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;

use super::event::Department;
use crate::site::hours::{minute_of_day, time_zone};

#[derive(Debug, thiserror::Error)]
pub enum RotaError {
    #[error("{file}: {message}")]
    Read { file: PathBuf, message: String },
    #[error("{file}: {what}: {message}")]
    Invalid {
        file: PathBuf,
        what: String,
        message: String,
    },
}

/// Someone who may be called.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: String,
    /// As the gateway dials it.
    pub number: String,
    /// The language the ticket is spoken in: "zh" or "en".
    pub language: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotaFile {
    time_zone: String,
    #[serde(default)]
    people: BTreeMap<String, Person>,
    #[serde(default, rename = "duty")]
    duties: Vec<DutyConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DutyConfig {
    department: String,
    /// Empty: every building.
    #[serde(default)]
    buildings: Vec<String>,
    days: Vec<String>,
    from: String,
    to: String,
    chain: Vec<String>,
    supervisor: Option<String>,
}

#[derive(Debug, Clone)]
struct Duty {
    department: Department,
    buildings: Vec<String>,
    /// Monday first: the shift starts on this day.
    days: [bool; 7],
    from: u16,
    to: u16,
    chain: Vec<String>,
    supervisor: Option<String>,
}

impl Duty {
    /// Whether the shift covers local `(weekday, minute)`.
    fn covers(&self, day: usize, minute: u16) -> bool {
        if self.from < self.to {
            return self.days[day] && self.from <= minute && minute < self.to;
        }
        // Overnight: from `from` on a listed day to `to` the day after.
        let yesterday = (day + 6) % 7;
        (self.days[day] && minute >= self.from) || (self.days[yesterday] && minute < self.to)
    }

    fn serves(&self, department: Department, building: Option<&str>) -> bool {
        self.department == department
            && (self.buildings.is_empty()
                || building.is_some_and(|b| self.buildings.iter().any(|x| x == b)))
    }
}

/// A swapped shift (from the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    pub department: Department,
    pub out: String,
    pub into: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Who is called for an emergency, in order, and the supervisor after them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineup {
    pub chain: Vec<String>,
    pub supervisor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Rota {
    zone: TimeZone,
    people: BTreeMap<String, Person>,
    duties: Vec<Duty>,
    swaps: Vec<Swap>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Rota {
    pub fn load(file: &Path) -> Result<Self, RotaError> {
        let text = std::fs::read_to_string(file).map_err(|e| RotaError::Read {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text, file)
    }

    pub fn parse(text: &str, file: &Path) -> Result<Self, RotaError> {
        let raw: RotaFile = toml::from_str(text).map_err(|e| RotaError::Read {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid = |what: String, message: String| RotaError::Invalid {
            file: file.to_path_buf(),
            what,
            message,
        };
        let zone = time_zone(&raw.time_zone).map_err(|e| invalid("time_zone".into(), e))?;
        for (id, p) in &raw.people {
            let what = || format!("people.{id}");
            if p.name.trim().is_empty() {
                return Err(invalid(what(), "name is empty".into()));
            }
            let digits = p.number.strip_prefix('+').unwrap_or(&p.number);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(invalid(
                    what(),
                    format!(
                        "number {:?} is not digits (with a leading + at most)",
                        p.number
                    ),
                ));
            }
            if !["zh", "en"].contains(&p.language.as_str()) {
                return Err(invalid(
                    what(),
                    format!("language {:?} is not zh or en", p.language),
                ));
            }
        }
        let mut duties = Vec::new();
        for (i, d) in raw.duties.iter().enumerate() {
            let what = || format!("duty {} ({})", i + 1, d.department);
            let department: Department = d.department.parse().map_err(|e| invalid(what(), e))?;
            let mut days = [false; 7];
            for day in &d.days {
                let Some(i) = DAYS.iter().position(|x| x == day) else {
                    return Err(invalid(
                        what(),
                        format!("day {day:?} is not one of {}", DAYS.join(", ")),
                    ));
                };
                days[i] = true;
            }
            if !days.contains(&true) {
                return Err(invalid(what(), "no days".into()));
            }
            let clock = |t: &str| {
                minute_of_day(t).ok_or_else(|| invalid(what(), format!("{t:?} is not HH:MM")))
            };
            let (from, to) = (clock(&d.from)?, clock(&d.to)?);
            if from == 24 * 60 {
                return Err(invalid(what(), "from 24:00: start at 00:00".into()));
            }
            if d.chain.is_empty() {
                return Err(invalid(what(), "the chain is empty".into()));
            }
            for id in d.chain.iter().chain(&d.supervisor) {
                if !raw.people.contains_key(id) {
                    return Err(invalid(what(), format!("{id:?} is not in [people]")));
                }
            }
            duties.push(Duty {
                department,
                buildings: d.buildings.clone(),
                days,
                from,
                to,
                chain: d.chain.clone(),
                supervisor: d.supervisor.clone(),
            });
        }
        Ok(Self {
            zone,
            people: raw.people,
            duties,
            swaps: Vec::new(),
        })
    }

    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.get(id)
    }

    /// A shift swap, as the log tells it. Refused when either person is
    /// unknown (the API checks before writing).
    pub fn check_swap(&self, out: &str, into: &str) -> Result<(), String> {
        for id in [out, into] {
            if !self.people.contains_key(id) {
                return Err(format!("{id:?} is not in the rota's people"));
            }
        }
        if out == into {
            return Err("a swap needs two people".into());
        }
        Ok(())
    }

    pub fn handle_swap(&mut self, swap: Swap) {
        self.swaps.push(swap);
    }

    /// Who is on duty for `department` (and `building`) at `at_ms`, swaps
    /// applied (the latest swap of a person wins).
    pub fn lineup(&self, department: Department, building: Option<&str>, at_ms: i64) -> Lineup {
        let Ok(at) = Timestamp::from_millisecond(at_ms) else {
            return Lineup::default();
        };
        let local = at.to_zoned_datetime(self.zone.clone());
        let day = local.weekday().to_monday_zero_offset() as usize;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let Some(duty) = self
            .duties
            .iter()
            .find(|d| d.serves(department, building) && d.covers(day, minute))
        else {
            return Lineup::default();
        };
        let swapped = |id: &String| -> String {
            self.swaps
                .iter()
                .rev()
                .find(|s| {
                    s.department == department
                        && s.out == *id
                        && s.from_ms <= at_ms
                        && at_ms < s.to_ms
                })
                .map_or_else(|| id.clone(), |s| s.into.clone())
        };
        let mut chain: Vec<String> = Vec::new();
        for id in duty.chain.iter().map(swapped) {
            if !chain.contains(&id) {
                chain.push(id);
            }
        }
        Lineup {
            chain,
            supervisor: duty.supervisor.as_ref().map(swapped),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const ROTA: &str = r#"
        time_zone = "Asia/Shanghai"

        [people.wang]
        name = "Wang Wei"
        number = "+8613900000001"
        language = "zh"

        [people.li]
        name = "Li Na"
        number = "+8613900000002"
        language = "zh"

        [people.smith]
        name = "John Smith"
        number = "+8613900000003"
        language = "en"

        [people.chen]
        name = "Chen Jing"
        number = "+8613900000009"
        language = "zh"

        # Nights, every day, building 7 only: Smith first.
        [[duty]]
        department = "engineering"
        buildings = ["7"]
        days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        from = "18:00"
        to = "08:00"
        chain = ["smith", "wang"]
        supervisor = "chen"

        # Nights, every day, all buildings.
        [[duty]]
        department = "engineering"
        days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        from = "18:00"
        to = "08:00"
        chain = ["wang", "li"]
        supervisor = "chen"

        # Weekdays by day.
        [[duty]]
        department = "engineering"
        days = ["mon", "tue", "wed", "thu", "fri"]
        from = "08:00"
        to = "18:00"
        chain = ["li"]
    "#;

    fn rota() -> Rota {
        Rota::parse(ROTA, Path::new("oncall.toml")).unwrap()
    }

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn lineup(chain: &[&str], supervisor: Option<&str>) -> Lineup {
        Lineup {
            chain: chain.iter().map(|s| s.to_string()).collect(),
            supervisor: supervisor.map(String::from),
        }
    }

    #[test]
    fn who_is_on_duty_by_department_building_and_local_time() {
        let r = rota();
        let night = lineup(&["wang", "li"], Some("chen"));
        // Tuesday 23:00 and Wednesday 07:59 in Beijing: the night shift
        // that began on Tuesday.
        assert_eq!(
            r.lineup(
                Department::Engineering,
                Some("3"),
                at("2026-12-01T23:00:00+08:00")
            ),
            night
        );
        assert_eq!(
            r.lineup(
                Department::Engineering,
                None,
                at("2026-12-02T07:59:00+08:00")
            ),
            night
        );
        // Building 7 has its own night chain; by day it shares the rest's.
        assert_eq!(
            r.lineup(
                Department::Engineering,
                Some("7"),
                at("2026-12-01T23:00:00+08:00")
            ),
            lineup(&["smith", "wang"], Some("chen"))
        );
        assert_eq!(
            r.lineup(
                Department::Engineering,
                Some("7"),
                at("2026-12-02T09:00:00+08:00")
            ),
            lineup(&["li"], None)
        );
        // Saturday by day: nobody (no weekend day shift); other
        // departments: nobody at all.
        assert_eq!(
            r.lineup(
                Department::Engineering,
                None,
                at("2026-12-05T12:00:00+08:00")
            ),
            Lineup::default()
        );
        assert_eq!(
            r.lineup(Department::Security, None, at("2026-12-01T23:00:00+08:00")),
            Lineup::default()
        );
        // Sunday night into Monday morning: the shift Sunday started.
        assert_eq!(
            r.lineup(
                Department::Engineering,
                None,
                at("2026-12-07T03:00:00+08:00")
            ),
            night
        );
        // 16:00 UTC is midnight in Beijing: the zone, not UTC, decides.
        assert_eq!(
            r.lineup(Department::Engineering, None, at("2026-12-01T16:00:00Z")),
            night
        );
        assert_eq!(
            r.lineup(Department::Engineering, None, at("2026-12-02T02:00:00Z")),
            lineup(&["li"], None)
        );
    }

    #[test]
    fn a_swapped_shift_puts_the_other_person_in_the_same_place_for_its_hours() {
        let mut r = rota();
        r.check_swap("wang", "smith").unwrap();
        r.handle_swap(Swap {
            department: Department::Engineering,
            out: "wang".into(),
            into: "smith".into(),
            from_ms: at("2026-12-01T18:00:00+08:00"),
            to_ms: at("2026-12-02T08:00:00+08:00"),
        });
        assert_eq!(
            r.lineup(
                Department::Engineering,
                None,
                at("2026-12-01T23:00:00+08:00")
            ),
            lineup(&["smith", "li"], Some("chen"))
        );
        // Building 7's chain had both: Smith is called once.
        assert_eq!(
            r.lineup(
                Department::Engineering,
                Some("7"),
                at("2026-12-01T23:00:00+08:00")
            ),
            lineup(&["smith"], Some("chen"))
        );
        // The next night Wang is back.
        assert_eq!(
            r.lineup(
                Department::Engineering,
                None,
                at("2026-12-02T23:00:00+08:00")
            ),
            lineup(&["wang", "li"], Some("chen"))
        );
        assert!(r.check_swap("wang", "nobody").is_err());
        assert!(r.check_swap("wang", "wang").is_err());
    }

    #[test]
    fn mistakes_in_the_rota_are_refused_at_load() {
        for (from, to, says) in [
            ("\"Asia/Shanghai\"", "\"Mars/Olympus\"", "time_zone"),
            (
                "number = \"+8613900000002\"",
                "number = \"139-0000\"",
                "not digits",
            ),
            ("language = \"en\"", "language = \"fr\"", "not zh or en"),
            (
                "department = \"engineering\"",
                "department = \"plumbing\"",
                "not engineering",
            ),
            (
                "\"sat\", \"sun\"]",
                "\"sat\", \"sunday\"]",
                "day \"sunday\"",
            ),
            ("from = \"18:00\"", "from = \"6pm\"", "not HH:MM"),
            ("chain = [\"wang\", \"li\"]", "chain = []", "chain is empty"),
            (
                "chain = [\"wang\", \"li\"]",
                "chain = [\"wang\", \"zhou\"]",
                "\"zhou\" is not in [people]",
            ),
            (
                "supervisor = \"chen\"",
                "supervisor = \"boss\"",
                "\"boss\" is not in [people]",
            ),
            (
                "to = \"18:00\"",
                "to = \"18:00\"\nuntil = \"19:00\"",
                "unknown field",
            ),
        ] {
            let text = ROTA.replacen(from, to, 1);
            let error = Rota::parse(&text, Path::new("oncall.toml"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{from} -> {to}: {error}");
        }
    }
}
