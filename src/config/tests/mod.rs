//! Tests of config loading, by topic: the top-level tables (`top.rs`), the
//! sources and their locations (`sources.rs`), the platforms' own keys
//! (`platforms.rs`), secrets and the permission warning (`secrets.rs`), and
//! the commented example config (`example.rs`).
//!
//! Most cases are rows of a table run by one of two drivers:
//! [`assert_refused`] (a config in, its exact `line:col: message` problems
//! out) and [`assert_values`] (a config in, one value read from it out). A
//! driver runs every row and then fails once, naming each failing row with
//! its input and a diff, so one broken rule shows every case it breaks.

use super::*;
use std::collections::HashMap;
use std::fmt::Debug;
use std::path::Path;

mod example;
mod platforms;
mod push;
mod secrets;
mod sources;
mod top;

/// The path every in-memory config claims to come from. It does not exist,
/// so no permission check happens, and relative paths resolve to its dir.
const FILE: &str = "/nonexistent/review-sync/config.toml";

/// A `[travtus]` that is valid on its own (lines 1-2).
const TRAVTUS: &str = "[travtus]\ntoken = \"t\"\n";

/// A valid `file` source, appended after [`TRAVTUS`] (lines 3-10: a blank
/// line, `[[source]]` on line 4, `name` on line 5, `kind` on line 6,
/// `schedule` on line 7).
const FILE_SOURCE: &str = r#"
[[source]]
name = "imports"
kind = "file"
schedule = "0 0 * * * *"
  [[source.location]]
  id = "/srv/import/*.jsonl"
  group_external_ref = "portfolio-1"
"#;

/// [`TRAVTUS`] then [`FILE_SOURCE`] with `extra` inserted before `kind`
/// (from line 6 on).
fn file_source_with(extra: &str) -> String {
    format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace("kind", &format!("{extra}kind"))
    )
}

/// A valid google source after [`TRAVTUS`] (its `[[source]]` on line 3),
/// with `extra` inserted on line 10, before the locations.
fn google_source(extra: &str) -> String {
    format!(
        r#"{TRAVTUS}[[source]]
name = "g"
kind = "google_business_profile"
schedule = "0 */15 * * * *"
client_id = "gid"
client_secret = "gs"
refresh_token = "gr"
{extra}  [[source.location]]
  id = "accounts/1/locations/2"
  group_id = "grp"
"#
    )
}

/// A `[[source]]` of `kind` after [`TRAVTUS`]: header on line 3, `kind` on
/// line 5, `extra` from line 7, then one location (`[[source.location]]` on
/// the line after `extra`) with `id` and `location_extra`.
fn platform_source(kind: &str, extra: &str, id: &str, location_extra: &str) -> String {
    format!(
        "{TRAVTUS}[[source]]\nname = \"p\"\nkind = \"{kind}\"\nschedule = \"0 * * * * *\"\n{extra}  [[source.location]]\n  id = \"{id}\"\n  group_id = \"g\"\n{location_extra}"
    )
}

/// `[travtus]` with `client_secret = {secret}`: the value is at 3:17.
fn with_client_secret(secret: &str) -> String {
    format!("[travtus]\nclient_id = \"id\"\nclient_secret = {secret}\n")
}

/// Writes a secret file readable by its owner only, as an admin should.
fn write_secret(path: &Path, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// An environment with nothing in it.
fn no_env(_: &str) -> Option<String> {
    None
}

/// An environment with exactly these variables.
fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

fn load(text: &str) -> Result<Config, ConfigError> {
    load_str_with_env(text, Path::new(FILE), &no_env)
}

/// Loads `text` as `config.toml` in `dir` (so relative secret files are
/// read from there).
fn load_in(
    dir: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    load_str_with_env(text, &dir.join("config.toml"), env)
}

fn ok(text: &str) -> Config {
    match load(text) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn client_secret_of(config: &Config) -> &str {
    match &config.travtus.auth {
        TravtusAuth::ClientCredentials { client_secret, .. } => client_secret.expose(),
        TravtusAuth::StaticToken(_) => panic!("expected client credentials"),
    }
}

// ----------------------------------------------------------------- drivers

/// One row of a problems table: a config that must be refused with exactly
/// these problems, in this order.
struct Refused {
    name: String,
    text: String,
    /// Each `line:col: message`, without the file name (the driver adds
    /// [`FILE`] and compares whole lines).
    problems: Vec<String>,
}

/// A row of a problems table.
fn refused(name: impl Into<String>, text: impl Into<String>, problems: &[&str]) -> Refused {
    Refused {
        name: name.into(),
        text: text.into(),
        problems: problems.iter().map(|p| p.to_string()).collect(),
    }
}

/// Loads each row's config and compares its problems with the row's, line
/// for line and exactly (`FILE:line:col: message`). Fails once, after every
/// row ran, naming each failing row with its input and a diff.
#[track_caller]
fn assert_refused(rows: &[Refused]) {
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            let expected: Vec<String> =
                row.problems.iter().map(|p| format!("{FILE}:{p}")).collect();
            let found = match load(&row.text) {
                Ok(_) => vec!["(the config was accepted)".to_string()],
                Err(e) => e.lines(),
            };
            (found != expected).then(|| failure(&row.name, &row.text, &diff(&expected, &found)))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// One row of a values table: a config that must load, and the value the
/// table's reader must find in it.
struct Loads<T> {
    name: String,
    text: String,
    value: T,
}

/// A row of a values table.
fn loads<T>(name: impl Into<String>, text: impl Into<String>, value: T) -> Loads<T> {
    Loads {
        name: name.into(),
        text: text.into(),
        value,
    }
}

/// Loads each row's config and compares `read` of it with the row's value.
/// Fails once, after every row ran, naming each failing row (or refused
/// config) with its input.
#[track_caller]
fn assert_values<T: PartialEq + Debug>(read: impl Fn(&Config) -> T, rows: &[Loads<T>]) {
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            let found = match load(&row.text) {
                Ok(config) => read(&config),
                Err(e) => {
                    let problems = e.lines().join("\n");
                    return Some(failure(
                        &row.name,
                        &row.text,
                        &format!("refused:\n{problems}"),
                    ));
                }
            };
            (found != row.value).then(|| {
                let diff = format!("- {:?}\n+ {found:?}", row.value);
                failure(&row.name, &row.text, &diff)
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// How a failing row is reported.
fn failure(name: &str, text: &str, diff: &str) -> String {
    format!("--- row `{name}`, input:\n{text}--- expected (-) / found (+):\n{diff}\n")
}

/// Line `i` of each list, `  ` where they agree, `-`/`+` where not.
fn diff(expected: &[String], found: &[String]) -> String {
    let mut out = Vec::new();
    for i in 0..expected.len().max(found.len()) {
        match (expected.get(i), found.get(i)) {
            (Some(e), Some(f)) if e == f => out.push(format!("  {e}")),
            (e, f) => {
                out.extend(e.map(|e| format!("- {e}")));
                out.extend(f.map(|f| format!("+ {f}")));
            }
        }
    }
    out.join("\n")
}

/// The drivers themselves: a wrong row fails, and the report names it.
#[test]
fn the_drivers_fail_on_a_wrong_row_and_name_it() {
    let wrong_problem = std::panic::catch_unwind(|| {
        assert_refused(&[
            refused("right", "", &["1:1: missing [travtus] section"]),
            refused("wrong", "", &["1:2: missing [travtus] section"]),
        ]);
    });
    let message = panic_text(wrong_problem);
    assert!(message.starts_with("1 of 2 rows failed"), "{message}");
    assert!(
        message.contains("row `wrong`") && !message.contains("row `right`"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "- {FILE}:1:2: missing [travtus] section\n+ {FILE}:1:1: "
        )),
        "{message}"
    );
    let accepted = std::panic::catch_unwind(|| {
        assert_refused(&[refused("accepted", TRAVTUS, &[])]);
    });
    assert!(panic_text(accepted).contains("(the config was accepted)"));
    let wrong_value = std::panic::catch_unwind(|| {
        assert_values(
            |c| c.travtus.concurrency.get(),
            &[loads("five", TRAVTUS, 5)],
        );
    });
    let message = panic_text(wrong_value);
    assert!(
        message.contains("row `five`") && message.contains("- 5\n+ 4"),
        "{message}"
    );
}

/// The text of a panic the test expected.
fn panic_text(result: std::thread::Result<()>) -> String {
    match result {
        Ok(()) => panic!("the driver accepted a wrong row"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default(),
    }
}
