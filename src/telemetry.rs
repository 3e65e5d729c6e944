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

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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

    if format == LogFormat::Text
        && stderr_is_journal()
        && let Ok(journald) = tracing_journald::layer()
    {
        let _ = registry
            .with(journald.with_syslog_identifier("review-sync".into()))
            .try_init();
        return;
    }
    match format {
        LogFormat::Json => {
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_writer(std::io::stderr)
                        .with_current_span(true),
                )
                .try_init();
        }
        LogFormat::Text => {
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
                )
                .try_init();
        }
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

    #[test]
    fn journal_stream_must_name_stderrs_own_file() {
        assert!(names_file(OsStr::new("8:1234"), 8, 1234));
        assert!(!names_file(OsStr::new("8:1234"), 8, 99));
        assert!(!names_file(OsStr::new("8"), 8, 1234));
        assert!(!names_file(OsStr::new("x:y"), 8, 1234));
        assert!(!names_file(OsStr::new(""), 0, 0));
    }
}
