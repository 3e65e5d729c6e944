//! `review-sync demo`: the main job on the built-in sandbox. Starts the
//! emulators on loopback, writes a throwaway config and ledger, runs a pass,
//! lets the "platforms" add and edit reviews, runs a second pass, shows a
//! Google review arriving by push (a Pub/Sub notification, no pass), and
//! what Travtus received each time and the ledger's stats. No network, no
//! credentials.

use anyhow::Context;
use review_sync::app::App;
use sandbox::{NewGoogleReview, ReceivedMessage, Sandbox, SandboxOptions};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Runs the demo.
pub(super) async fn demo() -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let sb = Sandbox::start(SandboxOptions::default())
        .await
        .context("cannot start the sandbox on loopback")?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let ledger_path = dir.path().join("ledger.db");
    let reviews_file = dir.path().join("imported.jsonl");
    std::fs::write(&reviews_file, IMPORTED_V1)?;
    let mut config_text = super::sandbox::sandbox_config(&sb, &ledger_path.display().to_string());
    config_text.push_str(&format!(
        r#"
[[source]]
name = "csv-import"
kind = "file"
schedule = "0 0 * * * *"
platform = "yelp"

  [[source.location]]
  id = "{}"
  group_external_ref = "portfolio-9"
"#,
        reviews_file.display()
    ));
    // The Google source also reads the sandbox's Pub/Sub subscription: the
    // push part below shows a review arriving without a pass.
    let key_path = dir.path().join("pubsub-sa.json");
    std::fs::write(&key_path, sb.service_account().key_json())?;
    set_owner_only(&key_path)?;
    config_text = config_text.replacen(
        "kind = \"google_business_profile\"\n",
        &format!(
            "kind = \"google_business_profile\"\npush_subscription = \"{}\"\npubsub_base_url = \"{}\"\nnotifications_base_url = \"{}\"\npush_credentials = {{ file = \"{}\" }}\n",
            sandbox::SANDBOX_PUBSUB_SUBSCRIPTION,
            sb.pubsub_base_url(),
            sb.google_notifications_base_url(),
            key_path.display()
        ),
        1,
    );
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, &config_text)?;
    // Plain sandbox secrets in a throwaway file: only we can read it.
    set_owner_only(&config_path)?;
    let config = super::load_config(&config_path)?;
    println!(
        "review-sync demo: sandbox at {}, ledger {}\n",
        sb.base_url(),
        ledger_path.display()
    );

    let app = Arc::new(App::open(config).await?);
    let cancel = CancellationToken::new();

    println!(
        "== pass 1: first sync of {} Google locations, {} Google places, {} Yelp businesses, {} Facebook Pages, {} Trustpilot business units and one file",
        sb.google().locations().len(),
        sb.places().place_ids().len(),
        sb.yelp().business_ids().len(),
        sb.facebook().page_ids().len(),
        sb.trustpilot().business_unit_ids().len(),
    );
    let report = app.sync(&[], Duration::from_secs(60), &cancel).await?;
    let pass1 = sb.travtus().messages();
    print_delivered(&pass1, 5);
    print_one_per_platform(&pass1);
    println!(
        "delivered {} (pending {}, held {}, rejected {})\n",
        report.delivered, report.pending, report.held, report.rejected
    );

    println!(
        "== the platforms change: 3 new Google reviews, 2 edited, 1 new file row; a new review on Places, Yelp, Facebook and Trustpilot, 1 Trustpilot review edited"
    );
    let locations = sb.google().locations();
    for (i, location) in locations.iter().take(3).enumerate() {
        sb.google().add_review(
            location,
            NewGoogleReview {
                star_rating: Some(5 - i as u8),
                comment: Some(format!("New this week #{i}: the gym reopened, très bien !")),
                display_name: format!("Resident {i}"),
                is_anonymous: false,
            },
        );
    }
    for location in locations.iter().take(2) {
        if let Some(id) = sb
            .google()
            .reviews(location)
            .last()
            .and_then(|r| r["reviewId"].as_str().map(str::to_owned))
        {
            sb.google().edit_review(
                location,
                &id,
                Some("Edited: maintenance fixed the heating quickly.".into()),
                Some(4),
            );
        }
    }
    std::fs::write(&reviews_file, format!("{IMPORTED_V1}{IMPORTED_V2}"))?;
    change_other_platforms(&sb);

    println!("\n== pass 2");
    let report = app.sync(&[], Duration::from_secs(60), &cancel).await?;
    let all = sb.travtus().messages();
    print_delivered(&all[pass1.len()..], usize::MAX);
    println!(
        "delivered {} (pending {}, held {}, rejected {})\n",
        report.delivered, report.pending, report.held, report.rejected
    );

    let pushed = push_part(&sb, &app).await;
    let all = sb.travtus().messages();

    println!("== ledger stats");
    let stats = app.ledger.run(|l| l.stats()).await?;
    let mut out = std::io::stdout();
    super::ledger::print_stats(&mut out, &stats)?;
    super::ledger::print_coverage(
        &mut out,
        app.config.sources.iter().map(|s| super::ledger::Coverage {
            source: s.name.as_str(),
            kind: s.kind.kind_name(),
            note: s.kind.coverage_note(),
        }),
    )?;
    println!(
        "\ndemo finished in {} ms; Travtus received {} messages with {} token fetch(es)",
        started.elapsed().as_millis(),
        all.len(),
        sb.travtus().token_requests()
    );
    sb.shutdown().await;
    Ok(if pushed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Push: the daemon's push tasks in this process, the Google accounts'
/// notifications on, one new review, and how long it took to reach
/// Travtus with no pass at all. Whether it arrived.
async fn push_part(sb: &Sandbox, app: &Arc<App>) -> bool {
    println!(
        "== push: Google notifies (Pub/Sub NEW_REVIEW); the daemon reads that one location at once, no scheduled pass"
    );
    for account in sb.google().accounts() {
        sb.notifications().set_setting(
            &account,
            sandbox::SANDBOX_PUBSUB_TOPIC,
            &["NEW_REVIEW", "UPDATED_REVIEW"],
        );
    }
    sb.pubsub().set_pull_wait(Duration::from_millis(200));
    let (cancel, tracker) = (CancellationToken::new(), TaskTracker::new());
    let locks = app
        .pollers
        .iter()
        .map(|p| (p.name().to_owned(), Arc::default()))
        .collect();
    let started = review_sync::push::run::start(app, locks, &cancel, &tracker).is_some();
    {
        let (deliverer, cancel) = (Arc::clone(&app.deliverer), cancel.clone());
        tracker.spawn(async move { deliverer.run(&cancel).await });
    }
    let before = sb.travtus().message_count();
    let created = Instant::now();
    if let Some(location) = sb.google().locations().first() {
        sb.google().add_review(
            location,
            NewGoogleReview {
                star_rating: Some(1),
                comment: Some("Pushed: no hot water since this morning.".into()),
                display_name: "Resident 9".into(),
                is_anonymous: false,
            },
        );
    }
    let mut arrived = false;
    while started && created.elapsed() < Duration::from_secs(15) {
        if sb.travtus().message_count() > before {
            arrived = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = created.elapsed();
    print_delivered(&sb.travtus().messages()[before..], usize::MAX);
    if arrived {
        println!(
            "arrived by push in {} ms (created on the emulator -> accepted by Travtus)\n",
            elapsed.as_millis()
        );
    } else {
        println!("not delivered by push within 15 s: the next scheduled poll would bring it\n");
    }
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    arrived
}

fn print_delivered(messages: &[ReceivedMessage], show: usize) {
    for m in messages.iter().take(show) {
        let review = &m.body["review"];
        let group = m
            .body
            .get("group_external_ref")
            .or_else(|| m.body.get("group_id"))
            .and_then(|g| g.as_str())
            .unwrap_or("?");
        let comment: String = review["comment"]
            .as_str()
            .unwrap_or("(rating only)")
            .chars()
            .take(50)
            .collect();
        println!(
            "  {:<9} {:<22} -> {:<12} rating {:<2} {}",
            review["source"].as_str().unwrap_or("?"),
            review["review_id"].as_str().unwrap_or("?"),
            group,
            review
                .get("rating")
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            comment.replace('\n', " ")
        );
    }
    if messages.len() > show {
        println!("  ... and {} more", messages.len() - show);
    }
}

/// One delivered review of each platform (Places reviews are `google` too:
/// told apart by their `places/...` ids), with how many each sent.
fn print_one_per_platform(messages: &[ReceivedMessage]) {
    println!("one review from each platform:");
    /// Whether a message (its `source`, its `review_id`) is of a kind.
    type IsKind = fn(&str, &str) -> bool;
    let kinds: [(&str, IsKind); 5] = [
        ("google business profile", |s, id| {
            s == "google" && !id.starts_with("places/")
        }),
        ("google places", |s, id| {
            s == "google" && id.starts_with("places/")
        }),
        ("yelp", |s, _| s == "yelp"),
        ("facebook", |s, _| s == "facebook"),
        ("trustpilot", |s, _| s == "trustpilot"),
    ];
    for (name, matches) in kinds {
        let of_kind: Vec<ReceivedMessage> = messages
            .iter()
            .filter(|m| {
                matches(
                    m.body["review"]["source"].as_str().unwrap_or_default(),
                    m.body["review"]["review_id"].as_str().unwrap_or_default(),
                )
            })
            .cloned()
            .collect();
        // A sample with text reads better than a rating-only one.
        let mut of_kind = of_kind;
        of_kind.sort_by_key(|m| m.body["review"].get("comment").is_none());
        println!("  {name}: {} delivered", of_kind.len());
        print_delivered(&of_kind, 1);
    }
}

/// The other platforms change too: a new review on each, and edits where
/// the platform has them.
fn change_other_platforms(sb: &Sandbox) {
    if let Some(place) = sb.places().place_ids().first() {
        sb.places().add_review(
            place,
            sandbox::NewPlacesReview {
                rating: 4.6,
                text: "Neu renoviert, sehr schön!".into(),
                language: "de".into(),
                author: "Jonas".into(),
            },
        );
    }
    if let Some(business) = sb.yelp().business_ids().first() {
        sb.yelp().add_review(
            business,
            sandbox::NewYelpReview {
                rating: 5,
                text: "The new management is great: every request answered within a day, the lobby was repainted, and the package room finally works. Highly recommended for anyone looking in the area.".into(),
                user: "Dana W.".into(),
            },
        );
    }
    if let Some(page) = sb.facebook().page_ids().first() {
        sb.facebook().add_recommendation(
            page,
            sandbox::NewRecommendation {
                positive: true,
                text: Some("Recommend! Quiet, clean and well run.".into()),
                reviewer: Some("Alex K.".into()),
            },
        );
    }
    if let Some(unit) = sb.trustpilot().business_unit_ids().first() {
        sb.trustpilot().add_review(
            unit,
            sandbox::NewTrustpilotReview {
                stars: 4,
                title: "Good first month".into(),
                text: "Smooth move-in, friendly staff.".into(),
                consumer: "Priya S.".into(),
            },
        );
        if let Some(id) = sb
            .trustpilot()
            .reviews(unit)
            .get(3)
            .and_then(|r| r["id"].as_str().map(str::to_owned))
        {
            sb.trustpilot().edit_review(
                &id,
                Some("Update: fixed!".into()),
                Some("They fixed the boiler the next day.".into()),
                Some(5),
            );
        }
    }
}

fn set_owner_only(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

const IMPORTED_V1: &str = r#"{"review_id":"yelp-001","comment":"Quiet building, friendly staff.","rating":4,"display_name":"Sam K.","created_datetime":"2026-10-02 14:05:00"}
{"review_id":"yelp-002","comment":"Parking is a nightmare.","rating":2,"display_name":"Lee W.","created_datetime":"2026-10-05T09:30:00-07:00"}
"#;

const IMPORTED_V2: &str = r#"{"review_id":"yelp-003","comment":"Moved in last month, love the rooftop.","rating":5,"display_name":"Ana P.","created_datetime":1761900000}
"#;
