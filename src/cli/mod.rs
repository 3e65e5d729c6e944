//! The command line (SPEC section 2): clap definitions and dispatch to one
//! module per command.

mod check;
mod completions;
mod demo;
pub(crate) mod exit;
mod ledger;
#[cfg(test)]
mod man;
mod run;
mod sandbox;
mod sync;
mod values;

use clap::{Parser, Subcommand, ValueEnum};
use review_sync::config::{self, Config};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Keeps Travtus fed with every review residents leave on Google and the
/// other platforms: polls on a schedule, records every review in a SQLite
/// ledger, delivers each one, loses nothing.
#[derive(Debug, Parser)]
#[command(
    name = "review-sync",
    version = review_sync::build::VERSION,
    long_version = review_sync::build::LONG_VERSION,
    about,
    long_about = None
)]
pub(crate) struct Args {
    /// The config file.
    #[arg(
        long,
        global = true,
        env = "REVIEW_SYNC_CONFIG",
        default_value = config::DEFAULT_CONFIG_PATH
    )]
    pub config: PathBuf,
    /// Log format on stderr (under systemd, text goes to the journal).
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less logging (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Args {
    /// `-v` count minus `-q` count.
    pub(crate) fn verbosity(&self) -> i8 {
        i8::try_from(i16::from(self.verbose) - i16::from(self.quiet)).unwrap_or(0)
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable text.
    Text,
    /// JSON lines.
    Json,
}

impl From<LogFormatArg> for review_sync::telemetry::LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Text => Self::Text,
            LogFormatArg::Json => Self::Json,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the daemon: poll every source on its schedule (cron, in UTC) and
    /// deliver continuously.
    Run,
    /// One pass now: poll, deliver everything due, print a summary, exit.
    Sync(sync::SyncArgs),
    /// Validate the config, print the quota plan, and exit.
    ///
    /// The quota plan counts the requests a day each quota scope (an OAuth
    /// client, an API key, a Facebook Page) needs from the sources'
    /// schedules and locations, against the platform's published quota;
    /// a schedule that cannot fit is a warning naming the tightest one that
    /// does. Warnings do not change the exit status.
    Check {
        /// Also fetch each token and list each location once.
        #[arg(long)]
        online: bool,
        /// With --online: point the Business Profile notifications of each
        /// account a push source reads (its locations' accounts and
        /// discover_accounts) at its Pub/Sub subscription's topic
        /// (NEW_REVIEW and UPDATED_REVIEW, keeping the types the account
        /// already has).
        #[arg(long, requires = "online")]
        set_notifications: bool,
        /// Read `{ credential = "NAME" }` secrets from DIR/NAME, the files
        /// the unit's LoadCredential= would provide (default:
        /// $CREDENTIALS_DIRECTORY).
        #[arg(long, value_name = "DIR")]
        credentials_directory: Option<PathBuf>,
        /// Print the whole check (summary, warnings, locations, online
        /// results and the quota plan) as text, or as one JSON object.
        #[arg(long, value_enum, default_value_t = check::CheckFormat::Text)]
        format: check::CheckFormat,
    },
    /// Query and repair the ledger.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Run two passes against the built-in sandbox and show what was delivered.
    Demo,
    /// Serve the emulators of Travtus and every platform on loopback.
    Sandbox {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: std::net::SocketAddr,
    },
    /// Print the shell completion script for bash, zsh or fish.
    ///
    /// bash: review-sync completions bash > /etc/bash_completion.d/review-sync;
    /// zsh: into a directory of $fpath as _review-sync; fish: into
    /// ~/.config/fish/completions/review-sync.fish. The Debian package
    /// installs all three.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: completions::Shell,
    },
}

/// Runs the command.
pub(crate) async fn dispatch(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Run => run::run(&args.config).await,
        Command::Sync(sync) => sync::sync(&args.config, sync).await,
        Command::Check {
            online,
            set_notifications,
            credentials_directory,
            format,
        } => {
            let options = config::LoadOptions {
                credentials_directory,
            };
            let online = online.then_some(check::Online { set_notifications });
            check::check(&args.config, online, format, &options).await
        }
        Command::Ledger(cmd) => ledger::ledger(&args.config, cmd).await,
        Command::Demo => demo::demo().await,
        Command::Sandbox { listen } => sandbox::sandbox(listen).await,
        Command::Completions { shell } => completions::completions(shell),
    }
}

/// Loads and validates the config; an invalid one is a [`config::ConfigError`]
/// (exit 78). Warnings are logged.
pub(crate) fn load_config(path: &Path) -> anyhow::Result<Config> {
    let config = config::load(path)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    Ok(config)
}

/// Parses a time argument (`--since`, `--until`, `--before`...; checked by
/// clap already, see [`values::time_arg`]): RFC 3339, or a date (midnight UTC).
pub(crate) fn parse_time(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    values::parse_time(s).map_err(|e| anyhow::anyhow!("{s:?}: {e}"))
}
