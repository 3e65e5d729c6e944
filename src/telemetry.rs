//! Logging set-up: human text on a terminal, JSON lines on request, the
//! systemd journal when run by systemd. Logs go to stderr so stdout stays
//! clean for command output (`ledger list`, `sync --dry-run` bodies).
//! No secret, token or review text is logged above debug level.

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

    // systemd sets JOURNAL_STREAM when stderr is connected to the journal.
    if format == LogFormat::Text
        && std::env::var_os("JOURNAL_STREAM").is_some()
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
