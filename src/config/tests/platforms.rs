//! The keys of Google Places, Yelp, Facebook and Trustpilot sources: their
//! defaults (real hosts, published quotas), coverage notes, language tags,
//! Graph versions, Facebook's per-location tokens, Trustpilot's business
//! login, and location ids that must be one URL path segment.

use super::*;
use crate::platforms::facebook::FacebookConfig;
use crate::platforms::places::PlacesConfig;
use crate::platforms::trustpilot::TrustpilotConfig;
use crate::platforms::yelp::YelpConfig;

/// Trustpilot's business-user token endpoint, the default `token_url`.
const TRUSTPILOT_TOKEN_URL: &str =
    "https://api.trustpilot.com/v1/oauth/oauth-business-users-for-applications/accesstoken";

/// What a source of one of these kinds was given, beyond its budget: its
/// host, and the keys only that kind has, in a few words.
fn settings_of(source: &SourceConfig) -> String {
    let kind = &source.kind;
    if let Some(places) = kind.settings::<PlacesConfig>() {
        format!(
            "places {} api_key={} language_code={:?}",
            places.api_base_url,
            places.api_key.expose(),
            places.language_code
        )
    } else if let Some(yelp) = kind.settings::<YelpConfig>() {
        format!("yelp {} locale={:?}", yelp.api_base_url, yelp.locale)
    } else if let Some(facebook) = kind.settings::<FacebookConfig>() {
        let first = &source.locations[0].id;
        format!(
            "facebook {} graph_version={} location_tokens={} token_for({first})={:?}",
            facebook.api_base_url,
            facebook.graph_version,
            facebook.location_tokens.len(),
            facebook.token_for(first).map(Secret::expose)
        )
    } else if let Some(trustpilot) = kind.settings::<TrustpilotConfig>() {
        format!(
            "trustpilot {} business_login={}",
            trustpilot.api_base_url,
            trustpilot.business_login.is_some()
        )
    } else {
        "another kind".to_string()
    }
}

#[test]
fn new_kinds_default_to_the_real_hosts_and_published_quotas() {
    assert_values(
        |c| (c.sources[0].requests_per_minute, settings_of(&c.sources[0])),
        &[
            loads(
                "google_places",
                platform_source("google_places", "api_key = \"k\"\n", "ChIJ1", ""),
                (None, "places https://places.googleapis.com/ api_key=k language_code=None".into()),
            ),
            loads(
                "yelp",
                platform_source("yelp", "api_key = \"k\"\n", "gary-danko", ""),
                (None, "yelp https://api.yelp.com/ locale=None".into()),
            ),
            loads(
                "facebook",
                platform_source("facebook", "access_token = \"t\"\n", "123", ""),
                (
                    None,
                    "facebook https://graph.facebook.com/ graph_version=v21.0 location_tokens=0 token_for(123)=Some(\"t\")"
                        .into(),
                ),
            ),
            loads(
                "trustpilot",
                platform_source("trustpilot", "api_key = \"k\"\n", "46d6a890000064000500e0c3", ""),
                (None, "trustpilot https://api.trustpilot.com/ business_login=false".into()),
            ),
        ],
    );
}

#[test]
fn coverage_notes_name_what_a_kind_cannot_see() {
    type Says = fn(Option<&str>) -> bool;
    let rows: [(&str, String, Says); 5] = [
        (
            "google_places",
            platform_source("google_places", "api_key = \"k\"\n", "p", ""),
            |n| {
                n.is_some_and(|n| {
                    n.contains("at most 5 reviews") && n.contains("cannot be complete")
                })
            },
        ),
        (
            "yelp",
            platform_source("yelp", "api_key = \"k\"\n", "b", ""),
            |n| n.is_some_and(|n| n.contains("at most 3 review excerpts")),
        ),
        (
            "facebook",
            platform_source("facebook", "access_token = \"t\"\n", "1", ""),
            |n| n.is_some_and(|n| n.starts_with("at risk") && n.contains("v22.0")),
        ),
        (
            "trustpilot",
            platform_source("trustpilot", "api_key = \"k\"\n", "u", ""),
            |n| n.is_none(),
        ),
        ("file", format!("{TRAVTUS}{FILE_SOURCE}"), |n| n.is_none()),
    ];
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|(name, text, says)| {
            let note = ok(text).sources[0].kind.coverage_note();
            (!says(note)).then(|| failure(name, text, &format!("+ {note:?}")))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn platform_values() {
    let places = |code: &str| {
        platform_source(
            "google_places",
            &format!("api_key = \"k\"\nlanguage_code = \"{code}\"\n"),
            "p",
            "",
        )
    };
    let rows: Vec<Loads<String>> = ["en", "en-US", "zh-TW", "es-419"]
        .map(|good| {
            loads(
                format!("language_code {good}"),
                places(good),
                format!("places https://places.googleapis.com/ api_key=k language_code=Some({good:?})"),
            )
        })
        .into_iter()
        .chain(["v21.0", "v19.0", "v2.12"].map(|good| {
            loads(
                format!("graph_version {good}"),
                platform_source(
                    "facebook",
                    &format!("access_token = \"t\"\ngraph_version = \"{good}\"\n"),
                    "1",
                    "",
                ),
                format!(
                    "facebook https://graph.facebook.com/ graph_version={good} location_tokens=0 token_for(1)=Some(\"t\")"
                ),
            )
        }))
        .chain([loads(
            // Per location only: the source needs none.
            "facebook: a token on the location only",
            platform_source("facebook", "", "1", "  access_token = \"own\"\n"),
            "facebook https://graph.facebook.com/ graph_version=v21.0 location_tokens=1 token_for(1)=Some(\"own\")".to_string(),
        )])
        .collect();
    assert_values(|c| settings_of(&c.sources[0]), &rows);

    // Per location only: the source's own token is unset.
    assert_values(
        |c| {
            c.sources[0]
                .kind
                .settings::<FacebookConfig>()
                .map(|f| f.access_token.as_ref().map(|t| t.expose().to_string()))
        },
        &[loads(
            "facebook: no token on the source",
            platform_source("facebook", "", "1", "  access_token = \"own\"\n"),
            Some(None),
        )],
    );
    // Both: the location's wins; a location without one uses the source's.
    assert_values(
        |c| {
            let facebook = c.sources[0].kind.settings::<FacebookConfig>();
            let token = |id: &str| {
                facebook
                    .and_then(|f| f.token_for(&LocationId::new(id)))
                    .map(|t| t.expose().to_string())
            };
            (token("1"), token("2"))
        },
        &[loads(
            "facebook: the location's token wins",
            format!(
                "{}  [[source.location]]\n  id = \"2\"\n  group_id = \"g\"\n",
                platform_source(
                    "facebook",
                    "access_token = \"shared\"\n",
                    "1",
                    "  access_token = \"own\"\n"
                )
            ),
            (Some("own".to_string()), Some("shared".to_string())),
        )],
    );
    assert_values(
        |c| {
            c.sources[0]
                .kind
                .settings::<TrustpilotConfig>()
                .and_then(|t| t.business_login.as_ref())
                .map(|l| {
                    [
                        l.api_secret.expose().to_string(),
                        l.username.expose().to_string(),
                        l.password.expose().to_string(),
                        l.token_url.to_string(),
                    ]
                })
        },
        &[loads(
            "trustpilot: the business login",
            platform_source(
                "trustpilot",
                "api_key = \"k\"\napi_secret = \"s\"\nusername = \"u\"\npassword = \"p\"\n",
                "u1",
                "",
            ),
            Some([
                "s".into(),
                "u".into(),
                "p".into(),
                TRUSTPILOT_TOKEN_URL.into(),
            ]),
        )],
    );
    // A place's resource name is accepted as well as its bare id.
    assert_values(
        |c| c.sources[0].locations.len(),
        &[loads(
            "a place's resource name",
            platform_source("google_places", "api_key = \"k\"\n", "places/ChIJ1", ""),
            1,
        )],
    );
}

#[test]
fn platform_problems() {
    let mut rows = vec![
        refused(
            "yelp: keys of other kinds",
            platform_source(
                "yelp",
                "api_key = \"k\"\nlanguage_code = \"en\"\ngraph_version = \"v21.0\"\n",
                "b",
                "",
            ),
            &[
                "8:1: key `language_code` is not used by kind yelp",
                "9:1: key `graph_version` is not used by kind yelp",
            ],
        ),
        refused(
            "google_places: keys of other kinds",
            platform_source(
                "google_places",
                "api_key = \"k\"\nlocale = \"en_US\"\n",
                "p",
                "",
            ),
            &["8:1: key `locale` is not used by kind google_places"],
        ),
        refused(
            "facebook: keys of other kinds",
            platform_source(
                "facebook",
                "access_token = \"t\"\napi_key = \"k\"\ntoken_url = \"https://x\"\n",
                "1",
                "",
            ),
            &[
                "8:1: key `api_key` is not used by kind facebook",
                "9:1: key `token_url` is not used by kind facebook",
            ],
        ),
        refused(
            "trustpilot: keys of other kinds, on the source and a location",
            platform_source(
                "trustpilot",
                "api_key = \"k\"\naccess_token = \"t\"\n",
                "u",
                "  access_token = \"t\"\n",
            ),
            &[
                "8:1: key `access_token` is not used by kind trustpilot",
                "12:3: key `access_token` is not used by kind trustpilot",
            ],
        ),
        refused(
            "google_business_profile: Trustpilot's keys",
            google_source("api_secret = \"s\"\nusername = \"u\"\n"),
            &[
                "10:1: key `api_secret` is not used by kind google_business_profile",
                "11:1: key `username` is not used by kind google_business_profile",
            ],
        ),
        refused(
            "language_code: not a tag",
            platform_source(
                "google_places",
                "api_key = \"k\"\nlanguage_code = \"english\"\n",
                "p",
                "",
            ),
            &["8:17: language_code: \"english\" is not a language tag such as \"en\" or \"en-US\""],
        ),
        refused(
            "locale: a hyphen",
            platform_source("yelp", "api_key = \"k\"\nlocale = \"en-US\"\n", "b", ""),
            &["8:10: locale: \"en-US\" is not a language tag such as \"en\" or \"en_US\""],
        ),
        // Neither: reported at each such location.
        refused(
            "facebook: a location without a token",
            format!(
                "{}  [[source.location]]\n  id = \"2\"\n  group_id = \"g\"\n",
                platform_source("facebook", "", "1", "  access_token = \"own\"\n")
            ),
            &[
                "11:3: location \"2\" has no access_token: set a Page access token on the location, or `access_token` on the source",
            ],
        ),
        // An unreadable location token is reported where it is written.
        refused(
            "facebook: an unreadable location token",
            platform_source(
                "facebook",
                "access_token = \"t\"\n",
                "1",
                "  access_token = { env = \"NOPE\" }\n",
            ),
            &["11:18: access_token: environment variable NOPE is not set"],
        ),
        refused(
            "trustpilot: part of the business login",
            platform_source(
                "trustpilot",
                "api_key = \"k\"\nusername = \"u\"\n",
                "u1",
                "",
            ),
            &[
                "8:1: `api_secret`, `username` and `password` go together (they log in to the private reviews endpoint); missing `api_secret` and `password`",
            ],
        ),
        refused(
            "trustpilot: token_url without the login",
            platform_source(
                "trustpilot",
                "api_key = \"k\"\ntoken_url = \"https://x.example/token\"\n",
                "u1",
                "",
            ),
            &[
                "8:1: `token_url` is only used with `api_secret`, `username` and `password` (the private reviews endpoint)",
            ],
        ),
        refused(
            "trustpilot: a plain http token_url",
            platform_source(
                "trustpilot",
                "api_key = \"k\"\napi_secret = \"s\"\nusername = \"u\"\npassword = \"p\"\ntoken_url = \"http://x.example/t\"\n",
                "u1",
                "",
            ),
            &["11:13: token_url: plain http:// is only allowed for loopback hosts (got x.example)"],
        ),
    ];
    let graph = |version: &str| {
        platform_source(
            "facebook",
            &format!("access_token = \"t\"\ngraph_version = \"{version}\"\n"),
            "1",
            "",
        )
    };
    rows.extend(["v22.0", "v23.0", "v100.1"].map(|bad| {
        refused(
            format!("graph_version {bad}: too new to read ratings"),
            graph(bad),
            &[&format!(
                "8:17: graph_version: {bad} cannot read Page ratings: from v22.0 on, Graph answers the ratings edge with error 12 (deprecated); pin a version below v22.0, e.g. \"v21.0\""
            )],
        )
    }));
    rows.extend(["21.0", "v21", "latest", "v21.0.1"].map(|bad| {
        refused(
            format!("graph_version {bad}: not a version"),
            graph(bad),
            &[&format!(
                "8:17: graph_version: {bad:?} is not a Graph API version such as \"v21.0\""
            )],
        )
    }));
    let segment = "(one URL path segment: no '/', '?', '#', '%' or spaces)";
    for (kind, extra, what) in [
        (
            "google_places",
            "api_key = \"k\"\n",
            "a Google place id such as \"ChIJN1t_tDeuEmsRUsoyG83frY4\"",
        ),
        ("yelp", "api_key = \"k\"\n", "a Yelp business id or alias"),
        ("facebook", "access_token = \"t\"\n", "a Facebook Page id"),
        (
            "trustpilot",
            "api_key = \"k\"\n",
            "a Trustpilot business unit id",
        ),
    ] {
        rows.extend(["a/b", "a b", "a?b", "a#b"].map(|bad| {
            refused(
                format!("{kind}: location id {bad:?}"),
                platform_source(kind, extra, bad, ""),
                &[&format!("9:8: id: {bad:?} is not {what} {segment}")],
            )
        }));
    }
    assert_refused(&rows);
}
