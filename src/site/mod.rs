//! The centre's local time: dates and times said to callers, shown on the
//! pages and in reports are in the site's time zone, a fixed offset from
//! UTC (`[site] utc_offset`, "+08:00" for China, which keeps no summer
//! time). Each site's opening hours and holidays: [`hours`].

pub mod hours;

/// A fixed offset from UTC, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalTime {
    pub offset_minutes: i16,
}

const DAY_MS: i64 = 86_400_000;

impl LocalTime {
    /// "+HH:MM" or "-HH:MM", within ±14:00.
    pub fn parse(offset: &str) -> Result<Self, String> {
        let bad = || format!("{offset:?} is not +HH:MM or -HH:MM");
        let sign = match offset.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(bad()),
        };
        let (h, m) = offset[1..].split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let (h, m): (i16, i16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 || h * 60 + m > 14 * 60 {
            return Err(format!("{offset:?} is beyond UTC±14:00"));
        }
        Ok(Self {
            offset_minutes: sign * (h * 60 + m),
        })
    }

    fn local_ms(&self, at_ms: i64) -> i64 {
        at_ms + self.offset_minutes as i64 * 60_000
    }

    /// "2026-12-01 21:14:05", local time.
    pub fn format(&self, at_ms: i64) -> String {
        let local = self.local_ms(at_ms);
        let (y, mo, d) = civil_date(local.div_euclid(DAY_MS));
        let secs = local.rem_euclid(DAY_MS) / 1000;
        format!(
            "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }

    /// "21:14:05", local time.
    pub fn format_time(&self, at_ms: i64) -> String {
        self.format(at_ms)[11..].to_string()
    }

    /// The local hour of the day (0-23).
    pub fn hour(&self, at_ms: i64) -> u32 {
        (self.local_ms(at_ms).rem_euclid(DAY_MS) / 3_600_000) as u32
    }

    /// The local date of `at_ms`, "2026-12-01".
    pub fn date(&self, at_ms: i64) -> String {
        self.format(at_ms)[..10].to_string()
    }

    /// `[from, to)` in Unix ms of the local day "YYYY-MM-DD".
    pub fn day(&self, date: &str) -> Result<(i64, i64), String> {
        let start = self.parse_local(date, "00:00")?;
        Ok((start, start + DAY_MS))
    }

    /// Unix ms of "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM" (or with a space),
    /// local time.
    pub fn parse_moment(&self, text: &str) -> Result<i64, String> {
        match text.split_once(['T', ' ']) {
            Some((date, time)) => self.parse_local(date, time),
            None => self.parse_local(text, "00:00"),
        }
    }

    fn parse_local(&self, date: &str, time: &str) -> Result<i64, String> {
        let bad_date = || format!("{date:?} is not a date (YYYY-MM-DD)");
        let parts: Vec<&str> = date.split('-').collect();
        let [y, m, d] = parts[..] else {
            return Err(bad_date());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad_date());
        }
        let y: i64 = y.parse().map_err(|_| bad_date())?;
        let m: u32 = m.parse().map_err(|_| bad_date())?;
        let d: u32 = d.parse().map_err(|_| bad_date())?;
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return Err(bad_date());
        }
        let bad_time = || format!("{time:?} is not a time (HH:MM)");
        let (h, min) = time.split_once(':').ok_or_else(bad_time)?;
        let h: i64 = h.parse().map_err(|_| bad_time())?;
        let min: i64 = min
            .get(..2)
            .unwrap_or(min)
            .parse()
            .map_err(|_| bad_time())?;
        if !(0..24).contains(&h) || !(0..60).contains(&min) {
            return Err(bad_time());
        }
        let local = days_from_civil(y, m, d) * DAY_MS + (h * 60 + min) * 60_000;
        Ok(local - self.offset_minutes as i64 * 60_000)
    }
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's civil_from_days).
pub fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) to days since 1970-01-01 (days_from_civil).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_both_ways() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(20_780), (2026, 11, 23));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        for days in [-800_000, -1, 0, 11_016, 20_788, 400_000] {
            let (y, m, d) = civil_date(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn local_days_and_times_in_the_sites_zone() {
        let beijing = LocalTime::parse("+08:00").unwrap();
        let (from, to) = beijing.day("2026-12-01").unwrap();
        assert_eq!(beijing.format(from), "2026-12-01 00:00:00");
        assert_eq!(to - from, DAY_MS);
        // Midnight in Beijing is 16:00 UTC the day before.
        assert_eq!(LocalTime::default().format(from), "2026-11-30 16:00:00");
        let at = beijing.parse_moment("2026-12-01T21:14").unwrap();
        assert_eq!(beijing.format(at + 5_000), "2026-12-01 21:14:05");
        assert_eq!(beijing.hour(at), 21);
        assert_eq!(LocalTime::parse("-03:30").unwrap().offset_minutes, -210);
        for bad in ["08:00", "+8:00", "+15:00", "+08:60", ""] {
            assert!(LocalTime::parse(bad).is_err(), "{bad}");
        }
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-12-01",
            "2026-12-01T25:00",
            "today",
        ] {
            assert!(beijing.parse_moment(bad).is_err(), "{bad}");
        }
    }
}
