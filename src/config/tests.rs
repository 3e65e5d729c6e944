//! Tests of config loading: defaults, every rule with the exact position it
//! reports, several problems at once, each secret form, the permission
//! warning, and the commented example config.

use super::*;
use std::collections::HashMap;
use std::path::Path;

/// The path every in-memory config claims to come from. It does not exist,
/// so no permission check happens, and relative paths resolve to its dir.
const FILE: &str = "/nonexistent/review-sync/config.toml";

/// A `[travtus]` that is valid on its own (lines 1-2).
const TRAVTUS: &str = "[travtus]\ntoken = \"t\"\n";

/// A valid `file` source, appended after [`TRAVTUS`] (lines 3-10: a blank
/// line, `[[source]]` on line 4, `schedule` on line 7).
const FILE_SOURCE: &str = r#"
[[source]]
name = "imports"
kind = "file"
schedule = "0 0 * * * *"
  [[source.location]]
  id = "/srv/import/*.jsonl"
  group_external_ref = "portfolio-1"
"#;

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

fn ok(text: &str) -> Config {
    match load(text) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn problems(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected problems, the config was accepted"),
        Err(e) => e.problems,
    }
}

/// The problems without the `FILE:` prefix, e.g. `"3:1: message"`.
fn short(text: &str) -> Vec<String> {
    problems(text)
        .into_iter()
        .map(|p| {
            p.strip_prefix(&format!("{FILE}:"))
                .unwrap_or(&p)
                .to_string()
        })
        .collect()
}

/// Asserts exactly one problem, at `position` (`"line:column"`), whose
/// message contains `needle`.
#[track_caller]
fn assert_one(text: &str, position: &str, needle: &str) {
    let found = short(text);
    assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
    let expected = format!("{position}: ");
    assert!(
        found[0].starts_with(&expected) && found[0].contains(needle),
        "expected `{position}: ..{needle}..`, got {found:#?}"
    );
}

// ---------------------------------------------------------------- defaults

#[test]
fn defaults_fill_every_optional_key() {
    let config = ok(&format!("{TRAVTUS}{FILE_SOURCE}"));
    assert_eq!(config.path, Path::new(FILE));
    assert_eq!(config.travtus.base_url.as_str(), "https://api.travtus.com/");
    assert_eq!(config.travtus.timeout, std::time::Duration::from_secs(30));
    assert_eq!(config.travtus.concurrency.get(), 4);
    assert!(matches!(&config.travtus.auth, TravtusAuth::StaticToken(t) if t.expose() == "t"));
    assert_eq!(
        config.ledger.path,
        Path::new("/var/lib/review-sync/ledger.db")
    );
    assert!(config.metrics.is_none());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let source = &config.sources[0];
    assert_eq!(source.name.as_str(), "imports");
    assert_eq!(source.requests_per_minute.get(), 600);
    assert_eq!(source.timeout, std::time::Duration::from_secs(30));
    assert!(matches!(
        &source.kind,
        SourceKind::File(FileConfig { platform: None })
    ));
    assert_eq!(
        source.locations[0].group,
        GroupRef::ExternalRef("portfolio-1".into())
    );
    assert_eq!(
        config.group_of("imports", "/srv/import/*.jsonl"),
        Some(&GroupRef::ExternalRef("portfolio-1".into()))
    );
}

#[test]
fn google_and_client_credentials_defaults() {
    let text = r#"[travtus]
client_id = "id"
client_secret = "s"

[[source]]
name = "g"
kind = "google_business_profile"
schedule = "0 */15 * * * *"
client_id = "gid"
client_secret = "gs"
refresh_token = "gr"
  [[source.location]]
  id = "accounts/1/locations/2"
  group_id = "grp"
"#;
    let config = ok(text);
    let TravtusAuth::ClientCredentials {
        token_url,
        client_id,
        client_secret,
    } = &config.travtus.auth
    else {
        panic!("expected client credentials");
    };
    assert_eq!(token_url.as_str(), "https://api.travtus.com/oauth2/token");
    assert_eq!(client_id, "id");
    assert_eq!(client_secret.expose(), "s");
    let source = &config.sources[0];
    assert_eq!(source.requests_per_minute.get(), 300);
    let SourceKind::GoogleBusinessProfile(google) = &source.kind else {
        panic!("expected google");
    };
    assert_eq!(
        google.api_base_url.as_str(),
        "https://mybusiness.googleapis.com/"
    );
    assert_eq!(
        google.token_url.as_str(),
        "https://oauth2.googleapis.com/token"
    );
    assert_eq!(google.refresh_token.expose(), "gr");
    assert_eq!(source.locations[0].group, GroupRef::Id("grp".into()));
}

#[test]
fn no_source_is_a_warning_not_an_error() {
    let config = ok(TRAVTUS);
    assert_eq!(
        config.warnings,
        [format!("{FILE}:1:1: no [[source]]: nothing will be polled")]
    );
}

#[test]
fn a_relative_ledger_path_is_relative_to_the_config_file() {
    let config = ok(&format!("{TRAVTUS}[ledger]\npath = \"data/ledger.db\"\n"));
    assert_eq!(
        config.ledger.path,
        Path::new("/nonexistent/review-sync/data/ledger.db")
    );
    let config = ok(&format!("{TRAVTUS}[ledger]\npath = \"/srv/l.db\"\n"));
    assert_eq!(config.ledger.path, Path::new("/srv/l.db"));
    assert_one(
        &format!("{TRAVTUS}[ledger]\npath = \"\"\n"),
        "4:8",
        "path: must not be empty",
    );
}

#[test]
fn metrics_listen_is_a_socket_address() {
    let config = ok(&format!(
        "{TRAVTUS}[metrics]\nlisten = \"127.0.0.1:9187\"\n"
    ));
    assert_eq!(config.metrics.map(|m| m.listen.port()), Some(9187));
    assert_one(
        &format!("{TRAVTUS}[metrics]\nlisten = \"localhost\"\n"),
        "4:10",
        "listen: expected IP:PORT",
    );
    assert_one(
        &format!("{TRAVTUS}[metrics]\n"),
        "3:1",
        "missing key `listen` in [metrics]",
    );
}

// ----------------------------------------------------- structure and keys

#[test]
fn missing_travtus_is_reported_at_the_start() {
    assert_eq!(
        problems(""),
        [format!("{FILE}:1:1: missing [travtus] section")]
    );
}

#[test]
fn unknown_keys_are_reported_with_a_suggestion() {
    let text = r#"[travtus]
token = "t"
timout = "5s"

[[source]]
name = "a"
kind = "file"
shedule = "0 * * * * *"
  [[source.location]]
  id = "/x"
  group_id = "g"
  colour = "blue"
[extra]
"#;
    assert_eq!(
        problems(text),
        [
            format!("{FILE}:3:1: unknown key `timout` in [travtus] (did you mean `timeout`?)"),
            format!("{FILE}:5:1: missing key `schedule` in [[source]]"),
            format!("{FILE}:8:1: unknown key `shedule` in [[source]] (did you mean `schedule`?)"),
            format!("{FILE}:12:3: unknown key `colour` in [[source.location]]"),
            format!("{FILE}:13:2: unknown key `extra` at the top level"),
        ]
    );
}

#[test]
fn unknown_keys_in_ledger_metrics_and_secret_tables() {
    let text = "[travtus]\ntoken = { fil = \"x\" }\n[ledger]\npaht = \"x\"\n[metrics]\nlisten = \"127.0.0.1:1\"\nport = 1\n";
    assert_eq!(
        short(text),
        [
            "2:9: token: a secret table takes exactly one of `env`, `file` and `credential`",
            "2:11: unknown key `fil` in secret `token` (did you mean `file`?)",
            "4:1: unknown key `paht` in [ledger] (did you mean `path`?)",
            "7:1: unknown key `port` in [metrics]",
        ]
    );
}

#[test]
fn wrong_types_name_the_key_and_both_types() {
    assert_one(
        &format!("{TRAVTUS}concurrency = \"4\"\n"),
        "3:15",
        "concurrency: expected an integer, found a string",
    );
    assert_one(
        "travtus = \"x\"\n",
        "1:11",
        "travtus: expected a table, found a string",
    );
    assert_one(
        &format!("{TRAVTUS}[source]\nname = \"a\"\n"),
        "3:1",
        "source: expected an array (tables in an array are written `[[...]]`), found a table",
    );
}

#[test]
fn toml_syntax_errors_have_positions() {
    let found = short("[travtus]\ntoken = \"t\"\ntimeout = 30s\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("3:"), "{found:?}");
    let found = short("[travtus]\ntoken = \"t\"\ntoken = \"u\"\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("3:1: "), "{found:?}");
}

// ---------------------------------------------------------------- travtus

#[test]
fn travtus_auth_is_exactly_one_mode() {
    assert_one(
        "[travtus]\nclient_id = \"i\"\nclient_secret = \"s\"\ntoken = \"t\"\n",
        "4:1",
        "`token` cannot be combined with `client_id`/`client_secret`",
    );
    assert_one(
        "[travtus]\ntimeout = \"5s\"\n",
        "1:1",
        "[travtus] needs either `client_id` + `client_secret` (OAuth2) or `token`",
    );
    assert_eq!(
        short("[travtus]\nclient_id = \"i\"\n"),
        ["2:1: `client_id` needs `client_secret` in [travtus]"]
    );
    assert_eq!(
        short("[travtus]\nclient_secret = \"s\"\n"),
        ["2:1: `client_secret` needs `client_id` in [travtus]"]
    );
    assert_one(
        "[travtus]\nclient_id = \"\"\nclient_secret = \"s\"\n",
        "2:13",
        "client_id: must not be empty",
    );
}

#[test]
fn timeouts_are_nonzero_durations() {
    let config = ok(&format!("{TRAVTUS}timeout = \"2m\"\n"));
    assert_eq!(config.travtus.timeout, std::time::Duration::from_secs(120));
    assert_eq!(
        short(&format!("{TRAVTUS}timeout = \"0s\"\n")),
        ["3:11: timeout: must be greater than zero"]
    );
    assert_one(
        &format!("{TRAVTUS}timeout = \"soon\"\n"),
        "3:11",
        "timeout: invalid duration \"soon\"",
    );
    assert_one(
        &format!("{TRAVTUS}timeout = 30\n"),
        "3:11",
        "timeout: expected a string, found an integer",
    );
}

#[test]
fn concurrency_is_between_1_and_256() {
    assert_eq!(
        ok(&format!("{TRAVTUS}concurrency = 256\n"))
            .travtus
            .concurrency
            .get(),
        256
    );
    for bad in ["0", "-1", "257"] {
        assert_eq!(
            short(&format!("{TRAVTUS}concurrency = {bad}\n")),
            [format!(
                "3:15: concurrency: must be between 1 and 256 (got {bad})"
            )]
        );
    }
}

// ------------------------------------------------------------------- URLs

#[test]
fn urls_must_be_https_unless_loopback() {
    for good in [
        "https://api.example.com",
        "http://localhost:8080",
        "http://127.0.0.5:1",
        "http://[::1]:9000/x",
    ] {
        let config = ok(&format!("{TRAVTUS}base_url = \"{good}\"\n"));
        assert_eq!(
            config.travtus.base_url.scheme(),
            good.split(':').next().unwrap_or("")
        );
    }
    assert_eq!(
        problems(&format!("{TRAVTUS}base_url = \"http://example.com\"\n")),
        [format!(
            "{FILE}:3:12: base_url: plain http:// is only allowed for loopback hosts (got example.com)"
        )]
    );
    assert_one(
        &format!("{TRAVTUS}base_url = \"ftp://example.com\"\n"),
        "3:12",
        "base_url: scheme \"ftp\" is not allowed",
    );
    assert_one(
        &format!("{TRAVTUS}base_url = \"api.travtus.com\"\n"),
        "3:12",
        "base_url: not a valid URL",
    );
    assert_one(
        "[travtus]\nclient_id = \"i\"\nclient_secret = \"s\"\ntoken_url = \"http://10.0.0.1/t\"\n",
        "4:13",
        "token_url: plain http:// is only allowed for loopback hosts (got 10.0.0.1)",
    );
}

#[test]
fn source_urls_are_checked_too() {
    let text = format!(
        "{TRAVTUS}{}",
        google_source(
            "api_base_url = \"http://mybusiness.googleapis.com\"\ntoken_url = \"gopher://x\"\n"
        )
    );
    let found = short(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("10:16: api_base_url: plain http://"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("11:13: token_url: scheme \"gopher\""),
        "{found:#?}"
    );
}

// ---------------------------------------------------------------- sources

/// A valid google source after [`TRAVTUS`] (its `[[source]]` on line 3),
/// with `extra` inserted on line 10, before the locations.
fn google_source(extra: &str) -> String {
    format!(
        r#"[[source]]
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

/// A `[[source]]` of `kind` after [`TRAVTUS`] (header on line 3, `kind` on
/// line 5), with one valid location.
fn source_of_kind(kind: &str) -> String {
    format!(
        "{TRAVTUS}[[source]]\nname = \"a\"\nkind = \"{kind}\"\nschedule = \"0 * * * * *\"\n  [[source.location]]\n  id = \"x\"\n  group_id = \"g\"\n"
    )
}

#[test]
fn kinds_are_supported_refused_or_unknown() {
    assert_eq!(
        short(&source_of_kind("yelp")),
        ["5:8: kind \"yelp\" is not supported yet"]
    );
    for kind in ["google_places", "facebook", "trustpilot"] {
        assert_one(
            &source_of_kind(kind),
            "5:8",
            &format!("kind {kind:?} is not supported yet"),
        );
    }
    assert_eq!(
        short(&source_of_kind("tripadvisor")),
        [
            "5:8: unknown kind \"tripadvisor\" (expected one of google_business_profile, google_places, yelp, facebook, trustpilot, file)"
        ]
    );
}

#[test]
fn required_source_keys() {
    let text =
        format!("{TRAVTUS}[[source]]\n  [[source.location]]\n  id = \"x\"\n  group_id = \"g\"\n");
    assert_eq!(
        short(&text),
        [
            "3:1: missing key `name` in [[source]]",
            "3:1: missing key `kind` in [[source]]",
            "3:1: missing key `schedule` in [[source]]",
        ]
    );
    let text = format!(
        "{TRAVTUS}{}",
        google_source("")
            .replace("client_id = \"gid\"\n", "")
            .replace("refresh_token = \"gr\"\n", "")
    );
    assert_eq!(
        short(&text),
        [
            "3:1: missing key `client_id` in [[source]] (kind google_business_profile)",
            "3:1: missing key `refresh_token` in [[source]] (kind google_business_profile)",
        ]
    );
}

#[test]
fn source_names_are_non_empty_and_unique() {
    let text = format!(
        "{TRAVTUS}{}{}",
        FILE_SOURCE,
        FILE_SOURCE.replace("/srv/import", "/srv/other")
    );
    assert_eq!(
        problems(&text),
        [format!(
            "{FILE}:13:8: duplicate source name \"imports\" (first used at line 5, column 8)"
        )]
    );
    assert_one(
        &format!("{TRAVTUS}{}", FILE_SOURCE.replace("\"imports\"", "\"  \"")),
        "5:8",
        "name: must not be empty",
    );
}

#[test]
fn schedules_need_a_seconds_field() {
    let text = format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace("0 0 * * * *", "0 * * * *")
    );
    assert_eq!(
        short(&text),
        [
            "7:12: schedule: invalid cron expression \"0 * * * *\": Invalid pattern: Pattern must have 6 or 7 fields when seconds are required and years are optional (six fields, seconds first, e.g. \"0 */15 * * * *\")"
        ]
    );
    let text = format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace("0 0 * * * *", "0 99 * * * *")
    );
    assert_one(&text, "7:12", "Number out of bounds");
}

#[test]
fn requests_per_minute_and_timeout() {
    let text = format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace("kind", "requests_per_minute = 10\ntimeout = \"5s\"\nkind")
    );
    let source = &ok(&text).sources[0];
    assert_eq!(source.requests_per_minute.get(), 10);
    assert_eq!(source.timeout, std::time::Duration::from_secs(5));
    let text = format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace("kind", "requests_per_minute = 0\ntimeout = \"0s\"\nkind")
    );
    assert_eq!(
        short(&text),
        [
            "6:23: requests_per_minute: must be between 1 and 4294967295 (got 0)",
            "7:11: timeout: must be greater than zero",
        ]
    );
}

#[test]
fn keys_of_other_kinds_are_refused() {
    let text = format!(
        "{TRAVTUS}{}",
        google_source("api_key = \"k\"\nplatform = \"google\"\n")
    );
    assert_eq!(
        short(&text),
        [
            "10:1: key `api_key` is not used by kind google_business_profile",
            "11:1: key `platform` is not used by kind google_business_profile",
        ]
    );
    let text = format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace("kind", "client_id = \"x\"\nkind")
    );
    assert_eq!(
        short(&text),
        ["6:1: key `client_id` is not used by kind file"]
    );
}

#[test]
fn google_discovery_keys_are_not_supported_yet() {
    let extra = "discover_accounts = [\"accounts/1\"]\ngroup_external_ref_from = \"store_code\"\nbusiness_information_base_url = \"https://x\"\nreconcile_schedule = \"0 0 3 * * *\"\n";
    assert_eq!(
        short(&format!("{TRAVTUS}{}", google_source(extra))),
        [
            "10:1: `discover_accounts` is not supported yet",
            "11:1: `group_external_ref_from` is not supported yet",
            "12:1: `business_information_base_url` is not supported yet",
            "13:1: `reconcile_schedule` is not supported yet",
        ]
    );
}

#[test]
fn file_platform_is_optional() {
    let text = format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace("kind", "platform = \"yelp\"\nkind")
    );
    let config = ok(&text);
    assert!(matches!(
        &config.sources[0].kind,
        SourceKind::File(FileConfig { platform: Some(p) }) if p == "yelp"
    ));
}

// -------------------------------------------------------------- locations

#[test]
fn a_source_without_locations_is_refused() {
    let text =
        format!("{TRAVTUS}[[source]]\nname = \"a\"\nkind = \"file\"\nschedule = \"0 * * * * *\"\n");
    assert_eq!(
        problems(&text),
        [format!(
            "{FILE}:3:1: source \"a\" has no [[source.location]]"
        )]
    );
}

#[test]
fn locations_need_exactly_one_group() {
    let text = format!(
        "{TRAVTUS}{}",
        google_source("").replace(
            "  group_id = \"grp\"\n",
            "  group_id = \"grp\"\n  group_external_ref = \"ref\"\n  [[source.location]]\n  id = \"accounts/1/locations/3\"\n"
        )
    );
    assert_eq!(
        short(&text),
        [
            "13:3: location \"accounts/1/locations/2\" needs exactly one of group_external_ref and group_id (the Travtus API refuses both and neither)",
            "14:3: location \"accounts/1/locations/3\" needs exactly one of group_external_ref and group_id (the Travtus API refuses both and neither)",
        ]
    );
    let text = format!(
        "{TRAVTUS}{}",
        google_source("").replace("group_id = \"grp\"", "group_id = \"\"")
    );
    assert_one(&text, "12:14", "group_id: must not be empty");
}

#[test]
fn location_ids_are_present_non_empty_and_unique() {
    let twice = format!(
        "{TRAVTUS}{}",
        google_source("").replace(
            "  group_id = \"grp\"\n",
            "  group_id = \"grp\"\n  [[source.location]]\n  id = \"accounts/1/locations/2\"\n  group_id = \"other\"\n"
        )
    );
    assert_eq!(
        short(&twice),
        [
            "14:8: duplicate location id \"accounts/1/locations/2\" in source \"g\" (first used at line 11, column 8)"
        ]
    );
    let missing = format!(
        "{TRAVTUS}{}",
        google_source("").replace("  id = \"accounts/1/locations/2\"\n", "")
    );
    assert_eq!(
        short(&missing),
        ["10:3: missing key `id` in [[source.location]]"]
    );
    let bad = format!(
        "{TRAVTUS}{}",
        google_source("").replace("accounts/1/locations/2", "locations/2")
    );
    assert_one(
        &bad,
        "11:8",
        "id: \"locations/2\" is not a Google Business Profile location",
    );
}

#[test]
fn access_token_on_a_location_is_refused_for_other_kinds() {
    let text = format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace(
            "  group_external_ref",
            "  access_token = \"x\"\n  group_external_ref"
        )
    );
    assert_eq!(
        short(&text),
        ["10:3: key `access_token` is not used by kind file"]
    );
}

// ------------------------------------------------------- all problems at once

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let text = r#"[travtus]
client_id = "id"
concurrency = 0

[[source]]
name = "a"
kind = "file"
schedule = "0 * * * * *"
colour = "blue"
  [[source.location]]
  id = "/x"
  group_id = "g"

[[source]]
name = "b"
kind = "file"
schedule = "61 * * * * *"
  [[source.location]]
  id = "/y"
"#;
    let found = problems(text);
    let expected_starts = [
        format!("{FILE}:2:1: `client_id` needs `client_secret` in [travtus]"),
        format!("{FILE}:3:15: concurrency: must be between 1 and 256 (got 0)"),
        format!("{FILE}:9:1: unknown key `colour` in [[source]]"),
        format!("{FILE}:17:12: schedule: invalid cron expression \"61 * * * * *\": "),
        format!(
            "{FILE}:18:3: location \"/y\" needs exactly one of group_external_ref and group_id"
        ),
    ];
    assert_eq!(found.len(), expected_starts.len(), "{found:#?}");
    for (found, expected) in found.iter().zip(&expected_starts) {
        assert!(
            found.starts_with(expected.as_str()),
            "{found} should start with {expected}"
        );
    }
}

// ---------------------------------------------------------------- secrets

/// `[travtus]` with `client_secret = {secret}`: the value is at 3:17.
fn with_client_secret(secret: &str) -> String {
    format!("[travtus]\nclient_id = \"id\"\nclient_secret = {secret}\n")
}

fn client_secret_of(config: &Config) -> &str {
    match &config.travtus.auth {
        TravtusAuth::ClientCredentials { client_secret, .. } => client_secret.expose(),
        TravtusAuth::StaticToken(_) => panic!("expected client credentials"),
    }
}

fn load_in(
    dir: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    load_str_with_env(text, &dir.join("config.toml"), env)
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
    assert_eq!(
        problems(&text),
        [format!(
            "{FILE}:3:17: client_secret: environment variable TRAVTUS_SECRET is not set"
        )]
    );
    let empty = env_of(&[("TRAVTUS_SECRET", "")]);
    let found = load_str_with_env(&text, Path::new(FILE), &empty)
        .err()
        .map(|e| e.problems);
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
        found.err().map(|e| e.problems),
        Some(vec![format!(
            "{}:3:17: client_secret: secret is empty",
            dir.path().join("config.toml").display()
        )])
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
    .map(|e| e.problems);
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

    assert_one(
        &text,
        "3:17",
        "client_secret: credential travtus requested but $CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit)",
    );
    let missing = with_client_secret("{ credential = \"other\" }");
    let found = load_str_with_env(&missing, Path::new(FILE), &env)
        .err()
        .map(|e| e.problems);
    assert!(
        found.as_ref().is_some_and(|p| p.len() == 1
            && p[0].contains("cannot read secret file")
            && p[0].contains("(os error 2)")),
        "{found:?}"
    );
    let escape = with_client_secret("{ credential = \"../etc/passwd\" }");
    let found = load_str_with_env(&escape, Path::new(FILE), &env)
        .err()
        .map(|e| e.problems);
    assert!(
        found
            .as_ref()
            .is_some_and(|p| p[0].contains("must be a plain file name")),
        "{found:?}"
    );
    Ok(())
}

#[test]
fn secret_tables_take_exactly_one_form() {
    assert_eq!(
        short(&with_client_secret("{ env = \"A\", file = \"b\" }")),
        ["3:17: client_secret: a secret table takes exactly one of `env`, `file` and `credential`"]
    );
    assert_eq!(
        short(&with_client_secret("{}")),
        ["3:17: client_secret: a secret table takes exactly one of `env`, `file` and `credential`"]
    );
    assert_eq!(
        short(&with_client_secret("[\"x\"]")),
        [
            "3:17: client_secret: expected a string or a table such as { env = \"NAME\" }, found an array"
        ]
    );
    assert_eq!(
        short(&with_client_secret("\"\"")),
        ["3:17: client_secret: secret is empty"]
    );
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
    let text = format!("{TRAVTUS}{FILE_SOURCE}");
    let path = write_config(dir.path(), &text, 0o644)?;
    let config = super::load(&path).map_err(std::io::Error::other)?;
    assert_eq!(
        config.warnings,
        [format!(
            "{}:2:9: token: plain-string secret in a config file that group or others can read (mode 0644); use {{ credential = .. }}, {{ file = .. }} or {{ env = .. }}, or make the file readable by its owner only",
            path.display()
        )]
    );
    assert!(!config.warnings[0].contains("\"t\""));

    let path = write_config(dir.path(), &text, 0o600)?;
    let config = super::load(&path).map_err(std::io::Error::other)?;
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    // A secret that is not in the file is no reason to warn.
    std::fs::write(dir.path().join("token"), "t")?;
    let text = format!("[travtus]\ntoken = {{ file = \"token\" }}\n{FILE_SOURCE}");
    let path = write_config(dir.path(), &text, 0o644)?;
    let config = super::load(&path).map_err(std::io::Error::other)?;
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    Ok(())
}

#[test]
fn an_unreadable_config_file_is_one_problem() {
    let path = Path::new("/nonexistent/review-sync/missing.toml");
    let found = super::load(path).err().map(|e| e.problems);
    assert_eq!(
        found,
        Some(vec![format!(
            "{}: cannot read config: No such file or directory (os error 2)",
            path.display()
        )])
    );
}

// ------------------------------------------------------------ the example

#[test]
fn the_example_config_loads_with_the_documented_values() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials)?;
    std::fs::write(
        credentials.join("travtus_client_secret"),
        "travtus-secret\n",
    )?;
    std::fs::write(dir.path().join("google_refresh_token"), "google-refresh\n")?;
    let credentials = credentials.display().to_string();
    let env = env_of(&[
        ("CREDENTIALS_DIRECTORY", &credentials),
        ("GOOGLE_CLIENT_SECRET", "google-secret"),
    ]);
    let text = include_str!("../../config.example.toml");
    let config = load_in(dir.path(), text, &env).map_err(std::io::Error::other)?;

    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.travtus.base_url.as_str(), "https://api.travtus.com/");
    let TravtusAuth::ClientCredentials {
        token_url,
        client_id,
        client_secret,
    } = &config.travtus.auth
    else {
        panic!("the example uses client credentials");
    };
    assert_eq!(token_url.as_str(), "https://api.travtus.com/oauth2/token");
    assert_eq!(client_id, "review-sync-acme");
    assert_eq!(client_secret.expose(), "travtus-secret");
    assert_eq!(config.travtus.timeout, std::time::Duration::from_secs(30));
    assert_eq!(config.travtus.concurrency.get(), 4);
    assert_eq!(
        config.ledger.path,
        Path::new("/var/lib/review-sync/ledger.db")
    );
    assert_eq!(
        config.metrics.map(|m| m.listen.to_string()),
        Some("127.0.0.1:9187".to_string())
    );
    assert_eq!(config.sources.len(), 2);

    let google = &config.sources[0];
    assert_eq!(google.name.as_str(), "acme-google");
    assert_eq!(google.schedule, "0 */15 * * * *");
    assert_eq!(google.requests_per_minute.get(), 300);
    let SourceKind::GoogleBusinessProfile(settings) = &google.kind else {
        panic!("the first example source is google_business_profile");
    };
    assert_eq!(
        settings.client_id,
        "1234567890-acme.apps.googleusercontent.com"
    );
    assert_eq!(settings.client_secret.expose(), "google-secret");
    assert_eq!(settings.refresh_token.expose(), "google-refresh");
    assert_eq!(
        settings.api_base_url.as_str(),
        "https://mybusiness.googleapis.com/"
    );
    assert_eq!(
        settings.token_url.as_str(),
        "https://oauth2.googleapis.com/token"
    );
    let mapping: Vec<(&str, &GroupRef)> = google
        .locations
        .iter()
        .map(|l| (l.id.as_str(), &l.group))
        .collect();
    assert_eq!(
        mapping,
        [
            (
                "accounts/123/locations/456",
                &GroupRef::ExternalRef("portfolio-123".into())
            ),
            (
                "accounts/123/locations/789",
                &GroupRef::Id("8f14e45f-ea3b-4c7e-9d3a-1f0e2b3c4d5e".into())
            ),
        ]
    );

    let file = &config.sources[1];
    assert_eq!(file.name.as_str(), "acme-imports");
    assert_eq!(file.requests_per_minute.get(), 600);
    assert!(matches!(
        &file.kind,
        SourceKind::File(FileConfig { platform: Some(p) }) if p == "google"
    ));
    assert_eq!(
        file.locations[0].id.as_str(),
        "/var/lib/review-sync/import/acme-*.jsonl"
    );
    Ok(())
}

#[test]
fn the_example_documents_the_static_token_alternative() {
    let text = include_str!("../../config.example.toml");
    assert!(text.contains("# token = { file = "));
    for key in [
        "base_url",
        "token_url",
        "client_id",
        "client_secret",
        "timeout",
        "concurrency",
        "path",
        "listen",
        "name",
        "kind",
        "schedule",
        "requests_per_minute",
        "refresh_token",
        "api_base_url",
        "discover_accounts",
        "group_external_ref_from",
        "business_information_base_url",
        "reconcile_schedule",
        "platform",
        "id",
        "group_external_ref",
        "group_id",
    ] {
        assert!(
            text.contains(&format!("{key} =")),
            "the example does not show `{key}`"
        );
    }
}
