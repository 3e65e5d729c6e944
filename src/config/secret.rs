//! Secrets: the [`Secret`] type that never shows its value, and resolving a
//! secret as written (a plain string, `{ env = "NAME" }`, `{ file = "PATH" }`
//! or `{ credential = "NAME" }`, systemd's `$CREDENTIALS_DIRECTORY`) into its
//! value at load time, so that a missing secret is a config error found by
//! `check` rather than a failure in the middle of the night.

use super::raw::RawSecret;
use crate::local_file::LocalFileError;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};

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
    /// `{ credential = .. }` without `$CREDENTIALS_DIRECTORY` (validation
    /// reports all of these as one problem with the fix).
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
    /// Where `{ credential = .. }` secrets are read, instead of
    /// `$CREDENTIALS_DIRECTORY` (`check --credentials-directory`).
    pub(super) credentials_dir: Option<&'a Path>,
    /// Whether secrets are read at all: `ledger` commands only need the
    /// mapping, and must work from a shell without the unit's credentials.
    pub(super) read: bool,
}

/// A secret's value, and where it came from when that was a file.
pub(super) struct Resolved {
    /// The value.
    pub(super) secret: Secret,
    /// The file it was read from and its permission bits, when group or
    /// others may read that file (worth a warning).
    pub(super) readable_file: Option<(PathBuf, u32)>,
}

/// Reads the value of a secret as written. When `sources.read` is false,
/// only the form is checked and the value is empty.
pub(super) fn resolve(
    raw: &RawSecret,
    sources: &SecretSources<'_>,
) -> Result<Resolved, SecretError> {
    if !sources.read {
        if let RawSecret::Credential(name) = raw {
            check_credential_name(&name.value)?;
        }
        return Ok(Resolved {
            secret: Secret::new(""),
            readable_file: None,
        });
    }
    let (value, readable_file) = match raw {
        RawSecret::Plain(value) => (value.clone(), None),
        RawSecret::Env(name) => (
            (sources.env)(&name.value)
                .ok_or_else(|| SecretError::EnvMissing(name.value.clone()))?,
            None,
        ),
        RawSecret::File(path) => read_secret_file(&sources.dir.join(&path.value))?,
        RawSecret::Credential(name) => read_credential(&name.value, sources)?,
    };
    if value.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(Resolved {
        secret: Secret::new(value),
        readable_file,
    })
}

/// A credential name is a plain file name, as systemd's are.
fn check_credential_name(name: &str) -> Result<(), SecretError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(SecretError::InvalidCredentialName(name.to_owned()));
    }
    Ok(())
}

/// `$CREDENTIALS_DIRECTORY/NAME` (or the directory named on the command line).
fn read_credential(
    name: &str,
    sources: &SecretSources<'_>,
) -> Result<(String, Option<(PathBuf, u32)>), SecretError> {
    check_credential_name(name)?;
    let dir = match sources.credentials_dir {
        Some(dir) => dir.to_path_buf(),
        None => (sources.env)("CREDENTIALS_DIRECTORY")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| SecretError::NoCredentialsDirectory(name.to_owned()))?,
    };
    read_secret_file(&dir.join(name))
}

/// The largest secret file we read. Tokens and keys are well under a
/// kilobyte; a bigger file is the wrong file (a device, a log, a database),
/// and reading it whole could take all memory before `check` can say so.
pub(super) const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret file's content without its one trailing newline (`echo` and
/// most editors add one, and it is never part of a token), and its mode
/// when group or others may read it. Only a regular file of at most
/// [`MAX_SECRET_FILE_BYTES`] is read: a FIFO or a device is refused
/// without being opened for a blocking read.
fn read_secret_file(path: &Path) -> Result<(String, Option<(PathBuf, u32)>), SecretError> {
    let unreadable = |reason: String| SecretError::Unreadable {
        path: path.display().to_string(),
        reason,
    };
    let content = match crate::local_file::read_capped(path, MAX_SECRET_FILE_BYTES) {
        Ok(content) => content,
        Err(LocalFileError::TooLarge { .. }) => {
            return Err(unreadable(format!(
                "larger than {MAX_SECRET_FILE_BYTES} bytes: not a secret"
            )));
        }
        Err(e) => return Err(unreadable(e.to_string())),
    };
    let mut value =
        String::from_utf8(content).map_err(|_| unreadable("not UTF-8 text".to_owned()))?;
    if value.ends_with("\r\n") {
        value.truncate(value.len() - 2);
    } else if value.ends_with('\n') {
        value.truncate(value.len() - 1);
    }
    Ok((
        value,
        readable_by_others(path).map(|mode| (path.to_path_buf(), mode)),
    ))
}

/// A file's permission bits when group or others may read it.
pub(super) fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}
