//! Location discovery end to end: a `google_business_profile` source with
//! `discover_accounts` lists every location of its accounts on the Business
//! Information emulator on each pass, maps those with a store code to the
//! group of that name, holds (and reports) the reviews of those without one,
//! lets an explicit `[[source.location]]` win, and picks up new locations.

use crate::helpers::{TestEnv, spawn_env, text};
use review_sync::ledger::{ReviewRow, Status};
use sandbox::{GoogleSeed, NewGoogleReview};
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

/// Rewrites the env's config: `extra` lines go in the google source (after
/// its `token_url`), and `mapping` gives its `[[source.location]]`s.
pub(crate) fn write_source_config(env: &TestEnv, extra: &str, mapping: &[(String, String)]) {
    env.write_config(mapping, "");
    let text = std::fs::read_to_string(&env.config_path).expect("config");
    let anchor = format!("token_url = \"{}/google/token\"\n", env.sb.base_url());
    assert!(text.contains(&anchor), "the google source has a token_url");
    let text = text.replacen(&anchor, &format!("{anchor}{extra}"), 1);
    std::fs::write(&env.config_path, text).expect("write config");
}

/// The lines that make the source discover `accounts` through the sandbox,
/// with a request budget that never slows a test down.
fn discovery_lines(env: &TestEnv, accounts: &[&str]) -> String {
    let accounts: Vec<String> = accounts.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "discover_accounts = [{}]\ngroup_external_ref_from = \"store_code\"\nbusiness_information_base_url = \"{}\"\nrequests_per_minute = 60000\n",
        accounts.join(", "),
        env.sb.google_business_info_base_url()
    )
}

/// The location of every review the Google emulator serves now.
fn location_of_reviews(env: &TestEnv) -> HashMap<String, String> {
    let google = env.sb.google();
    let mut out = HashMap::new();
    for location in google.locations() {
        for r in google.reviews(&location) {
            let id = r["reviewId"].as_str().expect("id").to_owned();
            out.insert(id, location.clone());
        }
    }
    out
}

/// `group_external_ref` of every message Travtus accepted, by review id.
fn sent_groups(env: &TestEnv) -> HashMap<String, serde_json::Value> {
    env.sb
        .travtus()
        .messages()
        .into_iter()
        .map(|m| {
            let id = m.body["review"]["review_id"]
                .as_str()
                .expect("id")
                .to_owned();
            (id, m.body)
        })
        .collect()
}

fn review(text: &str) -> NewGoogleReview {
    NewGoogleReview {
        star_rating: Some(4),
        comment: Some(text.into()),
        display_name: "Discovered Resident".into(),
        is_anonymous: false,
    }
}

fn row<'a>(rows: &'a [ReviewRow], review_id: &str) -> &'a ReviewRow {
    rows.iter()
        .find(|r| r.review_id == review_id)
        .unwrap_or_else(|| panic!("no ledger row for {review_id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_discovered_locations_map_by_store_code_and_the_rest_are_held_and_reported() {
    let env = spawn_env(GoogleSeed {
        accounts: 1,
        locations_per_account: 200,
        reviews_per_location: 2,
    })
    .await;
    write_source_config(&env, &discovery_lines(&env, &["accounts/1000"]), &[]);
    let app = env.app().await;
    let report = app
        .sync(&[], WAIT, &CancellationToken::new())
        .await
        .expect("sync");

    let google = env.sb.google();
    let locations = google.locations();
    assert_eq!(locations.len(), 200);
    let unmapped: Vec<&String> = locations
        .iter()
        .filter(|l| google.store_code(l).is_none())
        .collect();
    assert_eq!(unmapped.len(), 25, "every eighth seeded location");

    // The pass report names what discovery found.
    let source = &report.sources[0];
    let discovery = source.discovery.as_ref().expect("a discovery report");
    assert_eq!(discovery.accounts, 1);
    assert_eq!(discovery.found, 200);
    assert_eq!(discovery.by_store_code, 175);
    assert_eq!(discovery.configured, 0);
    assert!(discovery.failures.is_empty(), "{:?}", discovery.failures);
    let reported: Vec<&str> = discovery.unmapped.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(
        reported,
        unmapped.iter().map(|l| l.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(source.locations.len(), 200, "every location was read");
    assert_eq!(source.failed(), 0);
    assert_eq!(report.held, 50, "{report:?}");
    assert!(!report.all_delivered(), "held reviews are not delivered");

    // Mapped ones went to the group their store code names, exactly once.
    let where_from = location_of_reviews(&env);
    let sent = sent_groups(&env);
    assert_eq!(env.sb.travtus().message_count(), 350);
    assert_eq!(sent.len(), 350);
    for (id, body) in &sent {
        let code = google
            .store_code(&where_from[id])
            .expect("a mapped location");
        assert_eq!(body["group_external_ref"], code.as_str(), "{id}");
    }

    // The others are held with the reason, never dropped.
    let rows = env.rows();
    assert_eq!(rows.len(), 400);
    for location in &unmapped {
        let title = google.title(location).expect("title");
        for r in google.reviews(location) {
            let row = row(&rows, r["reviewId"].as_str().expect("id"));
            assert_eq!(row.status, Status::Held);
            assert_eq!(row.location_id, location.as_str());
            assert_eq!(row.group_external_ref, None);
            assert_eq!(row.group_id, None);
            assert_eq!(
                row.last_error.as_deref(),
                Some(
                    format!(
                        "unmapped: discovered location {location} ({title:?}) has no store code"
                    )
                    .as_str()
                )
            );
        }
    }

    // `sync` on the command line reports them too, and resends nothing.
    let out = env.bin(&["sync"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "held reviews: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(
            "discovered 200 location(s) in 1 account(s): 175 mapped by store code, 0 by [[source.location]], 25 without a store code (reviews held)"
        ),
        "{stdout}"
    );
    let first = unmapped[0];
    let title = google.title(first).expect("title");
    assert!(
        stdout.contains(&format!(
            "acme-google {first} ({title:?}): no store code; its reviews are held"
        )),
        "{stdout}"
    );
    assert_eq!(env.sb.travtus().message_count(), 350, "nothing resent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_location_wins_over_its_store_code() {
    let env = spawn_env(GoogleSeed {
        accounts: 1,
        locations_per_account: 4,
        reviews_per_location: 3,
    })
    .await;
    let google = env.sb.google();
    let explicit = google.locations()[1].clone();
    assert_eq!(google.store_code(&explicit).as_deref(), Some("portfolio-2"));
    let group = env
        .sb
        .travtus()
        .group_by_ref("portfolio-9")
        .expect("seeded group");
    write_source_config(
        &env,
        &discovery_lines(&env, &["accounts/1000"]),
        &[(explicit.clone(), format!("group_id = \"{}\"", group.id))],
    );
    let app = env.app().await;
    let report = app
        .sync(&[], WAIT, &CancellationToken::new())
        .await
        .expect("sync");
    assert!(report.all_delivered(), "{report:?}");
    let discovery = report.sources[0].discovery.as_ref().expect("report");
    assert_eq!((discovery.configured, discovery.by_store_code), (1, 3));
    assert_eq!(
        report.sources[0].locations.len(),
        4,
        "the explicit location is read once"
    );

    let where_from = location_of_reviews(&env);
    let sent = sent_groups(&env);
    assert_eq!(sent.len(), 12);
    for (id, body) in &sent {
        if where_from[id] == explicit {
            assert_eq!(body["group_id"], group.id.as_str(), "{id}");
            assert!(body.get("group_external_ref").is_none(), "{id}");
        } else {
            let code = google.store_code(&where_from[id]).expect("code");
            assert_eq!(body["group_external_ref"], code.as_str(), "{id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_locations_are_picked_up_and_a_store_code_added_later_releases_held_reviews() {
    let env = spawn_env(GoogleSeed {
        accounts: 1,
        locations_per_account: 4,
        reviews_per_location: 3,
    })
    .await;
    write_source_config(&env, &discovery_lines(&env, &["accounts/1000"]), &[]);
    let app = env.app().await;
    let cancel = CancellationToken::new();
    let report = app.sync(&[], WAIT, &cancel).await.expect("pass 1");
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(env.sb.travtus().message_count(), 12);

    // Two new properties: one with a store code, one without.
    let google = env.sb.google();
    let coded = google.add_location_with_store_code("accounts/1000", Some("portfolio-7"));
    let bare = google.add_location_with_store_code("accounts/1000", None);
    let coded_reviews = [
        google.add_review(&coded, review("First review here")),
        google.add_review(&coded, review("Second review here")),
    ];
    let held_review = google.add_review(&bare, review("Nobody maps me yet"));

    // A dry run sees the new locations too, and POSTs nothing held.
    let out = env.bin(&["sync", "--dry-run"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let bodies: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON body per line"))
        .collect();
    assert_eq!(bodies.len(), 2, "{stdout}");
    assert!(
        bodies
            .iter()
            .all(|b| b["group_external_ref"] == "portfolio-7")
    );
    assert!(
        stderr.contains(
            "1 new or edited review(s) of discovered locations without a store code would be held"
        ),
        "{stderr}"
    );

    let report = app.sync(&[], WAIT, &cancel).await.expect("pass 2");
    let discovery = report.sources[0].discovery.as_ref().expect("report");
    assert_eq!(discovery.found, 6);
    assert_eq!(discovery.unmapped.len(), 1);
    assert_eq!(discovery.unmapped[0].id, bare);
    let sent = sent_groups(&env);
    assert_eq!(env.sb.travtus().message_count(), 14);
    for id in &coded_reviews {
        assert_eq!(sent[id]["group_external_ref"], "portfolio-7", "{id}");
    }
    let rows = env.rows();
    let held = row(&rows, &held_review);
    assert_eq!(held.status, Status::Held);
    assert!(
        held.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with(&format!("unmapped: discovered location {bare} ("))),
        "{:?}",
        held.last_error
    );

    // The admin gives the property its store code on Google: new reviews
    // map at once; the held one goes out after `ledger retry`.
    assert!(google.set_store_code(&bare, Some("portfolio-8")));
    let fresh = google.add_review(&bare, review("Mapped from the start"));
    let report = app.sync(&[], WAIT, &cancel).await.expect("pass 3");
    assert_eq!(report.held, 1, "{report:?}");
    assert_eq!(
        sent_groups(&env)[&fresh]["group_external_ref"],
        "portfolio-8"
    );
    assert!(!sent_groups(&env).contains_key(&held_review));

    let out = env.bin(&["ledger", "retry", "--status", "held"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 review(s) put back to pending"),
        "{stdout}"
    );
    let report = app.sync(&[], WAIT, &cancel).await.expect("pass 4");
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(
        sent_groups(&env)[&held_review]["group_external_ref"],
        "portfolio-8"
    );
    assert_eq!(env.sb.travtus().message_count(), 16);
    assert_eq!(row(&env.rows(), &held_review).status, Status::Delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_failure_is_reported_and_configured_locations_are_still_polled() {
    let env = spawn_env(GoogleSeed {
        accounts: 2,
        locations_per_account: 2,
        reviews_per_location: 3,
    })
    .await;
    let google = env.sb.google();
    // Account 1001 is configured explicitly; 9999 is not the caller's (403).
    let explicit = google.locations()[2].clone();
    assert!(explicit.starts_with("accounts/1001/"));
    write_source_config(
        &env,
        &discovery_lines(&env, &["accounts/1000", "accounts/9999"]),
        &[(
            explicit.clone(),
            "group_external_ref = \"portfolio-3\"".into(),
        )],
    );
    let app = env.app().await;
    let report = app
        .sync(&[], WAIT, &CancellationToken::new())
        .await
        .expect("sync");
    let source = &report.sources[0];
    let discovery = source.discovery.as_ref().expect("report");
    assert_eq!(discovery.failures.len(), 1, "{discovery:?}");
    assert_eq!(discovery.failures[0].0, "accounts/9999");
    assert!(
        discovery.failures[0].1.contains("PERMISSION_DENIED"),
        "{discovery:?}"
    );
    assert_eq!(source.discovery_failed(), 1);
    assert!(!report.all_delivered(), "a failed discovery fails the pass");
    // The explicit location and account 1000's two were read and delivered.
    assert_eq!(source.locations.len(), 3);
    assert_eq!(source.failed(), 0);
    assert_eq!(env.sb.travtus().message_count(), 9);

    // The command line says so, and exits non-zero.
    let out = env.bin(&["sync"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("acme-google accounts/9999: discovery failed: not authorized"),
        "{stdout}"
    );
    assert!(stderr.contains("1 account(s) not discovered"), "{stderr}");
}
