//! Stage two of two: the raw TOML ([`super::raw`]) becomes a [`Config`], with
//! every problem reported at once as `file:line:column: message`, in file
//! order. This file holds the entry points, the top-level sections and the
//! value checks shared with `[[source]]` (which lives in `sources.rs`).

use super::raw::{
    self, Field, RawConfig, RawLedger, RawMetrics, RawPush, RawSecret, RawSource, RawTravtus,
};
use super::secret::{self, SecretSources};
use super::span::{Findings, LineIndex, Span};
use super::{
    Config, ConfigError, LedgerConfig, MetricsConfig, PushConfig, Secret, SecretError, TravtusAuth,
    TravtusConfig,
};
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

/// The largest config file we read. A portfolio of 10,000 locations is
/// about 1.5 MB of TOML; a larger file is the wrong file, and reading a
/// device such as `/dev/zero` whole would take all memory first.
pub(super) const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// What a caller wants from [`load_with`] beyond the file itself.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Read `{ credential = "NAME" }` secrets from this directory instead
    /// of `$CREDENTIALS_DIRECTORY` (`check --credentials-directory`).
    pub credentials_directory: Option<PathBuf>,
}

/// How much of the world a validation looks at.
struct Reach<'a> {
    /// Where credentials are read instead of `$CREDENTIALS_DIRECTORY`.
    credentials_dir: Option<&'a Path>,
    /// Whether secrets are read (else only their form is checked).
    read_secrets: bool,
    /// Whether the ledger's directory must exist (the real file, not text
    /// in a test with a made-up path).
    check_ledger_dir: bool,
}

/// Reads and validates the config file at `path`, with secrets from the
/// process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &LoadOptions::default())
}

/// [`load`], reading credentials where `options` says.
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Config, ConfigError> {
    let text = read_config(path)?;
    let reach = Reach {
        credentials_dir: options.credentials_directory.as_deref(),
        read_secrets: true,
        check_ledger_dir: true,
    };
    validate(&text, path, &|name| std::env::var(name).ok(), &reach)
}

/// Only `[ledger]` of the config file at `path`, for `ledger` commands: the
/// rest of the file (sources, their secrets) is not looked at, so that an
/// auditor in a shell without the unit's credentials can read the ledger
/// (a PostgreSQL ledger's own password and keys are read). A TOML
/// syntax error anywhere, or a problem in `[ledger]`, is still refused.
pub fn load_ledger(path: &Path) -> Result<LedgerConfig, ConfigError> {
    let text = read_config(path)?;
    let lines = LineIndex::new(&text);
    // The ledger's own secrets (a PostgreSQL password) are read: they are
    // the only ones in [ledger].
    let reach = Reach {
        credentials_dir: None,
        read_secrets: true,
        check_ledger_dir: true,
    };
    let dir = config_dir(path);
    let env = |name: &str| std::env::var(name).ok();
    let mut validator = Validator::new(&lines, path, &dir, &env, &reach);
    let ledger = raw::parse_ledger(&text, &mut validator.problems)
        .and_then(|raw| validator.ledger(raw.map(|field| field.value)));
    validator.finish(ledger, path).map(|(ledger, _)| ledger)
}

/// The sources of the config file at `path` as far as `ledger retry` and
/// `ledger stats` need them (names, kinds, location mappings), validated
/// without reading any secret.
pub fn load_source_map(path: &Path) -> Result<super::SourceMap, ConfigError> {
    let text = read_config(path)?;
    let reach = Reach {
        credentials_dir: None,
        read_secrets: false,
        check_ledger_dir: false,
    };
    let config = validate(&text, path, &|_| None, &reach)?;
    Ok(super::SourceMap::of(config))
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
/// can read. The ledger's directory is not checked (that is [`load`]'s).
pub fn load_str_with_env(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let reach = Reach {
        credentials_dir: None,
        read_secrets: true,
        check_ledger_dir: false,
    };
    validate(text, path, env, &reach)
}

/// The config file's text: a regular file of at most [`MAX_CONFIG_BYTES`],
/// never a blocking read of a FIFO or an endless one of a device.
fn read_config(path: &Path) -> Result<String, ConfigError> {
    let cannot =
        |reason: String| ConfigError::whole_file(path, format!("cannot read config: {reason}"));
    let bytes = crate::local_file::read_capped(path, MAX_CONFIG_BYTES)
        .map_err(|e| cannot(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| {
        cannot(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Validates the whole config.
fn validate(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    reach: &Reach<'_>,
) -> Result<Config, ConfigError> {
    let lines = LineIndex::new(text);
    let dir = config_dir(path);
    let mut validator = Validator::new(&lines, path, &dir, env, reach);
    let config = raw::parse(text, &mut validator.problems).and_then(|raw| validator.config(raw));
    let (mut config, warnings) = validator.finish(config, path)?;
    config.path = path.to_path_buf();
    config.warnings = warnings;
    Ok(config)
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

/// The state of one validation: what it reads from, and what it found.
pub(super) struct Validator<'a> {
    /// For messages that mention another position.
    pub(super) lines: &'a LineIndex<'a>,
    /// Environment and base directory for secrets and relative paths.
    pub(super) secrets: SecretSources<'a>,
    /// The config file's mode when group or others can read it: each
    /// plain-string secret in it is then worth a warning.
    readable_mode: Option<u32>,
    /// Whether `[ledger] path` must be in an existing directory.
    check_ledger_dir: bool,
    /// `{ credential = .. }` secrets unread for want of a credentials
    /// directory, by key position: reported as one problem that says how to
    /// fix them all, not one unexplained problem each.
    missing_credentials: Vec<(Span, String)>,
    /// Errors: any one of them refuses the config.
    pub(super) problems: Findings,
    /// Findings that do not refuse the config.
    pub(super) warnings: Findings,
}

impl<'a> Validator<'a> {
    fn new(
        lines: &'a LineIndex<'a>,
        path: &Path,
        dir: &'a Path,
        env: &'a dyn Fn(&str) -> Option<String>,
        reach: &Reach<'a>,
    ) -> Validator<'a> {
        Validator {
            lines,
            secrets: SecretSources {
                env,
                dir,
                credentials_dir: reach.credentials_dir,
                read: reach.read_secrets,
            },
            readable_mode: secret::readable_by_others(path),
            check_ledger_dir: reach.check_ledger_dir,
            missing_credentials: Vec::new(),
            problems: Findings::default(),
            warnings: Findings::default(),
        }
    }
}

impl Validator<'_> {
    /// The value and the warnings, or every problem found.
    fn finish<T>(mut self, value: Option<T>, path: &Path) -> Result<(T, Vec<String>), ConfigError> {
        self.report_missing_credentials();
        match value {
            Some(value) if self.problems.is_empty() => {
                let warnings = self.warnings.render(path, self.lines);
                Ok((value, warnings.iter().map(ToString::to_string).collect()))
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

    /// One problem for every `{ credential = .. }` that could not be read
    /// because no credentials directory is set, saying how to set one.
    fn report_missing_credentials(&mut self) {
        let Some((span, _)) = self.missing_credentials.first() else {
            return;
        };
        let span = span.clone();
        let mut names: Vec<&str> = self
            .missing_credentials
            .iter()
            .map(|(_, name)| name.as_str())
            .collect();
        let count = names.len();
        let what = if count == 1 {
            format!("secret {:?} is a systemd credential", names[0])
        } else {
            if count > 3 {
                names.truncate(3);
                names.push("...");
            }
            format!(
                "{count} secrets are systemd credentials ({})",
                names.join(", ")
            )
        };
        let message = format!(
            "{what} but no credentials directory is set: under systemd, LoadCredential= in the unit sets $CREDENTIALS_DIRECTORY; \
             from a shell, run `review-sync check --credentials-directory DIR` with the directory that holds them (or set CREDENTIALS_DIRECTORY=DIR)"
        );
        self.problems.push(&span, message);
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
        let push = raw.push.map(|field| self.push(field.value));
        if push.is_none() {
            self.webhooks_without_listener(raw.source.as_ref());
        }
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
            push: match push {
                Some(push) => Some(push?),
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

    /// `[ledger]`; a relative path is relative to the config file; `url`
    /// instead of `path` is a PostgreSQL ledger (`ledger_url.rs`).
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
        let instance = self.instance(raw.instance.as_ref());
        let lease = self.lease(raw.lease.as_ref());
        if let Some(url) = &raw.url {
            let target = self.postgres_ledger(&raw, url);
            return Some(LedgerConfig {
                path: target?,
                retain_text_days: retain_text_days?,
                retain_polls_days: retain_polls_days?,
                instance: instance?,
                lease: lease?,
            });
        }
        self.stray_postgres_keys(&raw);
        let path = match &raw.path {
            None => Some(PathBuf::from(DEFAULT_LEDGER_PATH)),
            Some(field) if field.value.is_empty() => {
                self.problem(&field.span, "path: must not be empty")
            }
            Some(field) => Some(self.secrets.dir.join(&field.value)),
        };
        if let Some(path) = &path
            && self.check_ledger_dir
            && let Err(reason) = ledger_place(path)
        {
            match &raw.path {
                Some(field) => self.problems.push(&field.span, format!("path: {reason}")),
                None => self.problems.push(
                    &raw.span,
                    format!(
                        "[ledger] path is not set, and its default {DEFAULT_LEDGER_PATH}: {reason}"
                    ),
                ),
            }
            return None;
        }
        Some(LedgerConfig {
            path: crate::ledger::Target::Sqlite(path?),
            retain_text_days: retain_text_days?,
            retain_polls_days: retain_polls_days?,
            instance: instance?,
            lease: lease?,
        })
    }

    /// `[ledger] instance`: 1 to 64 printable characters; the host name
    /// when not set.
    fn instance(&mut self, field: Option<&Field<String>>) -> Option<String> {
        let Some(field) = field else {
            return Some(super::host_name());
        };
        let value = field.value.trim();
        if value.is_empty() || value.chars().count() > 64 || value.chars().any(char::is_control) {
            return self.problem(
                &field.span,
                "instance: must be 1 to 64 printable characters (a name for this daemon)",
            );
        }
        Some(value.to_owned())
    }

    /// `[ledger] lease`: [`super::MIN_LEASE`]..=[`super::MAX_LEASE`].
    fn lease(&mut self, field: Option<&Field<String>>) -> Option<Duration> {
        let lease = self.duration("lease", field, super::DEFAULT_LEASE, super::MAX_LEASE)?;
        if lease < super::MIN_LEASE
            && let Some(field) = field
        {
            return self.problem(
                &field.span,
                format!(
                    "lease: {:?} is too short: at least {}",
                    field.value,
                    humantime::format_duration(super::MIN_LEASE)
                ),
            );
        }
        Some(lease)
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
        match field.value.parse::<std::net::SocketAddr>() {
            Ok(listen) => {
                if !listen.ip().is_loopback() {
                    let message = format!(
                        "listen: {listen} can be reached from other hosts, and /metrics and /healthz have no authentication: \
                         anyone who reaches the port reads source names, location ids and errors; listen on 127.0.0.1 \
                         (or [::1]) behind a proxy that authenticates, or allow only the scraper in a firewall"
                    );
                    self.warnings.push(&field.span, message);
                }
                Some(MetricsConfig { listen })
            }
            Err(e) => self.problem(
                &field.span,
                format!("listen: expected IP:PORT such as \"127.0.0.1:9187\" ({e})"),
            ),
        }
    }

    /// `[push]`.
    fn push(&mut self, raw: RawPush) -> Option<PushConfig> {
        let field = self.require(&raw.listen, "listen", "in [push]", &raw.span, &raw.invalid)?;
        let listen = match field.value.parse::<std::net::SocketAddr>() {
            Ok(listen) => Some(listen),
            Err(e) => self.problem(
                &field.span,
                format!("listen: expected IP:PORT such as \"127.0.0.1:9188\" ({e})"),
            ),
        };
        let silence = match &raw.webhook_silence_alert {
            Some(field) => self
                .duration(
                    "webhook_silence_alert",
                    Some(field),
                    Duration::ZERO,
                    super::MAX_WEBHOOK_SILENCE_ALERT,
                )
                .map(Some),
            None => Some(None),
        };
        Some(PushConfig {
            listen: listen?,
            webhook_silence_alert: silence?,
        })
    }

    /// A source with webhook secrets needs `[push] listen`: without it,
    /// nothing would ever receive its deliveries.
    fn webhooks_without_listener(&mut self, sources: Option<&Field<Vec<RawSource>>>) {
        for source in sources.iter().flat_map(|field| field.value.iter()) {
            if let Some((key, span)) = source
                .present()
                .into_iter()
                .find(|(key, _)| key.starts_with("webhook_"))
            {
                self.problems.push(
                    &span,
                    format!(
                        "{key}: webhooks need `[push] listen` (the address their receiver serves /webhooks/{{source}} on); without it nothing receives them"
                    ),
                );
            }
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
    pub(super) fn duration(
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
            Ok(resolved) => {
                if let Some((file, mode)) = resolved.readable_file {
                    let message = format!(
                        "{key}: secret file {} is readable by group or others (mode {mode:04o}); \
                         make it readable by its owner only (chmod 600), or use {{ credential = .. }}",
                        file.display()
                    );
                    self.warnings.push(&field.span, message);
                }
                Some(resolved.secret)
            }
            Err(SecretError::NoCredentialsDirectory(name)) => {
                self.missing_credentials.push((field.span.clone(), name));
                None
            }
            Err(e) => self.problem(&field.span, format!("{key}: {e}")),
        }
    }
}

/// Why the ledger cannot live at `path`: its directory is missing (never
/// created for the admin: systemd's `StateDirectory=` makes the real one,
/// and creating one elsewhere would hide a typo), or the path is something
/// other than a regular file. `check` reports it, so that `run` does not
/// fail at start and restart every few seconds.
fn ledger_place(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "directory {} does not exist (review-sync does not create it; \
                 systemd's StateDirectory= does, or create it by hand)",
                dir.display()
            ));
        }
        Err(e) => return Err(format!("cannot access {}: {e}", dir.display())),
    }
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(format!(
            "{} is {}, not a ledger file",
            path.display(),
            crate::local_file::kind_of(&m.file_type())
        )),
        _ => Ok(()),
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
