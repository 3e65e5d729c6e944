//! The Facebook Graph API emulator (served under `/facebook`): a Page's
//! ratings (`GET /{version}/{page-id}/ratings`), over seeded Pages that tests
//! can change while the sandbox runs.
//!
//! What it reproduces of the real API:
//! - the Page access token in the `access_token` query parameter (or a
//!   bearer header): [`FACEBOOK_ACCESS_TOKEN`] reads every Page, and
//!   [`FacebookEmulator::page_token`] only its own; anything else is error
//!   190;
//! - Graph versions: `v22.0` and later answer error 12 (the ratings edge is
//!   deprecated), as every version does after
//!   [`FacebookEmulator::deprecate_ratings_edge`]; a malformed version is
//!   error 2500;
//! - a Page whose app lost `pages_read_user_content` answers error 283
//!   ([`FacebookEmulator::revoke_permission`]); an unknown Page error 100/33;
//! - recommendations newest first: positive/negative ones without a star
//!   rating (some without text or reviewer), and legacy ratings with a 1..5
//!   `rating` and no `open_graph_story`; `created_time` written `+0000`;
//! - `fields` (only the fields asked for are served), and cursor paging with
//!   `limit` (capped at the seed's page size), `paging.cursors` and a
//!   `paging.next` URL that carries the access token, as Graph's does;
//! - Graph's error JSON `{"error":{"message","type","code","fbtrace_id"}}`;
//! - Business Use Case usage per Page: `X-Business-Use-Case-Usage`
//!   (`{"<page id>":[{"type":"pages","call_count","total_cputime",
//!   "total_time","estimated_time_to_regain_access"}]}`, percentages and
//!   minutes) on every ratings answer while usage is above 0%, counted from
//!   the Page's calls of the last 24 hours against
//!   [`DEFAULT_PAGE_CALLS_PER_DAY`], or as a test sets it
//!   ([`FacebookEmulator::set_usage`]); at 100% the call is refused with
//!   error 80001 (or 32, [`FacebookEmulator::set_throttle_code`]), counted
//!   all the same, as Meta counts calls made while throttled.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::FacebookSeed;
use crate::auth::bearer_token;
use crate::faults::{Endpoint, Faults, Intercept, intercept};
use crate::seed::seed_base_time;
use crate::server::{ConnectionKill, drop_connection};
use crate::webhooks::{WebhookDelivery, WebhookSender};

/// A token (a system user's) that reads the ratings of every Page.
pub const FACEBOOK_ACCESS_TOKEN: &str = "EAAsandbox-facebook-system-user-token";

/// The first Graph major version that answers error 12.
pub const FIRST_VERSION_WITHOUT_RATINGS: u32 = 22;

/// The calls a Page may take in 24 hours before its counted usage reaches
/// 100%: Meta's 4,800 per engaged user, for one engaged user.
pub const DEFAULT_PAGE_CALLS_PER_DAY: u32 = 4_800;

/// The Business Use Case usage a Page reports: percentages, and minutes
/// until access returns once throttled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageUsage {
    /// `call_count`, percent.
    pub call_count: u32,
    /// `total_cputime`, percent.
    pub total_cputime: u32,
    /// `total_time`, percent.
    pub total_time: u32,
    /// `estimated_time_to_regain_access`, minutes.
    pub estimated_time_to_regain_access: u32,
}

impl PageUsage {
    /// The highest of the three percentages: at 100 the Page is throttled.
    pub fn highest(&self) -> u32 {
        self.call_count.max(self.total_cputime).max(self.total_time)
    }

    /// The header's value for `page`.
    fn header(&self, page: &str) -> String {
        let mut by_page = Map::new();
        by_page.insert(
            page.to_owned(),
            json!([{
                "type": "pages",
                "call_count": self.call_count,
                "total_cputime": self.total_cputime,
                "total_time": self.total_time,
                "estimated_time_to_regain_access": self.estimated_time_to_regain_access,
            }]),
        );
        Value::Object(by_page).to_string()
    }
}

/// `limit` when the request has none (Graph's default page size).
const DEFAULT_LIMIT: usize = 25;

/// Salt of the Facebook seed stream.
const FACEBOOK_SALT: u64 = 0x6662_0000_0000_0001;

/// The first seeded Page id.
const FIRST_PAGE_ID: u64 = 100_000_000_000_001;

/// A recommendation to add with [`FacebookEmulator::add_recommendation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecommendation {
    /// `true` for `positive`, `false` for `negative`.
    pub positive: bool,
    /// `review_text`; `None` for a recommendation without text.
    pub text: Option<String>,
    /// `reviewer.name`; `None` when Graph hides the reviewer.
    pub reviewer: Option<String>,
}

#[derive(Clone, Debug)]
struct Rating {
    /// `open_graph_story.id`; `None` for legacy ratings.
    story_id: Option<String>,
    created: DateTime<Utc>,
    /// `Some(positive)` for recommendations.
    recommendation: Option<bool>,
    /// Legacy 1..5 stars.
    stars: Option<u8>,
    text: Option<String>,
    /// `(id, name)`.
    reviewer: Option<(String, String)>,
}

impl Rating {
    fn json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "created_time".into(),
            json!(self.created.format("%Y-%m-%dT%H:%M:%S+0000").to_string()),
        );
        m.insert("has_rating".into(), json!(self.stars.is_some()));
        m.insert("has_review".into(), json!(self.text.is_some()));
        if let Some(stars) = self.stars {
            m.insert("rating".into(), json!(stars));
        }
        if let Some(positive) = self.recommendation {
            m.insert(
                "recommendation_type".into(),
                json!(if positive { "positive" } else { "negative" }),
            );
        }
        if let Some(text) = &self.text {
            m.insert("review_text".into(), json!(text));
        }
        if let Some((id, name)) = &self.reviewer {
            m.insert("reviewer".into(), json!({"id": id, "name": name}));
        }
        if let Some(story) = &self.story_id {
            m.insert(
                "open_graph_story".into(),
                json!({
                    "id": story,
                    "start_time": self.created.format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
                    "type": "places.rates",
                }),
            );
        }
        Value::Object(m)
    }
}

struct Page {
    id: String,
    /// Newest first.
    ratings: Vec<Rating>,
    permission_revoked: bool,
}

impl Page {
    fn sort(&mut self) {
        self.ratings.sort_by_key(|r| std::cmp::Reverse(r.created));
    }
}

struct FacebookState {
    pages: Vec<Page>,
    page_size: usize,
    deprecated: bool,
    requests: HashMap<String, u64>,
    requests_total: u64,
    next_story: u64,
    last_stamp: DateTime<Utc>,
    /// Usage set by a test, per Page; [`FacebookState::all_pages_usage`]
    /// for every other Page; else usage counted from `calls`.
    usage: HashMap<String, PageUsage>,
    all_pages_usage: Option<PageUsage>,
    /// Each Page's ratings calls of the last 24 hours.
    calls: HashMap<String, VecDeque<Instant>>,
    calls_per_day: u32,
    /// The error code of a throttled call: 80001 (Page token, BUC) or 32.
    throttle_code: u32,
    refused_for_rate: u64,
}

impl FacebookState {
    /// Counts a ratings call to `page` now and returns the usage it
    /// reports after it.
    fn record_call(&mut self, page: &str, now: Instant) -> PageUsage {
        let calls = self.calls.entry(page.to_owned()).or_default();
        calls.push_back(now);
        self.usage_at(page, now)
    }

    /// The usage `page` reports at `now`.
    fn usage_at(&mut self, page: &str, now: Instant) -> PageUsage {
        const DAY: Duration = Duration::from_secs(24 * 60 * 60);
        if let Some(set) = self.usage.get(page).or(self.all_pages_usage.as_ref()) {
            return *set;
        }
        let calls = self.calls.entry(page.to_owned()).or_default();
        while calls
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= DAY)
        {
            calls.pop_front();
        }
        let per_day = u64::from(self.calls_per_day.max(1));
        let count = calls.len() as u64;
        let call_count = u32::try_from((count * 100).div_ceil(per_day)).unwrap_or(u32::MAX);
        // Minutes until enough calls leave the window to bring usage under
        // 100% again.
        let regain = if count >= per_day {
            let index = (count - per_day) as usize;
            calls
                .get(index)
                .map(|&t| DAY.saturating_sub(now.saturating_duration_since(t)))
                .map_or(1, |d| {
                    u32::try_from(d.as_secs().div_ceil(60))
                        .unwrap_or(u32::MAX)
                        .max(1)
                })
        } else {
            0
        };
        PageUsage {
            call_count,
            total_cputime: call_count / 2,
            total_time: call_count / 2,
            estimated_time_to_regain_access: regain,
        }
    }

    fn page(&mut self, id: &str) -> Option<&mut Page> {
        self.pages.iter_mut().find(|p| p.id == id)
    }

    fn stamp(&mut self) -> DateTime<Utc> {
        let now = Utc::now();
        let now = now - TimeDelta::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
        let next = now.max(self.last_stamp + TimeDelta::seconds(1));
        self.last_stamp = next;
        next
    }
}

/// Handle on the Facebook emulator (cheap to clone; clones share state).
#[derive(Clone)]
pub struct FacebookEmulator {
    inner: Arc<Mutex<FacebookState>>,
    faults: Faults,
    /// Page webhooks (`ratings` field) to a subscribed callback URL.
    webhooks: WebhookSender,
}

const NAMES: &[&str] = &[
    "Jamie Rivera",
    "Olu Adeyemi",
    "Kasia Nowak",
    "Liam O'Brien",
    "Mei Lin",
];

const TEXTS: &[&str] = &[
    "Best building we've lived in, the staff really care.",
    "Would not recommend: the heating was off for a week in January.",
    "Great location, friendly neighbours 😊",
    "Le quartier est calme et l'appartement lumineux.",
    "Management never answers the phone.",
];

impl FacebookEmulator {
    /// A fresh emulator with Pages seeded from `seed` and `shape`.
    pub(crate) fn new(seed: u64, shape: &FacebookSeed, faults: &Faults) -> FacebookEmulator {
        let mut rng = StdRng::seed_from_u64(seed ^ FACEBOOK_SALT);
        let base = seed_base_time();
        let mut story = 1u64;
        let pages = (0..u64::from(shape.pages))
            .map(|p| {
                let id = (FIRST_PAGE_ID + p).to_string();
                let mut ratings = Vec::new();
                for n in 0..shape.recommendations_per_page {
                    let created =
                        base - TimeDelta::seconds(rng.random_range(3_600..6 * 365 * 86_400));
                    let reviewer = (n % 4 != 3).then(|| {
                        (
                            format!("{}", 10_000_000 + rng.random_range(0..90_000_000u64)),
                            NAMES[rng.random_range(0..NAMES.len())].to_owned(),
                        )
                    });
                    ratings.push(Rating {
                        story_id: Some(format!("{id}{story:06}")),
                        created,
                        recommendation: Some(rng.random_bool(0.8)),
                        stars: None,
                        text: (n % 5 != 4)
                            .then(|| TEXTS[rng.random_range(0..TEXTS.len())].to_owned()),
                        reviewer,
                    });
                    story += 1;
                }
                for n in 0..shape.legacy_ratings_per_page {
                    // Before the August 2018 switch to recommendations.
                    let created = Utc
                        .with_ymd_and_hms(2016, 1, 1, 0, 0, 0)
                        .single()
                        .unwrap_or(base)
                        + TimeDelta::seconds(rng.random_range(0..2 * 365 * 86_400));
                    ratings.push(Rating {
                        story_id: None,
                        created,
                        recommendation: None,
                        stars: Some(1 + (n % 5) as u8),
                        text: (n % 3 != 2)
                            .then(|| TEXTS[rng.random_range(0..TEXTS.len())].to_owned()),
                        reviewer: Some((
                            format!("{}", 10_000_000 + rng.random_range(0..90_000_000u64)),
                            NAMES[rng.random_range(0..NAMES.len())].to_owned(),
                        )),
                    });
                }
                let mut page = Page {
                    id,
                    ratings,
                    permission_revoked: false,
                };
                page.sort();
                page
            })
            .collect();
        FacebookEmulator {
            inner: Arc::new(Mutex::new(FacebookState {
                pages,
                page_size: shape.page_size.max(1) as usize,
                deprecated: false,
                requests: HashMap::new(),
                requests_total: 0,
                next_story: 1,
                last_stamp: base,
                usage: HashMap::new(),
                all_pages_usage: None,
                calls: HashMap::new(),
                calls_per_day: DEFAULT_PAGE_CALLS_PER_DAY,
                throttle_code: 80001,
                refused_for_rate: 0,
            })),
            faults: faults.scoped(Endpoint::FACEBOOK),
            webhooks: WebhookSender::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FacebookState> {
        self.inner.lock().expect("facebook emulator mutex poisoned")
    }

    /// Page ids, in creation order.
    pub fn page_ids(&self) -> Vec<String> {
        self.lock().pages.iter().map(|p| p.id.clone()).collect()
    }

    /// The Page access token of `page`: it reads only that Page.
    pub fn page_token(page: &str) -> String {
        format!("EAAsandbox-page-token-{page}")
    }

    /// Every rating of `page` with every field, newest first.
    pub fn ratings(&self, page: &str) -> Vec<Value> {
        self.lock()
            .page(page)
            .map(|p| p.ratings.iter().map(Rating::json).collect())
            .unwrap_or_default()
    }

    /// Adds a recommendation created now and returns its story id; `None`
    /// for an unknown Page.
    pub fn add_recommendation(&self, page: &str, rec: NewRecommendation) -> Option<String> {
        let mut state = self.lock();
        let number = state.next_story;
        let created = state.stamp();
        let page = state.page(page)?;
        let story_id = format!("{}9{number:05}", page.id);
        page.ratings.push(Rating {
            story_id: Some(story_id.clone()),
            created,
            recommendation: Some(rec.positive),
            stars: None,
            text: rec.text,
            reviewer: rec
                .reviewer
                .map(|name| (format!("{}", 99_000_000 + number), name)),
        });
        let event = ratings_event(&page.id, "add", page.ratings.last());
        page.sort();
        state.next_story += 1;
        drop(state);
        self.webhooks.fire(event);
        Some(story_id)
    }

    /// Adds a recommendation created now as Graph serves ratings from before
    /// December 2018 (and any rating read with its default fields): no
    /// `open_graph_story` and no `reviewer` (`rec.reviewer` is ignored).
    /// False for an unknown Page.
    pub fn add_storyless_recommendation(&self, page: &str, rec: NewRecommendation) -> bool {
        let mut state = self.lock();
        let created = state.stamp();
        let Some(page) = state.page(page) else {
            return false;
        };
        page.ratings.push(Rating {
            story_id: None,
            created,
            recommendation: Some(rec.positive),
            stars: None,
            text: rec.text,
            reviewer: None,
        });
        page.sort();
        true
    }

    /// Changes the text and/or type of the recommendation with this story
    /// id (its `created_time` stays). False if there is none.
    pub fn edit_recommendation(
        &self,
        story_id: &str,
        text: Option<String>,
        positive: Option<bool>,
    ) -> bool {
        let mut state = self.lock();
        let Some((page_id, rating)) = state
            .pages
            .iter_mut()
            .flat_map(|p| {
                let id = p.id.clone();
                p.ratings.iter_mut().map(move |r| (id.clone(), r))
            })
            .find(|(_, r)| r.story_id.as_deref() == Some(story_id))
        else {
            return false;
        };
        if let Some(text) = text {
            rating.text = Some(text);
        }
        if let Some(positive) = positive {
            rating.recommendation = Some(positive);
        }
        let event = ratings_event(&page_id, "edit", Some(rating));
        drop(state);
        self.webhooks.fire(event);
        true
    }

    /// Removes the recommendation with this story id; false if there is none.
    pub fn delete_recommendation(&self, story_id: &str) -> bool {
        let mut state = self.lock();
        let mut events = Vec::new();
        for page in &mut state.pages {
            if let Some(rating) = page
                .ratings
                .iter()
                .find(|r| r.story_id.as_deref() == Some(story_id))
            {
                events.push(ratings_event(&page.id, "remove", Some(rating)));
            }
            page.ratings
                .retain(|r| r.story_id.as_deref() != Some(story_id));
        }
        drop(state);
        let found = !events.is_empty();
        for event in events {
            self.webhooks.fire(event);
        }
        found
    }

    /// The app loses (or regains) `pages_read_user_content` on `page`:
    /// its ratings answer error 283.
    pub fn revoke_permission(&self, page: &str, revoked: bool) {
        if let Some(page) = self.lock().page(page) {
            page.permission_revoked = revoked;
        }
    }

    /// Every Graph version answers the ratings edge with error 12, as Meta
    /// will once it retires the last version that serves it.
    pub fn deprecate_ratings_edge(&self, deprecated: bool) {
        self.lock().deprecated = deprecated;
    }

    /// Sets the usage `page` reports (`None` page: every Page without its
    /// own), or with `None` usage goes back to usage counted from calls. At
    /// 100% in any metric, its calls are refused.
    pub fn set_usage(&self, page: Option<&str>, usage: Option<PageUsage>) {
        let mut state = self.lock();
        match (page, usage) {
            (Some(page), Some(usage)) => {
                state.usage.insert(page.to_owned(), usage);
            }
            (Some(page), None) => {
                state.usage.remove(page);
            }
            (None, usage) => {
                state.all_pages_usage = usage;
                if usage.is_none() {
                    state.usage.clear();
                }
            }
        }
    }

    /// The calls in 24 hours that bring a Page's counted usage to 100%
    /// (default [`DEFAULT_PAGE_CALLS_PER_DAY`]).
    pub fn set_calls_per_day(&self, calls: u32) {
        self.lock().calls_per_day = calls.max(1);
    }

    /// The error code of a throttled call: 80001 (the default: Page
    /// tokens, Business Use Case) or 32 (Page-level throttling of user
    /// tokens, as in restfb/restfb#734).
    pub fn set_throttle_code(&self, code: u32) {
        self.lock().throttle_code = code;
    }

    /// The usage `page` reports now (without counting a call).
    pub fn usage(&self, page: &str) -> PageUsage {
        self.lock().usage_at(page, Instant::now())
    }

    /// Ratings calls refused because their Page was throttled, since start.
    pub fn refused_for_rate(&self) -> u64 {
        self.lock().refused_for_rate
    }

    /// Ratings calls for `page` that reached the handler.
    pub fn requests(&self, page: &str) -> u64 {
        self.lock().requests.get(page).copied().unwrap_or(0)
    }

    /// All ratings calls that reached the handler.
    pub fn requests_total(&self) -> u64 {
        self.lock().requests_total
    }

    /// The fault plan, scoped to the Facebook endpoint.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Subscribes a callback URL to the Pages' `ratings` webhooks as Meta
    /// does: a verification request with `verify_token` first (the URL must
    /// echo `hub.challenge`), then every added, edited or removed
    /// recommendation is POSTed there, signed with `app_secret`.
    pub async fn subscribe_webhook(
        &self,
        callback_url: &str,
        verify_token: &str,
        app_secret: &str,
    ) -> Result<(), String> {
        self.webhooks
            .subscribe_facebook(callback_url, verify_token, app_secret)
            .await
    }

    /// Stops sending webhooks.
    pub fn unsubscribe_webhook(&self) {
        self.webhooks.unsubscribe();
    }

    /// Every webhook delivery answered (or failed) so far, oldest first.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.webhooks.deliveries()
    }

    /// Webhook deliveries sent and not yet answered.
    pub fn webhooks_in_flight(&self) -> usize {
        self.webhooks.in_flight()
    }
}

/// The body of a Page webhook for one `ratings` change (see `webhooks`).
fn ratings_event(page_id: &str, verb: &str, rating: Option<&Rating>) -> String {
    let now = Utc::now().timestamp();
    let mut value = Map::new();
    value.insert("item".into(), json!("rating"));
    value.insert("verb".into(), json!(verb));
    if let Some(rating) = rating {
        value.insert("created_time".into(), json!(rating.created.timestamp()));
        if let Some((id, name)) = &rating.reviewer {
            value.insert("reviewer_id".into(), json!(id));
            value.insert("reviewer_name".into(), json!(name));
        }
        if let Some(positive) = rating.recommendation {
            value.insert(
                "recommendation_type".into(),
                json!(if positive { "positive" } else { "negative" }),
            );
        }
        if let Some(stars) = rating.stars {
            value.insert("rating".into(), json!(stars));
        }
        if let Some(text) = &rating.text {
            value.insert("review_text".into(), json!(text));
        }
        if let Some(story) = &rating.story_id {
            value.insert("open_graph_story_id".into(), json!(story));
        }
    }
    json!({
        "object": "page",
        "entry": [{
            "id": page_id,
            "time": now,
            "changes": [{"field": "ratings", "value": Value::Object(value)}],
        }],
    })
    .to_string()
}

/// Routes of the emulator, relative to `/facebook`.
pub(crate) fn router(emulator: FacebookEmulator) -> Router {
    Router::new()
        .route("/{version}/{page}/ratings", get(ratings))
        .with_state(emulator)
}

fn trace_id() -> String {
    format!("Sbx{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

fn graph_error_body(code: u32, subcode: Option<u32>, kind: &str, message: &str) -> Value {
    let mut error = json!({
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": trace_id(),
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    json!({ "error": error })
}

fn graph_error(
    status: StatusCode,
    code: u32,
    subcode: Option<u32>,
    kind: &str,
    message: &str,
) -> Response {
    (status, Json(graph_error_body(code, subcode, kind, message))).into_response()
}

fn fault_body(status: StatusCode) -> Value {
    match status.as_u16() {
        429 => graph_error_body(
            4,
            None,
            "OAuthException",
            "(#4) Application request limit reached",
        ),
        _ => {
            let mut body = graph_error_body(
                2,
                None,
                "OAuthException",
                "An unexpected error has occurred. Please retry your request later.",
            );
            body["error"]["is_transient"] = json!(true);
            body
        }
    }
}

/// `vMAJOR.MINOR` → MAJOR.
fn graph_major(version: &str) -> Option<u32> {
    let (major, minor) = version.strip_prefix('v')?.split_once('.')?;
    minor.parse::<u32>().ok()?;
    major.parse().ok()
}

fn encode_cursor(offset: usize) -> String {
    format!("c:{offset}")
        .bytes()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    if !cursor.len().is_multiple_of(2) || !cursor.is_ascii() {
        return None;
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("c:")?
        .parse()
        .ok()
}

async fn ratings(
    State(emulator): State<FacebookEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path((version, page)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    {
        let mut state = emulator.lock();
        state.requests_total += 1;
        *state.requests.entry(page.clone()).or_default() += 1;
    }
    match intercept(emulator.faults.take(Endpoint::FacebookRatings), fault_body).await {
        Intercept::Proceed => {}
        Intercept::Respond(response) => return response,
        Intercept::Drop => return drop_connection(kill.as_deref()).await,
    }

    let Some(major) = graph_major(&version) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            2500,
            None,
            "OAuthException",
            &format!("Unknown path components: /{version}/ratings"),
        );
    };
    let token = query
        .get("access_token")
        .map(String::as_str)
        .or_else(|| bearer_token(&headers));
    let page_token = FacebookEmulator::page_token(&page);
    match token {
        Some(t) if t == FACEBOOK_ACCESS_TOKEN || t == page_token => {}
        Some(t) if t.starts_with("EAAsandbox-page-token-") => {
            return graph_error(
                StatusCode::FORBIDDEN,
                200,
                None,
                "OAuthException",
                "(#200) The access token does not belong to this Page",
            );
        }
        _ => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                190,
                None,
                "OAuthException",
                "Invalid OAuth access token - Cannot parse access token",
            );
        }
    }

    let mut state = emulator.lock();
    if major >= FIRST_VERSION_WITHOUT_RATINGS || state.deprecated {
        drop(state);
        return graph_error(
            StatusCode::BAD_REQUEST,
            12,
            None,
            "OAuthException",
            &format!(
                "(#12) ratings field is deprecated for versions v{FIRST_VERSION_WITHOUT_RATINGS}.0 and higher"
            ),
        );
    }
    let page_size = state.page_size;
    let Some(found) = state.page(&page) else {
        drop(state);
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            Some(33),
            "GraphMethodException",
            &format!(
                "Unsupported get request. Object with ID '{page}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
            ),
        );
    };
    if found.permission_revoked {
        drop(state);
        return graph_error(
            StatusCode::FORBIDDEN,
            283,
            None,
            "OAuthException",
            "(#283) Requires pages_read_user_content permission to manage the object",
        );
    }
    // Counted even when refused: Meta counts calls made while throttled.
    let usage = state.record_call(&page, Instant::now());
    if usage.highest() >= 100 {
        state.refused_for_rate += 1;
        let code = state.throttle_code;
        drop(state);
        let message = match code {
            32 => "(#32) Page request limit reached".to_owned(),
            80001 => "(#80001) There have been too many calls to this Page account. Wait a bit and try again. For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting.".to_owned(),
            other => format!("(#{other}) Request limit reached"),
        };
        let response = graph_error(
            StatusCode::BAD_REQUEST,
            code,
            None,
            "OAuthException",
            &message,
        );
        return with_usage(response, &page, &usage);
    }
    let Some(found) = state.page(&page) else {
        drop(state);
        return graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            1,
            None,
            "OAuthException",
            "An unknown error occurred",
        );
    };
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(l)) if l > 0 => l,
        Some(_) => {
            drop(state);
            return graph_error(
                StatusCode::BAD_REQUEST,
                100,
                None,
                "OAuthException",
                "(#100) Param limit must be a positive integer",
            );
        }
    }
    .min(page_size);
    let offset = match query.get("after") {
        None => 0,
        Some(cursor) => match decode_cursor(cursor) {
            Some(offset) => offset,
            None => {
                drop(state);
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    100,
                    None,
                    "OAuthException",
                    "(#100) The after cursor is invalid",
                );
            }
        },
    };
    let fields: Option<HashSet<String>> = query
        .get("fields")
        .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    let data: Vec<Value> = found
        .ratings
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| {
            let mut value = r.json();
            if let (Some(fields), Value::Object(m)) = (&fields, &mut value) {
                m.retain(|k, _| fields.contains(k));
            }
            value
        })
        .collect();
    let end = offset + data.len();
    let more = end < found.ratings.len();
    drop(state);

    let mut body = Map::new();
    body.insert("data".into(), Value::Array(data));
    let mut paging = Map::new();
    paging.insert(
        "cursors".into(),
        json!({"before": encode_cursor(offset), "after": encode_cursor(end)}),
    );
    if more {
        // Graph's next link repeats the query, access token included.
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        let mut next_query: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| *k != "after")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        next_query.sort();
        next_query.push(("after".into(), encode_cursor(end)));
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next_query)
            .finish();
        paging.insert(
            "next".into(),
            json!(format!(
                "http://{host}/facebook/{version}/{page}/ratings?{encoded}"
            )),
        );
    }
    body.insert("paging".into(), Value::Object(paging));
    with_usage(Json(Value::Object(body)).into_response(), &page, &usage)
}

/// Adds `X-Business-Use-Case-Usage` for `page` unless usage is 0%: Meta
/// sends no header while a Page's usage is effectively nothing.
fn with_usage(mut response: Response, page: &str, usage: &PageUsage) -> Response {
    if usage.highest() > 0
        && let Ok(value) = axum::http::HeaderValue::from_str(&usage.header(page))
    {
        response
            .headers_mut()
            .insert("x-business-use-case-usage", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for offset in [0, 25, 12_345] {
            assert_eq!(decode_cursor(&encode_cursor(offset)), Some(offset));
        }
        for garbage in ["", "zz", "abc", "633A"] {
            assert_eq!(decode_cursor(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn versions_parse() {
        assert_eq!(graph_major("v21.0"), Some(21));
        assert_eq!(graph_major("v22.0"), Some(22));
        assert_eq!(graph_major("21.0"), None);
        assert_eq!(graph_major("vX.0"), None);
    }

    #[test]
    fn seeded_pages_mix_recommendations_and_legacy_ratings() {
        let e = FacebookEmulator::new(
            42,
            &FacebookSeed {
                pages: 2,
                recommendations_per_page: 20,
                legacy_ratings_per_page: 6,
                page_size: 10,
            },
            &Faults::new(42),
        );
        let page = e.page_ids()[0].clone();
        let ratings = e.ratings(&page);
        assert_eq!(ratings.len(), 26);
        assert!(
            ratings
                .iter()
                .any(|r| r["recommendation_type"] == "positive")
        );
        assert!(
            ratings
                .iter()
                .any(|r| r["recommendation_type"] == "negative")
        );
        assert!(ratings.iter().any(|r| r.get("review_text").is_none()));
        assert!(ratings.iter().any(|r| r.get("reviewer").is_none()));
        let legacy: Vec<&Value> = ratings
            .iter()
            .filter(|r| r.get("rating").is_some())
            .collect();
        assert_eq!(legacy.len(), 6);
        assert!(legacy.iter().all(|r| r.get("open_graph_story").is_none()));
        assert!(ratings.iter().all(|r| {
            r["created_time"]
                .as_str()
                .is_some_and(|t| t.ends_with("+0000"))
        }));
        let times: Vec<&str> = ratings
            .iter()
            .filter_map(|r| r["created_time"].as_str())
            .collect();
        let mut sorted = times.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(times, sorted, "newest first");
    }
}
