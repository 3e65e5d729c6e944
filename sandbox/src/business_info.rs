//! The Business Information emulator (served under `/google-bi`):
//! `GET /v1/accounts/{a}/locations`, the listing that location discovery
//! reads, over the Google emulator's own accounts and locations (one state:
//! a location added to the Google emulator is listed here at once).
//!
//! As the real API: the access tokens are the Google emulator's (one OAuth
//! client for both APIs), `readMask` is required, `pageSize` is at most 100
//! (absent or 0: 10, the documented default), `name` is `locations/{id}`
//! without the account, fields with default values are omitted (a location
//! without a store code has no `storeCode`, an account without locations
//! answers `{}`), an account the caller cannot see answers 403
//! `PERMISSION_DENIED`, and every error has Google's shape.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{Map, Value, json};

use crate::auth::bearer_token;
use crate::faults::{Endpoint, Faults, Intercept, intercept};
use crate::google::{
    BusinessLocation, GoogleEmulator, decode_page_token, encode_page_token, google_error,
    list_fault_body,
};
use crate::server::{ConnectionKill, drop_connection};

/// The documented maximum `pageSize` of `accounts.locations.list`.
const MAX_PAGE_SIZE: usize = 100;
/// The documented default `pageSize`.
const DEFAULT_PAGE_SIZE: usize = 10;
/// The fields this emulator knows how to serve in `readMask`.
const KNOWN_FIELDS: &[&str] = &["name", "title", "storeCode"];

/// Handle on the Business Information emulator (cheap to clone).
#[derive(Clone)]
pub struct BusinessInfoEmulator {
    google: GoogleEmulator,
    faults: Faults,
    /// List calls that reached the handler, faulted and failed included.
    requests: Arc<AtomicU64>,
}

impl BusinessInfoEmulator {
    /// An emulator over `google`'s accounts and locations.
    pub(crate) fn new(google: GoogleEmulator, faults: &Faults) -> BusinessInfoEmulator {
        BusinessInfoEmulator {
            google,
            faults: faults.scoped(Endpoint::GOOGLE),
            requests: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Location list calls that reached the handler.
    pub fn list_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Routes of the emulator, relative to `/google-bi`.
pub(crate) fn router(emulator: BusinessInfoEmulator) -> Router {
    Router::new()
        .route("/v1/accounts/{account}/locations", get(list))
        .with_state(emulator)
}

/// `pageSize`: absent or 0 means the default, larger values are clamped.
fn parse_page_size(raw: Option<&String>) -> Option<usize> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Some(DEFAULT_PAGE_SIZE);
    };
    match raw.parse::<i64>().ok()? {
        ..0 => None,
        0 => Some(DEFAULT_PAGE_SIZE),
        n => Some(usize::try_from(n).map_or(MAX_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE))),
    }
}

/// `readMask`: required, comma-separated, known fields only.
fn parse_read_mask(raw: Option<&str>) -> Result<Vec<&str>, String> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Err("Request contains an invalid argument: read_mask is required.".into());
    };
    let fields: Vec<&str> = raw.split(',').map(str::trim).collect();
    match fields.iter().find(|f| !KNOWN_FIELDS.contains(f)) {
        Some(bad) => Err(format!("Invalid field mask path: {bad}")),
        None => Ok(fields),
    }
}

async fn list(
    State(emulator): State<BusinessInfoEmulator>,
    kill: Option<Extension<ConnectionKill>>,
    Path(account): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    emulator.requests.fetch_add(1, Ordering::Relaxed);
    let fault = emulator.faults.take(Endpoint::GoogleBusinessInfo);
    match intercept(fault, list_fault_body).await {
        Intercept::Proceed => {}
        Intercept::Respond(response) => return response,
        Intercept::Drop => return drop_connection(kill.as_deref()).await,
    }

    if !bearer_token(&headers).is_some_and(|t| emulator.google.token_valid(t)) {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials.",
        );
    }
    let fields = match parse_read_mask(query.get("readMask").map(String::as_str)) {
        Ok(fields) => fields,
        Err(message) => return google_error(StatusCode::BAD_REQUEST, &message),
    };
    let Some(page_size) = parse_page_size(query.get("pageSize")) else {
        return google_error(StatusCode::BAD_REQUEST, "Invalid value for pageSize.");
    };
    let offset = match query.get("pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => match decode_page_token(token) {
            Some(offset) => offset,
            None => return google_error(StatusCode::BAD_REQUEST, "Invalid page token."),
        },
    };
    let account = format!("accounts/{account}");
    let Some(locations) = emulator.google.business_locations(&account) else {
        return google_error(StatusCode::FORBIDDEN, "The caller does not have permission");
    };
    Json(list_page(&locations, &fields, offset, page_size)).into_response()
}

/// One `ListLocationsResponse`, omitting default-valued fields.
fn list_page(
    locations: &[BusinessLocation],
    fields: &[&str],
    offset: usize,
    page_size: usize,
) -> Value {
    let mut response = Map::new();
    let page: Vec<Value> = locations
        .iter()
        .skip(offset)
        .take(page_size)
        .map(|l| {
            let mut out = Map::new();
            if fields.contains(&"name") {
                // v1 names a location without its account.
                let id = l.name.rsplit('/').next().unwrap_or_default();
                out.insert("name".into(), json!(format!("locations/{id}")));
            }
            if fields.contains(&"title") && !l.title.is_empty() {
                out.insert("title".into(), json!(l.title));
            }
            if fields.contains(&"storeCode")
                && let Some(code) = &l.store_code
            {
                out.insert("storeCode".into(), json!(code));
            }
            Value::Object(out)
        })
        .collect();
    if !page.is_empty() {
        response.insert("locations".into(), Value::Array(page));
    }
    let end = offset.saturating_add(page_size);
    if end < locations.len() {
        response.insert("nextPageToken".into(), json!(encode_page_token(end)));
    }
    Value::Object(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(n: u32, store_code: Option<&str>) -> BusinessLocation {
        BusinessLocation {
            name: format!("accounts/1/locations/{n}"),
            title: format!("T{n}"),
            store_code: store_code.map(str::to_owned),
        }
    }

    #[test]
    fn page_size_defaults_to_10_and_clamps_at_100() {
        let p = |s: &str| parse_page_size(Some(&s.to_owned()));
        assert_eq!(parse_page_size(None), Some(10));
        assert_eq!(p("0"), Some(10));
        assert_eq!(p("100"), Some(100));
        assert_eq!(p("101"), Some(100));
        assert_eq!(p("-1"), None);
        assert_eq!(p("x"), None);
    }

    #[test]
    fn read_mask_is_required_and_known() {
        let m = |s| parse_read_mask(Some(s));
        assert_eq!(
            m("name,title,storeCode"),
            Ok(vec!["name", "title", "storeCode"])
        );
        assert!(parse_read_mask(None).is_err());
        assert!(m(" ").is_err());
        assert!(m("name,phoneNumbers").is_err());
    }

    #[test]
    fn pages_omit_defaults_and_drop_the_account_from_names() {
        let all = [
            location(1, Some("s1")),
            location(2, None),
            location(3, None),
        ];
        let first = list_page(&all, &["name", "title", "storeCode"], 0, 2);
        assert_eq!(
            first["locations"],
            json!([
                {"name": "locations/1", "title": "T1", "storeCode": "s1"},
                {"name": "locations/2", "title": "T2"},
            ])
        );
        let token = first["nextPageToken"].as_str().expect("a next page");
        let offset = decode_page_token(token).expect("token");
        let last = list_page(&all, &["name"], offset, 2);
        assert_eq!(last, json!({"locations": [{"name": "locations/3"}]}));
        assert_eq!(list_page(&[], &["name"], 0, 2), json!({}));
    }
}
