//! Secrets: the [`Secret`] type that never shows its value, and resolving a
//! secret as written (a plain string, `{ env = "NAME" }`, `{ file = "PATH" }`
//! or `{ credential = "NAME" }`, systemd's `$CREDENTIALS_DIRECTORY`) into its
//! value at load time, so that a missing secret is a config error found by
//! `check` rather than a failure in the middle of the night.

use super::raw::RawSecret;
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;

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

/// Why a secret could not be read. No variant carries the secret's value.
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
    #[error(
        "credential {0} requested but $CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit)"
    )]
    NoCredentialsDirectory(String),
    /// `{ credential = .. }` names something that cannot be a credential:
    /// systemd credential names are plain file names.
    #[error("credential name {0:?} must be a plain file name (no `/`, not `.` or `..`)")]
    InvalidCredentialName(String),
    /// The secret resolved to an empty string.
    #[error("secret is empty")]
    Empty,
}

/// Where secrets are looked up.
pub(super) struct SecretSources<'a> {
    /// Environment variables, including `CREDENTIALS_DIRECTORY`.
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    /// The config file's directory: relative `{ file = .. }` paths start here.
    pub(super) dir: &'a Path,
}

/// Reads the value of a secret as written.
pub(super) fn resolve(raw: &RawSecret, sources: &SecretSources<'_>) -> Result<Secret, SecretError> {
    let value = match raw {
        RawSecret::Plain(value) => value.clone(),
        RawSecret::Env(name) => {
            (sources.env)(&name.value).ok_or_else(|| SecretError::EnvMissing(name.value.clone()))?
        }
        RawSecret::File(path) => read_secret_file(&sources.dir.join(&path.value))?,
        RawSecret::Credential(name) => read_credential(&name.value, sources)?,
    };
    if value.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(Secret::new(value))
}

/// `$CREDENTIALS_DIRECTORY/NAME`.
fn read_credential(name: &str, sources: &SecretSources<'_>) -> Result<String, SecretError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(SecretError::InvalidCredentialName(name.to_owned()));
    }
    let dir = (sources.env)("CREDENTIALS_DIRECTORY")
        .filter(|dir| !dir.is_empty())
        .ok_or_else(|| SecretError::NoCredentialsDirectory(name.to_owned()))?;
    read_secret_file(&Path::new(&dir).join(name))
}

/// The largest secret file we read. Tokens and keys are well under a
/// kilobyte; a bigger file is the wrong file (a device, a log, a database),
/// and reading it whole could take all memory before `check` can say so.
pub(super) const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret file's content without its one trailing newline: `echo` and most
/// editors add one, and it is never part of a token.
fn read_secret_file(path: &Path) -> Result<String, SecretError> {
    use std::io::Read;
    let unreadable = |reason: String| SecretError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let mut value = String::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut value)
        .map_err(|e| unreadable(e.to_string()))?;
    if value.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(unreadable(format!(
            "larger than {MAX_SECRET_FILE_BYTES} bytes: not a secret"
        )));
    }
    if value.ends_with("\r\n") {
        value.truncate(value.len() - 2);
    } else if value.ends_with('\n') {
        value.truncate(value.len() - 1);
    }
    Ok(value)
}
