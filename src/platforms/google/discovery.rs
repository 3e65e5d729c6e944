//! Location discovery for `google_business_profile` sources with
//! `discover_accounts`: every location of those accounts, listed with the
//! Business Information API on each pass, so that a portfolio of hundreds of
//! properties needs no `[[source.location]]` per property.
//!
//! `GET {business_information_base_url}/v1/{account}/locations?readMask=name,title,storeCode&pageSize=100`,
//! paged with `nextPageToken`, with the source's own bearer token, rate limit
//! and retries (the same [`PlatformHttp`](super::super::http::PlatformHttp)
//! as the reviews list: Google counts both against the project's quota).
//!
//! What becomes of a discovered location (its group, or held) is decided by
//! the caller (`crate::locations`); this module only reads Google's answer.
//!
//! Where Google's documentation is thin, this module assumes:
//! - `name` is `locations/{id}` (v1 drops the account); a name that already
//!   carries `accounts/{a}/` is taken as it is;
//! - a `storeCode` that is empty or only blanks is no store code;
//! - the page size cap is 100 (documented); no `locations` field is an
//!   empty page (proto3 JSON omits empty lists).

use super::{GoogleClient, google_error};
use crate::domain::LocationId;
use crate::platforms::{DiscoveredLocation, Discovery, PlatformError};
use serde_json::Value;
use std::collections::HashSet;
use url::Url;

/// Locations per list request: the documented maximum.
pub(super) const LOCATIONS_PAGE_SIZE: u32 = 100;

/// The most pages one account's listing reads: 100,000 locations, far past
/// any real portfolio, so only a server that pages forever reaches it.
pub(super) const MAX_LOCATION_PAGES: u32 = 1_000;

/// The fields asked for (`readMask` is mandatory on this API).
const READ_MASK: &str = "name,title,storeCode";

impl GoogleClient {
    /// Lists every location of every `discover_accounts` account. One
    /// account's failure does not stop the others.
    pub(super) async fn discover_all(&self) -> Discovery {
        let mut discovery = Discovery {
            accounts: self.discover_accounts.len(),
            ..Discovery::default()
        };
        let mut seen = HashSet::new();
        for account in &self.discover_accounts {
            let (locations, error) = self.list_locations(account).await;
            for location in locations {
                if seen.insert(location.id.clone()) {
                    discovery.locations.push(location);
                }
            }
            if let Some(error) = error {
                tracing::warn!(
                    account,
                    error = %error,
                    error_type = error.error_type(),
                    "location discovery failed for an account"
                );
                discovery.failures.push((account.clone(), error));
            }
        }
        discovery
    }

    /// Every location of `account` (`accounts/{id}`): the locations read,
    /// and the error that stopped the listing early, if one did.
    pub async fn list_locations(
        &self,
        account: &str,
    ) -> (Vec<DiscoveredLocation>, Option<PlatformError>) {
        let mut locations = Vec::new();
        let mut page_token: Option<String> = None;
        let mut seen_tokens = HashSet::new();
        for page in 1..=MAX_LOCATION_PAGES {
            let json = match self.locations_page(account, page_token.as_deref()).await {
                Ok(json) => json,
                Err(e) => return (locations, Some(e)),
            };
            let next = match map_locations_page(&json, account, &mut locations) {
                Ok(next) => next,
                Err(e) => return (locations, Some(e)),
            };
            tracing::debug!(
                account,
                page,
                found = locations.len(),
                "google locations page"
            );
            match next {
                None => return (locations, None),
                Some(token) if !seen_tokens.insert(token.clone()) => {
                    let error = PlatformError::InvalidResponse(format!(
                        "paging loop: locations page token repeated after {page} pages"
                    ));
                    return (locations, Some(error));
                }
                Some(token) => page_token = Some(token),
            }
        }
        let error = PlatformError::InvalidResponse(format!(
            "more than {MAX_LOCATION_PAGES} pages of locations"
        ));
        (locations, Some(error))
    }

    /// `{business_information_base_url}/v1/{account}/locations`.
    fn locations_url(&self, account: &str) -> Result<Url, PlatformError> {
        let mut url = self.business_information_base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                PlatformError::InvalidResponse(
                    "business_information_base_url cannot take a path".into(),
                )
            })?;
            segments.pop_if_empty();
            segments.push("v1");
            segments.extend(account.split('/').filter(|s| !s.is_empty()));
            segments.push("locations");
        }
        Ok(url)
    }

    async fn locations_page(
        &self,
        account: &str,
        page_token: Option<&str>,
    ) -> Result<Value, PlatformError> {
        let mut url = self.locations_url(account)?;
        // By hand, as for reviews: the mask's commas stay readable in logs.
        let mut query = format!("readMask={READ_MASK}&pageSize={LOCATIONS_PAGE_SIZE}");
        if let Some(token) = page_token {
            query.push_str("&pageToken=");
            query.extend(url::form_urlencoded::byte_serialize(token.as_bytes()));
        }
        url.set_query(Some(&query));
        let what = LocationId::new(account);
        self.http
            .get_json(
                &url,
                |request| request,
                |answer| google_error(&answer, &what).into(),
            )
            .await
    }
}

/// Appends the locations of one `ListLocationsResponse` to `out` and returns
/// its `nextPageToken`. A record without a usable name is skipped with a
/// warning (it cannot be polled); a page that is not an object is an error.
fn map_locations_page(
    json: &Value,
    account: &str,
    out: &mut Vec<DiscoveredLocation>,
) -> Result<Option<String>, PlatformError> {
    let Value::Object(top) = json else {
        return Err(PlatformError::InvalidResponse(
            "locations page is not an object".into(),
        ));
    };
    let items: &[Value] = match top.get("locations") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(PlatformError::InvalidResponse(
                "`locations` is not a list".into(),
            ));
        }
    };
    for item in items {
        let text = |key: &str| {
            item.get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let raw_name = item.get("name").and_then(Value::as_str).unwrap_or("");
        let Some(id) = full_location_name(account, raw_name) else {
            tracing::warn!(
                account,
                name = raw_name,
                "discovered location without a usable name; skipped"
            );
            continue;
        };
        out.push(DiscoveredLocation {
            id: LocationId::new(id),
            title: text("title"),
            store_code: text("storeCode"),
        });
    }
    Ok(top
        .get("nextPageToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned))
}

/// `accounts/{a}/locations/{l}` from the Business Information `name`
/// (`locations/{l}`, or already with the account), or `None` when the name
/// is not a location.
fn full_location_name(account: &str, name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('/').collect();
    let ok = |s: &str| !s.is_empty();
    match parts.as_slice() {
        ["locations", l] if ok(l) => Some(format!("{account}/locations/{l}")),
        ["accounts", a, "locations", l] if ok(a) && ok(l) => Some(name.to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_gain_their_account_unless_they_carry_one() {
        let full = |n| full_location_name("accounts/7", n);
        assert_eq!(
            full("locations/9").as_deref(),
            Some("accounts/7/locations/9")
        );
        assert_eq!(
            full("accounts/8/locations/9").as_deref(),
            Some("accounts/8/locations/9")
        );
        for bad in [
            "",
            "9",
            "locations/",
            "locations/9/x",
            "accounts/7/locations/",
        ] {
            assert_eq!(full(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_page_maps_titles_and_store_codes_and_skips_nameless_records() {
        let page = json!({
            "locations": [
                {"name": "locations/1", "title": "Oak Court", "storeCode": " portfolio-1 "},
                {"name": "locations/2", "title": "Elm House", "storeCode": "  "},
                {"name": "locations/3"},
                {"title": "No name"},
            ],
            "nextPageToken": "abc",
        });
        let mut out = Vec::new();
        let next = map_locations_page(&page, "accounts/7", &mut out).expect("page");
        assert_eq!(next.as_deref(), Some("abc"));
        assert_eq!(
            out,
            [
                DiscoveredLocation {
                    id: LocationId::new("accounts/7/locations/1"),
                    title: Some("Oak Court".into()),
                    store_code: Some("portfolio-1".into()),
                },
                DiscoveredLocation {
                    id: LocationId::new("accounts/7/locations/2"),
                    title: Some("Elm House".into()),
                    store_code: None,
                },
                DiscoveredLocation {
                    id: LocationId::new("accounts/7/locations/3"),
                    title: None,
                    store_code: None,
                },
            ]
        );
    }

    #[test]
    fn an_empty_account_is_an_empty_object_and_a_bad_shape_is_an_error() {
        let mut out = Vec::new();
        assert_eq!(
            map_locations_page(&json!({}), "accounts/7", &mut out).expect("page"),
            None
        );
        assert!(out.is_empty());
        assert!(map_locations_page(&json!([]), "accounts/7", &mut out).is_err());
        assert!(map_locations_page(&json!({"locations": {}}), "accounts/7", &mut out).is_err());
    }
}
