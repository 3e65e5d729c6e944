//! Trustpilot's review webhooks, as a push channel ([`WebhookKind`]).
//!
//! Its pages about webhooks (support.trustpilot.com community post
//! 10109980750738 "How to set up Trustpilot Webhooks", and article
//! 115015822068 "Manage your webhook notifications") describe the payload
//! (`{"events":[{"eventName":"service-review-created|updated|deleted","version":"1","eventData":{...}}]}`)
//! and a subscription URL entered in the business app, and no signature or
//! secret header; the payload does not name the business unit. What we rely
//! on is therefore the subscription URL: it carries the source's secret
//! (`webhook_verify_token`) either as HTTP Basic credentials
//! (`https://review-sync:SECRET@host/webhooks/NAME`, which an HTTP client
//! sends as `Authorization: Basic`) or as `?token=SECRET`, compared in
//! constant time; missing or wrong: 401. `?location=ID` names the business
//! unit when a source has several; without it every location of the source
//! is hinted. Over HTTPS the secret is as private as a signing key would
//! be, but it is replayable: replays only cause reads. There is no
//! subscription handshake (a `GET` is 405).

use crate::config::Secret;
use crate::domain::LocationId;
use crate::push::HintChannel;
use crate::push::webhook::{
    Handshake, Refusal, Targets, WebhookKind, WebhookStats, configured, same,
};
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use std::collections::HashMap;

/// A source's Trustpilot webhooks: the secret their subscription URL carries.
#[derive(Clone, Debug)]
pub struct TrustpilotWebhook {
    /// `webhook_verify_token`.
    pub secret: Secret,
}

impl WebhookKind for TrustpilotWebhook {
    fn channel(&self) -> HintChannel {
        HintChannel::Webhook(super::PLATFORM.kind)
    }

    fn handshake(&self, _query: &HashMap<String, String>, _stats: &WebhookStats) -> Option<Handshake> {
        None
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
        _body: &[u8],
    ) -> Result<(), Refusal> {
        if secret_ok(headers, query, self.secret.expose()) {
            Ok(())
        } else {
            Err(Refusal {
                text: "bad credentials\n",
                challenge: Some("Basic realm=\"review-sync\""),
            })
        }
    }

    /// The business units a verified body is about.
    fn targets(
        &self,
        body: &[u8],
        query: &HashMap<String, String>,
        locations: &[LocationId],
        stats: &WebhookStats,
    ) -> Targets {
        let units: Vec<LocationId> = match query.get("location") {
            Some(id) => match configured(locations, id) {
                Some(location) => vec![location.clone()],
                None => {
                    WebhookStats::count(&stats.unknown_locations);
                    return Vec::new();
                }
            },
            None => locations.to_vec(),
        };
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            WebhookStats::count(&stats.unparsed);
            return units.into_iter().map(|l| (l, None)).collect();
        };
        let Some(events) = value.get("events").and_then(|e| e.as_array()) else {
            WebhookStats::count(&stats.unparsed);
            return units.into_iter().map(|l| (l, None)).collect();
        };
        let reviews: Vec<Option<String>> = events
            .iter()
            .filter(|e| {
                e.get("eventName")
                    .and_then(|n| n.as_str())
                    .is_some_and(|n| n.starts_with("service-review-"))
            })
            .map(|e| {
                e.get("eventData")
                    .and_then(|d| d.get("id"))
                    .and_then(|i| i.as_str())
                    .map(str::to_owned)
            })
            .collect();
        let mut targets = Targets::new();
        for unit in units {
            for review in &reviews {
                targets.push((unit.clone(), review.clone()));
            }
        }
        targets
    }
}

/// Whether the delivery carries the secret: as the password of HTTP Basic
/// credentials, or as `?token=`.
fn secret_ok(headers: &HeaderMap, query: &HashMap<String, String>, secret: &str) -> bool {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, encoded) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then_some(encoded.trim())
        })
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(_, password)| password.to_owned())
        });
    let from_basic = basic.is_some_and(|password| same(&password, secret));
    let from_query = query.get("token").is_some_and(|token| same(token, secret));
    from_basic | from_query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_hint_the_named_unit_or_every_unit() {
        let stats = WebhookStats::default();
        let hook = TrustpilotWebhook {
            secret: Secret::new("t"),
        };
        let units = [LocationId::new("bu1"), LocationId::new("bu2")];
        let targets = |body: &[u8], location: Option<&str>| {
            let query: HashMap<String, String> = location
                .map(|l| ("location".to_owned(), l.to_owned()))
                .into_iter()
                .collect();
            hook.targets(body, &query, &units, &stats)
        };
        // The shape of Trustpilot's published example.
        let body = br#"{"events":[{"eventName":"service-review-created","version":"1","eventData":{"id":"53bffd360000640002975387","stars":5,"locationId":"43f51215-a1fc-4c60-b6dd-e4afb6d7b831"}}]}"#;
        assert_eq!(
            targets(body, Some("bu2")),
            vec![(
                LocationId::new("bu2"),
                Some("53bffd360000640002975387".to_owned())
            )]
        );
        assert_eq!(targets(body, None).len(), 2);
        assert!(targets(body, Some("nope")).is_empty());
        let other =
            br#"{"events":[{"eventName":"product-review-created","eventData":{"id":"x"}}]}"#;
        assert!(targets(other, None).is_empty());
    }

    #[test]
    fn the_secret_is_in_basic_auth_or_the_query() {
        let mut headers = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("review-sync:s3cret");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().expect("header"),
        );
        let none = HashMap::new();
        assert!(secret_ok(&headers, &none, "s3cret"));
        assert!(!secret_ok(&headers, &none, "other"));
        let query = HashMap::from([("token".to_owned(), "s3cret".to_owned())]);
        assert!(secret_ok(&HeaderMap::new(), &query, "s3cret"));
        assert!(!secret_ok(&HeaderMap::new(), &none, "s3cret"));
        let wrong = HashMap::from([("token".to_owned(), "s3cre".to_owned())]);
        assert!(!secret_ok(&HeaderMap::new(), &wrong, "s3cret"));
    }
}
