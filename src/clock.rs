//! The wall clock beside the monotonic one. One pairing is taken at start
//! and every `Instant` is turned into Unix milliseconds through it, so the
//! times the log keeps and the times the live figures were computed from
//! are the same to the millisecond: a replay of the log gives the same
//! figures. (A step of the system clock after start is not followed; the
//! next start picks it up.)

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    base: Instant,
    base_ms: i64,
}

impl WallClock {
    pub fn start() -> Self {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self::paired(Instant::now(), base_ms)
    }

    /// A clock on which `base` is Unix millisecond `base_ms` (a report lays
    /// the log's milliseconds out from any instant).
    pub fn paired(base: Instant, base_ms: i64) -> Self {
        Self { base, base_ms }
    }

    /// The instant of Unix millisecond `ms` (`None` where this platform's
    /// instants cannot reach).
    pub fn instant(&self, ms: i64) -> Option<Instant> {
        let d = Duration::from_millis(ms.abs_diff(self.base_ms));
        if ms >= self.base_ms {
            self.base.checked_add(d)
        } else {
            self.base.checked_sub(d)
        }
    }

    /// Unix milliseconds at `at`.
    pub fn ms(&self, at: Instant) -> i64 {
        match at.checked_duration_since(self.base) {
            Some(d) => self.base_ms + d.as_millis() as i64,
            None => self.base_ms - self.base.duration_since(at).as_millis() as i64,
        }
    }

    /// `at` on the millisecond grid the log uses (`ms(quantize(at)) ==
    /// ms(at)`, and differences of quantized instants are whole ms).
    pub fn quantize(&self, at: Instant) -> Instant {
        let ms = self.ms(at) - self.base_ms;
        if ms >= 0 {
            self.base + Duration::from_millis(ms as u64)
        } else {
            self.base - Duration::from_millis(ms.unsigned_abs())
        }
    }

    pub fn now(&self) -> Instant {
        self.quantize(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_instants_map_to_the_same_milliseconds() {
        let clock = WallClock::start();
        for offset_us in [0u64, 1, 999, 1000, 1_500, 123_456_789] {
            let at = clock.base + Duration::from_micros(offset_us);
            assert_eq!(clock.ms(clock.quantize(at)), clock.ms(at));
            assert_eq!(
                clock.quantize(at).duration_since(clock.base).as_micros() % 1000,
                0
            );
        }
        let before = clock.base - Duration::from_micros(1_500);
        assert_eq!(clock.ms(before), clock.base_ms - 1);
    }

    #[test]
    fn a_millisecond_is_the_instant_that_maps_back_to_it() {
        let clock = WallClock::start();
        for ms in [-5_000, -1, 0, 1, 86_400_000] {
            let at = clock.instant(clock.base_ms + ms).unwrap();
            assert_eq!(clock.ms(at), clock.base_ms + ms);
        }
    }
}
