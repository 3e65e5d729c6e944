//! `[[source]]` and `[[source.location]]`: the keys every source takes,
//! kinds, schedules, budgets and pass bounds, Google's discovery keys, the
//! location-to-group rules, and every problem of a file reported at once.

use super::*;
use crate::config::PassBounds;
use crate::platforms::file::FileConfig;
use crate::platforms::google::{GoogleConfig, GroupFrom};
use std::time::Duration;

/// A `[[source]]` of `kind` after [`TRAVTUS`] (header on line 3, `kind` on
/// line 5), with one valid location.
fn source_of_kind(kind: &str) -> String {
    format!(
        "{TRAVTUS}[[source]]\nname = \"a\"\nkind = \"{kind}\"\nschedule = \"0 * * * * *\"\n  [[source.location]]\n  id = \"x\"\n  group_id = \"g\"\n"
    )
}

/// The first source's Google settings.
fn google_of(config: &Config) -> &GoogleConfig {
    match config.sources[0].kind.settings::<GoogleConfig>() {
        Some(google) => google,
        None => panic!("a google source"),
    }
}

/// A Google source that discovers `accounts/1` (lines 10-11), with `extra`
/// on line 12.
fn discovering(extra: &str) -> String {
    google_source(&format!(
        "discover_accounts = [\"accounts/1\"]\ngroup_external_ref_from = \"store_code\"\n{extra}"
    ))
}

/// The same discovering source without any location.
const DISCOVERING_ALONE: &str = "[travtus]\ntoken = \"t\"\n[[source]]\nname = \"g\"\nkind = \"google_business_profile\"\nschedule = \"0 */15 * * * *\"\nclient_id = \"gid\"\nclient_secret = \"gs\"\nrefresh_token = \"gr\"\ndiscover_accounts = [\"accounts/1\"]\ngroup_external_ref_from = \"store_code\"\n";

#[test]
fn source_values() {
    assert_values(
        |c| {
            (
                c.sources[0].requests_per_minute.map(|n| n.get()),
                c.sources[0].timeout,
            )
        },
        &[loads(
            "requests_per_minute and timeout",
            file_source_with("requests_per_minute = 10\ntimeout = \"5s\"\n"),
            (Some(10), Duration::from_secs(5)),
        )],
    );
    let defaults = PassBounds {
        incremental_pages: 200,
        incremental_time: Duration::from_secs(300),
        full_read_pages: 10_000,
        full_read_time: Duration::from_secs(3600),
    };
    assert_eq!(PassBounds::default(), defaults);
    assert_values(
        |c| c.sources[0].pass_bounds,
        &[
            loads(
                "pass bounds: defaults",
                format!("{TRAVTUS}{FILE_SOURCE}"),
                defaults,
            ),
            loads(
                "pass bounds: set",
                file_source_with(
                    "max_pages_per_pass = 3\nmax_pass_time = \"10s\"\nmax_pages_per_full_read = 40\nmax_full_read_time = \"2m\"\n",
                ),
                PassBounds {
                    incremental_pages: 3,
                    incremental_time: Duration::from_secs(10),
                    full_read_pages: 40,
                    full_read_time: Duration::from_secs(120),
                },
            ),
        ],
    );
    assert_values(
        |c| {
            c.sources[0]
                .kind
                .settings::<FileConfig>()
                .and_then(|f| f.platform.clone())
        },
        &[loads(
            "file: platform is optional",
            file_source_with("platform = \"yelp\"\n"),
            Some("yelp".to_string()),
        )],
    );
    assert_values(
        |c| {
            c.sources[0]
                .reconcile_schedule
                .as_ref()
                .map(|s| s.as_str().to_string())
        },
        &[
            loads(
                "reconcile_schedule: daily by default where a kind can reconcile",
                google_source(""),
                Some(DEFAULT_RECONCILE_SCHEDULE.to_string()),
            ),
            loads(
                "reconcile_schedule: set",
                google_source("reconcile_schedule = \"0 0 */6 * * *\"\n"),
                Some("0 0 */6 * * *".to_string()),
            ),
            // A file source cannot reconcile: no schedule (and the key is refused).
            loads(
                "reconcile_schedule: none for a file",
                format!("{TRAVTUS}{FILE_SOURCE}"),
                None,
            ),
        ],
    );
    assert_eq!(DEFAULT_RECONCILE_SCHEDULE, "0 30 3 * * *");
    assert_values(
        |c| c.sources[0].locations.len(),
        &[loads(
            "a discovering source may have no locations",
            DISCOVERING_ALONE,
            0,
        )],
    );
}

#[test]
fn google_discovery_values() {
    let two = "discover_accounts = [\"accounts/1\", \"accounts/22\"]\ngroup_external_ref_from = \"store_code\"\n";
    assert_values(
        |c| {
            let google = google_of(c);
            (
                google.discover_accounts.clone(),
                google.group_external_ref_from,
                google.business_information_base_url.to_string(),
            )
        },
        &[
            loads(
                "discovery: the default host",
                google_source(two),
                (
                    vec!["accounts/1".to_string(), "accounts/22".to_string()],
                    Some(GroupFrom::StoreCode),
                    "https://mybusinessbusinessinformation.googleapis.com/".to_string(),
                ),
            ),
            loads(
                "discovery: another host",
                google_source(&format!(
                    "{two}business_information_base_url = \"http://127.0.0.1:9/google-bi\"\n"
                )),
                (
                    vec!["accounts/1".to_string(), "accounts/22".to_string()],
                    Some(GroupFrom::StoreCode),
                    "http://127.0.0.1:9/google-bi".to_string(),
                ),
            ),
            // Without discovery: nothing discovered, and the default host anyway.
            loads(
                "no discovery",
                google_source(""),
                (
                    vec![],
                    None,
                    "https://mybusinessbusinessinformation.googleapis.com/".to_string(),
                ),
            ),
        ],
    );
}

#[test]
fn kinds_are_supported_or_unknown() {
    // Every SPEC kind is known: without its credentials, that is what is said.
    let mut rows: Vec<Refused> = ["google_places", "yelp", "trustpilot"]
        .map(|kind| {
            refused(
                format!("kind {kind} without its credentials"),
                source_of_kind(kind),
                &[&format!(
                    "3:1: missing key `api_key` in [[source]] (kind {kind})"
                )],
            )
        })
        .into();
    rows.push(refused(
        "kind facebook without its credentials",
        source_of_kind("facebook"),
        &[
            "7:3: location \"x\" has no access_token: set a Page access token on the location, or `access_token` on the source",
        ],
    ));
    // The kinds SPEC names, then any platform added since: the registry's.
    let kinds = crate::platforms::registry::kinds();
    assert!(
        kinds.starts_with(
            "google_business_profile, google_places, yelp, facebook, trustpilot, file"
        ),
        "{kinds}"
    );
    rows.push(refused(
        "an unknown kind",
        source_of_kind("tripadvisor"),
        &[&format!(
            "5:8: unknown kind \"tripadvisor\" (expected one of {kinds})"
        )],
    ));
    assert_refused(&rows);
}

#[test]
fn source_problems() {
    let cron_help = "(six fields, seconds first, e.g. \"0 */15 * * * *\")";
    assert_refused(&[
        refused(
            "required keys",
            format!(
                "{TRAVTUS}[[source]]\n  [[source.location]]\n  id = \"x\"\n  group_id = \"g\"\n"
            ),
            &[
                "3:1: missing key `name` in [[source]]",
                "3:1: missing key `kind` in [[source]]",
                "3:1: missing key `schedule` in [[source]]",
            ],
        ),
        refused(
            "a kind's required keys",
            google_source("")
                .replace("client_id = \"gid\"\n", "")
                .replace("refresh_token = \"gr\"\n", ""),
            &[
                "3:1: missing key `client_id` in [[source]] (kind google_business_profile)",
                "3:1: missing key `refresh_token` in [[source]] (kind google_business_profile)",
            ],
        ),
        refused(
            "duplicate names",
            format!(
                "{TRAVTUS}{FILE_SOURCE}{}",
                FILE_SOURCE.replace("/srv/import", "/srv/other")
            ),
            &["13:8: duplicate source name \"imports\" (first used at line 5, column 8)"],
        ),
        refused(
            "a blank name",
            format!("{TRAVTUS}{}", FILE_SOURCE.replace("\"imports\"", "\"  \"")),
            &["5:8: name: must not be empty"],
        ),
        refused(
            "schedule: no seconds field",
            format!(
                "{TRAVTUS}{}",
                FILE_SOURCE.replace("0 0 * * * *", "0 * * * *")
            ),
            &[&format!(
                "7:12: schedule: invalid cron expression \"0 * * * *\": Invalid pattern: Pattern must have 6 or 7 fields when seconds are required and years are optional {cron_help}"
            )],
        ),
        refused(
            "schedule: a number out of bounds",
            format!(
                "{TRAVTUS}{}",
                FILE_SOURCE.replace("0 0 * * * *", "0 99 * * * *")
            ),
            &[&format!(
                "7:12: schedule: invalid cron expression \"0 99 * * * *\": Component error: Number out of bounds {cron_help}"
            )],
        ),
        refused(
            "requests_per_minute and timeout: zero",
            file_source_with("requests_per_minute = 0\ntimeout = \"0s\"\n"),
            &[
                "6:23: requests_per_minute: must be between 1 and 4294967295 (got 0)",
                "7:11: timeout: must be greater than zero",
            ],
        ),
        refused(
            "timeout: over ten minutes",
            file_source_with("timeout = \"11m\"\n"),
            &["6:11: timeout: \"11m\" is too long: at most 10m"],
        ),
        refused(
            "pass bounds out of range",
            file_source_with(
                "max_pages_per_pass = 0\nmax_pass_time = \"0s\"\nmax_pages_per_full_read = 10001\n",
            ),
            &[
                "6:22: max_pages_per_pass: must be between 1 and 10000 (got 0)",
                "7:17: max_pass_time: must be greater than zero",
                "8:27: max_pages_per_full_read: must be between 1 and 10000 (got 10001)",
            ],
        ),
        refused(
            "keys of other kinds: google",
            google_source("api_key = \"k\"\nplatform = \"google\"\n"),
            &[
                "10:1: key `api_key` is not used by kind google_business_profile",
                "11:1: key `platform` is not used by kind google_business_profile",
            ],
        ),
        refused(
            "keys of other kinds: file",
            file_source_with("client_id = \"x\"\n"),
            &["6:1: key `client_id` is not used by kind file"],
        ),
        refused(
            "reconcile_schedule: a file cannot reconcile",
            file_source_with("reconcile_schedule = \"0 0 3 * * *\"\n"),
            &[
                "6:1: kind file cannot list every review; reconciliation is not possible (remove `reconcile_schedule`)",
            ],
        ),
        refused(
            "reconcile_schedule: no seconds field",
            google_source("reconcile_schedule = \"0 3 * * *\"\n"),
            &[&format!(
                "10:22: reconcile_schedule: invalid cron expression \"0 3 * * *\": Invalid pattern: Pattern must have 6 or 7 fields when seconds are required and years are optional {cron_help}"
            )],
        ),
        refused(
            "reconcile_schedule: an integer",
            google_source("reconcile_schedule = 3\n"),
            &["10:22: reconcile_schedule: expected a string, found an integer"],
        ),
        refused(
            "source URLs follow the URL rules",
            google_source(
                "api_base_url = \"http://mybusiness.googleapis.com\"\ntoken_url = \"gopher://x\"\n",
            ),
            &[
                "10:16: api_base_url: plain http:// is only allowed for loopback hosts (got mybusiness.googleapis.com)",
                "11:13: token_url: scheme \"gopher\" is not allowed (use https://, or http:// for a loopback host)",
            ],
        ),
    ]);
}

#[test]
fn discovery_problems() {
    assert_refused(&[
        // Without discovery, a source without locations is refused.
        refused(
            "no location and no discovery",
            DISCOVERING_ALONE
                .replace("discover_accounts = [\"accounts/1\"]\n", "")
                .replace("group_external_ref_from = \"store_code\"\n", ""),
            &["3:1: source \"g\" has no [[source.location]]"],
        ),
        // Each entry an account name, no repeats, at least one.
        refused(
            "discover_accounts: not accounts, and a repeat",
            google_source(
                "discover_accounts = [\"accounts/1/locations/2\", \"1\", \"accounts/3\", \"accounts/3\"]\ngroup_external_ref_from = \"store_code\"\n",
            ),
            &[
                "10:21: discover_accounts: \"accounts/1/locations/2\" is not a Google Business Profile account (expected accounts/{account})",
                "10:21: discover_accounts: \"1\" is not a Google Business Profile account (expected accounts/{account})",
                "10:21: discover_accounts: \"accounts/3\" is listed twice",
            ],
        ),
        refused(
            "discover_accounts: empty",
            google_source("discover_accounts = []\ngroup_external_ref_from = \"store_code\"\n"),
            &[
                "10:21: discover_accounts: list at least one account, e.g. [\"accounts/123\"] (or remove the key)",
            ],
        ),
        // A mapping rule is required, and only store_code exists.
        refused(
            "discover_accounts: no mapping rule",
            google_source("discover_accounts = [\"accounts/1\"]\n"),
            &[
                "10:1: `discover_accounts` needs `group_external_ref_from = \"store_code\"`: it says which group a discovered location's reviews go to",
            ],
        ),
        refused(
            "group_external_ref_from: another rule",
            google_source(
                "discover_accounts = [\"accounts/1\"]\ngroup_external_ref_from = \"title\"\n",
            ),
            &[
                "11:27: group_external_ref_from: \"title\" is not supported (expected \"store_code\": a discovered location maps to the group whose external reference is its store code)",
            ],
        ),
        // The other discovery keys do nothing without discover_accounts.
        refused(
            "discovery keys without discover_accounts",
            google_source(
                "group_external_ref_from = \"store_code\"\nbusiness_information_base_url = \"https://x\"\n",
            ),
            &[
                "10:1: `group_external_ref_from` is only used with `discover_accounts`",
                "11:1: `business_information_base_url` is only used with `discover_accounts`",
            ],
        ),
        // The host follows the URL rules of every other host.
        refused(
            "business_information_base_url: plain http",
            discovering("business_information_base_url = \"http://example.com\"\n"),
            &[
                "12:33: business_information_base_url: plain http:// is only allowed for loopback hosts (got example.com)",
            ],
        ),
        // A wrongly typed list is one problem, not also "missing the rule".
        refused(
            "discover_accounts: a string",
            google_source(
                "discover_accounts = \"accounts/1\"\ngroup_external_ref_from = \"store_code\"\n",
            ),
            &["10:21: discover_accounts: expected an array, found a string"],
        ),
    ]);
}

#[test]
fn location_problems() {
    assert_refused(&[
        refused(
            "a source without locations",
            format!("{TRAVTUS}[[source]]\nname = \"a\"\nkind = \"file\"\nschedule = \"0 * * * * *\"\n"),
            &["3:1: source \"a\" has no [[source.location]]"],
        ),
        refused(
            "both groups, and neither",
            google_source("").replace(
                "  group_id = \"grp\"\n",
                "  group_id = \"grp\"\n  group_external_ref = \"ref\"\n  [[source.location]]\n  id = \"accounts/1/locations/3\"\n",
            ),
            &[
                "13:3: location \"accounts/1/locations/2\" needs exactly one of group_external_ref and group_id (the Travtus API refuses both and neither)",
                "14:3: location \"accounts/1/locations/3\" needs exactly one of group_external_ref and group_id (the Travtus API refuses both and neither)",
            ],
        ),
        refused(
            "an empty group_id",
            google_source("").replace("group_id = \"grp\"", "group_id = \"\""),
            &["12:14: group_id: must not be empty"],
        ),
        refused(
            "a location id twice",
            google_source("").replace(
                "  group_id = \"grp\"\n",
                "  group_id = \"grp\"\n  [[source.location]]\n  id = \"accounts/1/locations/2\"\n  group_id = \"other\"\n",
            ),
            &[
                "14:8: duplicate location id \"accounts/1/locations/2\" in source \"g\" (first used at line 11, column 8)",
            ],
        ),
        refused(
            "no location id",
            google_source("").replace("  id = \"accounts/1/locations/2\"\n", ""),
            &["10:3: missing key `id` in [[source.location]]"],
        ),
        refused(
            "a location id of the wrong form",
            google_source("").replace("accounts/1/locations/2", "locations/2"),
            &[
                "11:8: id: \"locations/2\" is not a Google Business Profile location (expected accounts/{account}/locations/{location})",
            ],
        ),
        refused(
            "access_token on a location of another kind",
            format!(
                "{TRAVTUS}{}",
                FILE_SOURCE.replace("  group_external_ref", "  access_token = \"x\"\n  group_external_ref")
            ),
            &["10:3: key `access_token` is not used by kind file"],
        ),
    ]);
}

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
    assert_refused(&[refused(
        "five problems in two sources",
        text,
        &[
            "2:1: `client_id` needs `client_secret` in [travtus]",
            "3:15: concurrency: must be between 1 and 256 (got 0)",
            "9:1: unknown key `colour` in [[source]]",
            "17:12: schedule: invalid cron expression \"61 * * * * *\": Component error: Number out of bounds (six fields, seconds first, e.g. \"0 */15 * * * *\")",
            "18:3: location \"/y\" needs exactly one of group_external_ref and group_id (the Travtus API refuses both and neither)",
        ],
    )]);
}
