//! The top-level tables (`[travtus]`, `[ledger]`, `[metrics]`), the file's
//! structure (unknown keys, wrong types, TOML syntax) and the defaults of an
//! otherwise empty config.

use super::*;
use crate::platforms::file::FileConfig;
use crate::platforms::google::GoogleConfig;
use std::time::Duration;

// ---------------------------------------------------------------- defaults

#[test]
fn defaults_fill_every_optional_key() {
    let config = ok(&format!("{TRAVTUS}{FILE_SOURCE}"));
    assert_eq!(config.path, Path::new(FILE));
    assert_eq!(config.travtus.base_url.as_str(), "https://api.travtus.com/");
    assert_eq!(config.travtus.timeout, Duration::from_secs(30));
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
    assert_eq!(
        source.requests_per_minute, None,
        "no override: the scope\'s budget"
    );
    assert_eq!(source.timeout, Duration::from_secs(30));
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
    assert_eq!(
        source.requests_per_minute, None,
        "no override: the scope\'s budget"
    );
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

// ------------------------------------------------------------ the values

/// `[ledger]` after [`TRAVTUS`], with `keys` from line 4.
fn ledger(keys: &str) -> String {
    format!("{TRAVTUS}[ledger]\n{keys}")
}

/// [`TRAVTUS`] with `keys` from line 3.
fn travtus(keys: &str) -> String {
    format!("{TRAVTUS}{keys}")
}

#[test]
fn ledger_values() {
    assert_values(
        |c| c.ledger.path.file().map(Path::to_path_buf),
        &[
            loads(
                "path: default",
                TRAVTUS,
                Some("/var/lib/review-sync/ledger.db".into()),
            ),
            loads(
                "path: relative to the config file",
                ledger("path = \"data/ledger.db\"\n"),
                Some("/nonexistent/review-sync/data/ledger.db".into()),
            ),
            loads(
                "path: absolute",
                ledger("path = \"/srv/l.db\"\n"),
                Some("/srv/l.db".into()),
            ),
        ],
    );
    assert_values(
        |c| c.ledger.retain_text_days.map(|d| d.get()),
        &[
            loads("retain_text_days: optional", TRAVTUS, None),
            loads(
                "retain_text_days: 30",
                ledger("retain_text_days = 30\n"),
                Some(30),
            ),
            // A hundred years at most: the cutoff must stay a date the ledger stores.
            loads(
                "retain_text_days: a hundred years",
                ledger("retain_text_days = 36500\n"),
                Some(36_500),
            ),
        ],
    );
    assert_values(
        |c| c.ledger.retain_polls_days.get(),
        &[
            loads("retain_polls_days: default", TRAVTUS, 90),
            loads("retain_polls_days: 7", ledger("retain_polls_days = 7\n"), 7),
        ],
    );
    assert_values(
        |c| c.metrics.as_ref().map(|m| m.listen.port()),
        &[loads(
            "metrics listen",
            "[travtus]\ntoken = \"t\"\n[metrics]\nlisten = \"127.0.0.1:9187\"\n",
            Some(9187),
        )],
    );
}

#[test]
fn travtus_values() {
    assert_values(
        |c| c.travtus.timeout,
        &[
            loads(
                "timeout: 2m",
                travtus("timeout = \"2m\"\n"),
                Duration::from_secs(120),
            ),
            // Ten minutes at most: a lease is the timeout plus 10 s, and a
            // huge one overflowed `now + lease`.
            loads(
                "timeout: the most",
                travtus("timeout = \"10m\"\n"),
                crate::config::MAX_TIMEOUT,
            ),
        ],
    );
    assert_values(
        |c| c.travtus.concurrency.get(),
        &[loads(
            "concurrency: the most",
            travtus("concurrency = 256\n"),
            256,
        )],
    );
    assert_values(
        |c| c.travtus.base_url.scheme().to_string(),
        &[
            loads(
                "base_url: https",
                travtus("base_url = \"https://api.example.com\"\n"),
                "https".into(),
            ),
            loads(
                "base_url: localhost",
                travtus("base_url = \"http://localhost:8080\"\n"),
                "http".into(),
            ),
            loads(
                "base_url: 127/8",
                travtus("base_url = \"http://127.0.0.5:1\"\n"),
                "http".into(),
            ),
            loads(
                "base_url: ::1",
                travtus("base_url = \"http://[::1]:9000/x\"\n"),
                "http".into(),
            ),
        ],
    );
}

// --------------------------------------------------------------- problems

#[test]
fn ledger_and_metrics_problems() {
    let mut rows = vec![
        refused(
            "path: empty",
            ledger("path = \"\"\n"),
            &["4:8: path: must not be empty"],
        ),
        refused(
            "retain_text_days: 0",
            ledger("retain_text_days = 0\n"),
            &["4:20: retain_text_days: must be a whole number of days from 1 to 36500 (got 0)"],
        ),
        refused(
            "retain_text_days: a string",
            ledger("retain_text_days = \"30d\"\n"),
            &["4:20: retain_text_days: expected an integer, found a string"],
        ),
        // Every key of [ledger] reports its problem in one run.
        refused(
            "every [ledger] key at once",
            ledger("path = \"\"\nretain_text_days = -1\nretain_polls_days = 0\n"),
            &[
                "4:8: path: must not be empty",
                "5:20: retain_text_days: must be a whole number of days from 1 to 36500 (got -1)",
                "6:21: retain_polls_days: must be a whole number of days from 1 to 36500 (got 0)",
            ],
        ),
        refused(
            "retain_polls_days: 0",
            ledger("retain_polls_days = 0\n"),
            &["4:21: retain_polls_days: must be a whole number of days from 1 to 36500 (got 0)"],
        ),
        refused(
            "metrics listen: not IP:PORT",
            format!("{TRAVTUS}[metrics]\nlisten = \"localhost\"\n"),
            &[
                "4:10: listen: expected IP:PORT such as \"127.0.0.1:9187\" (invalid socket address syntax)",
            ],
        ),
        refused(
            "metrics listen: missing",
            format!("{TRAVTUS}[metrics]\n"),
            &["3:1: missing key `listen` in [metrics]"],
        ),
    ];
    // More than a hundred years: the cutoff would not be a date the ledger stores.
    rows.extend(["36501", "4000000000", "9223372036854775807"].map(|huge| {
        refused(
            format!("retain_text_days: {huge}"),
            ledger(&format!("retain_text_days = {huge}\n")),
            &[&format!(
                "4:20: retain_text_days: must be a whole number of days from 1 to 36500 (got {huge})"
            )],
        )
    }));
    assert_refused(&rows);
}

#[test]
fn structure_problems() {
    assert_refused(&[
        refused("missing [travtus]", "", &["1:1: missing [travtus] section"]),
        refused(
            "unknown keys, with a suggestion",
            r#"[travtus]
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
"#,
            &[
                "3:1: unknown key `timout` in [travtus] (did you mean `timeout`?)",
                "5:1: missing key `schedule` in [[source]]",
                "8:1: unknown key `shedule` in [[source]] (did you mean `schedule`?)",
                "12:3: unknown key `colour` in [[source.location]]",
                "13:2: unknown key `extra` at the top level",
            ],
        ),
        refused(
            "unknown keys in [ledger], [metrics] and a secret table",
            "[travtus]\ntoken = { fil = \"x\" }\n[ledger]\npaht = \"x\"\n[metrics]\nlisten = \"127.0.0.1:1\"\nport = 1\n",
            &[
                "2:9: token: a secret table takes exactly one of `env`, `file` and `credential`",
                "2:11: unknown key `fil` in secret `token` (did you mean `file`?)",
                "4:1: unknown key `paht` in [ledger] (did you mean `path`?)",
                "7:1: unknown key `port` in [metrics]",
            ],
        ),
        refused(
            "wrong type: a string for an integer",
            travtus("concurrency = \"4\"\n"),
            &["3:15: concurrency: expected an integer, found a string"],
        ),
        refused(
            "wrong type: a string for a table",
            "travtus = \"x\"\n",
            &["1:11: travtus: expected a table, found a string"],
        ),
        refused(
            "wrong type: a table for an array of tables",
            format!("{TRAVTUS}[source]\nname = \"a\"\n"),
            &[
                "3:1: source: expected an array (tables in an array are written `[[...]]`), found a table",
            ],
        ),
        refused(
            "TOML syntax: an unquoted string",
            travtus("timeout = 30s\n"),
            &["3:11: string values must be quoted, expected literal string"],
        ),
        refused(
            "TOML syntax: a duplicate key",
            travtus("token = \"u\"\n"),
            &["3:1: duplicate key"],
        ),
    ]);
}

#[test]
fn travtus_problems() {
    let mut rows = vec![
        refused(
            "auth: token and client credentials",
            "[travtus]\nclient_id = \"i\"\nclient_secret = \"s\"\ntoken = \"t\"\n",
            &[
                "4:1: `token` cannot be combined with `client_id`/`client_secret`: use either a static token or OAuth2 client credentials",
            ],
        ),
        refused(
            "auth: neither",
            "[travtus]\ntimeout = \"5s\"\n",
            &[
                "1:1: [travtus] needs either `client_id` + `client_secret` (OAuth2) or `token` (a static bearer token)",
            ],
        ),
        refused(
            "auth: client_id alone",
            "[travtus]\nclient_id = \"i\"\n",
            &["2:1: `client_id` needs `client_secret` in [travtus]"],
        ),
        refused(
            "auth: client_secret alone",
            "[travtus]\nclient_secret = \"s\"\n",
            &["2:1: `client_secret` needs `client_id` in [travtus]"],
        ),
        refused(
            "auth: empty client_id",
            "[travtus]\nclient_id = \"\"\nclient_secret = \"s\"\n",
            &["2:13: client_id: must not be empty"],
        ),
        refused(
            "timeout: zero",
            travtus("timeout = \"0s\"\n"),
            &["3:11: timeout: must be greater than zero"],
        ),
        refused(
            "timeout: not a duration",
            travtus("timeout = \"soon\"\n"),
            &[
                "3:11: timeout: invalid duration \"soon\" (expected number at 0); write e.g. \"30s\" or \"2m\"",
            ],
        ),
        refused(
            "timeout: an integer",
            travtus("timeout = 30\n"),
            &["3:11: timeout: expected a string, found an integer"],
        ),
        refused(
            "base_url: plain http to another host",
            travtus("base_url = \"http://example.com\"\n"),
            &["3:12: base_url: plain http:// is only allowed for loopback hosts (got example.com)"],
        ),
        refused(
            "base_url: another scheme",
            travtus("base_url = \"ftp://example.com\"\n"),
            &[
                "3:12: base_url: scheme \"ftp\" is not allowed (use https://, or http:// for a loopback host)",
            ],
        ),
        refused(
            "base_url: not a URL",
            travtus("base_url = \"api.travtus.com\"\n"),
            &["3:12: base_url: not a valid URL (relative URL without a base)"],
        ),
        refused(
            "token_url: plain http to another host",
            "[travtus]\nclient_id = \"i\"\nclient_secret = \"s\"\ntoken_url = \"http://10.0.0.1/t\"\n",
            &["4:13: token_url: plain http:// is only allowed for loopback hosts (got 10.0.0.1)"],
        ),
    ];
    // Ten minutes at most: a lease is the timeout plus 10 s, and a huge one
    // overflowed `now + lease`.
    rows.extend(
        ["10m 1s", "18446744073709551615s", "300000years"].map(|huge| {
            refused(
                format!("timeout: {huge}"),
                travtus(&format!("timeout = \"{huge}\"\n")),
                &[&format!(
                    "3:11: timeout: \"{huge}\" is too long: at most 10m"
                )],
            )
        }),
    );
    rows.extend(["0", "-1", "257"].map(|bad| {
        refused(
            format!("concurrency: {bad}"),
            travtus(&format!("concurrency = {bad}\n")),
            &[&format!(
                "3:15: concurrency: must be between 1 and 256 (got {bad})"
            )],
        )
    }));
    assert_refused(&rows);
}
