//! Secrets: a plain string, `{ env = "NAME" }`, `{ file = "PATH" }` or
//! `{ credential = "NAME" }` (systemd's `$CREDENTIALS_DIRECTORY`).

use secrecy::{ExposeSecret, SecretString};

/// A resolved secret value. `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value (used by validation and tests).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(SecretString::from(value.into()))
    }
    /// The value, for building an HTTP request. Never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `{ env = .. }` names an unset or non-UTF-8 variable.
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    /// `{ file = .. }` or `{ credential = .. }` could not be read.
    #[error("cannot read secret file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// `{ credential = .. }` without `$CREDENTIALS_DIRECTORY`.
    #[error("credential {0} requested but $CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit)")]
    NoCredentialsDirectory(String),
    /// The secret resolved to an empty string.
    #[error("secret is empty")]
    Empty,
}
