//! Google Places, Yelp, Facebook and Trustpilot end to end: a config file in
//! a temp dir pointing at the sandbox, `App::open`, `app.sync(..)`, then what
//! Travtus received and what the ledger says. Each platform's quirks are
//! checked in the bodies (Places' rounded ratings and original texts, Yelp's
//! Pacific times and excerpts, Facebook's star-less recommendations and
//! derived ids, Trustpilot's titles and edits), a second pass sends nothing,
//! and the documented platform errors reach the poll report by name.

use crate::helpers::{ledger_dump, ledger_lines, ledger_target, rows_of};
use review_sync::app::{App, SyncReport};
use review_sync::ledger::{ReviewRow, Status, Target};
use sandbox::{ReceivedMessage, Sandbox, SandboxOptions};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

/// A sandbox and a config in a temp dir, with the platform's secrets in
/// files as an operator would keep them.
struct PlatformEnv {
    sb: Sandbox,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    ledger: Target,
}

impl PlatformEnv {
    /// Starts a sandbox with `opts` and writes a config whose sources are
    /// `sources(&sandbox)`; `secrets` are written as files next to it.
    async fn start(
        opts: SandboxOptions,
        secrets: &[(&str, &str)],
        sources: impl Fn(&Sandbox) -> String,
    ) -> PlatformEnv {
        let sb = Sandbox::start(opts).await.expect("sandbox starts");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("travtus_secret"),
            format!("{}\n", sandbox::TRAVTUS_CLIENT_SECRET),
        )
        .expect("write");
        for (name, value) in secrets {
            std::fs::write(dir.path().join(name), format!("{value}\n")).expect("write");
        }
        let config_path = dir.path().join("config.toml");
        let ledger_lines = ledger_lines(dir.path());
        let base = sb.base_url();
        let text = format!(
            r#"[travtus]
base_url = "{base}/travtus"
token_url = "{base}/travtus/oauth2/token"
client_id = "{client_id}"
client_secret = {{ file = "travtus_secret" }}
timeout = "5s"

[ledger]
{ledger_lines}
{sources}"#,
            client_id = sandbox::TRAVTUS_CLIENT_ID,
            sources = sources(&sb),
        );
        std::fs::write(&config_path, text).expect("write config");
        let ledger = ledger_target(dir.path(), &ledger_lines);
        PlatformEnv {
            sb,
            dir,
            config_path,
            ledger,
        }
    }

    async fn app(&self) -> App {
        let config = review_sync::config::load(&self.config_path).expect("valid config");
        App::open(config).await.expect("app opens")
    }

    fn rows(&self) -> Vec<ReviewRow> {
        rows_of(&self.ledger)
    }

    /// Runs the real binary with `--config` and `args`.
    async fn bin(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .current_dir(self.dir.path())
            .kill_on_drop(true)
            .output()
            .await
            .expect("binary runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// `[[source.location]]`s mapping `ids` to `portfolio-1`, `portfolio-2`, ...
fn locations(ids: &[String], extra: impl Fn(&str) -> String) -> String {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                "\n  [[source.location]]\n  id = \"{id}\"\n  group_external_ref = \"portfolio-{}\"\n{}",
                i % 10 + 1,
                extra(id)
            )
        })
        .collect()
}

fn places_source(sb: &Sandbox) -> String {
    format!(
        "[[source]]\nname = \"acme-places\"\nkind = \"google_places\"\nschedule = \"0 0 * * * *\"\napi_key = {{ file = \"places_key\" }}\napi_base_url = \"{}\"\n{}",
        sb.places_base_url(),
        locations(&sb.places().place_ids(), |_| String::new())
    )
}

fn yelp_source(sb: &Sandbox) -> String {
    format!(
        "[[source]]\nname = \"acme-yelp\"\nkind = \"yelp\"\nschedule = \"0 0 * * * *\"\napi_key = {{ file = \"yelp_key\" }}\napi_base_url = \"{}\"\nlocale = \"en_US\"\n{}",
        sb.yelp_base_url(),
        locations(&sb.yelp().business_ids(), |_| String::new())
    )
}

/// Facebook with its real default budget raised (3 a minute would make the
/// test wait) and a Page token per location.
fn facebook_source(sb: &Sandbox) -> String {
    format!(
        "[[source]]\nname = \"acme-facebook\"\nkind = \"facebook\"\nschedule = \"0 0 * * * *\"\nrequests_per_minute = 6000\napi_base_url = \"{}\"\n{}",
        sb.facebook_base_url(),
        locations(&sb.facebook().page_ids(), |id| format!(
            "  access_token = \"{}\"\n",
            sandbox::FacebookEmulator::page_token(id)
        ))
    )
}

fn trustpilot_source(sb: &Sandbox) -> String {
    format!(
        "[[source]]\nname = \"acme-trustpilot\"\nkind = \"trustpilot\"\nschedule = \"0 0 * * * *\"\napi_key = {{ file = \"tp_key\" }}\napi_secret = {{ file = \"tp_secret\" }}\nusername = {{ file = \"tp_user\" }}\npassword = {{ file = \"tp_password\" }}\ntoken_url = \"{}\"\napi_base_url = \"{}\"\n{}",
        sb.trustpilot_token_url(),
        sb.trustpilot_base_url(),
        locations(&sb.trustpilot().business_unit_ids(), |_| String::new())
    )
}

const PLACES_SECRETS: &[(&str, &str)] = &[("places_key", sandbox::PLACES_API_KEY)];
const YELP_SECRETS: &[(&str, &str)] = &[("yelp_key", sandbox::YELP_API_KEY)];
const TRUSTPILOT_SECRETS: &[(&str, &str)] = &[
    ("tp_key", sandbox::TRUSTPILOT_API_KEY),
    ("tp_secret", sandbox::TRUSTPILOT_API_SECRET),
    ("tp_user", sandbox::TRUSTPILOT_USERNAME),
    ("tp_password", sandbox::TRUSTPILOT_PASSWORD),
];

async fn sync(app: &App) -> SyncReport {
    app.sync(&[], WAIT, &CancellationToken::new())
        .await
        .expect("sync")
}

/// What every body must be: one group key, `channel`, and a review without
/// nulls whose times are `YYYY-MM-DDThh:mm:ss`, from `source`.
fn assert_body_shape(m: &ReceivedMessage, source: &str) {
    let review = &m.body["review"];
    let id = review["review_id"].as_str().expect("review_id");
    assert_eq!(review["source"], source, "{id}");
    assert!(m.body["group_external_ref"].is_string(), "{id}");
    assert_eq!(m.body["channel"], "review");
    for (k, v) in review.as_object().expect("object") {
        assert!(!v.is_null(), "{id}: {k} is null");
    }
    for key in ["created_datetime", "updated_datetime"] {
        if let Some(t) = review.get(key) {
            assert_eq!(t.as_str().map(str::len), Some(19), "{id}: {key} {t}");
        }
    }
    if let Some(rating) = review.get("rating") {
        assert!(
            rating.as_u64().is_some_and(|r| (1..=5).contains(&r)),
            "{id}: rating {rating}"
        );
    }
}

fn by_id(messages: &[ReceivedMessage]) -> HashMap<String, &ReceivedMessage> {
    messages
        .iter()
        .map(|m| {
            (
                m.body["review"]["review_id"]
                    .as_str()
                    .expect("id")
                    .to_owned(),
                m,
            )
        })
        .collect()
}

fn travtus_time(rfc3339: &str) -> String {
    review_sync::timestamps::parse_rfc3339(rfc3339)
        .map(review_sync::timestamps::travtus_format)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
}

/// A second pass over unchanged platforms delivers nothing.
async fn assert_quiet_second_pass(env: &PlatformEnv, app: &App) {
    let before = env.sb.travtus().message_count();
    let report = sync(app).await;
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(report.delivered, 0, "{report:?}");
    assert_eq!(env.sb.travtus().message_count(), before);
    let totals: u64 = report
        .sources
        .iter()
        .map(|s| s.totals().new + s.totals().edited)
        .sum();
    assert_eq!(totals, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_places_reviews_arrive_as_google_reviews_with_rounded_ratings_and_original_text() {
    let env = PlatformEnv::start(SandboxOptions::default(), PLACES_SECRETS, places_source).await;
    let app = env.app().await;
    let report = sync(&app).await;
    assert!(report.all_delivered(), "{report:?}");

    let messages = env.sb.travtus().messages();
    let places = env.sb.places().place_ids();
    let served: Vec<Value> = places
        .iter()
        .flat_map(|p| env.sb.places().served_reviews(p))
        .collect();
    assert_eq!(
        served.len(),
        5 * places.len(),
        "five per place, though more exist"
    );
    assert_eq!(messages.len(), served.len());
    let received = by_id(&messages);
    for wire in &served {
        let id = wire["name"].as_str().expect("name");
        let m = received[id];
        assert_body_shape(m, "google");
        let review = &m.body["review"];
        assert_eq!(review["comment"], wire["originalText"]["text"], "{id}");
        let stars = wire["rating"].as_f64().expect("rating").round() as u64;
        assert_eq!(review["rating"], stars, "{id}");
        assert_eq!(
            review["display_name"],
            wire["authorAttribution"]["displayName"]
        );
        assert_eq!(
            review["created_datetime"],
            travtus_time(wire["publishTime"].as_str().expect("time"))
        );
        for absent in ["title", "updated_datetime", "is_anonymous"] {
            assert!(review.get(absent).is_none(), "{id}: {absent}");
        }
    }
    // The translation was never sent where an original exists.
    assert!(
        served
            .iter()
            .any(|w| w["text"]["text"] != w["originalText"]["text"])
    );
    let rows = env.rows();
    assert!(
        rows.iter()
            .all(|r| r.platform == "google" && r.status == Status::Delivered)
    );
    assert!(rows.iter().all(|r| r.source_name == "acme-places"));

    assert_quiet_second_pass(&env, &app).await;
    assert_eq!(env.sb.places().requests_total(), 2 * places.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yelp_excerpts_arrive_with_utc_times_and_are_flagged_in_the_ledger() {
    let env = PlatformEnv::start(SandboxOptions::default(), YELP_SECRETS, yelp_source).await;
    let app = env.app().await;
    let report = sync(&app).await;
    assert!(report.all_delivered(), "{report:?}");

    let messages = env.sb.travtus().messages();
    let businesses = env.sb.yelp().business_ids();
    let served: Vec<Value> = businesses
        .iter()
        .flat_map(|b| env.sb.yelp().served_reviews(b))
        .collect();
    assert_eq!(served.len(), 3 * businesses.len(), "three per business");
    assert_eq!(messages.len(), served.len());
    let received = by_id(&messages);
    let mut offsets = BTreeSet::new();
    for wire in &served {
        let id = wire["id"].as_str().expect("id");
        let m = received[id];
        assert_body_shape(m, "yelp");
        let review = &m.body["review"];
        assert_eq!(
            review["comment"], wire["text"],
            "{id}: the excerpt as served"
        );
        assert_eq!(review["rating"], wire["rating"]);
        assert_eq!(review["display_name"], wire["user"]["name"]);
        // The Pacific wall-clock time, converted with its own offset.
        let instant = env.sb.yelp().created_at(id).expect("seeded");
        assert_eq!(
            review["created_datetime"],
            review_sync::timestamps::travtus_format(instant)
        );
        let wall = chrono::NaiveDateTime::parse_from_str(
            wire["time_created"].as_str().expect("time"),
            "%Y-%m-%d %H:%M:%S",
        )
        .expect("wall clock");
        offsets.insert((wall - instant.naive_utc()).num_hours());
        for absent in ["title", "updated_datetime", "is_anonymous"] {
            assert!(review.get(absent).is_none(), "{id}: {absent}");
        }
    }
    assert_eq!(
        offsets,
        BTreeSet::from([-8, -7]),
        "both PST and PDT were converted"
    );
    assert!(messages.iter().any(|m| {
        m.body["review"]["comment"]
            .as_str()
            .is_some_and(|c| c.ends_with("..."))
    }));
    for row in env.rows() {
        assert_eq!(row.platform, "yelp");
        let notes: Value =
            serde_json::from_str(row.notes.as_deref().expect("notes")).expect("notes json");
        assert_eq!(notes["excerpt"], "true", "{}", row.review_id);
    }

    assert_quiet_second_pass(&env, &app).await;
    assert_eq!(env.sb.yelp().requests_total(), 2 * businesses.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facebook_recommendations_arrive_without_invented_stars_and_legacy_ratings_with_theirs() {
    let env = PlatformEnv::start(SandboxOptions::default(), &[], facebook_source).await;
    let app = env.app().await;
    let report = sync(&app).await;
    assert!(report.all_delivered(), "{report:?}");
    assert!(
        report.sources[0].locations.iter().all(|l| l.pages >= 2),
        "several pages per Page: {report:?}"
    );

    let messages = env.sb.travtus().messages();
    let pages = env.sb.facebook().page_ids();
    let ratings: Vec<Value> = pages
        .iter()
        .flat_map(|p| env.sb.facebook().ratings(p))
        .collect();
    assert_eq!(messages.len(), ratings.len());
    for m in &messages {
        assert_body_shape(m, "facebook");
        for absent in ["title", "updated_datetime", "is_anonymous"] {
            assert!(m.body["review"].get(absent).is_none(), "{absent}");
        }
    }
    let received = by_id(&messages);
    let mut legacy_wanted = BTreeSet::new();
    for wire in &ratings {
        let created = wire["created_time"]
            .as_str()
            .expect("time")
            .replace("+0000", "Z");
        match wire["open_graph_story"]["id"].as_str() {
            Some(story) => {
                let review = &received[story].body["review"];
                assert!(review.get("rating").is_none(), "{story}: no invented stars");
                assert_eq!(review["created_datetime"], travtus_time(&created));
                assert_eq!(review.get("comment"), wire.get("review_text"), "{story}");
                assert_eq!(
                    review.get("display_name"),
                    wire.get("reviewer").map(|r| &r["name"]),
                    "{story}"
                );
            }
            None => {
                legacy_wanted.insert((
                    travtus_time(&created),
                    wire["rating"].as_u64().expect("legacy stars"),
                ));
            }
        }
    }
    let legacy_got: BTreeSet<(String, u64)> = messages
        .iter()
        .map(|m| &m.body["review"])
        .filter(|r| {
            r["review_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("fb-"))
        })
        .map(|r| {
            (
                r["created_datetime"].as_str().expect("time").to_owned(),
                r["rating"]
                    .as_u64()
                    .expect("legacy ratings keep their stars"),
            )
        })
        .collect();
    assert!(!legacy_wanted.is_empty());
    assert_eq!(legacy_got, legacy_wanted);

    // The ledger keeps the recommendation type the body cannot carry.
    let rows = env.rows();
    let typed = rows
        .iter()
        .filter(|r| {
            r.notes
                .as_deref()
                .is_some_and(|n| n.contains("\"recommendation_type\""))
        })
        .count();
    assert_eq!(typed, ratings.len() - legacy_wanted.len());

    // Derived ids are stable: the next pass sends nothing.
    assert_quiet_second_pass(&env, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trustpilot_reviews_arrive_with_titles_and_an_edit_is_sent_again() {
    let env = PlatformEnv::start(
        SandboxOptions::default(),
        TRUSTPILOT_SECRETS,
        trustpilot_source,
    )
    .await;
    let app = env.app().await;
    let report = sync(&app).await;
    assert!(report.all_delivered(), "{report:?}");

    let messages = env.sb.travtus().messages();
    let units = env.sb.trustpilot().business_unit_ids();
    let reviews: Vec<Value> = units
        .iter()
        .flat_map(|u| env.sb.trustpilot().reviews(u))
        .collect();
    assert_eq!(messages.len(), reviews.len());
    assert!(reviews.len() > 200, "several pages per unit");
    let received = by_id(&messages);
    for wire in &reviews {
        let id = wire["id"].as_str().expect("id");
        let m = received[id];
        assert_body_shape(m, "trustpilot");
        let review = &m.body["review"];
        assert_eq!(review["title"], wire["title"], "{id}");
        assert_eq!(review["comment"], wire["text"], "{id}");
        assert_eq!(review["rating"], wire["stars"], "{id}");
        assert_eq!(review["display_name"], wire["consumer"]["displayName"]);
        assert_eq!(
            review["created_datetime"],
            travtus_time(wire["createdAt"].as_str().expect("created"))
        );
        match wire["updatedAt"].as_str() {
            Some(updated) => assert_eq!(review["updated_datetime"], travtus_time(updated)),
            None => assert!(review.get("updated_datetime").is_none(), "{id}"),
        }
        assert!(review.get("is_anonymous").is_none());
    }
    assert_eq!(
        env.sb.trustpilot().password_grants(),
        1,
        "one login for everything"
    );

    assert_quiet_second_pass(&env, &app).await;

    // An edit of a recent review is sent again, and only it.
    let recent = env.sb.trustpilot().reviews(&units[0])[2]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(
        env.sb
            .trustpilot()
            .edit_review(&recent, None, Some("Fixed now.".into()), Some(5))
    );
    let before = env.sb.travtus().message_count();
    let report = sync(&app).await;
    assert!(report.all_delivered(), "{report:?}");
    let after = env.sb.travtus().messages();
    assert_eq!(after.len(), before + 1);
    let edit = &after[before].body["review"];
    assert_eq!(edit["review_id"], recent.as_str());
    assert_eq!(edit["comment"], "Fixed now.");
    assert!(edit["updated_datetime"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facebook_error_12_and_283_are_named_in_the_poll_report() {
    let env = PlatformEnv::start(SandboxOptions::default(), &[], facebook_source).await;
    let pages = env.sb.facebook().page_ids();
    env.sb.facebook().revoke_permission(&pages[1], true);
    let app = env.app().await;
    let report = sync(&app).await;
    assert!(!report.all_delivered());
    let error_of = |report: &SyncReport, page: &str| {
        report.sources[0]
            .locations
            .iter()
            .find(|l| l.location_id == page)
            .and_then(|l| l.error.clone())
    };
    assert_eq!(error_of(&report, &pages[0]), None, "the other Page goes on");
    let error = error_of(&report, &pages[1]).expect("283");
    assert!(
        error.contains("pages_read_user_content") && error.contains("error 283"),
        "{error}"
    );

    env.sb.facebook().revoke_permission(&pages[1], false);
    env.sb.facebook().deprecate_ratings_edge(true);
    let report = sync(&app).await;
    for page in &pages {
        let error = error_of(&report, page).expect("12");
        assert!(error.starts_with("no longer served: "), "{error}");
        assert!(
            error.contains("error 12") && error.contains("pin graph_version below v22.0"),
            "{error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yelp_daily_limit_is_named_in_the_poll_report_with_its_reset_time() {
    let env = PlatformEnv::start(SandboxOptions::default(), YELP_SECRETS, yelp_source).await;
    env.sb.yelp().set_daily_limit(300, 1);
    let app = env.app().await;
    let report = sync(&app).await;
    let errors: Vec<String> = report.sources[0]
        .locations
        .iter()
        .filter_map(|l| l.error.clone())
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one business read, then the limit: {report:?}"
    );
    assert!(errors[0].starts_with("quota exhausted: "), "{}", errors[0]);
    assert!(errors[0].contains("ACCESS_LIMIT_REACHED"), "{}", errors[0]);
    assert!(errors[0].contains("it resets at "), "{}", errors[0]);
    assert_eq!(
        env.sb.yelp().requests_total(),
        2,
        "the refused call is not retried"
    );
    assert_eq!(
        env.sb.travtus().message_count(),
        3,
        "the first business's reviews went out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_stats_show_and_export_cover_every_new_kind() {
    let secrets: Vec<(&str, &str)> = [PLACES_SECRETS, YELP_SECRETS, TRUSTPILOT_SECRETS].concat();
    let env = PlatformEnv::start(SandboxOptions::default(), &secrets, |sb| {
        format!(
            "{}\n{}\n{}\n{}",
            places_source(sb),
            yelp_source(sb),
            facebook_source(sb),
            trustpilot_source(sb)
        )
    })
    .await;

    let (ok, out, err) = env.bin(&["check", "--online"]).await;
    assert!(ok, "{out}\n{err}");
    for source in [
        "acme-places",
        "acme-yelp",
        "acme-facebook",
        "acme-trustpilot",
    ] {
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with(source)).collect();
        assert_eq!(lines.len(), 2, "{source}: one line per location\n{out}");
        assert!(lines.iter().all(|l| l.contains(": ok: ")), "{out}");
    }

    let (ok, out, err) = env.bin(&["sync"]).await;
    assert!(ok, "{out}\n{err}");

    let (ok, stats, err) = env.bin(&["ledger", "stats"]).await;
    assert!(ok, "{err}");
    assert!(stats.contains("coverage"), "{stats}");
    let coverage = |source: &str| {
        stats
            .lines()
            .find(|l| l.starts_with(source) && !l.contains("delivered"))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert!(
        coverage("acme-places").contains("at most 5 reviews per place"),
        "{stats}"
    );
    assert!(
        coverage("acme-yelp").contains("at most 3 review excerpts"),
        "{stats}"
    );
    assert!(coverage("acme-facebook").contains("at risk"), "{stats}");
    assert!(
        coverage("acme-trustpilot").contains("every review"),
        "{stats}"
    );

    let yelp_row = env
        .rows()
        .into_iter()
        .find(|r| r.platform == "yelp")
        .expect("a yelp row");
    let (ok, show, err) = env
        .bin(&["ledger", "show", "yelp", &yelp_row.review_id])
        .await;
    assert!(ok, "{err}");
    assert!(
        show.lines()
            .any(|l| l.starts_with("notes") && l.contains(r#"{"excerpt":"true"}"#)),
        "{show}"
    );

    let (ok, export, err) = env.bin(&["ledger", "export", "--format", "jsonl"]).await;
    assert!(ok, "{err}");
    let exported: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    assert!(exported.iter().all(|r| r.get("notes").is_some()));
    assert!(exported.iter().any(|r| {
        r["notes"]
            .as_str()
            .is_some_and(|n| n.contains("recommendation_type"))
    }));
    let (ok, csv, err) = env.bin(&["ledger", "export", "--format", "csv"]).await;
    assert!(ok, "{err}");
    assert!(
        csv.lines().next().is_some_and(|h| h.contains(",notes")),
        "{csv}"
    );

    // No platform secret reaches the output or the ledger.
    let ledger_bytes = ledger_dump(&env.ledger);
    for secret in [
        sandbox::PLACES_API_KEY,
        sandbox::YELP_API_KEY,
        sandbox::TRUSTPILOT_API_SECRET,
        sandbox::TRUSTPILOT_PASSWORD,
        "EAAsandbox",
        "tp_sandbox_",
    ] {
        for text in [&stats, &show, &export, &csv] {
            assert!(!text.contains(secret), "output contains {secret}");
        }
        assert!(!ledger_bytes.contains(secret), "ledger contains {secret}");
    }
}
