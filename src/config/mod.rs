//! The validated configuration: what the rest of the program reads. Loading
//! happens in two stages (STYLE habit 4): `raw` deserializes the TOML loosely
//! with spans, `validate` turns it into these types and reports every problem
//! at once as `file:line:column: message`.

mod raw;
mod secret;
mod sources;
mod span;
#[cfg(test)]
mod tests;
mod validate;

pub use secret::{Secret, SecretError};
pub use validate::{load, load_str, load_str_with_env};

use crate::domain::{GroupRef, LocationId, SourceName};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// The default config path when neither `--config` nor `$REVIEW_SYNC_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/review-sync/config.toml";

/// A whole, valid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages and reloads).
    pub path: PathBuf,
    /// Where reviews are delivered.
    pub travtus: TravtusConfig,
    /// The SQLite ledger.
    pub ledger: LedgerConfig,
    /// Every `[[source]]`, in file order.
    pub sources: Vec<SourceConfig>,
    /// `[metrics]`, when present.
    pub metrics: Option<MetricsConfig>,
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
    /// `path`. Default `/var/lib/review-sync/ledger.db`.
    pub path: PathBuf,
}

/// `[metrics]`.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// `listen`, e.g. `127.0.0.1:9187`.
    pub listen: std::net::SocketAddr,
}

/// One `[[source]]`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// `name`: unique among sources.
    pub name: SourceName,
    /// `schedule`: a cron expression with a seconds field, already checked
    /// with the same parser the scheduler uses.
    pub schedule: String,
    /// `requests_per_minute`: the budget of platform requests. Default: the
    /// platform's published quota (300 for Google Business Profile; for `file`
    /// it is unused and defaults to 600).
    pub requests_per_minute: NonZeroU32,
    /// `timeout` for one platform request. Default 30s.
    pub timeout: Duration,
    /// The kind-specific settings.
    pub kind: SourceKind,
    /// Every `[[source.location]]`, in file order.
    pub locations: Vec<LocationConfig>,
}

/// The kind-specific part of a source (`kind = "..."`).
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per source, built once at load: boxing would only add noise for callers"
)]
pub enum SourceKind {
    /// `google_business_profile`.
    GoogleBusinessProfile(GoogleConfig),
    /// `file`.
    File(FileConfig),
}

impl SourceKind {
    /// The `kind` string as written in the config.
    pub fn kind_name(&self) -> &'static str {
        match self {
            SourceKind::GoogleBusinessProfile(_) => "google_business_profile",
            SourceKind::File(_) => "file",
        }
    }
}

/// Settings of a `google_business_profile` source.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// `client_id` of the OAuth client.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: Secret,
    /// `refresh_token` granted with `access_type=offline`.
    pub refresh_token: Secret,
    /// `api_base_url`, default `https://mybusiness.googleapis.com`.
    pub api_base_url: Url,
    /// `token_url`, default `https://oauth2.googleapis.com/token`.
    pub token_url: Url,
}

/// Settings of a `file` source.
#[derive(Debug, Clone)]
pub struct FileConfig {
    /// `platform`: the `review.source` for rows that do not carry their own.
    pub platform: Option<String>,
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

/// Every problem found in a config file, each as `file:line:column: message`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    /// One line per problem, in file order.
    pub problems: Vec<String>,
}
