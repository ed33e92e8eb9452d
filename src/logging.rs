//! The log's way to stderr: lines gathered in memory and written out
//! together every [`FLUSH_EVERY`], not one `write` system call per line.
//!
//! A busy hotline logs a few lines a call (started, answered, media closed,
//! ended); written one by one, those writes were a tenth of the switch
//! thread's time at 2,000 calls a second. Gathered, a flush writes a few
//! hundred lines at once from a thread of its own, off the switch's path.
//!
//! What is lost: lines logged in the last [`FLUSH_EVERY`] before the
//! process is killed outright (SIGKILL, power). A panic writes the lines
//! gathered before it first, then its own message; leaving `main` writes
//! the rest ([`Flush`]). The record of what happened is the ticket log, not
//! this one.
//!
//! `HOTLINE_LOG_FLUSH_MS` sets the interval; 0 writes each line at once
//! (for whoever reads the log the moment the hotline answers, as the
//! project's end-to-end tests do).

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait to be written, unless `HOTLINE_LOG_FLUSH_MS`
/// says otherwise.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// The interval in effect: `HOTLINE_LOG_FLUSH_MS` when it is a number of
/// milliseconds, else [`FLUSH_EVERY`]; zero: each line written at once.
fn flush_every() -> Duration {
    static EVERY: OnceLock<Duration> = OnceLock::new();
    *EVERY.get_or_init(|| {
        std::env::var("HOTLINE_LOG_FLUSH_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(FLUSH_EVERY, Duration::from_millis)
    })
}

/// Gathered lines beyond this are written by the thread that logs one more:
/// a flood of lines takes memory no further than this.
const MAX_GATHERED: usize = 1 << 20;

/// The lines waiting, shared by the loggers, the flusher and the panic hook.
fn gathered() -> &'static Mutex<Vec<u8>> {
    static LINES: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LINES.get_or_init(|| Mutex::new(Vec::with_capacity(64 * 1024)))
}

/// Writes out whatever is gathered (swapped out first: loggers do not
/// wait for stderr).
/// Stderr is held from the swap to the end of the write, so two flushes
/// (the flusher's and a panic's) write their lines in the order logged.
pub fn flush() {
    let mut err = std::io::stderr().lock();
    let lines = {
        let mut g = gathered().lock().unwrap_or_else(|e| e.into_inner());
        if g.is_empty() {
            return;
        }
        std::mem::replace(&mut *g, Vec::with_capacity(64 * 1024))
    };
    let _ = err.write_all(&lines);
}

/// The writer tracing's formatter is given: each line goes to memory.
#[derive(Clone, Copy, Default)]
pub struct Gathered;

/// One line being logged.
pub struct Line;

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if flush_every().is_zero() {
            return std::io::stderr().lock().write(bytes);
        }
        let full = {
            let mut g = gathered().lock().unwrap_or_else(|e| e.into_inner());
            g.extend_from_slice(bytes);
            g.len() >= MAX_GATHERED
        };
        if full {
            flush();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Gathered {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line
    }
}

/// Writes what is left when dropped (at the end of `main`).
pub struct Flush(());

impl Drop for Flush {
    fn drop(&mut self) {
        flush();
    }
}

/// Starts the flusher thread and the panic hook's flush; the lines are
/// written by the end of `main` when the returned guard is dropped there.
pub fn start() -> Flush {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let every = flush_every();
        if every.is_zero() {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    flush();
                }
            });
        let earlier = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            flush();
            earlier(info);
        }));
    });
    Flush(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_in_memory_until_flushed_and_are_written_once() {
        let mut line = Line;
        line.write_all(b"one line\n").unwrap();
        line.write_all(b"another\n").unwrap();
        let waiting = gathered().lock().unwrap().clone();
        assert!(
            waiting.ends_with(b"one line\nanother\n"),
            "{:?}",
            String::from_utf8_lossy(&waiting)
        );
        flush();
        assert!(gathered().lock().unwrap().is_empty());
    }
}
