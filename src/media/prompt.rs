//! Prompts: 8 kHz mono 16-bit PCM WAV files, encoded to G.711 once at load
//! time so playback only copies bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::g711::Law;

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt {path}: cannot read: {source}")]
    Read { path: PathBuf, source: hound::Error },
    #[error(
        "prompt {path}: must be 8000 Hz mono 16-bit PCM WAV, found {rate} Hz, {channels} channel(s), {bits}-bit {format}"
    )]
    Format {
        path: PathBuf,
        rate: u32,
        channels: u16,
        bits: u16,
        format: &'static str,
    },
    #[error("prompt {path}: no audio")]
    Empty { path: PathBuf },
    #[error("prompt {name:?} not found in {dir} (expected {dir}/{name}.wav)")]
    Missing { name: String, dir: PathBuf },
}

/// One prompt, ready to send in either law.
#[derive(Debug)]
pub struct Prompt {
    pub name: String,
    mu: Vec<u8>,
    a: Vec<u8>,
}

impl Prompt {
    pub fn from_samples(name: &str, samples: &[i16]) -> Self {
        Self {
            name: name.to_string(),
            mu: samples.iter().map(|s| Law::Mu.encode(*s)).collect(),
            a: samples.iter().map(|s| Law::A.encode(*s)).collect(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, PromptError> {
        let read_err = |source| PromptError::Read {
            path: path.to_path_buf(),
            source,
        };
        let reader = hound::WavReader::open(path).map_err(read_err)?;
        let spec = reader.spec();
        if spec.sample_rate != 8000
            || spec.channels != 1
            || spec.bits_per_sample != 16
            || spec.sample_format != hound::SampleFormat::Int
        {
            return Err(PromptError::Format {
                path: path.to_path_buf(),
                rate: spec.sample_rate,
                channels: spec.channels,
                bits: spec.bits_per_sample,
                format: match spec.sample_format {
                    hound::SampleFormat::Int => "integer",
                    hound::SampleFormat::Float => "float",
                },
            });
        }
        let samples = reader
            .into_samples::<i16>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err)?;
        if samples.is_empty() {
            return Err(PromptError::Empty {
                path: path.to_path_buf(),
            });
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self::from_samples(&name, &samples))
    }

    pub fn encoded(&self, law: Law) -> &[u8] {
        match law {
            Law::Mu => &self.mu,
            Law::A => &self.a,
        }
    }

    pub fn duration_ms(&self) -> u64 {
        self.mu.len() as u64 / 8
    }
}

/// The prompts the engine may play, by name (`welcome_en`, `goodbye_zh` ...).
#[derive(Debug, Default, Clone)]
pub struct PromptSet {
    prompts: HashMap<String, Arc<Prompt>>,
}

impl PromptSet {
    /// Loads `dir/<name>.wav` for every name; any problem is an error naming the file.
    pub fn load(dir: &Path, names: &[String]) -> Result<Self, PromptError> {
        let mut prompts = HashMap::new();
        for name in names {
            let path = dir.join(format!("{name}.wav"));
            if !path.is_file() {
                return Err(PromptError::Missing {
                    name: name.clone(),
                    dir: dir.to_path_buf(),
                });
            }
            prompts.insert(name.clone(), Arc::new(Prompt::load(&path)?));
        }
        Ok(Self { prompts })
    }

    /// Loads `required` (each must exist) and every other `*.wav` in `dir`
    /// (menu prompts, gift names); a broken file is an error naming it.
    pub fn load_dir(dir: &Path, required: &[String]) -> Result<Self, PromptError> {
        let mut set = Self::load(dir, required)?;
        let entries = std::fs::read_dir(dir).map_err(|_| PromptError::Missing {
            name: "*".into(),
            dir: dir.to_path_buf(),
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .collect();
        paths.sort();
        for path in paths {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if !set.prompts.contains_key(name) {
                set.prompts
                    .insert(name.to_string(), Arc::new(Prompt::load(&path)?));
            }
        }
        Ok(set)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.prompts.contains_key(name)
    }

    pub fn insert(&mut self, prompt: Prompt) {
        self.prompts.insert(prompt.name.clone(), Arc::new(prompt));
    }

    pub fn get(&self, name: &str) -> Option<Arc<Prompt>> {
        self.prompts.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, samples: usize) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..samples {
            w.write_sample((i % 100) as i16).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn loads_8khz_mono_and_encodes_both_laws() {
        let dir = tempfile::tempdir().unwrap();
        write_wav(&dir.path().join("hello.wav"), 8000, 1, 1600);
        let set = PromptSet::load(dir.path(), &["hello".into()]).unwrap();
        let p = set.get("hello").unwrap();
        assert_eq!(p.duration_ms(), 200);
        assert_eq!(p.encoded(Law::A).len(), 1600);
    }

    #[test]
    fn wrong_rate_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        write_wav(&dir.path().join("wide.wav"), 16000, 1, 100);
        let err = PromptSet::load(dir.path(), &["wide".into()]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("wide.wav") && text.contains("16000 Hz"),
            "{text}"
        );
    }

    #[test]
    fn broken_and_missing_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("junk.wav"), b"RIFF\x10\x00\x00\x00WAVEjunk").unwrap();
        assert!(matches!(
            PromptSet::load(dir.path(), &["junk".into()]),
            Err(PromptError::Read { .. })
        ));
        assert!(matches!(
            PromptSet::load(dir.path(), &["absent".into()]),
            Err(PromptError::Missing { .. })
        ));
    }
}
