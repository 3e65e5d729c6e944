//! The filters and formats several `ledger` subcommands share (`--status`,
//! `--source`, `--since`..., `--format`), as clap parses them, and the
//! ledger filters they become.

use clap::ValueEnum;
use review_sync::ledger::{AttemptFilter, LogFilter, ReviewFilter, Status};

/// A time on the command line: RFC 3339, or a date (midnight UTC).
type Time = chrono::DateTime<chrono::Utc>;

fn time_arg(s: &str) -> Result<Time, String> {
    super::super::parse_time(s).map_err(|e| e.to_string())
}

/// The review filters of `list` and `export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReviewArgs {
    /// Only these statuses: comma-separated or repeated
    /// (`--status held,pending`); `undelivered` is pending, held and rejected.
    #[arg(long, value_enum, value_delimiter = ',')]
    status: Vec<StatusArg>,
    /// Only this source.
    #[arg(long)]
    source: Option<String>,
    /// Only this group (external ref or id).
    #[arg(long)]
    group: Option<String>,
    /// Only reviews first seen at or after this (2026-01-31: midnight UTC,
    /// or an RFC 3339 time).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    since: Option<Time>,
    /// Only reviews first seen before this.
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    until: Option<Time>,
    /// Only reviews (last) delivered at or after this.
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    delivered_since: Option<Time>,
    /// Only reviews (last) delivered before this.
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    delivered_until: Option<Time>,
}

impl ReviewArgs {
    pub(super) fn filter(self) -> ReviewFilter {
        let mut statuses: Vec<Status> = Vec::new();
        for s in self.status.iter().flat_map(|s| s.statuses()) {
            if !statuses.contains(s) {
                statuses.push(*s);
            }
        }
        ReviewFilter {
            statuses,
            source: self.source,
            group: self.group,
            since: self.since,
            until: self.until,
            delivered_since: self.delivered_since,
            delivered_until: self.delivered_until,
            review: None,
        }
    }

    /// For `export --table attempts`: only --group, --since and --until apply.
    pub(super) fn attempt_filter(self) -> anyhow::Result<AttemptFilter> {
        let refused = [
            ("--status", !self.status.is_empty()),
            ("--source", self.source.is_some()),
            ("--delivered-since", self.delivered_since.is_some()),
            ("--delivered-until", self.delivered_until.is_some()),
        ];
        if let Some((flag, _)) = refused.iter().find(|(_, given)| *given) {
            anyhow::bail!(
                "{flag} filters reviews, not attempts; with --table attempts use --group, --since or --until (the attempt's time)"
            );
        }
        Ok(AttemptFilter {
            group: self.group,
            since: self.since,
            until: self.until,
        })
    }
}

/// The filters of `quarantine` and `polls`.
#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    /// Only this source.
    #[arg(long)]
    source: Option<String>,
    /// Only this location.
    #[arg(long)]
    location: Option<String>,
    /// Only rows at or after this time (quarantine: first seen; polls: started).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    since: Option<Time>,
    /// Only rows before this time.
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    until: Option<Time>,
}

impl LogArgs {
    pub(super) fn filter(self, errors_only: bool) -> LogFilter {
        LogFilter {
            source: self.source,
            location: self.location,
            since: self.since,
            until: self.until,
            errors_only,
        }
    }
}

/// `--status` of `list` and `export`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StatusArg {
    /// Waiting for delivery.
    Pending,
    /// Delivered.
    Delivered,
    /// Held (mapping problem).
    Held,
    /// Rejected by the API.
    Rejected,
    /// Pending, held and rejected: everything not delivered.
    Undelivered,
}

impl StatusArg {
    pub(super) fn statuses(self) -> &'static [Status] {
        match self {
            StatusArg::Pending => &[Status::Pending],
            StatusArg::Delivered => &[Status::Delivered],
            StatusArg::Held => &[Status::Held],
            StatusArg::Rejected => &[Status::Rejected],
            StatusArg::Undelivered => &[Status::Pending, Status::Held, Status::Rejected],
        }
    }
}

/// `export --table`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum ExportTable {
    /// One row per review.
    Reviews,
    /// One row per delivery attempt.
    Attempts,
}

/// `--status` of `retry`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RetryStatus {
    /// Held rows.
    Held,
    /// Rejected rows.
    Rejected,
}

/// `list --format`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum ListFormat {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
    /// CSV with a header row.
    Csv,
}

/// `show --format`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum ShowFormat {
    /// Aligned fields, the body, and a table of attempts.
    Table,
    /// One JSON object, the body and attempts included.
    Json,
}

/// `export --format`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}
