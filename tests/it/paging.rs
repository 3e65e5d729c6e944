//! Endless paging and `sync`'s bounds (issue 10, item 9; issue 12, "`sync`
//! overlaps reading and delivering"), through the real binary: a Google
//! location that hands out a fresh `nextPageToken` forever, with no
//! `totalReviewCount` to compare against, next to normal locations.
//!
//! What is decided here (README "Hostile platforms"):
//! - a location's read is bounded by pages and by time (`max_pages_per_pass`
//!   and `max_pass_time` for an incremental pass, `max_pages_per_full_read`
//!   and `max_full_read_time` for a first read or a reconciliation); past a
//!   bound it fails with an error naming the bound;
//! - the pages read before a bound or a stop are recorded, and their reviews
//!   delivered like any others: they are real answers of the platform, and
//!   the ledger drops repeats, so nothing is sent twice;
//! - the location's high-water mark does not move unless every page was
//!   read, so the reviews it did not reach are read by the next pass;
//! - `sync --wait` bounds the whole sync, polling included; `sync` delivers
//!   while it reads, as `run` does.
//!
//! The binaries run under a generous `tokio::time::timeout`: before these
//! fixes they paged for half an hour, and the timeout is what fails them.

use crate::helpers::{TestEnv, quoted, seed, spawn_env, text, wait_until};
use sandbox::{Endpoint, FaultRates, Misbehaviour, NewGoogleReview};
use std::collections::HashMap;
use std::process::Output;
use std::time::Duration;

/// How long a binary may run before the test calls it hung.
const HANG: Duration = Duration::from_secs(120);

async fn bin(env: &TestEnv, args: &[&str]) -> Output {
    tokio::time::timeout(HANG, env.bin(args))
        .await
        .unwrap_or_else(|_| panic!("`review-sync {}` hung", args.join(" ")))
}

/// How many times each review id reached Travtus.
fn sent(env: &TestEnv) -> HashMap<String, usize> {
    let mut sent = HashMap::new();
    for m in env.sb.travtus().messages() {
        let id = m.body["review"]["review_id"]
            .as_str()
            .expect("review id")
            .to_owned();
        *sent.entry(id).or_default() += 1;
    }
    sent
}

/// The review ids the emulator holds for `location`, newest first.
fn ids(env: &TestEnv, location: &str) -> Vec<String> {
    env.sb
        .google()
        .reviews(location)
        .iter()
        .map(|r| r["reviewId"].as_str().expect("id").to_owned())
        .collect()
}

/// The stored high-water mark of `location` (`None`: no mark, or no row).
fn high_water(env: &TestEnv, location: &str) -> Option<String> {
    let rows = env.ledger_sql(&format!(
        "SELECT high_water FROM poll_state WHERE location_id = {}",
        quoted(location)
    ));
    rows.first().and_then(|r| r[0].text())
}

/// The error of the last logged poll of `location`.
fn logged_error(env: &TestEnv, location: &str) -> Option<String> {
    let rows = env.ledger_sql(&format!(
        "SELECT error FROM polls WHERE location_id = {} ORDER BY id DESC LIMIT 1",
        quoted(location)
    ));
    rows.first().expect("a poll of the location was logged")[0].text()
}

fn add_reviews(env: &TestEnv, location: &str, n: usize, tag: &str) {
    for i in 0..n {
        env.sb.google().add_review(
            location,
            NewGoogleReview {
                star_rating: Some(4),
                comment: Some(format!("{tag} {i}")),
                display_name: format!("Resident {i}"),
                is_anonymous: false,
            },
        );
    }
}

/// Adds `lines` to the config's `[[source]]` (after its `token_url`).
fn source_lines(env: &TestEnv, lines: &str) {
    let text = std::fs::read_to_string(&env.config_path).expect("config");
    let token_line = format!("token_url = \"{}/google/token\"\n", env.sb.base_url());
    assert!(text.contains(&token_line), "the helper's config changed");
    let text = text.replacen(&token_line, &format!("{token_line}{lines}\n"), 1);
    std::fs::write(&env.config_path, text).expect("write config");
}

/// Regression (issue 10, item 9): with default settings, a location with a
/// high-water mark that pages forever without a total was read for 10,000
/// pages (half an hour at Google's default budget) before anything was
/// delivered. Now its incremental pass stops at `max_pages_per_pass` (200),
/// naming the bound; the other locations are delivered; what it read is
/// delivered; its mark stays; once it behaves, the rest is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_pass_paging_forever_stops_at_the_default_page_bound() {
    let env = spawn_env(seed(5)).await;
    let locations = env.sb.google().locations();
    let (bad, good) = (locations[0].clone(), locations[1].clone());
    let out = bin(&env, &["sync"]).await;
    assert!(out.status.success(), "first sync: {:?}", text(&out));
    let mark = high_water(&env, &bad).expect("a mark after the first read");

    // 60 new reviews: the first page (the 50 newest) is all newer than the
    // mark, so nothing but the bound ends the paging.
    add_reviews(&env, &bad, 60, "endless");
    add_reviews(&env, &good, 2, "fine");
    env.sb
        .google()
        .misbehave(&bad, Misbehaviour::EndlessPagingWithoutTotal);
    let requests_before = env.sb.google().list_requests(&bad);
    let out = bin(&env, &["sync"]).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let error = "pass bound: more than 200 pages in one incremental pass (max_pages_per_pass = 200); the pages read are recorded, the high-water mark is unchanged";
    assert!(
        stdout.contains(&format!("acme-google {bad}: {error}")),
        "the location and its bound are named:\n{stdout}"
    );
    assert!(
        stderr.contains(&bad),
        "the failure line names it:\n{stderr}"
    );
    assert_eq!(logged_error(&env, &bad).as_deref(), Some(error));
    assert_eq!(
        env.sb.google().list_requests(&bad) - requests_before,
        200,
        "200 pages read, no more"
    );
    assert_eq!(high_water(&env, &bad), Some(mark.clone()), "the mark stays");

    let sent = sent(&env);
    let bad_ids = ids(&env, &bad);
    for id in ids(&env, &good) {
        assert_eq!(sent.get(&id), Some(&1), "{id} of the normal location");
    }
    for id in &bad_ids[..50] {
        assert_eq!(sent.get(id), Some(&1), "{id} was on the page read");
    }
    for id in &bad_ids[50..60] {
        assert_eq!(sent.get(id), None, "{id} was never listed");
    }

    // Behaving again: the 10 it never reached are read from the old mark.
    env.sb.google().behave(&bad);
    let out = bin(&env, &["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let sent = self::sent(&env);
    for id in &bad_ids {
        assert_eq!(sent.get(id), Some(&1), "{id} delivered once");
    }
    assert!(
        high_water(&env, &bad).is_some_and(|m| m > mark),
        "the mark moved on"
    );
}

/// Regression (issue 10, item 9): `--wait` did not bound the poll, so a
/// location's first read that pages forever held `sync` for half an hour
/// with nothing delivered. Now the whole sync ends when `--wait` runs out:
/// the other locations are delivered, the endless one is named, what it read
/// is recorded (and delivered), and it has no high-water mark yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_wait_bounds_the_first_read_of_a_location_paging_forever() {
    let env = spawn_env(seed(5)).await;
    let bad = env.sb.google().locations()[0].clone();
    env.sb
        .google()
        .misbehave(&bad, Misbehaviour::EndlessPagingWithoutTotal);

    let out = bin(&env, &["sync", "--wait", "5s"]).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "acme-google {bad}: stopped: sync --wait 5s ran out after "
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("review-sync: stopped: sync --wait 5s ran out")
            && stderr.contains(&format!(
                "1 location(s) not read to the end (acme-google {bad})"
            )),
        "the stop line names what was left:\n{stderr}"
    );
    let logged = logged_error(&env, &bad).expect("the stop is logged");
    assert!(
        logged.starts_with("stopped: sync --wait 5s ran out after "),
        "{logged}"
    );
    assert!(
        env.sb.google().list_requests(&bad) > 1,
        "it was paging when the limit came"
    );
    assert_eq!(
        high_water(&env, &bad),
        None,
        "no mark from a read cut short"
    );

    // Everything read was delivered once: the normal locations and the
    // endless one's page (the same five reviews on every page).
    let sent = sent(&env);
    for location in env.sb.google().locations() {
        for id in ids(&env, &location) {
            assert_eq!(sent.get(&id), Some(&1), "{id} of {location}");
        }
    }
    assert_eq!(
        env.sb.travtus().message_count(),
        env.google_review_count(),
        "nothing twice"
    );

    // Behaving again, the location is read to its end: its mark is set,
    // and nothing is sent again.
    env.sb.google().behave(&bad);
    let out = bin(&env, &["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(high_water(&env, &bad).is_some());
    assert_eq!(env.sb.travtus().message_count(), env.google_review_count());
}

/// A location's read is bounded by time too, whatever its pages: past
/// `max_full_read_time` it fails naming the bound, and the pass goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_past_its_time_bound_fails_naming_the_bound() {
    let env = spawn_env(seed(5)).await;
    source_lines(&env, "max_full_read_time = \"2s\"");
    let bad = env.sb.google().locations()[2].clone();
    env.sb
        .google()
        .misbehave(&bad, Misbehaviour::EndlessPagingWithoutTotal);

    let out = bin(&env, &["sync"]).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let error = logged_error(&env, &bad).expect("logged");
    assert!(
        error.starts_with(
            "pass bound: full read not finished after 2s (max_full_read_time = \"2s\"), "
        ),
        "{error}"
    );
    assert!(
        stdout.contains(&format!("acme-google {bad}: {error}")),
        "{stdout}"
    );
    assert_eq!(high_water(&env, &bad), None);
    let sent = sent(&env);
    for location in env.sb.google().locations() {
        for id in ids(&env, &location) {
            assert_eq!(sent.get(&id), Some(&1), "{id} of {location}");
        }
    }
}

/// Regression (issue 12, last item): `sync` read every page of every
/// location before its first POST. With default settings it now delivers
/// while it reads, as `run` does: messages reach Travtus before the last
/// list request does. (An ordering, observed in the emulators; each list
/// answer is slowed down so that the reading lasts a while.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_delivers_while_it_is_still_reading() {
    let env = spawn_env(seed(150)).await;
    env.sb.faults().set_rates(
        Endpoint::GoogleList,
        FaultRates {
            slow: 1.0,
            slow_by: Duration::from_millis(200),
            ..FaultRates::default()
        },
    );
    let sync = {
        let config = env.config_path.clone();
        tokio::spawn(async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
                .arg("--config")
                .arg(config)
                .arg("sync")
                .env_remove("RUST_LOG")
                .env_remove("NOTIFY_SOCKET")
                .env_remove("JOURNAL_STREAM")
                .kill_on_drop(true)
                .output()
                .await
                .expect("binary runs")
        })
    };
    let travtus = env.sb.travtus().clone();
    wait_until("a first message", HANG, || travtus.message_count() > 0).await;
    let lists_at_first_message = env.sb.google().list_requests_total();
    let out = tokio::time::timeout(HANG, sync)
        .await
        .expect("sync ends")
        .expect("task");
    assert!(out.status.success(), "{:?}", text(&out));
    let lists = env.sb.google().list_requests_total();
    assert!(
        lists_at_first_message < lists,
        "the first message came after the last list request ({lists_at_first_message} of {lists})"
    );
    assert_eq!(travtus.message_count(), env.google_review_count());
}

/// `sync --dry-run` reads the same pages as a pass, within the same bounds:
/// a location paging forever is named with its bound, and the others' bodies
/// are printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_of_a_location_paging_forever_stops_at_its_bound() {
    let env = spawn_env(seed(5)).await;
    source_lines(&env, "max_pages_per_full_read = 30");
    let bad = env.sb.google().locations()[1].clone();
    env.sb
        .google()
        .misbehave(&bad, Misbehaviour::EndlessPagingWithoutTotal);
    let out = bin(&env, &["sync", "--dry-run"]).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "acme-google {bad}: pass bound: more than 30 pages in one full read (max_pages_per_full_read = 30)"
        )),
        "{stderr}"
    );
    assert_eq!(env.sb.google().list_requests(&bad), 30);
    // The endless location's page is among the bodies, once per page read
    // (a dry run records nothing, so every page is "new"), and every other
    // location's reviews are there.
    let bodies: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON body"))
        .collect();
    for location in env.sb.google().locations() {
        for id in ids(&env, &location) {
            assert!(
                bodies
                    .iter()
                    .any(|b| b["review"]["review_id"] == id.as_str()),
                "{id} of {location}"
            );
        }
    }
    assert_eq!(env.sb.travtus().message_count(), 0, "nothing sent");
}

/// A location's first read gets the wide bounds of a full read: one of
/// 10,100 reviews (202 pages, past the incremental pass's 200) completes in
/// one pass with default bounds, sets the high-water mark, and the next
/// (incremental) pass reads one page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_read_longer_than_the_incremental_bound_completes_in_one_pass() {
    let env = spawn_env(sandbox::GoogleSeed {
        accounts: 1,
        locations_per_account: 1,
        reviews_per_location: 10_100,
    })
    .await;
    // Only the request budget is raised (the emulator has no quota, and
    // 202 pages would wait 20 s at Google's default); the bounds are the
    // defaults.
    source_lines(&env, "requests_per_minute = 60000");
    let location = env.sb.google().locations()[0].clone();
    let out = bin(&env, &["sync", "--wait", "10m"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(env.sb.google().list_requests(&location), 202);
    assert_eq!(env.sb.travtus().message_count(), 10_100);
    assert!(high_water(&env, &location).is_some());

    let out = bin(&env, &["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(env.sb.google().list_requests(&location), 203, "one page");
}

/// The seam push hints (issue 14) read through: `SourcePoller::read_location`
/// reads one location at once, incrementally, with the same plan, paging,
/// cursor and ledger as a pass, and asks nothing of the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_location_is_read_at_once_through_the_same_pass() {
    let env = spawn_env(seed(5)).await;
    let app = env.app().await;
    app.poll(&app.pollers).await;
    let google = env.sb.google();
    let locations = google.locations();
    google.add_review(
        &locations[1],
        NewGoogleReview {
            star_rating: Some(2),
            comment: Some("The lift is broken again.".into()),
            display_name: "Kim".into(),
            is_anonymous: false,
        },
    );
    let before: Vec<u64> = locations.iter().map(|l| google.list_requests(l)).collect();
    let poller = &app.pollers[0];
    let report = poller
        .read_location(&review_sync::domain::LocationId::new(&locations[1]))
        .await;
    let [read] = report.locations.as_slice() else {
        panic!("one location read: {report:?}");
    };
    assert_eq!(read.location_id, locations[1]);
    assert_eq!((read.counts.new, read.error.as_deref()), (1, None));
    assert_eq!(read.pages, 1, "incremental: from the high-water mark");
    for (location, b) in locations.iter().zip(&before) {
        let asked = google.list_requests(location) - b;
        assert_eq!(asked, u64::from(*location == locations[1]), "{location}");
    }
    let pending = env
        .rows()
        .into_iter()
        .filter(|r| r.status == review_sync::ledger::Status::Pending)
        .count();
    assert!(pending >= 1, "the new review is recorded, due for delivery");

    // A location the source does not read reads nothing.
    let report = poller
        .read_location(&review_sync::domain::LocationId::new(
            "accounts/9/locations/9",
        ))
        .await;
    assert!(report.locations.is_empty(), "{report:?}");
}
