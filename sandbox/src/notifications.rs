//! The Business Profile Notifications API emulator (served under
//! `/google-notifications`), and the hub through which the Google emulator
//! publishes review notifications to the Pub/Sub emulator.
//!
//! REST, as in the reference (developers.google.com/my-business/reference/notifications/rest/v1):
//! - `GET /v1/accounts/{a}/notificationSetting` → `{"name":"accounts/{a}/notificationSetting",
//!   "pubsubTopic":..., "notificationTypes":[...]}` (unset fields left out);
//! - `PATCH /v1/accounts/{a}/notificationSetting?updateMask=pubsubTopic,notificationTypes`
//!   with a `NotificationSetting` body; only the masked fields change; the
//!   topic must exist in the Pub/Sub emulator (the real API also needs
//!   `mybusiness-api-pubsub@system.gserviceaccount.com` to be allowed to
//!   publish to it); an empty topic or type list stops notifications.
//!
//! Both need a Google OAuth token (the Business Profile scope); an unknown
//! account answers 403 like the other Business Profile APIs.
//!
//! When an account's setting names a topic and lists the type,
//! `add_review` publishes `NEW_REVIEW` and `edit_review` `UPDATED_REVIEW`,
//! after the review is visible in the reviews list. The message data is
//! JSON naming the location and the review. Google's reference describes
//! those fields only in prose ("The reviewName field on the notification
//! will provide the resource name of the review that was added, and
//! locationName will have the location's resource name", NotificationType in
//! developers.google.com/my-business/reference/rest/v4/Notifications; the v1
//! page says `review_name`/`location_name`); it shows no sample message, and
//! public receivers disagree on the keys (`notificationType`+`locationName`+
//! `reviewName`, `type`+`location`+`review`, `locationName` as
//! `locations/{l}` without the account). UNCONFIRMED, then: the emulator
//! publishes the documented names by default
//! (`{"notificationType","locationName","reviewName"}`) and the short form
//! (`{"type","location","review"}`) after
//! [`NotificationsEmulator::set_style`], so the daemon is tested against both.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::auth::bearer_token;
use crate::google::{GoogleEmulator, google_error};
use crate::pubsub::PubSubEmulator;

/// The notification types the API knows (`NotificationType`).
const KNOWN_TYPES: &[&str] = &[
    "NOTIFICATION_TYPE_UNSPECIFIED",
    "GOOGLE_UPDATE",
    "NEW_REVIEW",
    "UPDATED_REVIEW",
    "NEW_CUSTOMER_MEDIA",
    "NEW_QUESTION",
    "UPDATED_QUESTION",
    "NEW_ANSWER",
    "UPDATED_ANSWER",
    "DUPLICATE_LOCATION",
    "LOSS_OF_VOICE_OF_MERCHANT",
    "VOICE_OF_MERCHANT_UPDATED",
];

/// Which keys the published notification JSON uses (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NotificationStyle {
    /// `{"notificationType","locationName","reviewName"}`: the names in
    /// Google's reference.
    #[default]
    Documented,
    /// `{"type","location","review"}`.
    Short,
}

/// A change to a review that may be notified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReviewChange {
    New,
    Updated,
}

impl ReviewChange {
    fn type_name(self) -> &'static str {
        match self {
            ReviewChange::New => "NEW_REVIEW",
            ReviewChange::Updated => "UPDATED_REVIEW",
        }
    }
}

#[derive(Clone, Default)]
struct Setting {
    topic: Option<String>,
    types: Vec<String>,
}

#[derive(Default)]
struct HubState {
    settings: HashMap<String, Setting>,
    pubsub: Option<PubSubEmulator>,
    style: NotificationStyle,
    published: u64,
    /// Accounts the API answers 403 for, though the Google emulator knows
    /// them (a token that may read an account's reviews but not manage it).
    refused: HashSet<String>,
    /// Where both methods answer a 307 to, when set (a hijacked endpoint).
    redirect: Option<String>,
}

/// Shared by the Google emulator (which reports review changes) and the
/// Notifications API (which changes the settings). Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct NotificationHub {
    inner: Arc<Mutex<HubState>>,
}

impl NotificationHub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.inner.lock().expect("notification hub mutex poisoned")
    }

    /// Where notifications are published from now on.
    pub(crate) fn connect(&self, pubsub: PubSubEmulator) {
        self.lock().pubsub = Some(pubsub);
    }

    /// Publishes the notification of a change to the review named
    /// `accounts/{a}/locations/{l}/reviews/{r}`, if its account asked for it.
    /// Call it without holding the Google emulator's lock.
    pub(crate) fn review_changed(&self, change: ReviewChange, review_name: &str) {
        let parts: Vec<&str> = review_name.split('/').collect();
        let ["accounts", account, "locations", location, "reviews", _] = parts[..] else {
            return;
        };
        let account_name = format!("accounts/{account}");
        let location_name = format!("accounts/{account}/locations/{location}");
        let (topic, pubsub, style) = {
            let state = self.lock();
            let Some(setting) = state.settings.get(&account_name) else {
                return;
            };
            let (Some(topic), Some(pubsub)) = (setting.topic.clone(), state.pubsub.clone()) else {
                return;
            };
            if !setting.types.iter().any(|t| t == change.type_name()) {
                return;
            }
            (topic, pubsub, state.style)
        };
        let data = match style {
            NotificationStyle::Documented => json!({
                "notificationType": change.type_name(),
                "locationName": location_name,
                "reviewName": review_name,
            }),
            NotificationStyle::Short => json!({
                "type": change.type_name(),
                "location": location_name,
                "review": review_name,
            }),
        };
        if pubsub
            .publish(&topic, data.to_string().as_bytes(), BTreeMap::new())
            .is_some()
        {
            self.lock().published += 1;
        }
    }
}

/// Handle on the Notifications API emulator (cheap to clone).
#[derive(Clone)]
pub struct NotificationsEmulator {
    hub: NotificationHub,
    google: GoogleEmulator,
    pubsub: PubSubEmulator,
}

impl NotificationsEmulator {
    pub(crate) fn new(google: GoogleEmulator, pubsub: PubSubEmulator) -> NotificationsEmulator {
        let hub = google.notifications.clone();
        hub.connect(pubsub.clone());
        NotificationsEmulator {
            hub,
            google,
            pubsub,
        }
    }

    /// Sets an account's notification setting directly, as the PATCH does
    /// with both fields masked. False if the topic does not exist.
    pub fn set_setting(&self, account: &str, topic: &str, types: &[&str]) -> bool {
        if !self.pubsub.has_topic(topic) {
            return false;
        }
        self.hub.lock().settings.insert(
            account_name(account),
            Setting {
                topic: Some(topic.to_owned()),
                types: types.iter().map(|t| (*t).to_owned()).collect(),
            },
        );
        true
    }

    /// `(pubsubTopic, notificationTypes)` of an account, if set.
    pub fn setting(&self, account: &str) -> Option<(Option<String>, Vec<String>)> {
        self.hub
            .lock()
            .settings
            .get(&account_name(account))
            .map(|s| (s.topic.clone(), s.types.clone()))
    }

    /// From now on, answers 403 to both methods for `account`, as for a
    /// token that may read its reviews but not manage its settings.
    pub fn refuse_account(&self, account: &str) {
        self.hub.lock().refused.insert(account_name(account));
    }

    /// From now on, answers every request with a 307 to the same path at
    /// `origin` (e.g. [`crate::Elsewhere::base_url`]); nothing changes.
    pub fn redirect_to(&self, origin: &str) {
        self.hub.lock().redirect = Some(origin.trim_end_matches('/').to_owned());
    }

    /// Which keys notifications are published with from now on.
    pub fn set_style(&self, style: NotificationStyle) {
        self.hub.lock().style = style;
    }

    /// Notifications published so far.
    pub fn published(&self) -> u64 {
        self.hub.lock().published
    }
}

fn account_name(account: &str) -> String {
    if account.starts_with("accounts/") {
        account.to_owned()
    } else {
        format!("accounts/{account}")
    }
}

/// Routes relative to `/google-notifications`.
pub(crate) fn router(emulator: NotificationsEmulator) -> Router {
    Router::new()
        .route(
            "/v1/accounts/{account}/notificationSetting",
            get(get_setting).patch(patch_setting),
        )
        .with_state(emulator)
}

fn setting_json(account: &str, setting: Option<&Setting>) -> Value {
    let mut m = Map::new();
    m.insert(
        "name".into(),
        json!(format!("{account}/notificationSetting")),
    );
    if let Some(setting) = setting {
        if let Some(topic) = setting.topic.as_ref().filter(|t| !t.is_empty()) {
            m.insert("pubsubTopic".into(), json!(topic));
        }
        if !setting.types.is_empty() {
            m.insert("notificationTypes".into(), json!(setting.types));
        }
    }
    Value::Object(m)
}

/// The bearer and account checks both methods share.
fn check(emulator: &NotificationsEmulator, headers: &HeaderMap, account: &str) -> Option<Response> {
    if let Some(origin) = emulator.hub.lock().redirect.clone() {
        return Some(
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(
                    axum::http::header::LOCATION,
                    format!("{origin}/v1/{account}/notificationSetting"),
                )],
            )
                .into_response(),
        );
    }
    if !bearer_token(headers).is_some_and(|t| emulator.google.token_valid(t)) {
        return Some(google_error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials.",
        ));
    }
    if !emulator.google.has_account(account) || emulator.hub.lock().refused.contains(account) {
        return Some(google_error(
            StatusCode::FORBIDDEN,
            "The caller does not have permission",
        ));
    }
    None
}

async fn get_setting(
    State(emulator): State<NotificationsEmulator>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    let account = account_name(&account);
    if let Some(response) = check(&emulator, &headers, &account) {
        return response;
    }
    let state = emulator.hub.lock();
    Json(setting_json(&account, state.settings.get(&account))).into_response()
}

async fn patch_setting(
    State(emulator): State<NotificationsEmulator>,
    Path(account): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let account = account_name(&account);
    if let Some(response) = check(&emulator, &headers, &account) {
        return response;
    }
    let Some(mask) = query.get("updateMask").filter(|m| !m.trim().is_empty()) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "Request contains an invalid argument: update_mask is required.",
        );
    };
    let fields: Vec<&str> = mask.split(',').map(str::trim).collect();
    if let Some(unknown) = fields.iter().find(|f| {
        !matches!(
            **f,
            "pubsubTopic" | "notificationTypes" | "pubsub_topic" | "notification_types"
        )
    }) {
        return google_error(
            StatusCode::BAD_REQUEST,
            &format!("Request contains an invalid argument: invalid update_mask field {unknown}."),
        );
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => {
            return google_error(
                StatusCode::BAD_REQUEST,
                &format!("Invalid JSON payload received. {e}"),
            );
        }
    };
    let mut setting = emulator
        .hub
        .lock()
        .settings
        .get(&account)
        .cloned()
        .unwrap_or_default();
    if fields
        .iter()
        .any(|f| matches!(*f, "pubsubTopic" | "pubsub_topic"))
    {
        let topic = body
            .get("pubsubTopic")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if !topic.is_empty() && !emulator.pubsub.has_topic(&topic) {
            return google_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Request contains an invalid argument: pubsub_topic {topic} does not exist or mybusiness-api-pubsub@system.gserviceaccount.com cannot publish to it."
                ),
            );
        }
        setting.topic = (!topic.is_empty()).then_some(topic);
    }
    if fields
        .iter()
        .any(|f| matches!(*f, "notificationTypes" | "notification_types"))
    {
        let types: Vec<String> = match body.get("notificationTypes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut types = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(t) if KNOWN_TYPES.contains(&t) => types.push(t.to_owned()),
                        _ => {
                            return google_error(
                                StatusCode::BAD_REQUEST,
                                &format!(
                                    "Invalid value at 'notification_setting.notification_types': {item}"
                                ),
                            );
                        }
                    }
                }
                types
            }
            Some(other) => {
                return google_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid value at 'notification_setting.notification_types': {other}"),
                );
            }
        };
        setting.types = types;
    }
    let answer = setting_json(&account, Some(&setting));
    emulator.hub.lock().settings.insert(account, setting);
    Json(answer).into_response()
}
