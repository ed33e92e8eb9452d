//! Recording a caller's voice message: G.711 payloads in, 16-bit PCM WAV
//! out. Sans-IO except for writing the finished file; length and silence
//! are counted in samples, not read from a clock.

use std::path::Path;

use super::g711::Law;

/// Samples per second (G.711).
pub const RATE: u32 = 8000;

/// Mean absolute amplitude under which a packet counts as silence (about
/// -36 dBFS: room noise and comfort noise, not a voice).
const SILENCE_LEVEL: u32 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Reached the maximum length.
    MaxLength,
    /// The caller was silent this long.
    Silence,
}

#[derive(Debug)]
pub struct Recorder {
    law: Law,
    samples: Vec<i16>,
    max_samples: usize,
    silence_samples: usize,
    /// Consecutive silent samples at the end, stored ...
    silent_tail: usize,
    /// ... and time with no packets at all since, in samples.
    gap: usize,
}

impl Recorder {
    pub fn new(law: Law, max: std::time::Duration, silence: std::time::Duration) -> Self {
        let samples = |d: std::time::Duration| (d.as_millis() as usize) * RATE as usize / 1000;
        Self {
            law,
            samples: Vec::new(),
            max_samples: samples(max),
            silence_samples: samples(silence).max(1),
            silent_tail: 0,
            gap: 0,
        }
    }

    /// Adds one packet's payload; says when the recording should stop.
    pub fn push(&mut self, payload: &[u8]) -> Option<Stopped> {
        let room = self.max_samples.saturating_sub(self.samples.len());
        let take = &payload[..payload.len().min(room)];
        let mut level: u32 = 0;
        for &b in take {
            let s = self.law.decode(b);
            level += s.unsigned_abs() as u32;
            self.samples.push(s);
        }
        if !take.is_empty() && level / take.len() as u32 <= SILENCE_LEVEL {
            self.silent_tail += take.len();
        } else if !take.is_empty() {
            self.silent_tail = 0;
            self.gap = 0;
        }
        self.stopped()
    }

    /// No packet came for `d` (the caller stopped sending): counts as silence.
    pub fn push_gap(&mut self, d: std::time::Duration) -> Option<Stopped> {
        self.gap += (d.as_millis() as usize) * RATE as usize / 1000;
        self.stopped()
    }

    fn stopped(&self) -> Option<Stopped> {
        if self.samples.len() >= self.max_samples {
            Some(Stopped::MaxLength)
        } else if self.silent_tail + self.gap >= self.silence_samples {
            Some(Stopped::Silence)
        } else {
            None
        }
    }

    /// The recording as kept: trailing silence cut off.
    pub fn samples(&self) -> &[i16] {
        let keep = self
            .samples
            .len()
            .saturating_sub(self.silent_tail.min(self.samples.len()));
        &self.samples[..keep]
    }

    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.samples().len() as u64 * 1000 / RATE as u64)
    }

    /// Writes the WAV (8 kHz mono 16-bit PCM).
    pub fn write(&self, path: &Path) -> Result<(), hound::Error> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Never over another file: a recording is evidence (RFC-less, but a
        // fee dispute is settled by it).
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        let mut w = hound::WavWriter::new(std::io::BufWriter::new(file), spec)?;
        for &s in self.samples() {
            w.write_sample(s)?;
        }
        w.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tone(law: Law, ms: usize) -> Vec<Vec<u8>> {
        (0..ms / 20)
            .map(|p| {
                (0..160)
                    .map(|i| {
                        let t = (p * 160 + i) as f64 / 8000.0;
                        law.encode((8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16)
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn silence_after_speech_ends_it_and_is_cut_off() {
        let mut r = Recorder::new(Law::Mu, Duration::from_secs(60), Duration::from_secs(2));
        for p in tone(Law::Mu, 3000) {
            assert_eq!(r.push(&p), None);
        }
        let quiet = vec![Law::Mu.silence(); 160];
        let mut stopped = None;
        for _ in 0..100 {
            stopped = stopped.or(r.push(&quiet));
        }
        assert_eq!(stopped, Some(Stopped::Silence));
        assert_eq!(r.duration(), Duration::from_millis(3000));
    }

    #[test]
    fn a_gap_in_the_packets_counts_as_silence() {
        let mut r = Recorder::new(Law::A, Duration::from_secs(60), Duration::from_secs(5));
        for p in tone(Law::A, 1000) {
            r.push(&p);
        }
        assert_eq!(r.push_gap(Duration::from_secs(4)), None);
        assert_eq!(r.push_gap(Duration::from_secs(1)), Some(Stopped::Silence));
        assert_eq!(r.duration(), Duration::from_millis(1000));
    }

    #[test]
    fn maximum_length_is_kept_exactly_and_written_as_wav() {
        let mut r = Recorder::new(Law::Mu, Duration::from_secs(1), Duration::from_secs(5));
        let mut stopped = None;
        for p in tone(Law::Mu, 2000) {
            stopped = stopped.or(r.push(&p));
        }
        assert_eq!(stopped, Some(Stopped::MaxLength));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec/m.wav");
        r.write(&path).unwrap();
        let wav = hound::WavReader::open(&path).unwrap();
        assert_eq!(wav.spec().sample_rate, 8000);
        assert_eq!(wav.duration(), 8000);
    }

    #[test]
    fn a_recording_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taken.wav");
        std::fs::write(&path, b"the first caller's complaint").unwrap();
        let mut r = Recorder::new(Law::Mu, Duration::from_secs(1), Duration::from_secs(5));
        for p in tone(Law::Mu, 200) {
            r.push(&p);
        }
        assert!(r.write(&path).is_err());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"the first caller's complaint"
        );
    }
}
