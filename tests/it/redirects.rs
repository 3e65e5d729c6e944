//! Issue 10, items 1 to 3 (and "OAuth `invalid_client` reported as needs
//! new consent" of item 11), through the real binary against hostile
//! sandbox endpoints:
//! - every endpoint the daemon calls (Travtus messages and token, Google
//!   token, reviews list and Business Information, Places, Yelp, Facebook,
//!   Trustpilot with its API key and with its OAuth token) answering 301,
//!   302, 303, 307 and 308 to another origin: nothing at all reaches that
//!   origin (so no credential and no POST body), no review is `delivered`,
//!   the failure is named, the poll reports the location failed, and the
//!   exit status is non-zero, for `sync` and `check --online`;
//! - a redirect within the same origin is followed for a GET (credentials
//!   in headers and in the query included), at most 3 times, and never for
//!   a POST;
//! - a `/messages/` 2xx without a string `request_id` (empty, HTML,
//!   `{"ok":true}`, `{"error":..}`, 204, a number, an empty string, null)
//!   keeps the review `pending` with the anomaly named (never the body) and
//!   is counted in `review_sync_delivery_errors_total`;
//! - a token endpoint refusing the client (`invalid_client`) is reported as
//!   a client id/secret problem, not as "needs new consent".

use crate::helpers::{ledger_created, ledger_lines, ledger_target, rows_of, with_ledger};
use review_sync::ledger::{AttemptRow, ReviewRow, Status, Target};
use sandbox::{
    Endpoint, FacebookSeed, Fault, GoogleSeed, PlacesSeed, Sandbox, SandboxOptions, TrustpilotSeed,
    YelpSeed,
};
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// Every redirect status a server can send a client on with a `Location`.
const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];

/// Enough faults for every request of a run (retries, several locations).
const ALWAYS: u32 = 1000;

const WAIT: Duration = Duration::from_secs(60);

/// Why a redirected POST is refused, as the operator reads it.
const WHY_POST: &str = "a POST is never redirected (its body goes only where it was sent)";
/// Why a redirected token request is refused.
const WHY_TOKEN: &str =
    "a token request is never redirected (its credentials go only to the token_url)";

/// Every secret of every platform, as written in the config's files.
fn secrets(sb: &Sandbox) -> Vec<String> {
    let mut all: Vec<String> = [
        sandbox::TRAVTUS_CLIENT_SECRET,
        sandbox::GOOGLE_CLIENT_SECRET,
        sandbox::GOOGLE_REFRESH_TOKEN,
        sandbox::PLACES_API_KEY,
        sandbox::YELP_API_KEY,
        sandbox::TRUSTPILOT_API_KEY,
        sandbox::TRUSTPILOT_API_SECRET,
        sandbox::TRUSTPILOT_USERNAME,
        sandbox::TRUSTPILOT_PASSWORD,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    all.extend(
        sb.facebook()
            .page_ids()
            .iter()
            .map(|p| sandbox::FacebookEmulator::page_token(p)),
    );
    all
}

/// A sandbox with a little data per platform, and a config in a temp dir
/// whose secrets are files, as an operator keeps them.
struct Env {
    sb: Sandbox,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    ledger: Target,
}

impl Env {
    /// `sources(&sandbox)` gives the `[[source]]` tables; `travtus_extra`
    /// more `[travtus]` lines.
    async fn start(sources: impl Fn(&Sandbox) -> String) -> Env {
        let sb = Sandbox::start(SandboxOptions {
            google: GoogleSeed {
                accounts: 1,
                locations_per_account: 2,
                reviews_per_location: 2,
            },
            places: PlacesSeed {
                places: 1,
                reviews_per_place: 2,
            },
            yelp: YelpSeed {
                businesses: 1,
                reviews_per_business: 2,
            },
            facebook: FacebookSeed {
                pages: 1,
                recommendations_per_page: 2,
                legacy_ratings_per_page: 1,
                page_size: 25,
            },
            trustpilot: TrustpilotSeed {
                business_units: 1,
                reviews_per_unit: 3,
            },
            ..SandboxOptions::default()
        })
        .await
        .expect("sandbox starts");
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, value) in [
            ("travtus_secret", sandbox::TRAVTUS_CLIENT_SECRET),
            ("google_secret", sandbox::GOOGLE_CLIENT_SECRET),
            ("google_refresh", sandbox::GOOGLE_REFRESH_TOKEN),
            ("places_key", sandbox::PLACES_API_KEY),
            ("yelp_key", sandbox::YELP_API_KEY),
            ("tp_key", sandbox::TRUSTPILOT_API_KEY),
            ("tp_secret", sandbox::TRUSTPILOT_API_SECRET),
            ("tp_user", sandbox::TRUSTPILOT_USERNAME),
            ("tp_password", sandbox::TRUSTPILOT_PASSWORD),
        ] {
            std::fs::write(dir.path().join(name), format!("{value}\n")).expect("write secret");
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
        Env {
            ledger: ledger_target(dir.path(), &ledger_lines),
            sb,
            dir,
            config_path,
        }
    }

    async fn bin(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
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
            .expect("binary runs")
    }

    /// `sync --wait 5s`: one pass, and the retries that fall due within 5 s.
    async fn sync(&self) -> (bool, String) {
        let out = self.bin(&["sync", "--wait", "5s"]).await;
        (out.status.success(), output_text(&out))
    }

    fn rows(&self) -> Vec<ReviewRow> {
        if !ledger_created(&self.ledger) {
            return Vec::new();
        }
        rows_of(&self.ledger)
    }

    fn attempts(&self, row: &ReviewRow) -> Vec<AttemptRow> {
        with_ledger(&self.ledger, |ledger| {
            ledger
                .show(&row.platform, &row.review_id)
                .expect("show")
                .expect("the row exists")
                .1
        })
    }

    /// Pushes a redirect to the other origin on `endpoint`, for every request.
    fn redirect_elsewhere(&self, endpoint: Endpoint, status: u16) {
        self.sb.faults().push(
            endpoint,
            Fault::Redirect {
                status,
                to: Some(self.sb.elsewhere().base_url()),
            },
            ALWAYS,
        );
    }

    /// Asserts that the other origin received nothing at all, naming any
    /// secret that reached it.
    fn assert_nothing_elsewhere(&self, what: &str) {
        let seen = self.sb.elsewhere().requests();
        if seen.is_empty() {
            return;
        }
        let texts: Vec<String> = seen.iter().map(sandbox::RecordedRequest::text).collect();
        let leaked: Vec<String> = secrets(&self.sb)
            .into_iter()
            .filter(|s| texts.iter().any(|t| t.contains(s.as_str())))
            .collect();
        let bodies = seen.iter().filter(|r| !r.body.is_empty()).count();
        panic!(
            "{what}: {} request(s) reached the other origin ({} with a body; secrets among them: {leaked:?}):\n{}",
            seen.len(),
            bodies,
            texts.join("\n---\n")
        );
    }
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `[[source.location]]`s for `ids`, mapped to `portfolio-1`, with `extra`
/// lines each.
fn locations(ids: &[String], extra: impl Fn(&str) -> String) -> String {
    ids.iter()
        .map(|id| {
            format!(
                "\n  [[source.location]]\n  id = \"{id}\"\n  group_external_ref = \"portfolio-1\"\n{}",
                extra(id)
            )
        })
        .collect()
}

fn google_source(sb: &Sandbox) -> String {
    format!(
        "[[source]]\nname = \"acme-google\"\nkind = \"google_business_profile\"\nschedule = \"0 0 * * * *\"\nrequests_per_minute = 60000\nclient_id = \"{}\"\nclient_secret = {{ file = \"google_secret\" }}\nrefresh_token = {{ file = \"google_refresh\" }}\napi_base_url = \"{}\"\ntoken_url = \"{}\"\n{}",
        sandbox::GOOGLE_CLIENT_ID,
        sb.google_base_url(),
        sb.google_token_url(),
        locations(&sb.google().locations(), |_| String::new())
    )
}

/// Google with discovery of its one account, through Business Information.
fn google_discovery_source(sb: &Sandbox) -> String {
    format!(
        "[[source]]\nname = \"acme-google\"\nkind = \"google_business_profile\"\nschedule = \"0 0 * * * *\"\nrequests_per_minute = 60000\nclient_id = \"{}\"\nclient_secret = {{ file = \"google_secret\" }}\nrefresh_token = {{ file = \"google_refresh\" }}\napi_base_url = \"{}\"\ntoken_url = \"{}\"\ndiscover_accounts = [\"accounts/1000\"]\ngroup_external_ref_from = \"store_code\"\nbusiness_information_base_url = \"{}\"\n",
        sandbox::GOOGLE_CLIENT_ID,
        sb.google_base_url(),
        sb.google_token_url(),
        sb.google_business_info_base_url(),
    )
}

fn places_source(sb: &Sandbox) -> String {
    format!(
        "[[source]]\nname = \"acme-places\"\nkind = \"google_places\"\nschedule = \"0 0 * * * *\"\nrequests_per_minute = 60000\napi_key = {{ file = \"places_key\" }}\napi_base_url = \"{}\"\n{}",
        sb.places_base_url(),
        locations(&sb.places().place_ids(), |_| String::new())
    )
}

fn yelp_source(sb: &Sandbox) -> String {
    format!(
        "[[source]]\nname = \"acme-yelp\"\nkind = \"yelp\"\nschedule = \"0 0 * * * *\"\nrequests_per_minute = 60000\napi_key = {{ file = \"yelp_key\" }}\napi_base_url = \"{}\"\n{}",
        sb.yelp_base_url(),
        locations(&sb.yelp().business_ids(), |_| String::new())
    )
}

/// Facebook sends its Page token in the query (`access_token=`).
fn facebook_source(sb: &Sandbox) -> String {
    format!(
        "[[source]]\nname = \"acme-facebook\"\nkind = \"facebook\"\nschedule = \"0 0 * * * *\"\nrequests_per_minute = 60000\napi_base_url = \"{}\"\n{}",
        sb.facebook_base_url(),
        locations(&sb.facebook().page_ids(), |id| format!(
            "  access_token = \"{}\"\n",
            sandbox::FacebookEmulator::page_token(id)
        ))
    )
}

/// Trustpilot's public endpoint: the API key in an `apikey` header.
fn trustpilot_public_source(sb: &Sandbox) -> String {
    format!(
        "[[source]]\nname = \"acme-trustpilot\"\nkind = \"trustpilot\"\nschedule = \"0 0 * * * *\"\nrequests_per_minute = 60000\napi_key = {{ file = \"tp_key\" }}\napi_base_url = \"{}\"\n{}",
        sb.trustpilot_base_url(),
        locations(&sb.trustpilot().business_unit_ids(), |_| String::new())
    )
}

/// Trustpilot's private endpoint: a business-user token (password grant
/// with the API key and secret as HTTP Basic).
fn trustpilot_private_source(sb: &Sandbox) -> String {
    format!(
        "[[source]]\nname = \"acme-trustpilot\"\nkind = \"trustpilot\"\nschedule = \"0 0 * * * *\"\nrequests_per_minute = 60000\napi_key = {{ file = \"tp_key\" }}\napi_secret = {{ file = \"tp_secret\" }}\nusername = {{ file = \"tp_user\" }}\npassword = {{ file = \"tp_password\" }}\ntoken_url = \"{}\"\napi_base_url = \"{}\"\n{}",
        sb.trustpilot_token_url(),
        sb.trustpilot_base_url(),
        locations(&sb.trustpilot().business_unit_ids(), |_| String::new())
    )
}

/// A platform endpoint answering every redirect status to another origin:
/// for `sync` and `check --online`, nothing reaches that origin, nothing is
/// recorded, the location (or the account's discovery) is reported failed
/// with the redirect named, and the exit status is non-zero.
async fn platform_redirects_are_refused(endpoint: Endpoint, source: fn(&Sandbox) -> String) {
    for status in REDIRECTS {
        let env = Env::start(source).await;
        env.redirect_elsewhere(endpoint, status);
        let elsewhere = env.sb.elsewhere().base_url();
        let named = format!("HTTP {status} redirect to {elsewhere} refused");

        let (ok, out) = env.sync().await;
        env.assert_nothing_elsewhere(&format!("{endpoint:?} {status} sync"));
        assert!(!ok, "{endpoint:?} {status}: sync must fail:\n{out}");
        assert!(
            env.sb.faults().injected_for(endpoint) >= 1,
            "{endpoint:?} {status}: the redirect was never asked for:\n{out}"
        );
        assert!(out.contains(&named), "{endpoint:?} {status}:\n{out}");
        let failed_line = if endpoint == Endpoint::GoogleBusinessInfo {
            "discovery failed: HTTP"
        } else {
            // The summary's per-location line: "  SOURCE LOCATION: HTTP 3xx redirect ..."
            ": HTTP"
        };
        assert!(
            out.lines()
                .any(|l| l.starts_with("  acme-") && l.contains(failed_line) && l.contains(&named)),
            "{endpoint:?} {status}: the failure is reported per location:\n{out}"
        );
        assert!(
            env.rows().iter().all(|r| r.status != Status::Delivered),
            "{endpoint:?} {status}: nothing delivered"
        );

        let out = env.bin(&["check", "--online"]).await;
        let text = output_text(&out);
        env.assert_nothing_elsewhere(&format!("{endpoint:?} {status} check --online"));
        assert!(!out.status.success(), "{endpoint:?} {status}:\n{text}");
        assert!(
            text.contains("FAILED") && text.contains(&named),
            "{endpoint:?} {status}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_token_redirects_never_carry_the_client_secret_or_refresh_token() {
    platform_redirects_are_refused(Endpoint::GoogleToken, google_source).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_list_redirects_never_carry_the_bearer_token() {
    platform_redirects_are_refused(Endpoint::GoogleList, google_source).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_business_information_redirects_are_refused() {
    platform_redirects_are_refused(Endpoint::GoogleBusinessInfo, google_discovery_source).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_redirects_never_carry_the_api_key_header() {
    platform_redirects_are_refused(Endpoint::PlacesDetails, places_source).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yelp_redirects_never_carry_the_api_key() {
    platform_redirects_are_refused(Endpoint::YelpReviews, yelp_source).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facebook_redirects_never_carry_the_page_token_in_the_query() {
    platform_redirects_are_refused(Endpoint::FacebookRatings, facebook_source).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trustpilot_redirects_never_carry_the_apikey_header() {
    platform_redirects_are_refused(Endpoint::TrustpilotReviews, trustpilot_public_source).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trustpilot_private_redirects_never_carry_the_business_token() {
    platform_redirects_are_refused(Endpoint::TrustpilotReviews, trustpilot_private_source).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trustpilot_token_redirects_never_carry_the_password_or_api_secret() {
    platform_redirects_are_refused(Endpoint::TrustpilotToken, trustpilot_private_source).await;
}

/// Issue 10 item 1: a redirected `POST /messages/` was followed (301/302/303
/// as a body-less GET, 307/308 with the body) and the review recorded
/// `delivered` with the other origin's `request_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirected_post_is_never_followed_nor_delivered() {
    for status in REDIRECTS {
        let env = Env::start(google_source).await;
        env.redirect_elsewhere(Endpoint::TravtusMessages, status);
        let elsewhere = env.sb.elsewhere().base_url();

        let (ok, out) = env.sync().await;
        env.assert_nothing_elsewhere(&format!("messages {status}"));
        assert!(!ok, "{status}: sync must fail:\n{out}");
        assert_eq!(env.sb.travtus().message_count(), 0);
        let rows = env.rows();
        assert_eq!(rows.len(), 4, "{out}");
        for row in &rows {
            assert_eq!(row.status, Status::Pending, "{status}: {row:?}");
            assert_eq!(row.request_id, None);
            assert!(
                row.next_attempt_at.is_some_and(|at| at > row.first_seen_at),
                "{status}: retried later, with backoff: {row:?}"
            );
            assert_eq!(
                row.last_error.as_deref(),
                Some(
                    format!("redirect: HTTP {status} redirect to {elsewhere} refused: {WHY_POST}")
                        .as_str()
                ),
                "{status}"
            );
            // One attempt, or more when a retry fell due within the wait:
            // each of them refused, none followed.
            let attempts = env.attempts(row);
            assert!(!attempts.is_empty(), "{attempts:?}");
            for attempt in &attempts {
                assert_eq!(attempt.http_status, Some(status));
                assert_eq!(attempt.error_type.as_deref(), Some("redirect"));
                assert_eq!(attempt.outcome, "retry");
            }
        }
    }
}

/// A redirect to the very same URL is not followed for a POST either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_origin_redirect_of_a_post_is_not_followed_either() {
    let env = Env::start(google_source).await;
    env.sb.faults().push(
        Endpoint::TravtusMessages,
        Fault::Redirect {
            status: 307,
            to: None,
        },
        ALWAYS,
    );
    let (ok, out) = env.sync().await;
    assert!(!ok, "{out}");
    assert_eq!(env.sb.travtus().message_count(), 0);
    let attempts: u64 = env
        .rows()
        .iter()
        .map(|row| env.attempts(row).len() as u64)
        .sum();
    assert!(attempts >= 4, "every review was tried: {attempts} attempts");
    assert_eq!(
        env.sb.travtus().message_requests(),
        attempts,
        "one POST per attempt, none repeated at the Location"
    );
    for row in env.rows() {
        assert_eq!(row.status, Status::Pending);
        let error = row.last_error.unwrap_or_default();
        assert!(
            error.starts_with("redirect: HTTP 307 redirect to http://127.0.0.1:"),
            "{error}"
        );
    }
}

/// Issue 10 item 3: a Travtus `token_url` answering 307 received the
/// `client_secret`; 301/302/303 sent the client to fetch a token there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn travtus_token_redirects_never_carry_the_client_secret() {
    for status in REDIRECTS {
        let env = Env::start(google_source).await;
        env.redirect_elsewhere(Endpoint::TravtusToken, status);
        let elsewhere = env.sb.elsewhere().base_url();
        let named = format!("HTTP {status} redirect to {elsewhere} refused");

        let (ok, out) = env.sync().await;
        env.assert_nothing_elsewhere(&format!("travtus token {status}"));
        assert!(!ok, "{status}:\n{out}");
        assert_eq!(env.sb.travtus().message_requests(), 0, "no token, no POST");
        let rows = env.rows();
        assert_eq!(rows.len(), 4, "{out}");
        for row in &rows {
            assert_eq!(row.status, Status::Pending);
            let error = row.last_error.clone().unwrap_or_default();
            assert!(
                error.starts_with("redirect: token endpoint answered with a redirect: ")
                    && error.contains(&named)
                    && error.contains(WHY_TOKEN),
                "{status}: {error}"
            );
            assert!(!error.contains("consent"), "{error}");
        }

        let out = env.bin(&["check", "--online"]).await;
        let text = output_text(&out);
        env.assert_nothing_elsewhere(&format!("travtus token {status} check --online"));
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains("travtus: token FAILED") && text.contains(&named),
            "{text}"
        );
    }
}

/// A GET redirected within its own origin is followed with its credentials
/// (headers, and Facebook's token in the query the `Location` keeps), for
/// every redirect status and every platform.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_origin_get_redirects_are_followed_with_their_credentials() {
    let all = |sb: &Sandbox| {
        [
            google_discovery_source(sb),
            places_source(sb),
            yelp_source(sb),
            facebook_source(sb),
            trustpilot_public_source(sb),
        ]
        .join("\n")
    };
    for status in REDIRECTS {
        let env = Env::start(all).await;
        let endpoints = [
            Endpoint::GoogleBusinessInfo,
            Endpoint::GoogleList,
            Endpoint::PlacesDetails,
            Endpoint::YelpReviews,
            Endpoint::FacebookRatings,
            Endpoint::TrustpilotReviews,
        ];
        for endpoint in endpoints {
            env.sb
                .faults()
                .push(endpoint, Fault::Redirect { status, to: None }, 1);
        }
        let (ok, out) = env.sync().await;
        assert!(ok, "{status}:\n{out}");
        for endpoint in endpoints {
            assert_eq!(env.sb.faults().injected_for(endpoint), 1, "{endpoint:?}");
        }
        let rows = env.rows();
        assert!(rows.len() >= 10, "{status}: {} rows\n{out}", rows.len());
        assert!(
            rows.iter().all(|r| r.status == Status::Delivered),
            "{status}:\n{out}"
        );
        env.assert_nothing_elsewhere(&format!("same origin {status}"));
    }
}

/// Following stops after 3 redirects, naming the loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_loop_within_the_origin_stops_after_three() {
    let env = Env::start(places_source).await;
    env.sb.faults().push(
        Endpoint::PlacesDetails,
        Fault::Redirect {
            status: 302,
            to: None,
        },
        ALWAYS,
    );
    let (ok, out) = env.sync().await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("redirect to http://127.0.0.1:") && out.contains("more than 3 redirects"),
        "{out}"
    );
    assert_eq!(
        env.sb.places().requests_total(),
        4,
        "the first request and 3 redirects followed, not retried"
    );
}

/// Issue 10 item 2: every 2xx counted as delivered, with or without a
/// `request_id`. Each answer keeps the reviews pending, named (the body
/// itself never echoed), retried later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_without_a_string_request_id_is_never_delivered() {
    let cases: [(u16, Option<&str>, &str, &str); 8] = [
        (
            200,
            Some("application/json"),
            "",
            "HTTP 200 without a request_id (empty body)",
        ),
        (
            200,
            Some("text/html; charset=utf-8"),
            "<html>OK</html>",
            "HTTP 200 without a request_id (body: 15 bytes of text/html, not JSON)",
        ),
        (
            200,
            Some("application/json"),
            r#"{"ok":true}"#,
            "HTTP 200 without a request_id (body: 11 bytes of application/json, no request_id in it)",
        ),
        (
            200,
            Some("application/json"),
            r#"{"error":"something"}"#,
            "HTTP 200 without a request_id (body: 21 bytes of application/json, no request_id in it)",
        ),
        (204, None, "", "HTTP 204 without a request_id (empty body)"),
        (
            201,
            Some("application/json"),
            r#"{"request_id":12345}"#,
            "HTTP 201 without a request_id (body: 20 bytes of application/json, a request_id that is a number)",
        ),
        (
            200,
            Some("application/json"),
            r#"{"request_id":""}"#,
            "HTTP 200 without a request_id (body: 17 bytes of application/json, an empty request_id)",
        ),
        (
            202,
            None,
            r#"{"request_id":null}"#,
            "HTTP 202 without a request_id (body: 19 bytes of no content type, a null request_id)",
        ),
    ];
    for (status, content_type, body, named) in cases {
        let env = Env::start(google_source).await;
        env.sb.faults().push(
            Endpoint::TravtusMessages,
            Fault::Answer {
                status,
                content_type: content_type.map(str::to_owned),
                body: body.to_owned(),
            },
            ALWAYS,
        );
        let (ok, out) = env.sync().await;
        assert!(!ok, "{status} {body:?}: sync must fail:\n{out}");
        assert_eq!(env.sb.travtus().message_count(), 0);
        let rows = env.rows();
        assert_eq!(rows.len(), 4, "{out}");
        for row in &rows {
            assert_eq!(row.status, Status::Pending, "{status} {body:?}");
            assert_eq!(row.request_id, None);
            assert_eq!(
                row.last_error.as_deref(),
                Some(format!("no_request_id: {named}").as_str()),
                "{status} {body:?}"
            );
            assert!(
                row.next_attempt_at.is_some_and(|at| at > row.first_seen_at),
                "retried later, with backoff: {row:?}"
            );
            let attempts = env.attempts(row);
            assert!(!attempts.is_empty(), "{attempts:?}");
            for attempt in &attempts {
                assert_eq!(attempt.http_status, Some(status));
                assert_eq!(attempt.error_type.as_deref(), Some("no_request_id"));
                assert_eq!(attempt.outcome, "retry");
            }
        }
    }
}

/// The anomaly is counted in `review_sync_delivery_errors_total` by the
/// daemon, and the review is delivered once Travtus answers properly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_counts_answers_without_a_request_id_and_delivers_later() {
    let env = Env::start(google_source).await;
    // Polled every second from the start (the hourly schedule of the
    // other tests would never fire).
    let config = std::fs::read_to_string(&env.config_path)
        .expect("config")
        .replace("schedule = \"0 0 * * * *\"", "schedule = \"*/1 * * * * *\"");
    std::fs::write(
        &env.config_path,
        format!("{config}\n[metrics]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .expect("write config");
    env.sb.faults().push(
        Endpoint::TravtusMessages,
        Fault::Answer {
            status: 200,
            content_type: Some("text/html".into()),
            body: "<html>maintenance</html>".into(),
        },
        4,
    );
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .arg("--config")
        .arg(&env.config_path)
        .arg("run")
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .current_dir(env.dir.path())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("daemon starts");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = Arc::clone(&lines);
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().expect("lock").push(line);
        }
    });
    let log = || lines.lock().expect("lock").join("\n");
    let addr = || {
        lines
            .lock()
            .expect("lock")
            .iter()
            .find_map(|l| l.split("listen=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    };
    crate::helpers::wait_until("the metrics address", WAIT, || addr().is_some()).await;
    let url = format!("http://{}/metrics", addr().expect("address"));
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metrics = client
            .get(&url)
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body");
        let counted = metrics.lines().any(|l| {
            l.starts_with("review_sync_delivery_errors_total{")
                && l.contains("error_type=\"no_request_id\"")
                && l.ends_with(" 4")
        });
        if counted {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no anomaly counted:\n{metrics}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The anomaly is logged, the body never.
    let text = log();
    assert!(text.contains("Travtus answer is not a delivery"), "{text}");
    assert!(!text.contains("maintenance"), "{text}");
    // Nothing was lost: the retries deliver every review.
    let travtus = env.sb.travtus().clone();
    crate::helpers::wait_until("every review delivered after the anomaly", WAIT, || {
        travtus.message_count() >= 4
    })
    .await;
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-s", "TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("stops in time")
        .expect("wait");
    assert!(exit.success(), "{}", log());
}

/// Item 11: `invalid_client` from a token endpoint was reported as "needs
/// new consent", sending the operator to re-consent when the client id or
/// secret is what is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_secret_is_not_reported_as_needing_consent() {
    let env = Env::start(google_source).await;
    std::fs::write(env.dir.path().join("google_secret"), "wrong-secret\n").expect("write");
    let (ok, out) = env.sync().await;
    assert!(!ok, "{out}");
    assert!(!out.contains("consent"), "{out}");
    assert!(
        out.contains("the token endpoint refused the client id/secret (invalid_client: The OAuth client was not found.)"),
        "{out}"
    );
    let out = env.bin(&["check", "--online"]).await;
    let text = output_text(&out);
    assert!(!out.status.success());
    assert!(!text.contains("consent"), "{text}");
    assert!(text.contains("refused the client id/secret"), "{text}");

    // Travtus: the same words in check --online and in last_error.
    std::fs::write(
        env.dir.path().join("google_secret"),
        sandbox::GOOGLE_CLIENT_SECRET,
    )
    .expect("write");
    std::fs::write(env.dir.path().join("travtus_secret"), "wrong-secret\n").expect("write");
    let out = env.bin(&["check", "--online"]).await;
    let text = output_text(&out);
    assert!(!out.status.success());
    assert!(text.contains("travtus: token FAILED (POST "), "{text}");
    assert!(
        text.contains("): token endpoint refused the client id/secret (invalid_client)"),
        "{text}"
    );
    let (ok, out) = env.sync().await;
    assert!(!ok, "{out}");
    // The first refusal pauses every delivery, so some rows may not have
    // been tried in this pass; those tried say why they failed.
    let rows = env.rows();
    assert!(rows.iter().all(|r| r.status == Status::Pending), "{rows:?}");
    let errors: Vec<String> = rows.into_iter().filter_map(|r| r.last_error).collect();
    assert!(!errors.is_empty(), "{out}");
    for error in errors {
        assert!(
            error.contains("refused the client id/secret (invalid_client)"),
            "{error}"
        );
        assert!(!error.contains("consent"), "{error}");
    }

    // invalid_grant still needs consent, and says so.
    std::fs::write(
        env.dir.path().join("travtus_secret"),
        sandbox::TRAVTUS_CLIENT_SECRET,
    )
    .expect("write");
    env.sb.google().revoke_refresh_token();
    let (ok, out) = env.sync().await;
    assert!(!ok);
    assert!(out.contains("needs new consent: invalid_grant"), "{out}");
}
