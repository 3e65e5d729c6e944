//! The validated configuration: what the rest of the program reads. Loading
//! happens in two stages (STYLE habit 4): `raw` deserializes the TOML loosely
//! with spans, `validate` turns it into these types and reports every problem
//! at once as `file:line:column: message`.

#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod keys;
mod ledger_url;
mod raw;
mod secret;
mod sources;
mod span;
#[cfg(test)]
mod tests;
mod validate;

pub use secret::{Secret, SecretError};
pub use validate::{
    LoadOptions, MAX_RETAIN_TEXT_DAYS, MAX_TIMEOUT, load, load_ledger, load_source_map, load_str,
    load_str_with_env, load_with,
};

use crate::domain::{GroupRef, LocationId, SourceName};
use crate::platforms::registry::{Platform, Settings};
use crate::schedule::Schedule;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The default config path when neither `--config` nor `$REVIEW_SYNC_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/review-sync/config.toml";

/// `reconcile_schedule` when not set: daily at 03:30:00 (the scheduler's
/// time zone, UTC), a quiet hour for most platforms.
pub const DEFAULT_RECONCILE_SCHEDULE: &str = "0 30 3 * * *";

/// A whole, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages and reloads).
    pub path: PathBuf,
    /// Where reviews are delivered.
    pub travtus: TravtusConfig,
    /// The ledger (a SQLite file or a PostgreSQL database).
    pub ledger: LedgerConfig,
    /// Every `[[source]]`, in file order.
    pub sources: Vec<SourceConfig>,
    /// `[metrics]`, when present.
    pub metrics: Option<MetricsConfig>,
    /// `[push]`, when present.
    pub push: Option<PushConfig>,
    /// Non-fatal findings (e.g. a plain-string secret in a file others can
    /// read), shown by `check` and logged at start.
    pub warnings: Vec<String>,
}

/// `[travtus]`.
#[derive(Debug, Clone)]
pub struct TravtusConfig {
    /// `base_url`: POST `{base_url}/messages/`. Default `https://api.travtus.com`.
    pub base_url: Url,
    /// How the bearer token is obtained.
    pub auth: TravtusAuth,
    /// `timeout` for one HTTP request. Default 30s.
    pub timeout: Duration,
    /// `concurrency`: deliveries in flight at once. Default 4.
    pub concurrency: NonZeroUsize,
}

/// `client_id` + `client_secret` (+ `token_url`), or a static `token`.
#[derive(Debug, Clone)]
pub enum TravtusAuth {
    /// OAuth2 client_credentials against `token_url`
    /// (default `https://api.travtus.com/oauth2/token`).
    ClientCredentials {
        /// `token_url`.
        token_url: Url,
        /// `client_id` (not a secret, but never logged above debug anyway).
        client_id: String,
        /// `client_secret`.
        client_secret: Secret,
    },
    /// `token`: a bearer token used as is, never refreshed.
    StaticToken(Secret),
}

/// `[ledger]`.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Where the ledger lives: `path` (a SQLite file, default
    /// `/var/lib/review-sync/ledger.db`), or `url` (a PostgreSQL database,
    /// with `password`, `sslmode`, `sslrootcert`, `sslcert`, `sslkey`). The
    /// field kept its name from when the ledger could only be a file;
    /// `Ledger::open(&config.ledger.path)` opens either.
    pub path: crate::ledger::Target,
    /// `retain_text_days`: review text and reviewer names of reviews
    /// delivered more than this many days ago are purged from the ledger
    /// (see `ledger::retention`). `None` (the default) keeps them.
    pub retain_text_days: Option<NonZeroU32>,
    /// `retain_polls_days`: rows of the poll log (`polls`) of polls started
    /// more than this many days ago are deleted (default
    /// [`DEFAULT_RETAIN_POLLS_DAYS`]). Nothing else is ever deleted.
    pub retain_polls_days: NonZeroU32,
    /// `instance`: this daemon's name among the daemons sharing the
    /// ledger (default: the host name), in its lease rows and as the
    /// `instance` label of its metrics.
    pub instance: String,
    /// `lease` (PostgreSQL only): how long a source's pass or a
    /// cluster-wide job stays this daemon's without a renewal (default
    /// [`DEFAULT_LEASE`]); renewed every third of it. A dead daemon's
    /// passes are taken over by another within it.
    pub lease: std::time::Duration,
}

/// `[ledger] lease` when not set.
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(30);
/// The shortest `[ledger] lease`: renewals every second, with room for a
/// slow round trip.
pub const MIN_LEASE: std::time::Duration = std::time::Duration::from_secs(3);
/// The longest `[ledger] lease` (a dead daemon's sources wait this long).
pub const MAX_LEASE: std::time::Duration = std::time::Duration::from_secs(600);

/// `[ledger] retain_polls_days` when not set: about a quarter of poll
/// history, enough to look into a quarter's gaps and failures, while a
/// 1,000-location portfolio polled every 15 minutes writes 96,000 rows a day.
pub const DEFAULT_RETAIN_POLLS_DAYS: NonZeroU32 = NonZeroU32::new(90).expect("90 is not zero");

/// `[metrics]`.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// `listen`, e.g. `127.0.0.1:9187`.
    pub listen: std::net::SocketAddr,
}

/// `[push]` (SPEC §3 "Push"): the webhook receiver shared by every source
/// whose platform pushes by webhook.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// `listen`, e.g. `127.0.0.1:9188`: `GET/POST /webhooks/{source}`.
    pub listen: std::net::SocketAddr,
    /// `webhook_silence_alert`: a webhook source with no verified delivery
    /// for this long is reported as a broken push channel (`None`: never).
    pub webhook_silence_alert: Option<Duration>,
}

/// The longest `[push] webhook_silence_alert`: 30 days.
pub const MAX_WEBHOOK_SILENCE_ALERT: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// One `[[source]]`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// `name`: unique among sources.
    pub name: SourceName,
    /// `schedule`: a cron expression with a seconds field, parsed once here
    /// and followed as parsed by the scheduler.
    pub schedule: Schedule,
    /// `reconcile_schedule`: when full reconciliation passes run (same cron
    /// form as `schedule`; default daily, [`DEFAULT_RECONCILE_SCHEDULE`]).
    /// `None` for kinds that cannot list every review of a location.
    pub reconcile_schedule: Option<Schedule>,
    /// `requests_per_minute`: when set, a cap on this source's own
    /// requests, and a raise of its scope's one-minute window when higher
    /// (a Cloud project's raised quota). Unset (the default), the source
    /// takes its requests from the budget of its quota scope alone, which
    /// starts from the platform's published quota (`crate::quota`).
    pub requests_per_minute: Option<NonZeroU32>,
    /// `timeout` for one platform request. Default 30s.
    pub timeout: Duration,
    /// How far one location's pass may go before it is given up on.
    pub pass_bounds: PassBounds,
    /// The kind-specific settings.
    pub kind: SourceKind,
    /// Every `[[source.location]]`, in file order.
    pub locations: Vec<LocationConfig>,
}

/// The most pages any one read of a location may be allowed: the platforms'
/// own last-resort limit (`platforms::google::MAX_PAGES`), 500,000 Google
/// reviews.
pub const MAX_PAGES_PER_READ: u32 = 10_000;

/// How far one location's pass may go (per source). A location that pages
/// past its bound, or takes longer than its time, fails with an error that
/// names the bound; the pages read before are recorded, and its high-water
/// mark stays where it was, so nothing is lost.
///
/// An incremental pass (the location has a high-water mark) reads what is
/// new since the last pass: a page or two, so its bounds are tight. A full
/// read (the location's first read, or a reconciliation) reads every review,
/// so its bounds are wide enough for a location of 100,000 reviews sharing
/// the source's request budget with three others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassBounds {
    /// `max_pages_per_pass`: pages of one incremental pass. Default 200
    /// (10,000 Google reviews new or edited since the last pass).
    pub incremental_pages: u32,
    /// `max_pass_time`: time of one incremental pass, request-budget waits
    /// included. Default 5 minutes.
    pub incremental_time: Duration,
    /// `max_pages_per_full_read`: pages of a first read or a
    /// reconciliation. Default [`MAX_PAGES_PER_READ`].
    pub full_read_pages: u32,
    /// `max_full_read_time`: time of a first read or a reconciliation.
    /// Default 1 hour.
    pub full_read_time: Duration,
}

impl Default for PassBounds {
    fn default() -> PassBounds {
        PassBounds {
            incremental_pages: 200,
            incremental_time: Duration::from_secs(5 * 60),
            full_read_pages: MAX_PAGES_PER_READ,
            full_read_time: Duration::from_secs(60 * 60),
        }
    }
}

/// The kind-specific part of a source (`kind = "..."`): its platform's
/// registry entry and the settings its platform validated
/// (`src/platforms/<name>/settings.rs`).
#[derive(Clone)]
pub struct SourceKind {
    platform: &'static Platform,
    settings: Arc<dyn Settings>,
}

impl SourceKind {
    /// The `kind` string as written in the config.
    pub fn kind_name(&self) -> &'static str {
        self.platform.kind
    }

    /// What this kind of source cannot see, for `ledger stats`: `None` when
    /// the platform lets us read every review of a location.
    pub fn coverage_note(&self) -> Option<&'static str> {
        self.platform.coverage_note
    }

    /// The `review.source` its reviews and quarantined records are recorded
    /// under (a file source's `platform`).
    pub fn review_platform(&self) -> &str {
        self.settings.review_platform()
    }

    /// Whether the source discovers its locations on the platform.
    pub fn discovers(&self) -> bool {
        self.settings.discovers()
    }

    /// The platform's own settings, when they are of type `T` (a platform
    /// reading its own, and tests).
    pub fn settings<T: 'static>(&self) -> Option<&T> {
        let settings: &dyn std::any::Any = self.settings.as_ref();
        settings.downcast_ref()
    }

    /// What offline `check` says about `location` without asking the
    /// platform (a file location: what it matches now): a line, and
    /// problems worth a warning; `None` when there is nothing to say.
    pub fn inspect(&self, location: &LocationId) -> Option<(String, Vec<String>)> {
        self.settings.inspect(location)
    }

    /// How the platform tells this source about new reviews, when push is
    /// configured for it.
    pub fn push(&self) -> Option<crate::push::SourcePush> {
        self.settings.push()
    }

    /// Where `check --online --set-notifications` points this source's
    /// accounts at its subscription's topic, when it can.
    pub fn push_notifications(&self) -> Option<crate::push::NotificationSettings> {
        self.settings.push_notifications()
    }

    /// Every URL a credential of this source is sent to.
    pub(crate) fn urls(&self) -> Vec<&Url> {
        self.settings.urls()
    }

    /// The platform client of `source`, taking its requests from `quotas`.
    pub(crate) fn client(
        &self,
        source: &SourceConfig,
        http: reqwest::Client,
        quotas: &Arc<crate::quota::Quotas>,
    ) -> Box<dyn crate::platforms::SourceClient> {
        self.settings.client(source, http, quotas)
    }

    /// What the source's requests count against (its OAuth client's or API
    /// key's scope, one per location, or none).
    pub fn quota_scope(&self) -> crate::quota::QuotaScope {
        self.settings.quota_scope()
    }

    /// The platform's published quota of one scope.
    pub fn quota_windows(&self) -> Vec<crate::quota::Window> {
        (self.platform.quota)()
    }

    /// The platform's reader of what its answers say about the quota.
    pub(crate) fn observer(
        &self,
    ) -> fn(&crate::quota::headers::Answer<'_>) -> Vec<crate::quota::Adjustment> {
        self.platform.observe
    }

    /// Requests of one pass of `kind` per location, for the quota plan.
    pub fn pass_cost(&self, kind: crate::quota::plan::PassKind) -> crate::quota::plan::PassCost {
        self.settings.pass_cost(kind)
    }
}

impl std::fmt::Debug for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple(self.platform.kind)
            .field(&self.settings)
            .finish()
    }
}

/// One `[[source.location]]`.
#[derive(Debug, Clone)]
pub struct LocationConfig {
    /// `id`: what a location is depends on the kind (for `file`: a path or glob).
    pub id: LocationId,
    /// Exactly one of `group_external_ref` / `group_id`.
    pub group: GroupRef,
}

impl Config {
    /// The source with this name.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name.as_str() == name)
    }

    /// The group a location of a source maps to now, if any.
    pub fn group_of(&self, source: &str, location: &str) -> Option<&GroupRef> {
        self.source(source)?
            .locations
            .iter()
            .find(|l| l.id.as_str() == location)
            .map(|l| &l.group)
    }
}

/// What `ledger` commands need of the sources: each one's name, kind and
/// location mapping, validated without reading a secret
/// ([`load_source_map`]). It holds no secret, so it can go anywhere.
#[derive(Debug, Clone)]
pub struct SourceMap {
    /// Every `[[source]]`, in file order.
    pub sources: Vec<MappedSource>,
}

/// One source of a [`SourceMap`].
#[derive(Debug, Clone)]
pub struct MappedSource {
    /// `name`.
    pub name: SourceName,
    /// `kind`, as written.
    pub kind: &'static str,
    /// What this kind cannot see ([`SourceKind::coverage_note`]).
    pub coverage_note: Option<&'static str>,
    /// Whether it discovers locations (`discover_accounts`).
    pub discovers: bool,
    /// Every `[[source.location]]`.
    pub locations: Vec<LocationConfig>,
}

impl SourceMap {
    /// Keeps what is not secret of a config validated without its secrets.
    fn of(config: Config) -> SourceMap {
        let sources = config
            .sources
            .into_iter()
            .map(|source| MappedSource {
                kind: source.kind.kind_name(),
                coverage_note: source.kind.coverage_note(),
                discovers: source.kind.discovers(),
                name: source.name,
                locations: source.locations,
            })
            .collect();
        SourceMap { sources }
    }

    /// The group a location of a source maps to now, if any.
    pub fn group_of(&self, source: &str, location: &str) -> Option<&GroupRef> {
        self.sources
            .iter()
            .find(|s| s.name.as_str() == source)?
            .locations
            .iter()
            .find(|l| l.id.as_str() == location)
            .map(|l| &l.group)
    }

    /// Whether any source discovers its locations.
    pub fn discovers(&self) -> bool {
        self.sources.iter().any(|s| s.discovers)
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.lines().join("\n"))]
pub struct ConfigError {
    /// One per problem, in file order.
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// Each problem as `file:line:column: message`.
    pub fn lines(&self) -> Vec<String> {
        self.problems.iter().map(ToString::to_string).collect()
    }

    /// One problem with the whole file (it cannot be read).
    pub(crate) fn whole_file(file: &std::path::Path, message: String) -> ConfigError {
        ConfigError {
            problems: vec![ConfigProblem {
                file: file.to_path_buf(),
                position: None,
                message,
            }],
        }
    }
}

/// One problem of a config file: where it is and what it is. Shown as
/// `file:line:column: message` (or `file: message` for the whole file), and
/// as fields of a JSON log line with `--log-format json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line and column (in characters); `None` when the problem is
    /// the file itself (it cannot be read).
    pub position: Option<(usize, usize)>,
    /// What is wrong, starting with the key it is about.
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some((line, column)) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.file.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// This host's name (`uname`'s node name), the default `[ledger] instance`.
pub fn host_name() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name.into_owned()
    }
}
