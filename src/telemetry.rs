//! Logging set-up: human text on a terminal, JSON lines on request, the
//! systemd journal when run by systemd. Logs go to stderr so stdout stays
//! clean for command output (`ledger list`, `sync --dry-run` bodies).
//!
//! In the journal every event and span field becomes a journal field, its
//! name uppercased (`source` -> `SOURCE`, `location` -> `LOCATION`,
//! `error_type` -> `ERROR_TYPE`), so `journalctl -u review-sync
//! SOURCE=acme-google` selects one source's lines.
//!
//! No secret, token or review text (comments, titles, reviewer names) is
//! logged at any level up to debug: secrets are `Secret`s whose `Debug`
//! redacts them, and review content is never a log field. Trace (`-vv`) may
//! show HTTP internals of the libraries.
//!
//! Text lines escape control characters in every field and the message
//! ([`crate::escape`]): an upstream error logged as `error = %e` must not
//! recolour a terminal or forge a line of its own. tracing-subscriber 0.3.23
//! escapes only some of them (ESC, BEL, BS, FF, DEL and C1 in the message
//! and in error values), not CR, LF or bidi controls, and not `%` fields.
//! JSON lines are escaped by JSON; the journal stores each field as given.
//!
//! A command that shows progress (`sync`) asks for a bar with
//! [`progress_bar`]: it is drawn only for text logs on a terminal, and log
//! lines are printed above it (the bar is cleared, the line written, the
//! bar redrawn), never into it. For JSON logs, the journal, or a stderr
//! that is not a terminal, the bar is hidden and writes nothing.

use crate::escape::Escaped;
use indicatif::{ProgressBar, ProgressDrawTarget};
use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use tracing::field::Field;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where logs go, once [`init`] chose: a bar is drawn only for `Terminal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// Text on a terminal's stderr.
    Terminal,
    /// JSON lines, the journal, or a stderr that is a pipe or a file.
    Other,
}

static SINK: OnceLock<Sink> = OnceLock::new();
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Whether logs are JSON lines (`--log-format json`): a command's own notes
/// on stderr are then log events too, so that every stderr line is JSON.
pub fn logs_are_json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// The visible progress bar, if any: log lines are printed above it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn lock_bar() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    // Poisoning only means a panic while printing; the slot stays usable.
    BAR.lock().unwrap_or_else(|p| p.into_inner())
}

/// A progress bar (a spinner) on stderr, drawn only when logs are text on a
/// terminal; hidden otherwise. While it is alive, log lines print above it.
/// Call [`finish_progress_bar`] when done.
pub fn progress_bar() -> ProgressBar {
    if SINK.get() != Some(&Sink::Terminal) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    *lock_bar() = Some(bar.clone());
    bar
}

/// Clears the bar of [`progress_bar`] and prints logs plainly again.
pub fn finish_progress_bar(bar: &ProgressBar) {
    bar.finish_and_clear();
    lock_bar().take();
}

/// Stderr for log lines, through the progress bar when one is drawn.
struct AboveTheBar;

impl<'a> MakeWriter<'a> for AboveTheBar {
    type Writer = LineBuffer;

    fn make_writer(&'a self) -> LineBuffer {
        LineBuffer(Vec::with_capacity(256))
    }
}

/// One log event's bytes, written to stderr in one piece when dropped
/// (the formatter drops its writer after each event).
struct LineBuffer(Vec<u8>);

impl Write for LineBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let bar = lock_bar().clone();
        // A log line that cannot be written has nowhere else to go.
        let write = || {
            let _ = std::io::stderr().lock().write_all(&self.0);
        };
        match bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (the journal when run by systemd).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `verbosity` is `-v` count minus `-q`
/// count: 0 is info, 1 debug, 2+ trace, -1 warn, -2 error. `RUST_LOG`, when
/// set, wins.
pub fn init(format: LogFormat, verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // Our own crate at the chosen level; the HTTP stack stays at warn unless
    // tracing everything, or it drowns the useful lines.
    let default = if verbosity >= 2 {
        level.to_owned()
    } else {
        format!("warn,review_sync={level},sandbox={level}")
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let registry = tracing_subscriber::registry().with(filter);

    let _ = FORMAT.set(format);
    let terminal = format == LogFormat::Text && std::io::stderr().is_terminal();
    let journal = format == LogFormat::Text && stderr_is_journal();
    let _ = SINK.set(if terminal && !journal {
        Sink::Terminal
    } else {
        Sink::Other
    });
    if journal && let Ok(journald) = tracing_journald::layer() {
        let _ = registry
            .with(
                journald
                    .with_syslog_identifier("review-sync".into())
                    // tracing-journald 0.3 names fields F_SOURCE, ... by
                    // default; `journalctl SOURCE=...` needs them bare.
                    .with_field_prefix(None),
            )
            .try_init();
        return;
    }
    match format {
        LogFormat::Json => {
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_writer(AboveTheBar)
                        .with_current_span(true),
                )
                .try_init();
        }
        LogFormat::Text => {
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .fmt_fields(
                            tracing_subscriber::fmt::format::debug_fn(write_escaped_field)
                                .delimited(" "),
                        )
                        .with_writer(AboveTheBar)
                        .with_ansi(terminal),
                )
                .try_init();
        }
    }
}

/// One field of a text line, as tracing-subscriber's default writes it
/// (`name=value`, the message bare, names in italics on a terminal), with
/// the value escaped for the terminal.
fn write_escaped_field(w: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let value = Escaped(DebugText(value));
    let name = field.name();
    let name = name.strip_prefix("r#").unwrap_or(name);
    if name == "message" {
        write!(w, "{value}")
    } else if w.has_ansi_escapes() {
        write!(w, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m{value}")
    } else {
        write!(w, "{name}={value}")
    }
}

/// A `Debug` value shown through `Display` (what a field's text is).
struct DebugText<'a>(&'a dyn fmt::Debug);

impl fmt::Display for DebugText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

/// Whether stderr is the journal stream systemd gave us: `JOURNAL_STREAM`
/// (`DEVICE:INODE`) names stderr's file. Checking the file, not just the
/// variable, keeps a child whose stderr was redirected (a pipe in a test, a
/// file) on plain text even when it inherited the variable.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| names_file(&stream, m.dev(), m.ino()))
}

/// Whether a `JOURNAL_STREAM` value (`DEVICE:INODE`) names the file with
/// this device and inode.
fn names_file(stream: &std::ffi::OsStr, dev: u64, ino: u64) -> bool {
    stream
        .to_str()
        .and_then(|s| s.split_once(':'))
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        .is_some_and(|found| found == (dev, ino))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    /// The text layer's field format, writing to a buffer.
    fn log_text(ansi: bool, emit: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(
                tracing_subscriber::fmt::format::debug_fn(write_escaped_field).delimited(" "),
            )
            .with_writer(move || writer.clone())
            .with_ansi(ansi)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn text_logs_escape_control_characters_in_every_field() {
        let evil = "\u{1b}[31mRED\u{1b}[0m\r\nFAKE LOG LINE \u{202e}txt.exe";
        let error = std::io::Error::other(evil);
        let line = log_text(false, || {
            tracing::warn!(error = %error, location = %evil, source = evil, "poll failed: {evil}");
        });
        assert_eq!(line.lines().count(), 1, "{line:?}");
        assert!(
            !line.trim_end().chars().any(crate::escape::needs_escape),
            "{line:?}"
        );
        assert!(
            line.contains("error=\\u001b[31mRED\\u001b[0m\\r\\nFAKE LOG LINE \\u202etxt.exe"),
            "{line}"
        );
        assert!(line.contains("location=\\u001b[31mRED"), "{line}");
        assert!(line.contains("poll failed: \\u001b[31mRED"), "{line}");
        // A &str field is quoted, as tracing-subscriber writes it.
        assert!(line.contains("source=\"\\u{1b}[31mRED"), "{line}");
    }

    #[test]
    fn text_logs_keep_their_look() {
        let plain = log_text(false, || tracing::info!(rows = 3, who = "x", "done"));
        assert!(plain.ends_with("done rows=3 who=\"x\"\n"), "{plain:?}");
        let coloured = log_text(true, || tracing::info!(rows = 3, "done"));
        assert!(
            coloured.contains("done \x1b[3mrows\x1b[0m\x1b[2m=\x1b[0m3"),
            "{coloured:?}"
        );
    }

    #[test]
    fn journal_stream_must_name_stderrs_own_file() {
        assert!(names_file(OsStr::new("8:1234"), 8, 1234));
        assert!(!names_file(OsStr::new("8:1234"), 8, 99));
        assert!(!names_file(OsStr::new("8"), 8, 1234));
        assert!(!names_file(OsStr::new("x:y"), 8, 1234));
        assert!(!names_file(OsStr::new(""), 0, 0));
    }
}
