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
//!
//! Lines not meant for a terminal are laid out by [`Plain`] and
//! [`PlainFields`]: the same line as tracing's own format, without its
//! colour handling, with the date worked out once a second, not once a
//! line, and the fields written straight (a call's line costs 0.86 µs, not
//! the 1.77 of tracing's own fields: `cargo bench --bench hot_paths --
//! log:`).

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

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

/// The buffer the last flush wrote out, emptied, for the next swap: the
/// loggers write into memory already touched, not fresh pages.
fn spare() -> &'static Mutex<Vec<u8>> {
    static SPARE: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    SPARE.get_or_init(|| Mutex::new(Vec::with_capacity(64 * 1024)))
}

/// Writes out whatever is gathered (swapped out first: loggers do not
/// wait for stderr).
/// Stderr is held from the swap to the end of the write, so two flushes
/// (the flusher's and a panic's) write their lines in the order logged.
pub fn flush() {
    let mut err = std::io::stderr().lock();
    let mut spare = spare().lock().unwrap_or_else(|e| e.into_inner());
    {
        let mut g = gathered().lock().unwrap_or_else(|e| e.into_inner());
        if g.is_empty() {
            return;
        }
        std::mem::swap(&mut *g, &mut *spare);
    }
    let _ = err.write_all(&spare);
    spare.clear();
    // A flood's buffer is not kept.
    if spare.capacity() > MAX_GATHERED * 2 {
        *spare = Vec::with_capacity(64 * 1024);
    }
}

/// A line as tracing's own format writes it without colours
/// (`2026-12-03T04:24:24.494734Z  INFO target: message key=value`), the
/// hotline opening no spans.
#[derive(Debug, Default, Clone, Copy)]
pub struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        write_now(&mut writer)?;
        // `{:>5}` of the level, written without the formatting machinery.
        let level = match *meta.level() {
            tracing::Level::TRACE => " TRACE ",
            tracing::Level::DEBUG => " DEBUG ",
            tracing::Level::INFO => "  INFO ",
            tracing::Level::WARN => "  WARN ",
            tracing::Level::ERROR => " ERROR ",
        };
        writer.write_str(level)?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// `n` in decimal, as `{n}` writes it, without the formatting machinery:
/// a call's lines hold a dozen numbers.
fn write_decimal(writer: &mut impl std::fmt::Write, n: u64) -> std::fmt::Result {
    let mut digits = [0u8; 20];
    writer.write_str(decimal(n, &mut digits))
}

/// `n`'s decimal digits, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[start..]).unwrap_or_default()
}

/// Whether `{value:?}` of this string is the string in quotes: printable
/// ASCII with nothing to escape (a number, a Call-ID, a URI).
fn quotes_as_is(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// The fields of a [`Plain`] line (`message key=value key="text"`), as
/// tracing's own formatter writes them without colours, but written
/// straight: numbers and booleans without a detour through `Debug`, names
/// without the colour wrapper. Lines from the `log` crate lose their
/// `log.*` fields (they are in the line's target), as with tracing's.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainFields;

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

/// A field's name as written: `r#type` is `type`.
fn shown(field: &tracing::field::Field) -> &'static str {
    let name = field.name();
    name.strip_prefix("r#").unwrap_or(name)
}

impl PlainVisitor<'_> {
    /// `name=` (after a space unless first); false when the field is not
    /// written (a `log.*` field, or after an error).
    fn name(&mut self, field: &tracing::field::Field) -> bool {
        if self.result.is_err() {
            return false;
        }
        let name = field.name();
        if name.starts_with("log.") {
            return false;
        }
        if !std::mem::take(&mut self.first) {
            self.result = self.writer.write_char(' ');
        }
        if name != "message" {
            let name = shown(field);
            self.result = self
                .result
                .and_then(|()| self.writer.write_str(name))
                .and_then(|()| self.writer.write_char('='));
        }
        self.result.is_ok()
    }
}

impl tracing::field::Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if self.name(field) {
            self.result = match field.name() {
                "message" => self.writer.write_str(value),
                _ if quotes_as_is(value) => self
                    .writer
                    .write_char('"')
                    .and_then(|()| self.writer.write_str(value))
                    .and_then(|()| self.writer.write_char('"')),
                _ => write!(self.writer, "{value:?}"),
            };
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if self.name(field) {
            self.result = write_decimal(&mut self.writer, value);
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        if self.name(field) {
            let sign = if value < 0 { "-" } else { "" };
            self.result = self
                .writer
                .write_str(sign)
                .and_then(|()| write_decimal(&mut self.writer, value.unsigned_abs()));
        }
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        if self.name(field) {
            self.result = self.writer.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if self.name(field) {
            self.result = write!(self.writer, "{value:?}");
        }
    }

    /// The error, then its sources as a list (`error=e error.sources=[a, b]`).
    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        if !self.name(field) {
            return;
        }
        self.result = write!(self.writer, "{value}");
        if let Some(source) = value.source() {
            let name = shown(field);
            let sources = std::iter::successors(Some(source), |e| e.source());
            self.result = self.result.and_then(|()| {
                write!(self.writer, " {name}.sources=[")?;
                for (i, e) in sources.enumerate() {
                    if i > 0 {
                        self.writer.write_str(", ")?;
                    }
                    write!(self.writer, "{e}")?;
                }
                self.writer.write_char(']')
            });
        }
    }
}

/// The time now, to the microsecond, in UTC (RFC 3339): the date and the
/// second written once a second per thread, then only the microseconds.
fn write_now(writer: &mut Writer<'_>) -> std::fmt::Result {
    thread_local! {
        /// The second last written, and its text up to the decimal point.
        static SECOND: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((u64::MAX, String::new()))
        };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != now.as_secs() {
            *second = now.as_secs();
            text.clear();
            let at = jiff::Timestamp::from_second(now.as_secs() as i64)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let _ = write!(text, "{}", at.strftime("%Y-%m-%dT%H:%M:%S"));
        }
        // The microseconds, six digits with leading zeros.
        let mut digits = [0u8; 20];
        let micros = decimal(u64::from(now.subsec_micros()) + 1_000_000, &mut digits);
        writer.write_str(text)?;
        writer.write_char('.')?;
        writer.write_str(&micros[1..])?;
        writer.write_char('Z')
    })
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

/// Lines written by a test's subscriber, kept to be read back.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct TestLines(std::sync::Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl TestLines {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl Write for TestLines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// What a subscriber laying out lines with `format` writes for two
    /// events.
    fn lines<F, N>(format: F, fields: N) -> String
    where
        F: FormatEvent<tracing_subscriber::Registry, N> + Send + Sync + 'static,
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let buf = TestLines::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || out.clone())
            .fmt_fields(fields)
            .event_format(format)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let call = "c1";
            tracing::info!(%call, number = "13800138000", n = 5u64, "call started");
            // Strings with something to escape, numbers at their ends.
            tracing::trace!(
                name = "Zhang \"San\"\t王\\",
                bell = "\u{7}",
                quoted = "say \"hi\"",
                path = "C:\\prompts",
                del = "\u{7f}",
                zero = 0u64,
                max = u64::MAX,
                min = i64::MIN,
                "a line to escape"
            );
            tracing::error!(error = %std::io::Error::other("no \"port\""), "cannot bind RTP port");
            // Every kind of field, and an error with sources.
            #[derive(Debug, thiserror::Error)]
            #[error("cannot append")]
            struct Outer(#[source] std::io::Error);
            let outer = Outer(std::io::Error::other("disk full"));
            let failed: &(dyn std::error::Error + 'static) = &outer;
            tracing::warn!(
                r#type = "agent",
                late = -3i64,
                ok = true,
                share = 0.25f64,
                big = 1u128 << 70,
                state = ?Some("paused"),
                error = failed,
                "a line with everything"
            );
            tracing::debug!("only a message with \"quotes\"");
        });
        buf.text()
    }

    #[test]
    fn a_plain_line_is_tracings_own_but_for_the_time_it_was_written() {
        let ours = lines(Plain, PlainFields);
        let theirs = lines(
            tracing_subscriber::fmt::format().with_ansi(false),
            tracing_subscriber::fmt::format::DefaultFields::new(),
        );
        let (ours, theirs): (Vec<_>, Vec<_>) = (ours.lines().collect(), theirs.lines().collect());
        assert_eq!((ours.len(), theirs.len()), (5, 5), "{ours:?}");
        for (o, t) in ours.iter().zip(&theirs) {
            // 2026-12-03T04:24:24.494734Z: 27 characters, then the same.
            assert_eq!(o[27..], t[27..], "{o}\n{t}");
            assert_eq!(o.as_bytes()[26], b'Z', "{o}");
            let (ts, tt) = (
                jiff::Timestamp::from_str(&o[..27]).expect(o),
                jiff::Timestamp::from_str(&t[..27]).expect(t),
            );
            assert!((tt - ts).as_secs().abs() < 2, "{o}\n{t}");
        }
        assert!(ours[0].ends_with(
            " INFO hotline::logging::tests: call started call=c1 number=\"13800138000\" n=5"
        ));
    }

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
