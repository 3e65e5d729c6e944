//! Secrets in each form (a plain string, `env`, `file`, `credential`), what
//! a secret file may be, values that never reach a problem or `Debug`, the
//! permission warning of a readable config, and an unreadable config file.

use super::*;

/// `[ledger]` next to the config file (whose folder exists, unlike the
/// default's in a test).
const LEDGER_HERE: &str = "[ledger]\npath = \"ledger.db\"\n";

#[test]
fn secret_forms_refused() {
    let one_form =
        "3:17: client_secret: a secret table takes exactly one of `env`, `file` and `credential`";
    assert_refused(&[
        refused(
            "two forms",
            with_client_secret("{ env = \"A\", file = \"b\" }"),
            &[one_form],
        ),
        refused("no form", with_client_secret("{}"), &[one_form]),
        refused(
            "an array",
            with_client_secret("[\"x\"]"),
            &[
                "3:17: client_secret: expected a string or a table such as { env = \"NAME\" }, found an array",
            ],
        ),
        refused(
            "an empty string",
            with_client_secret("\"\""),
            &["3:17: client_secret: secret is empty"],
        ),
        refused(
            "an env variable that is not set",
            with_client_secret("{ env = \"TRAVTUS_SECRET\" }"),
            &["3:17: client_secret: environment variable TRAVTUS_SECRET is not set"],
        ),
        refused(
            "a credential without a credentials directory",
            with_client_secret("{ credential = \"travtus\" }"),
            &[
                "3:17: secret \"travtus\" is a systemd credential but no credentials directory is set: under systemd, LoadCredential= in the unit sets $CREDENTIALS_DIRECTORY; from a shell, run `review-sync check --credentials-directory DIR` with the directory that holds them (or set CREDENTIALS_DIRECTORY=DIR)",
            ],
        ),
    ]);
}

#[test]
fn env_secrets() {
    let env = env_of(&[("TRAVTUS_SECRET", "from-env\n")]);
    let text = with_client_secret("{ env = \"TRAVTUS_SECRET\" }");
    let config = load_str_with_env(&text, Path::new(FILE), &env);
    // Only files lose a trailing newline; a variable is taken as set.
    assert_eq!(
        config.as_ref().map(client_secret_of).ok(),
        Some("from-env\n")
    );
    // Not set at all: a row of `secret_forms_refused`.
    let empty = env_of(&[("TRAVTUS_SECRET", "")]);
    let found = load_str_with_env(&text, Path::new(FILE), &empty)
        .err()
        .map(|e| e.lines());
    assert_eq!(
        found,
        Some(vec![format!("{FILE}:3:17: client_secret: secret is empty")])
    );
}

#[test]
fn file_secrets_lose_exactly_one_trailing_newline() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    for (content, expected) in [
        ("abc", "abc"),
        ("abc\n", "abc"),
        ("abc\r\n", "abc"),
        ("abc\n\n", "abc\n"),
        ("a b\nc\n", "a b\nc"),
    ] {
        std::fs::write(dir.path().join("secret"), content)?;
        let config = load_in(
            dir.path(),
            &with_client_secret("{ file = \"secret\" }"),
            &no_env,
        );
        assert_eq!(
            config.as_ref().map(client_secret_of).ok(),
            Some(expected),
            "{content:?}"
        );
    }
    std::fs::write(dir.path().join("secret"), "\n")?;
    let found = load_in(
        dir.path(),
        &with_client_secret("{ file = \"secret\" }"),
        &no_env,
    );
    assert_eq!(
        found.err().map(|e| e.lines()),
        Some(vec![format!(
            "{}:3:17: client_secret: secret is empty",
            dir.path().join("config.toml").display()
        )])
    );
    Ok(())
}

#[test]
fn a_secret_file_over_64_kib_is_refused_without_reading_it_all() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big");
    std::fs::write(&path, "x".repeat(64 * 1024))?;
    let at_cap = load_in(
        dir.path(),
        &with_client_secret("{ file = \"big\" }"),
        &no_env,
    );
    assert_eq!(
        at_cap.as_ref().map(|c| client_secret_of(c).len()).ok(),
        Some(64 * 1024)
    );
    std::fs::write(&path, "x".repeat(64 * 1024 + 1))?;
    let expected = format!(
        "{}:3:17: client_secret: cannot read secret file {}: larger than 65536 bytes: not a secret",
        dir.path().join("config.toml").display(),
        path.display()
    );
    let found = load_in(
        dir.path(),
        &with_client_secret("{ file = \"big\" }"),
        &no_env,
    );
    assert_eq!(found.err().map(|e| e.lines()), Some(vec![expected]));
    // A device that never ends is refused without a read, as is a FIFO
    // (which would block the read until a writer came).
    let found = load_in(
        dir.path(),
        &with_client_secret("{ file = \"/dev/zero\" }"),
        &no_env,
    );
    assert!(
        found.err().is_some_and(|e| e.lines()[0].ends_with(
            "cannot read secret file /dev/zero: a character device, not a regular file"
        )),
    );
    let fifo = dir.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )?;
    let found = load_in(
        dir.path(),
        &with_client_secret("{ file = \"fifo\" }"),
        &no_env,
    );
    assert!(
        found
            .err()
            .is_some_and(|e| e.lines()[0].ends_with("a FIFO (named pipe), not a regular file")),
    );
    Ok(())
}

#[test]
fn unreadable_secret_files_report_the_os_reason() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let found = load_in(
        dir.path(),
        &with_client_secret("{ file = \"missing\" }"),
        &no_env,
    )
    .err()
    .map(|e| e.lines());
    let expected = format!(
        "{}:3:17: client_secret: cannot read secret file {}: No such file or directory (os error 2)",
        dir.path().join("config.toml").display(),
        dir.path().join("missing").display()
    );
    assert_eq!(found, Some(vec![expected]));
    Ok(())
}

#[test]
fn credential_secrets_come_from_the_credentials_directory() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("travtus"), "cred\n")?;
    let dir_text = dir.path().display().to_string();
    let env = env_of(&[("CREDENTIALS_DIRECTORY", &dir_text)]);
    let text = with_client_secret("{ credential = \"travtus\" }");
    let config = load_str_with_env(&text, Path::new(FILE), &env);
    assert_eq!(config.as_ref().map(client_secret_of).ok(), Some("cred"));

    // Without a credentials directory: a row of `secret_forms_refused`.
    let missing = with_client_secret("{ credential = \"other\" }");
    let found = load_str_with_env(&missing, Path::new(FILE), &env)
        .err()
        .map(|e| e.lines());
    assert_eq!(
        found,
        Some(vec![format!(
            "{FILE}:3:17: client_secret: cannot read secret file {}: No such file or directory (os error 2)",
            dir.path().join("other").display()
        )])
    );
    let escape = with_client_secret("{ credential = \"../etc/passwd\" }");
    let found = load_str_with_env(&escape, Path::new(FILE), &env)
        .err()
        .map(|e| e.lines());
    assert_eq!(
        found,
        Some(vec![format!(
            "{FILE}:3:17: client_secret: credential name \"../etc/passwd\" must be a plain file name (no `/`, not `.` or `..`)"
        )])
    );
    Ok(())
}

#[test]
fn secret_values_never_appear_in_problems_or_debug_output() -> std::io::Result<()> {
    const SECRET: &str = "hunter2-SUPERSECRET";
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("s"), SECRET)?;
    // Wrong in every way that could echo a value: both auth modes, a secret
    // under an unknown key, a secret where a number is expected, a secret
    // table with a wrong key, and a valid file secret next to them.
    let text = format!(
        "[travtus]\nclient_id = \"i\"\nclient_secret = {{ file = \"s\" }}\ntoken = \"{SECRET}\"\ntokn = \"{SECRET}\"\nconcurrency = \"{SECRET}\"\n[[source]]\nname = \"g\"\nkind = \"google_business_profile\"\nschedule = \"0 * * * * *\"\nclient_id = \"x\"\nclient_secret = {{ value = \"{SECRET}\" }}\nrefresh_token = \"{SECRET}\"\n"
    );
    let env = env_of(&[("X", SECRET)]);
    let found = load_in(dir.path(), &text, &env)
        .err()
        .map(|e| e.to_string());
    let found = found.unwrap_or_default();
    assert!(found.lines().count() >= 5, "{found}");
    assert!(!found.contains("hunter2"), "{found}");

    std::fs::write(dir.path().join("s"), format!("{SECRET}\n"))?;
    let text = format!("[travtus]\ntoken = {{ file = \"s\" }}\n{}", &FILE_SOURCE);
    let config = load_in(dir.path(), &text, &no_env);
    let debug = format!("{config:?}");
    assert!(
        debug.contains("redacted") && !debug.contains("hunter2"),
        "{debug}"
    );
    Ok(())
}

// -------------------------------------------------------------- permissions

#[cfg(unix)]
fn write_config(dir: &Path, text: &str, mode: u32) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("config.toml");
    std::fs::write(&path, text)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    Ok(path)
}

#[cfg(unix)]
#[test]
fn plain_secrets_in_a_readable_file_are_a_warning() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let text = format!("{TRAVTUS}{LEDGER_HERE}{FILE_SOURCE}");
    let path = write_config(dir.path(), &text, 0o644)?;
    let config = crate::config::load(&path).map_err(std::io::Error::other)?;
    assert_eq!(
        config.warnings,
        [format!(
            "{}:2:9: token: plain-string secret in a config file that group or others can read (mode 0644); use {{ credential = .. }}, {{ file = .. }} or {{ env = .. }}, or make the file readable by its owner only",
            path.display()
        )]
    );
    assert!(!config.warnings[0].contains("\"t\""));

    let path = write_config(dir.path(), &text, 0o600)?;
    let config = crate::config::load(&path).map_err(std::io::Error::other)?;
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    // A secret that is not in the file is no reason to warn.
    write_secret(&dir.path().join("token"), "t")?;
    let text = format!("[travtus]\ntoken = {{ file = \"token\" }}\n{LEDGER_HERE}{FILE_SOURCE}");
    let path = write_config(dir.path(), &text, 0o644)?;
    let config = crate::config::load(&path).map_err(std::io::Error::other)?;
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    Ok(())
}

#[test]
fn an_unreadable_config_file_is_one_problem() {
    let path = Path::new("/nonexistent/review-sync/missing.toml");
    let found = crate::config::load(path).err().map(|e| e.lines());
    assert_eq!(
        found,
        Some(vec![format!(
            "{}: cannot read config: No such file or directory (os error 2)",
            path.display()
        )])
    );
}
