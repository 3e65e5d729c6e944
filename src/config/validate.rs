//! Stage two of two: the raw TOML ([`super::raw`]) becomes a [`Config`], with
//! every problem reported at once as `file:line:column: message`, in file
//! order. This file holds the entry points, the top-level sections and the
//! value checks shared with `[[source]]` (which lives in `sources.rs`).

use super::raw::{self, Field, RawConfig, RawLedger, RawMetrics, RawSecret, RawTravtus};
use super::secret::{self, SecretSources};
use super::span::{Findings, LineIndex, Span};
use super::{Config, ConfigError, LedgerConfig, MetricsConfig, Secret, TravtusAuth, TravtusConfig};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::{Host, Url};

/// `[travtus] base_url` when not set.
pub(super) const DEFAULT_TRAVTUS_BASE_URL: &str = "https://api.travtus.com";
/// `[travtus] token_url` when not set.
pub(super) const DEFAULT_TRAVTUS_TOKEN_URL: &str = "https://api.travtus.com/oauth2/token";
/// `[ledger] path` when not set: systemd's `StateDirectory=review-sync`.
pub(super) const DEFAULT_LEDGER_PATH: &str = "/var/lib/review-sync/ledger.db";
/// Every `timeout` when not set: long enough for a slow page of reviews,
/// short enough that a hung connection does not stall a pass.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `timeout` we accept: a request still unanswered after ten
/// minutes is hung, not slow. The bound also keeps every deadline and
/// delivery lease derived from it (`timeout` + 10 s) far from overflowing,
/// and within [`crate::clock::LONGEST_DELAY`], which tells a lease from a
/// due time left behind by a wall-clock step.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest `[ledger] retain_text_days`: a hundred years. Far longer
/// means "never" (leave the key out); the bound keeps the cutoff, a date
/// that many days back, a date the ledger can store (years 0000..=9999).
pub const MAX_RETAIN_TEXT_DAYS: u32 = 36_500;
/// `[travtus] concurrency` when not set.
pub(super) const DEFAULT_CONCURRENCY: NonZeroUsize = NonZeroUsize::new(4).unwrap();
/// The keys of `[travtus]` that choose how to authenticate.
const AUTH_KEYS: &[&str] = &["client_id", "client_secret", "token"];
/// The most deliveries in flight we accept: more would only queue inside
/// the HTTP client and look like an attack to the API.
const MAX_CONCURRENCY: i64 = 256;

/// Reads and validates the config file at `path`, with secrets from the
/// process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![format!("{}: cannot read config: {e}", path.display())],
    })?;
    load_str(&text, path)
}

/// Validates config text with secrets from the process environment; `path`
/// is used in messages and to resolve relative paths.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    load_str_with_env(text, path, &|name| std::env::var(name).ok())
}

/// Validates config text, looking environment variables (including
/// `CREDENTIALS_DIRECTORY`) up with `env`, so that tests never touch the
/// process environment. `path` is used in messages, to resolve relative
/// paths, and (when it exists) to warn about plain secrets in a file others
/// can read.
pub fn load_str_with_env(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let lines = LineIndex::new(text);
    let dir = config_dir(path);
    let mut validator = Validator {
        lines: &lines,
        secrets: SecretSources { env, dir: &dir },
        readable_mode: readable_by_others(path),
        problems: Findings::default(),
        warnings: Findings::default(),
    };
    let config = raw::parse(text, &mut validator.problems).and_then(|raw| validator.config(raw));
    validator.finish(config, path)
}

/// The directory relative paths in the config start from, made absolute so
/// that the daemon's later working directory does not matter.
fn config_dir(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The config file's permission bits when group or others may read it.
#[cfg(unix)]
fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

/// Permission bits mean nothing here.
#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> Option<u32> {
    None
}

/// The state of one validation: what it reads from, and what it found.
pub(super) struct Validator<'a> {
    /// For messages that mention another position.
    pub(super) lines: &'a LineIndex<'a>,
    /// Environment and base directory for secrets and relative paths.
    pub(super) secrets: SecretSources<'a>,
    /// The config file's mode when group or others can read it: each
    /// plain-string secret in it is then worth a warning.
    readable_mode: Option<u32>,
    /// Errors: any one of them refuses the config.
    pub(super) problems: Findings,
    /// Findings that do not refuse the config.
    pub(super) warnings: Findings,
}

impl Validator<'_> {
    /// The config, or every problem found.
    fn finish(mut self, config: Option<Config>, path: &Path) -> Result<Config, ConfigError> {
        match config {
            Some(mut config) if self.problems.is_empty() => {
                config.path = path.to_path_buf();
                config.warnings = self.warnings.render(path, self.lines);
                Ok(config)
            }
            _ => {
                if self.problems.is_empty() {
                    // Never refuse a config without saying why.
                    self.problems.push(&(0..0), "invalid configuration");
                }
                let problems = self.problems.render(path, self.lines);
                Err(ConfigError { problems })
            }
        }
    }

    /// Every section; all are checked before any result is combined, so
    /// that each reports its problems.
    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let travtus = match raw.travtus {
            Some(travtus) => self.travtus(travtus.value),
            None if raw.invalid.contains(&"travtus") => None,
            None => {
                self.problems.push(&(0..0), "missing [travtus] section");
                None
            }
        };
        let ledger = self.ledger(raw.ledger.map(|field| field.value));
        let metrics = raw.metrics.map(|field| self.metrics(field.value));
        let sources = self.sources(raw.source);
        Some(Config {
            path: PathBuf::new(),
            travtus: travtus?,
            ledger: ledger?,
            sources: sources?,
            metrics: match metrics {
                Some(metrics) => Some(metrics?),
                None => None,
            },
            warnings: Vec::new(),
        })
    }

    /// `[travtus]`.
    fn travtus(&mut self, raw: RawTravtus) -> Option<TravtusConfig> {
        let base_url = self.url("base_url", raw.base_url.as_ref(), DEFAULT_TRAVTUS_BASE_URL);
        let auth = self.travtus_auth(&raw);
        let timeout = self.timeout(raw.timeout.as_ref());
        let concurrency = match &raw.concurrency {
            Some(field) => self.concurrency(field),
            None => Some(DEFAULT_CONCURRENCY),
        };
        Some(TravtusConfig {
            base_url: base_url?,
            auth: auth?,
            timeout: timeout?,
            concurrency: concurrency?,
        })
    }

    /// `client_id` + `client_secret`, or `token`: exactly one of the two.
    fn travtus_auth(&mut self, raw: &RawTravtus) -> Option<TravtusAuth> {
        let token_url = self.url(
            "token_url",
            raw.token_url.as_ref(),
            DEFAULT_TRAVTUS_TOKEN_URL,
        );
        let client_id = raw
            .client_id
            .as_ref()
            .map(|f| self.non_empty("client_id", f));
        let client_secret = raw
            .client_secret
            .as_ref()
            .map(|f| self.secret("client_secret", f));
        let token = raw.token.as_ref().map(|f| self.secret("token", f));
        if AUTH_KEYS.iter().any(|key| raw.invalid.contains(key)) {
            // Which mode was meant is unclear, and the bad value is reported.
            return None;
        }
        match (&raw.client_id, &raw.client_secret, &raw.token) {
            (Some(_), Some(_), None) => Some(TravtusAuth::ClientCredentials {
                token_url: token_url?,
                client_id: client_id??,
                client_secret: client_secret??,
            }),
            (None, None, Some(_)) => Some(TravtusAuth::StaticToken(token??)),
            (None, None, None) => self.problem(
                &raw.span,
                "[travtus] needs either `client_id` + `client_secret` (OAuth2) or `token` (a static bearer token)",
            ),
            (_, _, Some(token)) => self.problem(
                &token.key,
                "`token` cannot be combined with `client_id`/`client_secret`: use either a static token or OAuth2 client credentials",
            ),
            (Some(id), None, None) => {
                self.problem(&id.key, "`client_id` needs `client_secret` in [travtus]")
            }
            (None, Some(secret), None) => {
                self.problem(&secret.key, "`client_secret` needs `client_id` in [travtus]")
            }
        }
    }

    /// `[travtus] concurrency`: 1..=256.
    fn concurrency(&mut self, field: &Field<i64>) -> Option<NonZeroUsize> {
        let value = field.value;
        if !(1..=MAX_CONCURRENCY).contains(&value) {
            let message =
                format!("concurrency: must be between 1 and {MAX_CONCURRENCY} (got {value})");
            return self.problem(&field.span, message);
        }
        usize::try_from(value).ok().and_then(NonZeroUsize::new)
    }

    /// `[ledger]`; a relative path is relative to the config file.
    fn ledger(&mut self, raw: Option<RawLedger>) -> Option<LedgerConfig> {
        let raw = raw.unwrap_or_default();
        // Both keys are checked before either result is used, so each
        // reports its problem.
        let retain_text_days = match &raw.retain_text_days {
            Some(field) => self.days("retain_text_days", field).map(Some),
            None => Some(None),
        };
        let retain_polls_days = match &raw.retain_polls_days {
            Some(field) => self.days("retain_polls_days", field),
            None => Some(super::DEFAULT_RETAIN_POLLS_DAYS),
        };
        let path = match raw.path {
            None => Some(PathBuf::from(DEFAULT_LEDGER_PATH)),
            Some(field) if field.value.is_empty() => {
                self.problem(&field.span, "path: must not be empty")
            }
            Some(field) => Some(self.secrets.dir.join(&field.value)),
        };
        Some(LedgerConfig {
            path: path?,
            retain_text_days: retain_text_days?,
            retain_polls_days: retain_polls_days?,
        })
    }

    /// `[ledger] retain_text_days` and `retain_polls_days`: a whole number
    /// of days, 1..=[`MAX_RETAIN_TEXT_DAYS`].
    fn days(&mut self, key: &str, field: &Field<i64>) -> Option<NonZeroU32> {
        match u32::try_from(field.value)
            .ok()
            .filter(|days| *days <= MAX_RETAIN_TEXT_DAYS)
            .and_then(NonZeroU32::new)
        {
            Some(days) => Some(days),
            None => self.problem(
                &field.span,
                format!(
                    "{key}: must be a whole number of days from 1 to {MAX_RETAIN_TEXT_DAYS} (got {})",
                    field.value
                ),
            ),
        }
    }

    /// `[metrics]`.
    fn metrics(&mut self, raw: RawMetrics) -> Option<MetricsConfig> {
        let field = self.require(
            &raw.listen,
            "listen",
            "in [metrics]",
            &raw.span,
            &raw.invalid,
        )?;
        match field.value.parse() {
            Ok(listen) => Some(MetricsConfig { listen }),
            Err(e) => self.problem(
                &field.span,
                format!("listen: expected IP:PORT such as \"127.0.0.1:9187\" ({e})"),
            ),
        }
    }

    /// Records a problem; returns `None` so that callers can end with it.
    pub(super) fn problem<T>(&mut self, span: &Span, message: impl Into<String>) -> Option<T> {
        self.problems.push(span, message);
        None
    }

    /// The field, or "missing key" at `table` (unless the key was written
    /// with a value already refused: `invalid`).
    pub(super) fn require<'f, T>(
        &mut self,
        field: &'f Option<Field<T>>,
        key: &str,
        place: &str,
        table: &Span,
        invalid: &[&str],
    ) -> Option<&'f Field<T>> {
        if field.is_none() && !invalid.contains(&key) {
            self.problems
                .push(table, format!("missing key `{key}` {place}"));
        }
        field.as_ref()
    }

    /// A string that is not blank.
    pub(super) fn non_empty(&mut self, key: &str, field: &Field<String>) -> Option<String> {
        if field.value.trim().is_empty() {
            return self.problem(&field.span, format!("{key}: must not be empty"));
        }
        Some(field.value.clone())
    }

    /// A URL (or `default`), https unless the host is loopback.
    pub(super) fn url(
        &mut self,
        key: &str,
        field: Option<&Field<String>>,
        default: &str,
    ) -> Option<Url> {
        let Some(field) = field else {
            return Some(default_url(default));
        };
        match check_url(&field.value) {
            Ok(url) => Some(url),
            Err(reason) => self.problem(&field.span, format!("{key}: {reason}")),
        }
    }

    /// A `timeout` (of `[travtus]` or a source): [`DEFAULT_TIMEOUT`] when
    /// not set, at most [`MAX_TIMEOUT`].
    pub(super) fn timeout(&mut self, field: Option<&Field<String>>) -> Option<Duration> {
        self.duration("timeout", field, DEFAULT_TIMEOUT, MAX_TIMEOUT)
    }

    /// A humantime duration such as `"30s"` (or `default`), not zero and
    /// at most `max`.
    fn duration(
        &mut self,
        key: &str,
        field: Option<&Field<String>>,
        default: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let Some(field) = field else {
            return Some(default);
        };
        match humantime::parse_duration(&field.value) {
            Ok(duration) if duration.is_zero() => {
                self.problem(&field.span, format!("{key}: must be greater than zero"))
            }
            Ok(duration) if duration > max => self.problem(
                &field.span,
                format!(
                    "{key}: {:?} is too long: at most {}",
                    field.value,
                    humantime::format_duration(max)
                ),
            ),
            Ok(duration) => Some(duration),
            Err(e) => self.problem(
                &field.span,
                format!(
                    "{key}: invalid duration {:?} ({e}); write e.g. \"30s\" or \"2m\"",
                    field.value
                ),
            ),
        }
    }

    /// A secret's value. Problems point at the secret's value and never
    /// contain it.
    pub(super) fn secret(&mut self, key: &str, field: &Field<RawSecret>) -> Option<Secret> {
        if let (RawSecret::Plain(_), Some(mode)) = (&field.value, self.readable_mode) {
            let message = format!(
                "{key}: plain-string secret in a config file that group or others can read (mode {mode:04o}); \
                 use {{ credential = .. }}, {{ file = .. }} or {{ env = .. }}, or make the file readable by its owner only"
            );
            self.warnings.push(&field.span, message);
        }
        match secret::resolve(&field.value, &self.secrets) {
            Ok(secret) => Some(secret),
            Err(e) => self.problem(&field.span, format!("{key}: {e}")),
        }
    }
}

/// Parses one of our own default URLs.
fn default_url(url: &str) -> Url {
    // The defaults are constants checked by a test; input never reaches here.
    Url::parse(url).expect("default URLs are valid")
}

/// A URL we are willing to send credentials to: https, or plain http to a
/// loopback host (the sandbox, a local proxy).
pub(super) fn check_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a valid URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => {
            let host = url.host_str().unwrap_or("no host");
            Err(format!(
                "plain http:// is only allowed for loopback hosts (got {host})"
            ))
        }
        other => Err(format!(
            "scheme {other:?} is not allowed (use https://, or http:// for a loopback host)"
        )),
    }
}

/// `localhost`, 127.0.0.0/8 or `[::1]`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
