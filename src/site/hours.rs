//! Opening hours and public holidays, per site (`[ivr] hours`, e.g.
//! `config/hours.toml`): a weekly schedule and a holiday calendar in the
//! site's own time zone, checked at load. The menu's `hours` nodes branch
//! on what [`Calendar::opening`] says at the moment a caller reaches them.
//!
//! Time zones are IANA names ("Asia/Shanghai", "Europe/London") from the
//! tz database built into the binary (jiff's bundled copy), so a site that
//! keeps summer time opens at 08:00 local on both sides of the change, and
//! a machine without tzdata behaves the same; a fixed offset ("+08:00")
//! is accepted too. Holidays are turned into instants once, at load: a
//! holiday from "2026-12-31T18:00" to "2027-01-01T08:00" spans midnight,
//! and one given by dates covers whole local days.
//!
//! Sans-IO: every question takes the moment as Unix milliseconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde::Deserialize;

/// What the centre is at a moment, for one site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening<'a> {
    Open,
    Closed,
    /// A public holiday, by its name.
    Holiday(&'a str),
}

impl Opening<'_> {
    /// The word the log and the menu's branches use.
    pub fn as_str(&self) -> &'static str {
        match self {
            Opening::Open => "open",
            Opening::Closed => "closed",
            Opening::Holiday(_) => "holiday",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HoursError {
    #[error("{file}: {message}")]
    Read { file: PathBuf, message: String },
    #[error("{file}: site {site}: {message}")]
    Site {
        file: PathBuf,
        site: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteHours {
    time_zone: String,
    mon: String,
    tue: String,
    wed: String,
    thu: String,
    fri: String,
    sat: String,
    sun: String,
    #[serde(default, rename = "holiday")]
    holidays: Vec<HolidayConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidayConfig {
    name: String,
    from: String,
    to: Option<String>,
}

/// A span of local minutes of one day, `[from, to)`, 0..=1440.
type Minutes = (u16, u16);

#[derive(Debug, Clone)]
struct Holiday {
    name: String,
    /// `[from_ms, to_ms)`, Unix milliseconds.
    from_ms: i64,
    to_ms: i64,
}

/// One site's schedule.
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: TimeZone,
    /// Monday first.
    week: [Vec<Minutes>; 7],
    holidays: Vec<Holiday>,
}

impl Calendar {
    /// Open, closed or a holiday at `at_ms` (Unix milliseconds). A holiday
    /// overrides the weekly schedule.
    pub fn opening(&self, at_ms: i64) -> Opening<'_> {
        if let Some(h) = self
            .holidays
            .iter()
            .find(|h| h.from_ms <= at_ms && at_ms < h.to_ms)
        {
            return Opening::Holiday(&h.name);
        }
        let Ok(at) = Timestamp::from_millisecond(at_ms) else {
            return Opening::Closed;
        };
        let local = at.to_zoned_datetime(self.zone.clone());
        let day = local.weekday().to_monday_zero_offset() as usize;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        if self.week[day]
            .iter()
            .any(|&(from, to)| from <= minute && minute < to)
        {
            Opening::Open
        } else {
            Opening::Closed
        }
    }
}

/// Every site's schedule; a site without one is open around the clock.
#[derive(Debug, Clone, Default)]
pub struct Calendars {
    sites: BTreeMap<String, Calendar>,
}

impl Calendars {
    pub fn load(file: &Path) -> Result<Self, HoursError> {
        let text = std::fs::read_to_string(file).map_err(|e| HoursError::Read {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text, file)
    }

    pub fn parse(text: &str, file: &Path) -> Result<Self, HoursError> {
        let raw: BTreeMap<String, SiteHours> =
            toml::from_str(text).map_err(|e| HoursError::Read {
                file: file.to_path_buf(),
                message: e.to_string(),
            })?;
        let mut sites = BTreeMap::new();
        for (site, hours) in raw {
            let calendar = calendar(&hours).map_err(|message| HoursError::Site {
                file: file.to_path_buf(),
                site: site.clone(),
                message,
            })?;
            sites.insert(site, calendar);
        }
        Ok(Self { sites })
    }

    /// The sites that have a schedule.
    pub fn sites(&self) -> impl Iterator<Item = &str> {
        self.sites.keys().map(String::as_str)
    }

    pub fn opening(&self, site: &str, at_ms: i64) -> Opening<'_> {
        match self.sites.get(site) {
            Some(c) => c.opening(at_ms),
            None => Opening::Open,
        }
    }
}

fn calendar(hours: &SiteHours) -> Result<Calendar, String> {
    let zone = time_zone(&hours.time_zone)?;
    let mut week: [Vec<Minutes>; 7] = Default::default();
    let days = [
        ("mon", &hours.mon),
        ("tue", &hours.tue),
        ("wed", &hours.wed),
        ("thu", &hours.thu),
        ("fri", &hours.fri),
        ("sat", &hours.sat),
        ("sun", &hours.sun),
    ];
    for (i, (day, spans)) in days.into_iter().enumerate() {
        week[i] = day_spans(spans).map_err(|e| format!("{day}: {e}"))?;
    }
    let mut holidays = Vec::new();
    for h in &hours.holidays {
        let name = h.name.trim();
        if name.is_empty() {
            return Err(format!("a holiday from {:?} has no name", h.from));
        }
        let (from_ms, to_ms) =
            holiday_span(&zone, &h.from, h.to.as_deref()).map_err(|e| format!("{name}: {e}"))?;
        holidays.push(Holiday {
            name: name.to_string(),
            from_ms,
            to_ms,
        });
    }
    Ok(Calendar {
        zone,
        week,
        holidays,
    })
}

pub(crate) fn time_zone(name: &str) -> Result<TimeZone, String> {
    if name.starts_with(['+', '-']) {
        let offset = super::LocalTime::parse(name)?;
        let seconds = offset.offset_minutes as i32 * 60;
        let offset = jiff::tz::Offset::from_seconds(seconds).map_err(|e| e.to_string())?;
        return Ok(TimeZone::fixed(offset));
    }
    TimeZone::get(name).map_err(|_| {
        format!("time_zone {name:?} is not a time zone (an IANA name such as \"Asia/Shanghai\", or \"+08:00\")")
    })
}

/// "08:00-12:00, 13:30-20:00"; "" closed all day; "00:00-24:00" open all
/// day. Spans in order, not overlapping; one across midnight is written as
/// two (this day's "20:00-24:00", the next day's "00:00-02:00").
fn day_spans(text: &str) -> Result<Vec<Minutes>, String> {
    let mut spans: Vec<Minutes> = Vec::new();
    for span in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || format!("{span:?} is not HH:MM-HH:MM");
        let (from, to) = span.split_once('-').ok_or_else(bad)?;
        let (from, to) = (
            minute_of_day(from.trim()).ok_or_else(bad)?,
            minute_of_day(to.trim()).ok_or_else(bad)?,
        );
        if from >= to {
            return Err(format!(
                "{span:?} ends before it starts (write a night as two days' spans)"
            ));
        }
        if let Some(&(_, last_to)) = spans.last()
            && from < last_to
        {
            return Err(format!(
                "{span:?} overlaps or comes before the span before it"
            ));
        }
        spans.push((from, to));
    }
    Ok(spans)
}

/// "HH:MM", 00:00 to 24:00.
pub(crate) fn minute_of_day(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    let minute = h * 60 + m;
    (m < 60 && minute <= 24 * 60).then_some(minute)
}

/// A holiday's `[from, to)` in Unix ms: dates cover whole local days (`to`
/// included, the same day when left out); "YYYY-MM-DDTHH:MM" is a moment.
fn holiday_span(zone: &TimeZone, from: &str, to: Option<&str>) -> Result<(i64, i64), String> {
    let from_ms = moment(zone, from, false)?;
    let to_ms = match to {
        Some(to) => moment(zone, to, true)?,
        None if !from.contains('T') => moment(zone, from, true)?,
        None => return Err(format!("from {from:?} is a moment: give `to` too")),
    };
    if to_ms <= from_ms {
        return Err(format!("ends ({to:?}) before it starts ({from:?})"));
    }
    Ok((from_ms, to_ms))
}

/// A local date (its start, or with `end_of_day` the start of the next
/// day) or a local date and time, in Unix ms. A time that summer time
/// skips is taken as the moment after the gap.
fn moment(zone: &TimeZone, text: &str, end_of_day: bool) -> Result<i64, String> {
    let zoned = if text.contains('T') {
        let at: DateTime = text
            .parse()
            .map_err(|_| format!("{text:?} is not YYYY-MM-DDTHH:MM"))?;
        at.to_zoned_datetime(zone.clone())
    } else {
        let day: Date = text
            .parse()
            .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD)"))?;
        let day = if end_of_day {
            day.tomorrow().map_err(|e| e.to_string())?
        } else {
            day
        };
        day.to_zoned_datetime(zone.clone())
    };
    zoned
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GARDEN: &str = r#"
        [garden]
        time_zone = "Asia/Shanghai"
        mon = "08:00-20:00"
        tue = "08:00-20:00"
        wed = "08:00-20:00"
        thu = "08:00-20:00"
        fri = "08:00-12:00, 13:00-20:00"
        sat = "09:00-17:00"
        sun = ""

        [[garden.holiday]]
        name = "National Day"
        from = "2026-10-01"
        to = "2026-10-07"

        [[garden.holiday]]
        name = "New Year's Eve"
        from = "2026-12-31T18:00"
        to = "2027-01-01T09:00"

        [london]
        time_zone = "Europe/London"
        mon = "09:00-17:00"
        tue = "09:00-17:00"
        wed = "09:00-17:00"
        thu = "09:00-17:00"
        fri = "09:00-17:00"
        sat = ""
        sun = "00:00-24:00"
    "#;

    fn calendars() -> Calendars {
        Calendars::parse(GARDEN, Path::new("hours.toml")).unwrap()
    }

    /// Unix ms of a moment written with its UTC offset.
    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    /// Each (site, moment, what the calendar says then).
    fn expect(cases: &[(&str, &str, Opening)]) {
        let c = calendars();
        for (site, moment, want) in cases {
            assert_eq!(c.opening(site, at(moment)), *want, "{site} at {moment}");
        }
    }

    use Opening::{Closed, Open};

    #[test]
    fn the_weekly_schedule_in_the_sites_own_time() {
        expect(&[
            // Tuesday 2026-12-01 in Beijing.
            ("garden", "2026-12-01T07:59:59+08:00", Closed),
            ("garden", "2026-12-01T08:00:00+08:00", Open),
            ("garden", "2026-12-01T19:59:59+08:00", Open),
            ("garden", "2026-12-01T20:00:00+08:00", Closed),
            // 01:00 UTC is 09:00 in Beijing: open, though night in UTC.
            ("garden", "2026-12-01T01:00:00Z", Open),
            // Friday's lunch break; Saturday's short day; Sunday closed.
            ("garden", "2026-12-04T12:30:00+08:00", Closed),
            ("garden", "2026-12-04T13:00:00+08:00", Open),
            ("garden", "2026-12-05T16:59:00+08:00", Open),
            ("garden", "2026-12-06T12:00:00+08:00", Closed),
            // A site without a schedule never closes.
            ("lakeside", "2026-12-06T03:00:00+08:00", Open),
        ]);
    }

    #[test]
    fn holidays_by_whole_days_override_the_week() {
        let national = Opening::Holiday("National Day");
        expect(&[
            // Thursday 1 October to Wednesday 7 October, whole local days.
            ("garden", "2026-09-30T19:00:00+08:00", Open),
            ("garden", "2026-09-30T23:59:59+08:00", Closed),
            ("garden", "2026-10-01T00:00:00+08:00", national),
            ("garden", "2026-10-05T10:00:00+08:00", national),
            ("garden", "2026-10-07T23:59:59+08:00", national),
            ("garden", "2026-10-08T08:00:00+08:00", Open),
        ]);
        assert_eq!(national.as_str(), "holiday");
    }

    #[test]
    fn a_holiday_spanning_midnight() {
        let eve = Opening::Holiday("New Year's Eve");
        // Thursday 31 December: open until 18:00, then the holiday runs
        // through midnight into Friday until 09:00, then Friday's hours.
        expect(&[
            ("garden", "2026-12-31T17:59:00+08:00", Open),
            ("garden", "2026-12-31T18:00:00+08:00", eve),
            ("garden", "2026-12-31T23:59:59+08:00", eve),
            ("garden", "2027-01-01T00:00:00+08:00", eve),
            ("garden", "2027-01-01T08:59:59+08:00", eve),
            ("garden", "2027-01-01T09:00:00+08:00", Open),
        ]);
    }

    #[test]
    fn a_site_in_another_time_zone_keeps_its_hours_across_summer_time() {
        expect(&[
            // One instant: 17:30 in Beijing is 09:30 in London in winter.
            ("london", "2026-12-01T09:30:00Z", Open),
            ("garden", "2026-12-01T09:30:00Z", Open),
            ("london", "2026-12-01T12:30:00Z", Open),
            ("garden", "2026-12-01T12:30:00Z", Closed),
            // London opens at 09:00 local in winter (09:00 UTC) and in
            // summer (08:00 UTC): Monday 2026-03-30 is after the change.
            ("london", "2026-03-23T08:30:00Z", Closed),
            ("london", "2026-03-30T08:30:00Z", Open),
            ("london", "2026-03-30T16:30:00Z", Closed),
            // Sunday open all day, Saturday closed, in local days.
            ("london", "2026-12-05T23:59:00Z", Closed),
            ("london", "2026-12-06T00:00:00Z", Open),
        ]);
    }

    #[test]
    fn a_fixed_offset_is_a_time_zone_too() {
        let text = GARDEN.replace("\"Asia/Shanghai\"", "\"+08:00\"");
        let c = Calendars::parse(&text, Path::new("hours.toml")).unwrap();
        assert_eq!(c.opening("garden", at("2026-12-01T08:00:00+08:00")), Open);
        assert_eq!(c.opening("garden", at("2026-12-01T07:00:00+08:00")), Closed);
    }

    #[test]
    fn mistakes_are_refused_at_load_with_the_site_and_the_reason() {
        let refused = |from: &str, to: &str| {
            let text = GARDEN.replacen(from, to, 1);
            Calendars::parse(&text, Path::new("hours.toml"))
                .unwrap_err()
                .to_string()
        };
        for (from, to, says) in [
            ("\"Asia/Shanghai\"", "\"Asia/Atlantis\"", "Asia/Atlantis"),
            ("\"Asia/Shanghai\"", "\"+15:00\"", "beyond"),
            (
                "mon = \"08:00-20:00\"",
                "mon = \"20:00-08:00\"",
                "ends before",
            ),
            ("mon = \"08:00-20:00\"", "mon = \"8-20\"", "not HH:MM-HH:MM"),
            (
                "mon = \"08:00-20:00\"",
                "mon = \"08:00-24:01\"",
                "not HH:MM",
            ),
            ("12:00, 13:00", "12:00, 11:00", "overlaps"),
            (
                "to = \"2026-10-07\"",
                "to = \"2026-09-07\"",
                "before it starts",
            ),
            (
                "from = \"2026-10-01\"",
                "from = \"2026-10-32\"",
                "not a date",
            ),
            ("to = \"2027-01-01T09:00\"", "", "give `to` too"),
            ("name = \"National Day\"", "name = \" \"", "no name"),
            ("sun = \"\"", "", "missing field `sun`"),
            ("sun = \"\"", "sun = \"\"\nsunday = \"\"", "unknown field"),
        ] {
            let error = refused(from, to);
            assert!(error.contains(says), "{from} -> {to}: {error}");
        }
        let error = refused(
            "time_zone = \"Europe/London\"",
            "time_zone = \"Europe/Lndon\"",
        );
        assert!(error.contains("site london"), "{error}");
    }
}
