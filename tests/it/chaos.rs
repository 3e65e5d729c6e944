//! The chaos pass (issue 5, "Prove that nothing is lost"): every side of the
//! sandbox fails a large share of its requests at once (Google list and
//! token calls, Travtus token and `/messages/`: 500s, 429s with and without
//! `Retry-After`, dropped connections, answers slower than the timeout,
//! tokens that expire early) while reviews are added and edited between
//! passes. Passes run until the emulators agree, then one fault-free pass,
//! then the invariant: Travtus holds the current version of every review the
//! platform holds, and the ledger holds no review stuck without a reason.
//!
//! Also home of the [`census`] the crash and storage tests share: the
//! emulators' view of "nothing lost".

use crate::helpers::{TestEnv, seed, spawn_env};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use review_sync::ledger::{ReviewRow, Status};
use sandbox::{Endpoint, Fault, FaultRates, NewGoogleReview, Sandbox};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The seed of everything random in the chaos pass (fault draws are the
/// sandbox's own seeded streams).
const CHAOS_SEED: u64 = 0x5eed_c4a0_5000;

/// Passes that add and edit reviews; later passes only converge.
const MUTATING_PASSES: usize = 5;

/// The chaos phase (mutating and converging passes) stops starting passes
/// after this; the final fault-free pass follows either way.
const CHAOS_BUDGET: Duration = Duration::from_secs(40);

/// Each pass's `max_wait`: retries due within it are waited for.
const PASS_WAIT: Duration = Duration::from_secs(3);

/// The request timeout of every client in the chaos config; slow faults
/// answer after [`SLOW_BY`], past it.
const TIMEOUT: &str = "1s";
const SLOW_BY: Duration = Duration::from_millis(1600);

/// The endpoints the chaos pass fails.
const CHAOS_ENDPOINTS: [Endpoint; 5] = [
    Endpoint::GoogleList,
    Endpoint::GoogleBatch,
    Endpoint::GoogleToken,
    Endpoint::TravtusToken,
    Endpoint::TravtusMessages,
];

/// What the emulators hold after a run: every review the platform serves
/// now, against the last message Travtus accepted for its id.
#[derive(Debug, Default)]
pub(crate) struct Census {
    /// Reviews the platform serves.
    pub reviews: usize,
    /// Messages Travtus accepted.
    pub messages: usize,
    /// Review ids the platform serves that Travtus never accepted.
    pub lost: Vec<String>,
    /// Review ids whose last accepted message is not the current version
    /// (with what differs).
    pub stale: Vec<String>,
    /// Review ids Travtus accepted that the platform does not serve.
    pub unknown: Vec<String>,
    /// Messages accepted for a (review id, content) beyond the first.
    pub duplicates: usize,
}

impl Census {
    /// Whether Travtus holds exactly the platform's current reviews.
    pub(crate) fn converged(&self) -> bool {
        self.lost.is_empty() && self.stale.is_empty() && self.unknown.is_empty()
    }

    /// Reviews not (or not in their current version) at Travtus.
    pub(crate) fn missing(&self) -> usize {
        self.lost.len() + self.stale.len()
    }
}

/// The group the helpers' config maps Google location number `i` to.
fn group_of(i: usize) -> String {
    format!("portfolio-{}", i % 10 + 1)
}

/// The fields of a review that a version changes, as the platform serves
/// it and mapped the way SPEC section 4 says: absent fields are null.
fn platform_content(review: &Value, group: &str) -> Value {
    let rating = match review["starRating"].as_str() {
        Some("ONE") => json!(1),
        Some("TWO") => json!(2),
        Some("THREE") => json!(3),
        Some("FOUR") => json!(4),
        Some("FIVE") => json!(5),
        _ => Value::Null,
    };
    // Text is sent trimmed; empty text is no text (the sandbox's reviews
    // carry no translation markers, the other thing the mapping strips).
    let text = |v: &Value| {
        v.as_str()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map_or(Value::Null, |t| json!(t))
    };
    let comment = text(&review["comment"]);
    // RFC 3339 in UTC ("...Z"): the body's `YYYY-MM-DDThh:mm:ss` is its first 19 characters.
    let updated = review["updateTime"]
        .as_str()
        .and_then(|t| t.get(..19))
        .map_or(Value::Null, |t| json!(t));
    json!({
        "group_external_ref": group,
        "comment": comment,
        "rating": rating,
        "display_name": text(&review["reviewer"]["displayName"]),
        "is_anonymous": review["reviewer"]["isAnonymous"].as_bool().unwrap_or(false),
        "updated_datetime": updated,
    })
}

/// The same fields of a body Travtus accepted.
fn sent_content(body: &Value) -> Value {
    let review = &body["review"];
    json!({
        "group_external_ref": body["group_external_ref"],
        "comment": review["comment"],
        "rating": review["rating"],
        "display_name": review["display_name"],
        "is_anonymous": review["is_anonymous"],
        "updated_datetime": review["updated_datetime"],
    })
}

/// Compares the Google emulator's reviews (mapped as the helpers' config
/// maps them) with the last message Travtus accepted per review id.
pub(crate) fn census(sb: &Sandbox) -> Census {
    let google = sb.google();
    let mut expected: BTreeMap<String, Value> = BTreeMap::new();
    for (i, location) in google.locations().iter().enumerate() {
        let group = group_of(i);
        for review in google.reviews(location) {
            let id = review["reviewId"].as_str().unwrap_or_default().to_owned();
            expected.insert(id, platform_content(&review, &group));
        }
    }
    let messages = sb.travtus().messages();
    let mut last: HashMap<String, Value> = HashMap::new();
    let mut keys = HashSet::new();
    for m in &messages {
        let id = m.body["review"]["review_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        last.insert(id, sent_content(&m.body));
        keys.insert(m.idempotency_key.clone().unwrap_or_default());
    }
    let mut census = Census {
        reviews: expected.len(),
        messages: messages.len(),
        duplicates: messages.len() - keys.len(),
        ..Census::default()
    };
    for (id, want) in &expected {
        match last.get(id) {
            None => census.lost.push(id.clone()),
            Some(got) if got != want => census
                .stale
                .push(format!("{id}: sent {got}, current {want}")),
            Some(_) => {}
        }
    }
    census.unknown = last
        .keys()
        .filter(|id| !expected.contains_key(*id))
        .cloned()
        .collect();
    census
}

/// Ledger rows that are neither delivered nor carry the reason they are not.
pub(crate) fn stuck_without_reason(rows: &[ReviewRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.status != Status::Delivered && r.last_error.is_none())
        .map(|r| format!("{} ({})", r.review_id, r.status.as_str()))
        .collect()
}

/// Sets every client's request timeout in the helpers' config to `timeout`
/// (Travtus, and the Google source's own `timeout`).
pub(crate) fn set_timeouts(env: &TestEnv, timeout: &str) {
    let text = std::fs::read_to_string(&env.config_path).expect("config");
    let token_line = format!("token_url = \"{}/google/token\"\n", env.sb.base_url());
    assert!(text.contains(&token_line) && text.contains("timeout = \"5s\""));
    let text = text.replace("timeout = \"5s\"", &format!("timeout = \"{timeout}\""));
    let text = text.replace(
        &token_line,
        &format!("{token_line}timeout = \"{timeout}\"\n"),
    );
    std::fs::write(&env.config_path, text).expect("write config");
}

/// Adds `adds` reviews to random locations and edits `edits` random
/// existing ones (new text and rating, so a new version), as residents do
/// between passes.
pub(crate) fn mutate_platform(
    sb: &Sandbox,
    rng: &mut StdRng,
    tag: &str,
    adds: usize,
    edits: usize,
) {
    let google = sb.google();
    let locations = google.locations();
    for i in 0..adds {
        let location = &locations[rng.random_range(0..locations.len())];
        google.add_review(
            location,
            NewGoogleReview {
                star_rating: Some(rng.random_range(1..=5)),
                comment: rng
                    .random_bool(0.8)
                    .then(|| format!("New review {tag}-{i}: the lift is fixed ✓")),
                display_name: format!("Resident {tag}-{i}"),
                is_anonymous: rng.random_bool(0.2),
            },
        );
    }
    for i in 0..edits {
        let location = &locations[rng.random_range(0..locations.len())];
        let reviews = google.reviews(location);
        if reviews.is_empty() {
            continue;
        }
        // Newest first: favour recent reviews (often edited while in flight)
        // but reach deep ones too.
        let pick = if rng.random_bool(0.5) {
            rng.random_range(0..reviews.len().min(3))
        } else {
            rng.random_range(0..reviews.len())
        };
        let id = reviews[pick]["reviewId"].as_str().expect("id").to_owned();
        assert!(google.edit_review(
            location,
            &id,
            Some(format!("Edited {tag}-{i}: still waiting for the plumber")),
            Some(rng.random_range(1..=5)),
        ));
    }
}

/// The chaos rates of one pass: a third or more of all requests fail, in
/// every way the sandbox knows.
fn chaos_rates(retry_after: Option<Duration>) -> FaultRates {
    FaultRates {
        drop: 0.08,
        status_500: 0.10,
        too_many: 0.06,
        retry_after,
        slow: 0.06,
        slow_by: SLOW_BY,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_every_side_loses_nothing_and_converges() {
    let env = spawn_env(seed(15)).await;
    set_timeouts(&env, TIMEOUT);
    // Tokens that expire early: short lifetimes, and all of them expired
    // at random moments by the task below.
    env.sb.travtus().set_token_lifetime(Duration::from_secs(2));
    env.sb.google().set_token_lifetime(Duration::from_secs(2));
    let app = env.app().await;
    let cancel = CancellationToken::new();
    let mut rng = StdRng::seed_from_u64(CHAOS_SEED);

    let expirer = {
        let (travtus, google) = (env.sb.travtus().clone(), env.sb.google().clone());
        let stop = cancel.child_token();
        let mut rng = StdRng::seed_from_u64(CHAOS_SEED + 1);
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut expired = 0u64;
                loop {
                    let wait = Duration::from_millis(rng.random_range(300..1500));
                    tokio::select! {
                        _ = stop.cancelled() => return expired,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    travtus.expire_all_tokens();
                    google.expire_all_tokens();
                    expired += 1;
                }
            }
        });
        (stop, task)
    };

    let faults = env.sb.faults();
    let started = Instant::now();
    let mut passes = 0usize;
    let mut converged_after = None;
    let mut failed_locations = 0usize;
    let mut pass_log = Vec::new();
    loop {
        if passes >= MUTATING_PASSES && census(&env.sb).converged() {
            converged_after = Some(passes);
            break;
        }
        if started.elapsed() > CHAOS_BUDGET {
            break;
        }
        // 429s alternate between passes with and without Retry-After.
        let retry_after = passes.is_multiple_of(2).then_some(Duration::from_secs(1));
        for endpoint in CHAOS_ENDPOINTS {
            faults.set_rates(endpoint, chaos_rates(retry_after));
        }
        if passes < MUTATING_PASSES {
            mutate_platform(&env.sb, &mut rng, &format!("p{passes}"), 4, 4);
        }
        let pass_started = Instant::now();
        let report = app
            .sync(&[], PASS_WAIT, &cancel)
            .await
            .expect("a pass under chaos still ends with a report");
        pass_log.push(format!(
            "{:.1}s/{} pending",
            pass_started.elapsed().as_secs_f64(),
            report.pending
        ));
        failed_locations += report.sources.iter().map(|s| s.failed()).sum::<usize>();
        passes += 1;
        // Stand in for the minutes a daemon would wait: make every backoff
        // due now (no delivery is in flight between passes).
        app.ledger
            .run(|l| l.make_pending_due(chrono::Utc::now()))
            .await
            .expect("fast-forward the backoff");
    }
    expirer.0.cancel();
    let expiries = expirer.1.await.expect("expirer");
    let chaos_census = census(&env.sb);
    // Mid-chaos, every review that was attempted and is not delivered says why.
    let unexplained: Vec<String> = env
        .rows()
        .into_iter()
        .filter(|r| r.status != Status::Delivered && r.attempts > 0 && r.last_error.is_none())
        .map(|r| r.review_id)
        .collect();
    let requests = env.sb.travtus().message_requests()
        + env.sb.google().list_requests_total()
        + env.sb.google().batch_requests();
    let request_faults = faults.injected_for(Endpoint::TravtusMessages)
        + faults.injected_for(Endpoint::GoogleList)
        + faults.injected_for(Endpoint::GoogleBatch);
    let injected: Vec<(&str, u64)> = CHAOS_ENDPOINTS
        .iter()
        .map(|e| (e.name(), faults.injected_for(*e)))
        .collect();

    // The final pass: no faults.
    faults.clear();
    let report = app
        .sync(&[], Duration::from_secs(30), &cancel)
        .await
        .expect("final pass");
    let end = census(&env.sb);
    let rows = env.rows();
    let stuck = stuck_without_reason(&rows);
    let token_fetches = app.deliverer.token_fetches();
    eprintln!(
        "chaos: {passes} chaos passes ({}; {pass_log:?}), then 1 fault-free pass; faults injected {} {injected:?} ({request_faults} of {requests} list, batch and message requests); token expiries {expiries}; failed location polls {failed_locations}; reviews {}; messages {}; lost {}; stale {}; duplicates {}; missing after the chaos passes {}; Travtus tokens fetched {token_fetches}",
        match converged_after {
            Some(n) => format!("converged under faults after {n}"),
            None => "budget spent before converging under faults".to_owned(),
        },
        faults.injected(),
        end.reviews,
        end.messages,
        end.lost.len(),
        end.stale.len(),
        end.duplicates,
        chaos_census.missing(),
    );
    // The chaos was real: a fifth or more of the list, batch and message requests
    // failed (the rates add up to 30%), and every endpoint saw faults.
    assert!(
        request_faults * 5 >= requests,
        "{request_faults} faults in {requests} requests"
    );
    for (endpoint, n) in &injected {
        assert!(*n > 0, "no fault reached {endpoint}");
    }
    assert!(end.lost.is_empty(), "lost: {:?}", end.lost);
    assert!(end.stale.is_empty(), "stale: {:#?}", end.stale);
    assert!(end.unknown.is_empty(), "unknown: {:?}", end.unknown);
    assert!(report.all_delivered(), "{report:?}");
    assert!(
        unexplained.is_empty(),
        "attempted, not delivered, no reason: {unexplained:?}"
    );
    assert!(stuck.is_empty(), "stuck without a reason: {stuck:?}");
    assert_eq!(rows.len(), end.reviews, "one ledger row per review");
}

/// Regression: the Travtus token request had no timeout (the shared HTTP
/// pool has none, and unlike the platforms' token calls nothing bounded
/// it), so a token endpoint that hangs stalled every delivery for as long
/// as it hung.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_travtus_token_endpoint_slower_than_the_timeout_is_given_up_on_and_retried() {
    let env = spawn_env(seed(2)).await;
    set_timeouts(&env, TIMEOUT);
    env.sb.faults().push(
        Endpoint::TravtusToken,
        Fault::Slow(Duration::from_secs(20)),
        1,
    );
    let app = env.app().await;
    let report = tokio::time::timeout(
        Duration::from_secs(15),
        app.sync(&[], Duration::from_secs(10), &CancellationToken::new()),
    )
    .await
    .expect("the pass does not wait for the hung token endpoint")
    .expect("sync");
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(env.sb.travtus().message_count(), env.google_review_count());
    let timed_out = env.ledger_int(
        "SELECT COUNT(*) FROM attempts
         WHERE error_type = 'token_unavailable' AND error_message LIKE '%timed out%'",
    );
    assert!(
        timed_out > 0,
        "the hung token request was recorded as timed out"
    );
}
