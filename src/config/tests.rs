//! Tests of config loading: defaults, every rule with the exact position it
//! reports, several problems at once, each secret form, the permission
//! warning, and the commented example config.

use super::*;
use crate::platforms::facebook::FacebookConfig;
use crate::platforms::file::FileConfig;
use crate::platforms::google::{GoogleConfig, GroupFrom};
use crate::platforms::places::PlacesConfig;
use crate::platforms::trustpilot::TrustpilotConfig;
use crate::platforms::yelp::YelpConfig;
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

/// `[ledger]` next to the config file (whose folder exists, unlike the
/// default's in a test).
const LEDGER_HERE: &str = "[ledger]\npath = \"ledger.db\"\n";

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

fn ok(text: &str) -> Config {
    match load(text) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn problems(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected problems, the config was accepted"),
        Err(e) => e.lines(),
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
    assert!(
        source
            .kind
            .settings::<FileConfig>()
            .is_some_and(|f| f.platform.is_none())
    );
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
    let Some(google) = source.kind.settings::<GoogleConfig>() else {
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
fn retain_text_days_is_optional_and_at_least_one() {
    assert_eq!(ok(TRAVTUS).ledger.retain_text_days, None);
    let config = ok(&format!("{TRAVTUS}[ledger]\nretain_text_days = 30\n"));
    assert_eq!(config.ledger.retain_text_days.map(|d| d.get()), Some(30));
    assert_one(
        &format!("{TRAVTUS}[ledger]\nretain_text_days = 0\n"),
        "4:20",
        "retain_text_days: must be a whole number of days from 1 to 36500 (got 0)",
    );
    // A hundred years at most: the cutoff must stay a date the ledger stores.
    let config = ok(&format!("{TRAVTUS}[ledger]\nretain_text_days = 36500\n"));
    assert_eq!(
        config.ledger.retain_text_days.map(|d| d.get()),
        Some(36_500)
    );
    for huge in ["36501", "4000000000", "9223372036854775807"] {
        assert_one(
            &format!("{TRAVTUS}[ledger]\nretain_text_days = {huge}\n"),
            "4:20",
            &format!(
                "retain_text_days: must be a whole number of days from 1 to 36500 (got {huge})"
            ),
        );
    }
    assert_one(
        &format!("{TRAVTUS}[ledger]\nretain_text_days = \"30d\"\n"),
        "4:20",
        "retain_text_days: expected an integer, found a string",
    );
    // Every key of [ledger] reports its problem in one run.
    assert_eq!(
        problems(&format!(
            "{TRAVTUS}[ledger]\npath = \"\"\nretain_text_days = -1\nretain_polls_days = 0\n"
        ))
        .len(),
        3
    );
}

#[test]
fn retain_polls_days_defaults_to_90_and_is_at_least_one() {
    assert_eq!(ok(TRAVTUS).ledger.retain_polls_days.get(), 90);
    let config = ok(&format!("{TRAVTUS}[ledger]\nretain_polls_days = 7\n"));
    assert_eq!(config.ledger.retain_polls_days.get(), 7);
    assert_one(
        &format!("{TRAVTUS}[ledger]\nretain_polls_days = 0\n"),
        "4:21",
        "retain_polls_days: must be a whole number of days from 1 to 36500 (got 0)",
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
    // Ten minutes at most: a lease is the timeout plus 10 s, and a huge one
    // overflowed `now + lease`.
    assert_eq!(
        ok(&format!("{TRAVTUS}timeout = \"10m\"\n")).travtus.timeout,
        crate::config::MAX_TIMEOUT
    );
    for huge in ["10m 1s", "18446744073709551615s", "300000years"] {
        assert_eq!(
            short(&format!("{TRAVTUS}timeout = \"{huge}\"\n")),
            [format!(
                "3:11: timeout: \"{huge}\" is too long: at most 10m"
            )]
        );
    }
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
fn kinds_are_supported_or_unknown() {
    // Every SPEC kind is known: without its credentials, that is what is said.
    for kind in ["google_places", "yelp", "trustpilot"] {
        assert_eq!(
            short(&source_of_kind(kind)),
            [format!(
                "3:1: missing key `api_key` in [[source]] (kind {kind})"
            )]
        );
    }
    assert_eq!(
        short(&source_of_kind("facebook")),
        [
            "7:3: location \"x\" has no access_token: set a Page access token on the location, or `access_token` on the source"
        ]
    );
    // The kinds SPEC names, then any platform added since: the registry's.
    let unknown = short(&source_of_kind("tripadvisor"));
    assert_eq!(
        unknown,
        [format!(
            "5:8: unknown kind \"tripadvisor\" (expected one of {})",
            crate::platforms::registry::kinds()
        )]
    );
    assert!(
        unknown[0].contains(
            "(expected one of google_business_profile, google_places, yelp, facebook, trustpilot, file"
        ),
        "{unknown:?}"
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
    let text = format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace("kind", "timeout = \"11m\"\nkind")
    );
    assert_eq!(
        short(&text),
        ["6:11: timeout: \"11m\" is too long: at most 10m"]
    );
}

#[test]
fn pass_bounds_default_and_are_checked() {
    let source = &ok(&format!("{TRAVTUS}{FILE_SOURCE}")).sources[0];
    assert_eq!(source.pass_bounds, crate::config::PassBounds::default());
    assert_eq!(source.pass_bounds.incremental_pages, 200);
    assert_eq!(
        source.pass_bounds.incremental_time,
        std::time::Duration::from_secs(300)
    );
    assert_eq!(source.pass_bounds.full_read_pages, 10_000);
    assert_eq!(
        source.pass_bounds.full_read_time,
        std::time::Duration::from_secs(3600)
    );
    let text = format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace(
            "kind",
            "max_pages_per_pass = 3\nmax_pass_time = \"10s\"\nmax_pages_per_full_read = 40\nmax_full_read_time = \"2m\"\nkind"
        )
    );
    let bounds = ok(&text).sources[0].pass_bounds;
    assert_eq!(
        bounds,
        crate::config::PassBounds {
            incremental_pages: 3,
            incremental_time: std::time::Duration::from_secs(10),
            full_read_pages: 40,
            full_read_time: std::time::Duration::from_secs(120),
        }
    );
    let text = format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace(
            "kind",
            "max_pages_per_pass = 0\nmax_pass_time = \"0s\"\nmax_pages_per_full_read = 10001\nkind"
        )
    );
    assert_eq!(
        short(&text),
        [
            "6:22: max_pages_per_pass: must be between 1 and 10000 (got 0)",
            "7:17: max_pass_time: must be greater than zero",
            "8:27: max_pages_per_full_read: must be between 1 and 10000 (got 10001)",
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
fn google_discovery_keys_and_their_defaults() {
    let extra = "discover_accounts = [\"accounts/1\", \"accounts/22\"]\ngroup_external_ref_from = \"store_code\"\n";
    let config = ok(&format!("{TRAVTUS}{}", google_source(extra)));
    let Some(google) = config.sources[0].kind.settings::<GoogleConfig>() else {
        panic!("a google source");
    };
    assert_eq!(google.discover_accounts, ["accounts/1", "accounts/22"]);
    assert_eq!(google.group_external_ref_from, Some(GroupFrom::StoreCode));
    assert_eq!(
        google.business_information_base_url.as_str(),
        "https://mybusinessbusinessinformation.googleapis.com/"
    );

    let extra =
        format!("{extra}business_information_base_url = \"http://127.0.0.1:9/google-bi\"\n");
    let config = ok(&format!("{TRAVTUS}{}", google_source(&extra)));
    let Some(google) = config.sources[0].kind.settings::<GoogleConfig>() else {
        panic!("a google source");
    };
    assert_eq!(
        google.business_information_base_url.as_str(),
        "http://127.0.0.1:9/google-bi"
    );

    // Without discovery: nothing discovered, and the default host anyway.
    let config = ok(&format!("{TRAVTUS}{}", google_source("")));
    let Some(google) = config.sources[0].kind.settings::<GoogleConfig>() else {
        panic!("a google source");
    };
    assert!(google.discover_accounts.is_empty());
    assert_eq!(google.group_external_ref_from, None);
}

#[test]
fn a_discovering_source_may_have_no_locations() {
    let text = format!(
        "{TRAVTUS}[[source]]\nname = \"g\"\nkind = \"google_business_profile\"\nschedule = \"0 */15 * * * *\"\nclient_id = \"gid\"\nclient_secret = \"gs\"\nrefresh_token = \"gr\"\ndiscover_accounts = [\"accounts/1\"]\ngroup_external_ref_from = \"store_code\"\n"
    );
    let config = ok(&text);
    assert!(config.sources[0].locations.is_empty());
    // Without discovery, the same source is refused.
    let text = text
        .replace("discover_accounts = [\"accounts/1\"]\n", "")
        .replace("group_external_ref_from = \"store_code\"\n", "");
    assert_one(&text, "3:1", "source \"g\" has no [[source.location]]");
}

#[test]
fn discover_accounts_rules() {
    let with = |extra: &str| format!("{TRAVTUS}{}", google_source(extra));
    // Each entry an account name, no repeats, at least one.
    assert_eq!(
        short(&with(
            "discover_accounts = [\"accounts/1/locations/2\", \"1\", \"accounts/3\", \"accounts/3\"]\ngroup_external_ref_from = \"store_code\"\n"
        )),
        [
            "10:21: discover_accounts: \"accounts/1/locations/2\" is not a Google Business Profile account (expected accounts/{account})",
            "10:21: discover_accounts: \"1\" is not a Google Business Profile account (expected accounts/{account})",
            "10:21: discover_accounts: \"accounts/3\" is listed twice",
        ]
    );
    assert_one(
        &with("discover_accounts = []\ngroup_external_ref_from = \"store_code\"\n"),
        "10:21",
        "discover_accounts: list at least one account",
    );
    // A mapping rule is required, and only store_code exists.
    assert_eq!(
        short(&with("discover_accounts = [\"accounts/1\"]\n")),
        [
            "10:1: `discover_accounts` needs `group_external_ref_from = \"store_code\"`: it says which group a discovered location's reviews go to"
        ]
    );
    assert_one(
        &with("discover_accounts = [\"accounts/1\"]\ngroup_external_ref_from = \"title\"\n"),
        "11:27",
        "group_external_ref_from: \"title\" is not supported (expected \"store_code\"",
    );
    // The other discovery keys do nothing without discover_accounts.
    assert_eq!(
        short(&with(
            "group_external_ref_from = \"store_code\"\nbusiness_information_base_url = \"https://x\"\n"
        )),
        [
            "10:1: `group_external_ref_from` is only used with `discover_accounts`",
            "11:1: `business_information_base_url` is only used with `discover_accounts`",
        ]
    );
    // The host follows the URL rules of every other host.
    assert_one(
        &with(
            "discover_accounts = [\"accounts/1\"]\ngroup_external_ref_from = \"store_code\"\nbusiness_information_base_url = \"http://example.com\"\n",
        ),
        "12:33",
        "business_information_base_url: plain http:// is only allowed for loopback hosts",
    );
    // A wrongly typed list is one problem, not also "missing the rule".
    assert_one(
        &with("discover_accounts = \"accounts/1\"\ngroup_external_ref_from = \"store_code\"\n"),
        "10:21",
        "discover_accounts: expected an array, found a string",
    );
}

#[test]
fn reconcile_schedule_defaults_to_daily_where_a_kind_can_reconcile() {
    let config = ok(&format!("{TRAVTUS}{}", google_source("")));
    assert_eq!(
        config.sources[0]
            .reconcile_schedule
            .as_ref()
            .map(|s| s.as_str()),
        Some(DEFAULT_RECONCILE_SCHEDULE)
    );
    assert_eq!(DEFAULT_RECONCILE_SCHEDULE, "0 30 3 * * *");
    let text = format!(
        "{TRAVTUS}{}",
        google_source("reconcile_schedule = \"0 0 */6 * * *\"\n")
    );
    assert_eq!(
        ok(&text).sources[0]
            .reconcile_schedule
            .as_ref()
            .map(|s| s.as_str()),
        Some("0 0 */6 * * *")
    );
    // A file source cannot reconcile: no schedule, and the key is refused.
    let config = ok(&format!("{TRAVTUS}{FILE_SOURCE}"));
    assert_eq!(config.sources[0].reconcile_schedule, None);
    let text = format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace("kind", "reconcile_schedule = \"0 0 3 * * *\"\nkind")
    );
    assert_eq!(
        short(&text),
        [
            "6:1: kind file cannot list every review; reconciliation is not possible (remove `reconcile_schedule`)"
        ]
    );
}

#[test]
fn reconcile_schedule_is_checked_like_schedule() {
    let text = format!(
        "{TRAVTUS}{}",
        google_source("reconcile_schedule = \"0 3 * * *\"\n")
    );
    assert_eq!(
        short(&text),
        [
            "10:22: reconcile_schedule: invalid cron expression \"0 3 * * *\": Invalid pattern: Pattern must have 6 or 7 fields when seconds are required and years are optional (six fields, seconds first, e.g. \"0 */15 * * * *\")"
        ]
    );
    let text = format!("{TRAVTUS}{}", google_source("reconcile_schedule = 3\n"));
    assert_one(
        &text,
        "10:22",
        "reconcile_schedule: expected a string, found an integer",
    );
}

#[test]
fn file_platform_is_optional() {
    let text = format!(
        "{TRAVTUS}{}",
        FILE_SOURCE.replace("kind", "platform = \"yelp\"\nkind")
    );
    let config = ok(&text);
    assert_eq!(
        config.sources[0]
            .kind
            .settings::<FileConfig>()
            .and_then(|f| f.platform.as_deref()),
        Some("yelp")
    );
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

    assert_one(
        &text,
        "3:17",
        "secret \"travtus\" is a systemd credential but no credentials directory is set: under systemd, LoadCredential= in the unit sets $CREDENTIALS_DIRECTORY; from a shell, run `review-sync check --credentials-directory DIR`",
    );
    let missing = with_client_secret("{ credential = \"other\" }");
    let found = load_str_with_env(&missing, Path::new(FILE), &env)
        .err()
        .map(|e| e.lines());
    assert!(
        found.as_ref().is_some_and(|p| p.len() == 1
            && p[0].contains("cannot read secret file")
            && p[0].contains("(os error 2)")),
        "{found:?}"
    );
    let escape = with_client_secret("{ credential = \"../etc/passwd\" }");
    let found = load_str_with_env(&escape, Path::new(FILE), &env)
        .err()
        .map(|e| e.lines());
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
    let text = format!("{TRAVTUS}{LEDGER_HERE}{FILE_SOURCE}");
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
    write_secret(&dir.path().join("token"), "t")?;
    let text = format!("[travtus]\ntoken = {{ file = \"token\" }}\n{LEDGER_HERE}{FILE_SOURCE}");
    let path = write_config(dir.path(), &text, 0o644)?;
    let config = super::load(&path).map_err(std::io::Error::other)?;
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    Ok(())
}

#[test]
fn an_unreadable_config_file_is_one_problem() {
    let path = Path::new("/nonexistent/review-sync/missing.toml");
    let found = super::load(path).err().map(|e| e.lines());
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
    write_secret(
        &credentials.join("travtus_client_secret"),
        "travtus-secret\n",
    )?;
    write_secret(&credentials.join("google_client_secret"), "google-secret\n")?;
    write_secret(
        &credentials.join("google_refresh_token"),
        "google-refresh\n",
    )?;
    for name in [
        "google_places_api_key",
        "yelp_api_key",
        "facebook_page_token",
        "facebook_page_token_789",
        "trustpilot_api_key",
        "trustpilot_api_secret",
        "trustpilot_username",
        "trustpilot_password",
    ] {
        write_secret(&credentials.join(name), &format!("{name}-value\n"))?;
    }
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
    assert_eq!(config.sources.len(), 6);

    let google = &config.sources[0];
    assert_eq!(google.name.as_str(), "acme-google");
    assert_eq!(google.schedule.as_str(), "0 */15 * * * *");
    assert_eq!(
        google.reconcile_schedule.as_ref().map(|s| s.as_str()),
        Some("0 30 3 * * *")
    );
    assert_eq!(google.requests_per_minute.get(), 300);
    let Some(settings) = google.kind.settings::<GoogleConfig>() else {
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
    assert_eq!(settings.discover_accounts, ["accounts/123"]);
    assert_eq!(settings.group_external_ref_from, Some(GroupFrom::StoreCode));
    assert_eq!(
        settings.business_information_base_url.as_str(),
        "https://mybusinessbusinessinformation.googleapis.com/"
    );
    // Push is shown commented out: off by default.
    assert!(settings.push.is_none() && config.push.is_none());
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
    assert_eq!(file.reconcile_schedule, None, "files cannot reconcile");
    assert_eq!(
        file.kind
            .settings::<FileConfig>()
            .and_then(|f| f.platform.as_deref()),
        Some("google")
    );
    assert_eq!(
        file.locations[0].id.as_str(),
        "/var/lib/review-sync/import/acme-*.jsonl"
    );

    let places = &config.sources[2];
    assert_eq!(places.requests_per_minute.get(), 600);
    assert_eq!(
        places.reconcile_schedule, None,
        "Places cannot list every review"
    );
    let Some(settings) = places.kind.settings::<PlacesConfig>() else {
        panic!("the third example source is google_places");
    };
    assert_eq!(settings.api_key.expose(), "google_places_api_key-value");
    assert_eq!(
        settings.api_base_url.as_str(),
        "https://places.googleapis.com/"
    );
    assert_eq!(settings.language_code.as_deref(), Some("en"));
    assert_eq!(
        places.locations[0].id.as_str(),
        "ChIJN1t_tDeuEmsRUsoyG83frY4"
    );

    let yelp = &config.sources[3];
    assert_eq!(yelp.requests_per_minute.get(), 60);
    let Some(settings) = yelp.kind.settings::<YelpConfig>() else {
        panic!("the fourth example source is yelp");
    };
    assert_eq!(settings.api_key.expose(), "yelp_api_key-value");
    assert_eq!(settings.api_base_url.as_str(), "https://api.yelp.com/");
    assert_eq!(settings.locale.as_deref(), Some("en_US"));

    let facebook = &config.sources[4];
    assert_eq!(facebook.requests_per_minute.get(), 3);
    let Some(settings) = facebook.kind.settings::<FacebookConfig>() else {
        panic!("the fifth example source is facebook");
    };
    assert_eq!(settings.graph_version, "v21.0");
    assert_eq!(
        settings.api_base_url.as_str(),
        "https://graph.facebook.com/"
    );
    let tokens: Vec<Option<&str>> = facebook
        .locations
        .iter()
        .map(|l| settings.token_for(&l.id).map(Secret::expose))
        .collect();
    assert_eq!(
        tokens,
        [
            Some("facebook_page_token-value"),
            Some("facebook_page_token_789-value")
        ]
    );

    let trustpilot = &config.sources[5];
    assert_eq!(trustpilot.requests_per_minute.get(), 166);
    let Some(settings) = trustpilot.kind.settings::<TrustpilotConfig>() else {
        panic!("the sixth example source is trustpilot");
    };
    assert_eq!(settings.api_key.expose(), "trustpilot_api_key-value");
    assert_eq!(
        settings.api_base_url.as_str(),
        "https://api.trustpilot.com/"
    );
    let login = settings.business_login.as_ref().expect("private endpoint");
    assert_eq!(login.api_secret.expose(), "trustpilot_api_secret-value");
    assert_eq!(login.username.expose(), "trustpilot_username-value");
    assert_eq!(login.password.expose(), "trustpilot_password-value");
    assert_eq!(
        login.token_url.as_str(),
        "https://api.trustpilot.com/v1/oauth/oauth-business-users-for-applications/accesstoken"
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
        "max_pages_per_pass",
        "max_pass_time",
        "max_pages_per_full_read",
        "max_full_read_time",
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
        "api_key",
        "language_code",
        "locale",
        "access_token",
        "graph_version",
        "api_secret",
        "username",
        "password",
        "push_subscription",
        "pubsub_base_url",
        "push_credentials",
        "webhook_app_secret",
        "webhook_verify_token",
        "webhook_silence_alert",
    ] {
        assert!(
            text.contains(&format!("{key} =")),
            "the example does not show `{key}`"
        );
    }
}

// ------------------------------------ google_places, yelp, facebook, trustpilot

/// A `[[source]]` of `kind` after [`TRAVTUS`]: header on line 3, `kind` on
/// line 5, `extra` from line 7, then one location (`[[source.location]]` on
/// the line after `extra`) with `id` and `location_extra`.
fn platform_source(kind: &str, extra: &str, id: &str, location_extra: &str) -> String {
    format!(
        "{TRAVTUS}[[source]]\nname = \"p\"\nkind = \"{kind}\"\nschedule = \"0 * * * * *\"\n{extra}  [[source.location]]\n  id = \"{id}\"\n  group_id = \"g\"\n{location_extra}"
    )
}

#[test]
fn new_kinds_default_to_the_real_hosts_and_published_quotas() {
    let config = ok(&platform_source(
        "google_places",
        "api_key = \"k\"\n",
        "ChIJ1",
        "",
    ));
    let source = &config.sources[0];
    assert_eq!(source.requests_per_minute.get(), 600);
    let Some(places) = source.kind.settings::<PlacesConfig>() else {
        panic!("expected google_places");
    };
    assert_eq!(places.api_key.expose(), "k");
    assert_eq!(
        places.api_base_url.as_str(),
        "https://places.googleapis.com/"
    );
    assert_eq!(places.language_code, None);

    let config = ok(&platform_source(
        "yelp",
        "api_key = \"k\"\n",
        "gary-danko",
        "",
    ));
    let source = &config.sources[0];
    assert_eq!(source.requests_per_minute.get(), 60);
    let Some(yelp) = source.kind.settings::<YelpConfig>() else {
        panic!("expected yelp");
    };
    assert_eq!(yelp.api_base_url.as_str(), "https://api.yelp.com/");
    assert_eq!(yelp.locale, None);

    let config = ok(&platform_source(
        "facebook",
        "access_token = \"t\"\n",
        "123",
        "",
    ));
    let source = &config.sources[0];
    assert_eq!(source.requests_per_minute.get(), 3);
    let Some(facebook) = source.kind.settings::<FacebookConfig>() else {
        panic!("expected facebook");
    };
    assert_eq!(facebook.graph_version, "v21.0");
    assert_eq!(
        facebook.api_base_url.as_str(),
        "https://graph.facebook.com/"
    );
    assert!(facebook.location_tokens.is_empty());
    assert_eq!(
        facebook
            .token_for(&LocationId::new("123"))
            .map(Secret::expose),
        Some("t")
    );

    let config = ok(&platform_source(
        "trustpilot",
        "api_key = \"k\"\n",
        "46d6a890000064000500e0c3",
        "",
    ));
    let source = &config.sources[0];
    assert_eq!(source.requests_per_minute.get(), 166);
    let Some(trustpilot) = source.kind.settings::<TrustpilotConfig>() else {
        panic!("expected trustpilot");
    };
    assert_eq!(
        trustpilot.api_base_url.as_str(),
        "https://api.trustpilot.com/"
    );
    assert!(trustpilot.business_login.is_none());
}

#[test]
fn coverage_notes_name_what_a_kind_cannot_see() {
    let note = |text: &str| ok(text).sources[0].kind.coverage_note();
    assert!(
        note(&platform_source(
            "google_places",
            "api_key = \"k\"\n",
            "p",
            ""
        ))
        .is_some_and(|n| n.contains("at most 5 reviews") && n.contains("cannot be complete"))
    );
    assert!(
        note(&platform_source("yelp", "api_key = \"k\"\n", "b", ""))
            .is_some_and(|n| n.contains("at most 3 review excerpts"))
    );
    assert!(
        note(&platform_source(
            "facebook",
            "access_token = \"t\"\n",
            "1",
            ""
        ))
        .is_some_and(|n| n.starts_with("at risk") && n.contains("v22.0"))
    );
    assert_eq!(
        note(&platform_source("trustpilot", "api_key = \"k\"\n", "u", "")),
        None
    );
    assert_eq!(note(&format!("{TRAVTUS}{FILE_SOURCE}")), None);
}

#[test]
fn keys_of_other_kinds_are_refused_for_the_new_kinds() {
    assert_eq!(
        short(&platform_source(
            "yelp",
            "api_key = \"k\"\nlanguage_code = \"en\"\ngraph_version = \"v21.0\"\n",
            "b",
            ""
        )),
        [
            "8:1: key `language_code` is not used by kind yelp",
            "9:1: key `graph_version` is not used by kind yelp",
        ]
    );
    assert_eq!(
        short(&platform_source(
            "google_places",
            "api_key = \"k\"\nlocale = \"en_US\"\n",
            "p",
            ""
        )),
        ["8:1: key `locale` is not used by kind google_places"]
    );
    assert_eq!(
        short(&platform_source(
            "facebook",
            "access_token = \"t\"\napi_key = \"k\"\ntoken_url = \"https://x\"\n",
            "1",
            ""
        )),
        [
            "8:1: key `api_key` is not used by kind facebook",
            "9:1: key `token_url` is not used by kind facebook",
        ]
    );
    assert_eq!(
        short(&platform_source(
            "trustpilot",
            "api_key = \"k\"\naccess_token = \"t\"\n",
            "u",
            "  access_token = \"t\"\n"
        )),
        [
            "8:1: key `access_token` is not used by kind trustpilot",
            "12:3: key `access_token` is not used by kind trustpilot",
        ]
    );
    let text = format!(
        "{TRAVTUS}{}",
        google_source("api_secret = \"s\"\nusername = \"u\"\n")
    );
    assert_eq!(
        short(&text),
        [
            "10:1: key `api_secret` is not used by kind google_business_profile",
            "11:1: key `username` is not used by kind google_business_profile",
        ]
    );
}

#[test]
fn language_codes_and_locales_are_checked() {
    for good in ["en", "en-US", "zh-TW", "es-419"] {
        let text = platform_source(
            "google_places",
            &format!("api_key = \"k\"\nlanguage_code = \"{good}\"\n"),
            "p",
            "",
        );
        let config = ok(&text);
        let Some(places) = config.sources[0].kind.settings::<PlacesConfig>() else {
            panic!("expected google_places");
        };
        assert_eq!(places.language_code.as_deref(), Some(good));
    }
    assert_one(
        &platform_source(
            "google_places",
            "api_key = \"k\"\nlanguage_code = \"english\"\n",
            "p",
            "",
        ),
        "8:17",
        "language_code: \"english\" is not a language tag such as \"en\" or \"en-US\"",
    );
    assert_one(
        &platform_source("yelp", "api_key = \"k\"\nlocale = \"en-US\"\n", "b", ""),
        "8:10",
        "locale: \"en-US\" is not a language tag such as \"en\" or \"en_US\"",
    );
}

#[test]
fn graph_version_must_still_serve_ratings() {
    for good in ["v21.0", "v19.0", "v2.12"] {
        let text = platform_source(
            "facebook",
            &format!("access_token = \"t\"\ngraph_version = \"{good}\"\n"),
            "1",
            "",
        );
        let config = ok(&text);
        let Some(facebook) = config.sources[0].kind.settings::<FacebookConfig>() else {
            panic!("expected facebook");
        };
        assert_eq!(facebook.graph_version, good);
    }
    for bad in ["v22.0", "v23.0", "v100.1"] {
        assert_eq!(
            short(&platform_source(
                "facebook",
                &format!("access_token = \"t\"\ngraph_version = \"{bad}\"\n"),
                "1",
                ""
            )),
            [format!(
                "8:17: graph_version: {bad} cannot read Page ratings: from v22.0 on, Graph answers the ratings edge with error 12 (deprecated); pin a version below v22.0, e.g. \"v21.0\""
            )]
        );
    }
    for bad in ["21.0", "v21", "latest", "v21.0.1"] {
        assert_one(
            &platform_source(
                "facebook",
                &format!("access_token = \"t\"\ngraph_version = \"{bad}\"\n"),
                "1",
                "",
            ),
            "8:17",
            "is not a Graph API version such as \"v21.0\"",
        );
    }
}

#[test]
fn every_facebook_location_needs_a_token_and_its_own_wins() {
    // Per location only: the source needs none.
    let text = platform_source("facebook", "", "1", "  access_token = \"own\"\n");
    let config = ok(&text);
    let Some(facebook) = config.sources[0].kind.settings::<FacebookConfig>() else {
        panic!("expected facebook");
    };
    assert_eq!(facebook.access_token.as_ref().map(Secret::expose), None);
    assert_eq!(
        facebook
            .token_for(&LocationId::new("1"))
            .map(Secret::expose),
        Some("own")
    );

    // Both: the location's wins; a location without one uses the source's.
    let text = format!(
        "{}  [[source.location]]\n  id = \"2\"\n  group_id = \"g\"\n",
        platform_source(
            "facebook",
            "access_token = \"shared\"\n",
            "1",
            "  access_token = \"own\"\n"
        )
    );
    let config = ok(&text);
    let Some(facebook) = config.sources[0].kind.settings::<FacebookConfig>() else {
        panic!("expected facebook");
    };
    let token = |id: &str| facebook.token_for(&LocationId::new(id)).map(Secret::expose);
    assert_eq!((token("1"), token("2")), (Some("own"), Some("shared")));

    // Neither: reported at each such location.
    let text = format!(
        "{}  [[source.location]]\n  id = \"2\"\n  group_id = \"g\"\n",
        platform_source("facebook", "", "1", "  access_token = \"own\"\n")
    );
    assert_eq!(
        short(&text),
        [
            "11:3: location \"2\" has no access_token: set a Page access token on the location, or `access_token` on the source"
        ]
    );
    // An unreadable location token is reported where it is written.
    assert_one(
        &platform_source(
            "facebook",
            "access_token = \"t\"\n",
            "1",
            "  access_token = { env = \"NOPE\" }\n",
        ),
        "11:18",
        "access_token: environment variable NOPE is not set",
    );
}

#[test]
fn trustpilot_business_login_is_all_or_nothing() {
    let text = platform_source(
        "trustpilot",
        "api_key = \"k\"\napi_secret = \"s\"\nusername = \"u\"\npassword = \"p\"\n",
        "u1",
        "",
    );
    let config = ok(&text);
    let Some(trustpilot) = config.sources[0].kind.settings::<TrustpilotConfig>() else {
        panic!("expected trustpilot");
    };
    let login = trustpilot.business_login.as_ref().expect("login");
    assert_eq!(
        (
            login.api_secret.expose(),
            login.username.expose(),
            login.password.expose()
        ),
        ("s", "u", "p")
    );
    assert_eq!(
        login.token_url.as_str(),
        "https://api.trustpilot.com/v1/oauth/oauth-business-users-for-applications/accesstoken"
    );

    assert_eq!(
        short(&platform_source(
            "trustpilot",
            "api_key = \"k\"\nusername = \"u\"\n",
            "u1",
            ""
        )),
        [
            "8:1: `api_secret`, `username` and `password` go together (they log in to the private reviews endpoint); missing `api_secret` and `password`"
        ]
    );
    assert_eq!(
        short(&platform_source(
            "trustpilot",
            "api_key = \"k\"\ntoken_url = \"https://x.example/token\"\n",
            "u1",
            ""
        )),
        [
            "8:1: `token_url` is only used with `api_secret`, `username` and `password` (the private reviews endpoint)"
        ]
    );
    assert_one(
        &platform_source(
            "trustpilot",
            "api_key = \"k\"\napi_secret = \"s\"\nusername = \"u\"\npassword = \"p\"\ntoken_url = \"http://x.example/t\"\n",
            "u1",
            "",
        ),
        "11:13",
        "token_url: plain http:// is only allowed for loopback hosts",
    );
}

#[test]
fn platform_location_ids_are_single_path_segments() {
    // A place's resource name is accepted as well as its bare id.
    ok(&platform_source(
        "google_places",
        "api_key = \"k\"\n",
        "places/ChIJ1",
        "",
    ));
    for (kind, extra, what) in [
        ("google_places", "api_key = \"k\"\n", "a Google place id"),
        ("yelp", "api_key = \"k\"\n", "a Yelp business id or alias"),
        ("facebook", "access_token = \"t\"\n", "a Facebook Page id"),
        (
            "trustpilot",
            "api_key = \"k\"\n",
            "a Trustpilot business unit id",
        ),
    ] {
        for bad in ["a/b", "a b", "a?b", "a#b"] {
            let text = platform_source(kind, extra, bad, "");
            assert_one(&text, "9:8", &format!("id: {bad:?} is not {what}"));
        }
    }
}

// ------------------------------------------------------------------- push

#[test]
fn push_keys_are_off_by_default_and_read_when_written() {
    let config = ok(&format!("{TRAVTUS}{}", google_source("")));
    assert!(config.push.is_none());
    assert!(config.sources[0].kind.push().is_none());
    let text = format!(
        "{TRAVTUS}{}",
        google_source("push_subscription = \"projects/p-1/subscriptions/review-sync\"\n")
    );
    let config = ok(&text);
    let Some(crate::push::SourcePush::PubSub(push)) = config.sources[0].kind.push() else {
        panic!("expected Pub/Sub push");
    };
    assert_eq!(
        push.subscription.to_string(),
        "projects/p-1/subscriptions/review-sync"
    );
    assert_eq!(push.base_url.as_str(), "https://pubsub.googleapis.com/");
    // Without push_credentials: the source's own OAuth client.
    assert!(matches!(
        push.credentials,
        crate::push::PubSubCredentials::SourceOAuth { ref client_id, .. } if client_id == "gid"
    ));
    let google = config.sources[0]
        .kind
        .settings::<GoogleConfig>()
        .expect("google");
    assert!(
        google
            .urls()
            .iter()
            .any(|u| u.as_str() == "https://pubsub.googleapis.com/")
    );
}

#[test]
fn push_problems_name_the_key() {
    assert_one(
        &format!(
            "{TRAVTUS}{}",
            google_source("push_subscription = \"topics/nope\"\n")
        ),
        "10:21",
        "push_subscription: \"topics/nope\" is not a subscription name",
    );
    assert_one(
        &format!(
            "{TRAVTUS}{}",
            google_source("pubsub_base_url = \"https://pubsub.example\"\n")
        ),
        "10:1",
        "`pubsub_base_url` is only used with `push_subscription`",
    );
    assert_one(
        &format!(
            "{TRAVTUS}{}",
            google_source(
                "push_subscription = \"projects/p/subscriptions/review-sync\"\npush_credentials = \"{not json\"\n"
            )
        ),
        "11:1",
        "push_credentials: service-account key is not JSON",
    );
    assert_one(
        &format!(
            "{TRAVTUS}{}",
            google_source(
                "push_subscription = \"projects/p/subscriptions/review-sync\"\npubsub_base_url = \"http://pubsub.example\"\n"
            )
        ),
        "11:19",
        "pubsub_base_url: plain http:// is only allowed for loopback hosts",
    );
    // Webhook secrets need a receiver, and Facebook's come in pairs.
    assert_one(
        &platform_source(
            "trustpilot",
            "api_key = \"k\"\nwebhook_verify_token = \"s\"\n",
            "bu",
            "",
        ),
        "8:1",
        "webhook_verify_token: webhooks need `[push] listen`",
    );
    assert_one(
        &format!(
            "[push]\nlisten = \"127.0.0.1:9188\"\n{}",
            platform_source(
                "facebook",
                "access_token = \"t\"\nwebhook_app_secret = \"s\"\n",
                "1",
                ""
            )
        ),
        "10:1",
        "missing `webhook_verify_token`",
    );
    assert_one(
        &format!(
            "[push]\nlisten = \"nowhere\"\n{}",
            platform_source("facebook", "access_token = \"t\"\n", "1", "")
        ),
        "2:10",
        "listen: expected IP:PORT",
    );
    assert_one(
        &format!(
            "[push]\nlisten = \"127.0.0.1:9188\"\nwebhook_silence_alert = \"31d\"\n{}",
            platform_source("facebook", "access_token = \"t\"\n", "1", "")
        ),
        "3:25",
        "webhook_silence_alert",
    );
    // A key of another platform's push is not this kind's.
    let found = short(&format!(
        "[push]\nlisten = \"127.0.0.1:9188\"\n{}",
        platform_source(
            "trustpilot",
            "api_key = \"k\"\nwebhook_app_secret = \"s\"\n",
            "bu",
            ""
        )
    ));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("10:1: ") && found[0].contains("webhook_app_secret"),
        "{found:#?}"
    );
}

#[test]
fn webhook_sources_get_their_platform_checks() {
    let config = ok(&format!(
        "[push]\nlisten = \"127.0.0.1:9188\"\nwebhook_silence_alert = \"2h\"\n{}",
        platform_source(
            "facebook",
            "access_token = \"t\"\nwebhook_app_secret = \"s\"\nwebhook_verify_token = \"v\"\n",
            "1",
            ""
        )
    ));
    let push = config.push.as_ref().expect("[push]");
    assert_eq!(push.listen.to_string(), "127.0.0.1:9188");
    assert_eq!(
        push.webhook_silence_alert,
        Some(std::time::Duration::from_secs(7200))
    );
    let Some(crate::push::SourcePush::Webhook(hook)) = config.sources[0].kind.push() else {
        panic!("expected a webhook");
    };
    assert_eq!(hook.channel().as_str(), "facebook");
}
