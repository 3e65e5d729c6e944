//! Where a ledger lives: a SQLite file (`[ledger] path`) or a PostgreSQL
//! database (`[ledger] url`, with its password and TLS settings as
//! secrets). The PostgreSQL settings are checked here, once, when the
//! config is read, so that `check` reports a bad URL, a password written
//! into it, or unverified TLS to another host, before anything connects.

use crate::config::Secret;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Where a ledger lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(Box<PostgresTarget>),
}

impl Target {
    /// The file, or the URL (it never holds a password), for messages.
    pub fn display(&self) -> String {
        match self {
            Target::Sqlite(path) => path.display().to_string(),
            Target::Postgres(pg) => pg.url.clone(),
        }
    }

    /// Whether there may be a ledger to read: the file exists, or the
    /// ledger is a database (only connecting tells).
    pub fn exists(&self) -> bool {
        match self {
            Target::Sqlite(path) => path.exists(),
            Target::Postgres(_) => true,
        }
    }

    /// The file, when the ledger is a SQLite file.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Target::Sqlite(path) => Some(path),
            Target::Postgres(_) => None,
        }
    }
}

/// What names where a ledger lives: a path (a SQLite file) or a [`Target`].
pub trait AsTarget {
    /// The target named.
    fn as_target(&self) -> Target;
}

impl AsTarget for Path {
    fn as_target(&self) -> Target {
        Target::Sqlite(self.to_path_buf())
    }
}

impl AsTarget for PathBuf {
    fn as_target(&self) -> Target {
        Target::Sqlite(self.clone())
    }
}

impl AsTarget for Target {
    fn as_target(&self) -> Target {
        self.clone()
    }
}

impl PartialEq<&Path> for Target {
    fn eq(&self, other: &&Path) -> bool {
        self.file() == Some(*other)
    }
}

impl PartialEq<Path> for Target {
    fn eq(&self, other: &Path) -> bool {
        self.file() == Some(other)
    }
}

/// How the connection to PostgreSQL is protected (`[ledger] sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS: only to a loopback address or a Unix socket.
    Disable,
    /// TLS; the certificate must chain to `sslrootcert` (else to the
    /// system's trusted roots) and name the host connected to. The default,
    /// and the only TLS mode: no setting weakens the verification.
    VerifyFull,
}

impl SslMode {
    /// The config text.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A PostgreSQL ledger's connection settings, checked.
#[derive(Clone)]
pub struct PostgresTarget {
    /// As written: it holds no password (refused).
    url: String,
    pub(super) config: postgres::Config,
    pub(super) sslmode: SslMode,
    /// Whether the hosts are Unix sockets (no TLS there: the socket's file
    /// permissions protect it, as libpq ignores `sslmode` for them).
    pub(super) unix_socket: bool,
    pub(super) root_cert: Option<Secret>,
    pub(super) client_cert: Option<(Secret, Secret)>,
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("url", &self.url)
            .field("sslmode", &self.sslmode)
            .finish_non_exhaustive()
    }
}

impl PartialEq for PostgresTarget {
    /// The same database, reached the same way (secrets are not compared).
    fn eq(&self, other: &PostgresTarget) -> bool {
        self.url == other.url && self.sslmode == other.sslmode
    }
}

/// The `[ledger]` keys of a PostgreSQL ledger, as the config gives them.
#[derive(Debug, Default)]
pub struct PostgresSettings<'a> {
    /// `url`: `postgres://USER@HOST[:PORT]/DATABASE[?options]`.
    pub url: &'a str,
    /// `password`.
    pub password: Option<Secret>,
    /// `sslmode`: `verify-full` (default) or `disable`.
    pub sslmode: Option<&'a str>,
    /// `sslrootcert`: PEM certificates the server's must chain to.
    pub sslrootcert: Option<Secret>,
    /// `sslcert`: the client's PEM certificate chain, for certificate authentication.
    pub sslcert: Option<Secret>,
    /// `sslkey`: its PEM private key.
    pub sslkey: Option<Secret>,
}

/// A refused `[ledger]` key: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The key the problem is reported at.
    pub key: &'static str,
    /// What is wrong, and what to write instead.
    pub message: String,
}

fn refuse<T>(key: &'static str, message: impl Into<String>) -> Result<T, SettingError> {
    Err(SettingError {
        key,
        message: message.into(),
    })
}

/// Query parameters of the URL that belong in their own keys: secrets
/// must not sit in a URL that is printed in logs, and TLS is ours to set
/// up (the client library only knows unverified modes).
const KEYS_NOT_IN_URL: &[(&str, &str)] = &[
    ("password", "password"),
    ("sslmode", "sslmode"),
    ("sslrootcert", "sslrootcert"),
    ("sslcert", "sslcert"),
    ("sslkey", "sslkey"),
    ("sslpassword", "sslkey"),
    ("sslnegotiation", "sslmode"),
];

/// How long a connection attempt waits when the URL does not say
/// (`connect_timeout`): an unreachable server is an error, not a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl PostgresTarget {
    /// Checks the settings. Refused: a URL that is not `postgres://` or
    /// `postgresql://`, that names no user or host, or that holds a
    /// password or TLS setting (each has its key); `sslmode = "disable"`
    /// towards a host that is not a loopback address; the modes that do not
    /// verify the server fully (`verify-ca`, `require`, `prefer`, `allow`);
    /// certificates that are not PEM; a client certificate without its key.
    pub fn new(settings: PostgresSettings<'_>) -> Result<PostgresTarget, SettingError> {
        let url = settings.url;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return refuse(
                "url",
                "not a PostgreSQL URL: write postgres://USER@HOST[:PORT]/DATABASE",
            );
        }
        if let Some((_, query)) = url.split_once('?') {
            for (key, _) in url::form_urlencoded::parse(query.as_bytes()) {
                if let Some((_, own)) = KEYS_NOT_IN_URL.iter().find(|(k, _)| *k == key) {
                    return refuse(
                        "url",
                        format!("`{key}` does not belong in the URL: set `{own}` in [ledger]"),
                    );
                }
            }
        }
        let mut config = postgres::Config::from_str(url).map_err(|e| SettingError {
            key: "url",
            // The client's message names the part it could not read, never
            // a value (a password may be there).
            message: format!(
                "not a PostgreSQL URL ({}); write postgres://USER@HOST[:PORT]/DATABASE",
                std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string)
            ),
        })?;
        if config.get_password().is_some() {
            return refuse(
                "url",
                "the URL holds a password, and the URL is printed in logs: remove it and set \
                 `password` (e.g. password = { credential = \"ledger-password\" })",
            );
        }
        if config.get_user().is_none_or(str::is_empty) {
            return refuse(
                "url",
                "names no user: write postgres://USER@HOST[:PORT]/DATABASE",
            );
        }
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            return refuse(
                "url",
                "names no host: write postgres://USER@HOST[:PORT]/DATABASE (a Unix socket \
                 directory as ?host=/run/postgresql)",
            );
        }
        let unix = config
            .get_hosts()
            .iter()
            .filter(|h| matches!(h, postgres::config::Host::Unix(_)))
            .count();
        if unix > 0 && (unix < config.get_hosts().len() || !config.get_hostaddrs().is_empty()) {
            return refuse(
                "url",
                "mixes Unix sockets and network hosts: name one or the other",
            );
        }
        let unix_socket = unix > 0;
        let sslmode = match settings.sslmode {
            None | Some("verify-full") => SslMode::VerifyFull,
            Some("disable") => SslMode::Disable,
            Some(weak @ ("verify-ca" | "require" | "prefer" | "allow")) => {
                return refuse(
                    "sslmode",
                    format!(
                        "\"{weak}\" does not verify the server fully, so another host could pose \
                         as it and read the reviews and the password: use \"verify-full\" (the \
                         default), with sslrootcert = {{ file = \"...\" }} for a private CA, and \
                         a host name the server's certificate holds"
                    ),
                );
            }
            Some(other) => {
                return refuse(
                    "sslmode",
                    format!(
                        "unknown mode {other:?}: use \"verify-full\" (the default) or \"disable\" \
                         (loopback and Unix sockets only)"
                    ),
                );
            }
        };
        if sslmode == SslMode::Disable
            && !unix_socket
            && let Some(remote) = first_remote_host(&config)
        {
            return refuse(
                "sslmode",
                format!(
                    "\"disable\" is only allowed for loopback hosts and Unix sockets (got \
                     {remote}): the reviews and the password would cross the network in clear"
                ),
            );
        }
        let tls_unused = sslmode == SslMode::Disable || unix_socket;
        for (key, given) in [
            ("sslrootcert", settings.sslrootcert.is_some()),
            ("sslcert", settings.sslcert.is_some()),
            ("sslkey", settings.sslkey.is_some()),
        ] {
            if given && tls_unused {
                return refuse(
                    key,
                    "has no use: the connection does not use TLS (sslmode = \"disable\", or a \
                     Unix socket)",
                );
            }
        }
        // An empty value is a secret not read (`ledger stats` reads the
        // sources' mapping without secrets); the real one is never empty.
        let unread = |s: &Secret| s.expose().is_empty();
        if let Some(root) = settings.sslrootcert.as_ref().filter(|r| !unread(r)) {
            certificates("sslrootcert", root)?;
        }
        let client_cert = match (settings.sslcert, settings.sslkey) {
            (Some(cert), Some(key)) => {
                if !unread(&cert) {
                    certificates("sslcert", &cert)?;
                }
                if !unread(&key) {
                    private_key(&key)?;
                }
                Some((cert, key))
            }
            (Some(_), None) => return refuse("sslcert", "needs sslkey, its private key"),
            (None, Some(_)) => return refuse("sslkey", "needs sslcert, its certificate"),
            (None, None) => None,
        };
        if let Some(password) = settings.password.as_ref().filter(|p| !unread(p)) {
            config.password(password.expose());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("review-sync");
        }
        config.ssl_mode(if tls_unused {
            postgres::config::SslMode::Disable
        } else {
            postgres::config::SslMode::Require
        });
        Ok(PostgresTarget {
            url: url.to_owned(),
            config,
            sslmode,
            unix_socket,
            root_cert: settings.sslrootcert,
            client_cert,
        })
    }

    /// The URL as written (it holds no password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The TLS mode in effect.
    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// The password the connection will give (tests of the config).
    #[cfg(test)]
    pub(crate) fn password(&self) -> Option<&[u8]> {
        self.config.get_password()
    }
}

/// The first host that is not a loopback address, if any.
fn first_remote_host(config: &postgres::Config) -> Option<String> {
    for host in config.get_hosts() {
        if let postgres::config::Host::Tcp(name) = host {
            let loopback = name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Some(name.clone());
            }
        }
    }
    config
        .get_hostaddrs()
        .iter()
        .find(|ip| !ip.is_loopback())
        .map(ToString::to_string)
}

/// The PEM certificates of `secret` (at least one).
pub(super) fn certificates(
    key: &'static str,
    secret: &Secret,
) -> Result<Vec<CertificateDer<'static>>, SettingError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(secret.expose().as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| SettingError {
            key,
            message: format!("not PEM certificates ({e})"),
        })?;
    if certs.is_empty() {
        return refuse(
            key,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----); to name a file, write \
             { file = \"/path/to/cert.pem\" }",
        );
    }
    Ok(certs)
}

/// The PEM private key of `secret`.
pub(super) fn private_key(secret: &Secret) -> Result<PrivateKeyDer<'static>, SettingError> {
    PrivateKeyDer::from_pem_slice(secret.expose().as_bytes()).map_err(|e| SettingError {
        key: "sslkey",
        // The error names the PEM section, never the key's bytes.
        message: format!(
            "not a PEM private key ({e}); to name a file, write {{ file = \"/path/to/key.pem\" }}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, sslmode: Option<&str>) -> Result<PostgresTarget, SettingError> {
        PostgresTarget::new(PostgresSettings {
            url,
            sslmode,
            ..PostgresSettings::default()
        })
    }

    fn refused(url: &str, sslmode: Option<&str>) -> SettingError {
        target(url, sslmode).expect_err("refused")
    }

    #[test]
    fn verification_is_on_by_default() {
        let t = target("postgres://rs@db.internal/ledger", None).unwrap();
        assert_eq!(t.sslmode(), SslMode::VerifyFull);
        assert_eq!(t.config.get_ssl_mode(), postgres::config::SslMode::Require);
        assert_eq!(t.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
    }

    #[test]
    fn a_password_or_tls_setting_in_the_url_is_refused() {
        let e = refused("postgres://rs:hunter2@db.internal/ledger", None);
        assert_eq!(e.key, "url");
        assert!(
            e.message.contains("password") && !e.message.contains("hunter2"),
            "{e:?}"
        );
        for (query, own) in [
            ("password=x", "password"),
            ("sslmode=require", "sslmode"),
            ("sslrootcert=/ca.pem", "sslrootcert"),
        ] {
            let e = refused(&format!("postgres://rs@db/ledger?{query}"), None);
            assert!(e.message.contains(&format!("set `{own}`")), "{e:?}");
        }
    }

    #[test]
    fn disable_is_only_for_loopback_and_unix_sockets() {
        for url in [
            "postgres://rs@127.0.0.1:5432/l",
            "postgres://rs@localhost/l",
            "postgres://rs@[::1]/l",
            "postgres://rs@/l?host=/run/postgresql",
        ] {
            assert!(target(url, Some("disable")).is_ok(), "{url}");
        }
        let e = refused("postgres://rs@db.internal/l", Some("disable"));
        assert_eq!(e.key, "sslmode");
        assert!(e.message.contains("db.internal"), "{e:?}");
        let e = refused("postgres://rs@127.0.0.1,db.internal/l", Some("disable"));
        assert!(e.message.contains("db.internal"), "{e:?}");
    }

    #[test]
    fn unverified_and_unknown_modes_are_refused() {
        for mode in ["verify-ca", "require", "prefer", "allow", "verify_full"] {
            let e = refused("postgres://rs@db/l", Some(mode));
            assert_eq!(e.key, "sslmode");
            assert!(e.message.contains("verify-full"), "{e:?}");
        }
    }

    #[test]
    fn a_url_without_user_or_host_or_of_another_scheme_is_refused() {
        for url in [
            "postgres://db/l",
            "mysql://rs@db/l",
            "not a url",
            "postgres://rs@/l",
        ] {
            assert_eq!(refused(url, None).key, "url", "{url}");
        }
    }

    #[test]
    fn certificates_must_be_pem() {
        let e = PostgresTarget::new(PostgresSettings {
            url: "postgres://rs@db/l",
            sslrootcert: Some(Secret::new("/etc/ssl/ca.pem")),
            ..PostgresSettings::default()
        })
        .unwrap_err();
        assert_eq!(e.key, "sslrootcert");
        assert!(e.message.contains("{ file ="), "{e:?}");
        let e = PostgresTarget::new(PostgresSettings {
            url: "postgres://rs@db/l",
            sslkey: Some(Secret::new("k")),
            ..PostgresSettings::default()
        })
        .unwrap_err();
        assert_eq!(e.key, "sslkey");
    }

    #[test]
    fn the_debug_form_shows_no_secret() {
        let t = PostgresTarget::new(PostgresSettings {
            url: "postgres://rs@db/l",
            password: Some(Secret::new("hunter2")),
            ..PostgresSettings::default()
        })
        .unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
        assert!(!Target::Postgres(Box::new(t)).display().contains("hunter2"));
    }
}
