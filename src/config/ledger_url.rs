//! `[ledger] url`: a PostgreSQL ledger instead of a file, with its password
//! and TLS settings as secrets in every secret form (`password = {
//! credential = "ledger-password" }`, `sslrootcert = { file = "ca.pem" }`).
//! The settings themselves are checked by `ledger::PostgresTarget`; this
//! file maps its answer to the key it concerns.

use super::Secret;
use super::raw::{Field, RawLedger, RawSecret};
use super::secret;
use super::validate::Validator;
use crate::ledger::{PostgresSettings, PostgresTarget, Target};

/// The keys that only mean something with `url`.
const POSTGRES_KEYS: [&str; 6] = [
    "password",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "lease",
];

impl Validator<'_> {
    /// The PostgreSQL ledger `[ledger] url` names, or every problem with it
    /// recorded.
    pub(super) fn postgres_ledger(
        &mut self,
        raw: &RawLedger,
        url: &Field<String>,
    ) -> Option<Target> {
        if let Some(path) = &raw.path {
            return self.problem(
                &path.key,
                "path: set either path (a SQLite file) or url (a PostgreSQL database), not both",
            );
        }
        // Each secret is read (and its problem reported) before any is used.
        let password = raw.password.as_ref().map(|f| self.secret("password", f));
        let sslrootcert = raw
            .sslrootcert
            .as_ref()
            .map(|f| self.certificate("sslrootcert", f));
        let sslcert = raw.sslcert.as_ref().map(|f| self.certificate("sslcert", f));
        let sslkey = raw.sslkey.as_ref().map(|f| self.secret("sslkey", f));
        let settings = PostgresSettings {
            url: &url.value,
            password: read(password)?,
            sslmode: raw.sslmode.as_ref().map(|f| f.value.as_str()),
            sslrootcert: read(sslrootcert)?,
            sslcert: read(sslcert)?,
            sslkey: read(sslkey)?,
        };
        match PostgresTarget::new(settings) {
            Ok(target) => Some(Target::Postgres(Box::new(target))),
            Err(e) => {
                let span = match e.key {
                    "sslmode" => raw.sslmode.as_ref().map(|f| &f.span),
                    "sslrootcert" => raw.sslrootcert.as_ref().map(|f| &f.span),
                    "sslcert" => raw.sslcert.as_ref().map(|f| &f.span),
                    "sslkey" => raw.sslkey.as_ref().map(|f| &f.span),
                    "password" => raw.password.as_ref().map(|f| &f.span),
                    _ => None,
                }
                .unwrap_or(&url.span)
                .clone();
                self.problem(&span, format!("{}: {}", e.key, e.message))
            }
        }
    }

    /// Refuses the PostgreSQL keys in a `[ledger]` without `url`: they
    /// would be silently unused.
    pub(super) fn stray_postgres_keys(&mut self, raw: &RawLedger) {
        for (key, span) in raw.present() {
            if POSTGRES_KEYS.contains(&key) {
                self.problems.push(
                    &span,
                    format!("{key}: only with url (a PostgreSQL ledger); a SQLite ledger has none"),
                );
            }
        }
    }

    /// A certificate written in a secret form: public material, so neither
    /// a plain string in the config nor a file others can read is worth a
    /// warning.
    fn certificate(&mut self, key: &str, field: &Field<RawSecret>) -> Option<Secret> {
        match secret::resolve(&field.value, &self.secrets) {
            Ok(resolved) => Some(resolved.secret),
            Err(e) => self.problem(&field.span, format!("{key}: {e}")),
        }
    }
}

/// A secret key's outcome: `Some(None)` when the key is absent, `None`
/// when its problem was reported.
fn read(secret: Option<Option<Secret>>) -> Option<Option<Secret>> {
    match secret {
        None => Some(None),
        Some(read) => read.map(Some),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, load_str_with_env};
    use crate::ledger::{SslMode, Target};
    use std::collections::HashMap;
    use std::path::Path;

    const FILE: &str = "/nonexistent/review-sync/config.toml";
    const TRAVTUS: &str = "[travtus]\ntoken = \"t\"\n";

    fn load(ledger: &str, env: &[(&str, &str)]) -> Result<crate::config::Config, ConfigError> {
        let vars: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load_str_with_env(
            &format!("{TRAVTUS}[ledger]\n{ledger}"),
            Path::new(FILE),
            &|name| vars.get(name).cloned(),
        )
    }

    /// `line:column: message` of each problem.
    fn problems(ledger: &str) -> Vec<String> {
        let e = load(ledger, &[]).expect_err("refused");
        e.lines()
            .into_iter()
            .map(|l| l.trim_start_matches(&format!("{FILE}:")).to_owned())
            .collect()
    }

    #[test]
    fn instance_defaults_to_the_host_name_and_lease_is_bounded_and_postgres_only() {
        let pg = "url = \"postgres://rs@127.0.0.1/l\"\nsslmode = \"disable\"\n";
        let config = load(pg, &[]).unwrap();
        assert_eq!(config.ledger.instance, crate::config::host_name());
        assert!(!config.ledger.instance.is_empty());
        assert_eq!(config.ledger.lease, crate::config::DEFAULT_LEASE);
        let config = load(&format!("{pg}instance = \"web-1\"\nlease = \"10s\"\n"), &[]).unwrap();
        assert_eq!(config.ledger.instance, "web-1");
        assert_eq!(config.ledger.lease, std::time::Duration::from_secs(10));
        assert_eq!(
            problems(&format!("{pg}lease = \"1s\"\n")),
            ["6:9: lease: \"1s\" is too short: at least 3s"]
        );
        assert_eq!(
            problems(&format!("{pg}lease = \"11m\"\n")),
            ["6:9: lease: \"11m\" is too long: at most 10m"]
        );
        assert_eq!(
            problems(&format!("{pg}instance = \"\"\n")),
            ["6:12: instance: must be 1 to 64 printable characters (a name for this daemon)"]
        );
        assert_eq!(
            problems("path = \"l.db\"\nlease = \"10s\"\n"),
            ["5:1: lease: only with url (a PostgreSQL ledger); a SQLite ledger has none"]
        );
    }

    #[test]
    fn a_postgres_ledger_takes_its_password_as_a_secret_and_verifies_by_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pg"), "s3cret\n").unwrap();
        let config = load(
            "url = \"postgres://review_sync@db.internal/review_sync\"\n\
             password = { credential = \"pg\" }\n",
            &[("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap())],
        )
        .unwrap();
        let Target::Postgres(pg) = &config.ledger.path else {
            panic!("a PostgreSQL ledger: {:?}", config.ledger.path);
        };
        assert_eq!(pg.url(), "postgres://review_sync@db.internal/review_sync");
        assert_eq!(pg.sslmode(), SslMode::VerifyFull);
        assert_eq!(pg.password(), Some(&b"s3cret"[..]));
        let shown = format!("{:?} {}", config.ledger, config.ledger.path.display());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!config.ledger.path.exists() || config.ledger.path.file().is_none());
    }

    #[test]
    fn each_refused_setting_is_reported_at_its_key() {
        assert_eq!(
            problems("path = \"l.db\"\nurl = \"postgres://rs@db/l\"\n"),
            ["4:1: path: set either path (a SQLite file) or url (a PostgreSQL database), not both"]
        );
        assert_eq!(
            problems("path = \"/srv/l.db\"\nsslmode = \"disable\"\npassword = \"x\"\n"),
            [
                "5:1: sslmode: only with url (a PostgreSQL ledger); a SQLite ledger has none",
                "6:1: password: only with url (a PostgreSQL ledger); a SQLite ledger has none",
            ]
        );
        let disabled = problems("url = \"postgres://rs@db.internal/l\"\nsslmode = \"disable\"\n");
        assert_eq!(disabled.len(), 1);
        assert!(
            disabled[0].starts_with("5:11: sslmode: \"disable\" is only allowed for loopback"),
            "{disabled:?}"
        );
        let in_url = problems("url = \"postgres://rs:hunter2@db/l\"\n");
        assert!(
            in_url[0].starts_with("4:7: url: the URL holds a password"),
            "{in_url:?}"
        );
        assert!(!in_url[0].contains("hunter2"));
        let not_pem = problems("url = \"postgres://rs@db/l\"\nsslrootcert = \"/etc/ssl/ca.pem\"\n");
        assert!(
            not_pem[0].starts_with("5:15: sslrootcert: holds no PEM"),
            "{not_pem:?}"
        );
    }
}
