//! Webhook senders: the Facebook and Trustpilot emulators deliver a
//! notification to a subscriber's URL when a review is added, edited or
//! removed, signed or authenticated the way the real platforms do.
//!
//! Facebook (Meta Webhooks, developers.facebook.com/docs/graph-api/webhooks/getting-started):
//! subscribing a callback URL first sends the verification request
//! `GET {url}?hub.mode=subscribe&hub.challenge=N&hub.verify_token=T` and
//! needs the challenge echoed back with a 200; each event is then a
//! `POST` of `{"object":"page","entry":[{"id":PAGE,"time":UNIX,"changes":[{"field":"ratings","value":{...}}]}]}`
//! with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the exact body,
//! keyed with the app secret>`. The `value` of a `ratings` change
//! (`item`, `verb` add/edit/remove, `reviewer_id`, `reviewer_name`,
//! `created_time`, `recommendation_type`, `review_text`, `open_graph_story_id`)
//! follows Meta's Page webhooks reference as far as the stored copy shows
//! it (developers.facebook.com/docs/graph-api/webhooks/reference/page/
//! lists the `ratings` field; its value's sub-fields are UNCONFIRMED): a
//! receiver should rely on `entry[].id` and `changes[].field` only. Meta's
//! legacy SHA-1 `X-Hub-Signature` is not sent.
//!
//! Trustpilot (support.trustpilot.com, "How to set up Trustpilot
//! Webhooks", community post 10109980750738, and "Manage your webhook
//! notifications", article 115015822068): a `POST` to each subscription URL
//! of `{"events":[{"eventName":"service-review-created"|"service-review-updated"|"service-review-deleted","version":"1","eventData":{...}}]}`
//! where `eventData` is the review (`id`, `stars`, `title`, `text`,
//! `createdAt`, `consumer`, `link`, `locationId`...). The payload does not
//! name the business unit, and neither page documents a signature or
//! secret header: the only authentication an operator controls is what the
//! subscription URL itself carries. This sender therefore sends exactly
//! what a plain HTTP client makes of the URL: credentials written in it
//! (`https://user:secret@host/...`) become an `Authorization: Basic`
//! header, and a query string (`?token=...`) is kept.
//!
//! Deliveries run on the caller's tokio runtime, one task each, and are
//! recorded (status or error) for tests. Meta and Trustpilot retry failed
//! deliveries; this sender does not.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One delivery attempt, as the sender saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The exact body sent.
    pub body: String,
    /// The HTTP status the subscriber answered, if it answered.
    pub status: Option<u16>,
    /// Why there was no answer (connection refused, timeout...).
    pub error: Option<String>,
}

#[derive(Clone)]
enum Signing {
    /// `X-Hub-Signature-256` with this app secret.
    Facebook { app_secret: String },
    /// Nothing beyond what the URL carries.
    Url,
}

#[derive(Clone)]
struct Target {
    url: String,
    signing: Signing,
}

#[derive(Default)]
struct SenderState {
    target: Option<Target>,
    deliveries: Vec<WebhookDelivery>,
    /// Deliveries fired but not yet answered.
    in_flight: usize,
}

/// The sender of one emulator (cheap to clone; clones share state).
#[derive(Clone)]
pub(crate) struct WebhookSender {
    inner: Arc<Mutex<SenderState>>,
    /// Built on first use (most sandboxes never send a webhook, and a
    /// client loads TLS roots); `None` inside if it could not be built,
    /// and deliveries then fail visibly.
    http: Arc<OnceLock<Option<reqwest::Client>>>,
}

/// How long a subscriber may take to answer (Meta's own limit is of this
/// order; a receiver must answer at once and work afterwards).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

impl WebhookSender {
    pub(crate) fn new() -> WebhookSender {
        WebhookSender {
            inner: Arc::new(Mutex::new(SenderState::default())),
            http: Arc::new(OnceLock::new()),
        }
    }

    fn http(&self) -> Option<&reqwest::Client> {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(DELIVERY_TIMEOUT)
                    .build()
                    .ok()
            })
            .as_ref()
    }

    fn lock(&self) -> MutexGuard<'_, SenderState> {
        self.inner.lock().expect("webhook sender mutex poisoned")
    }

    /// Facebook: performs the verification request against `url` and, if
    /// it echoes the challenge, subscribes it with `app_secret`.
    pub(crate) async fn subscribe_facebook(
        &self,
        url: &str,
        verify_token: &str,
        app_secret: &str,
    ) -> Result<(), String> {
        let http = self.http().ok_or("no HTTP client")?;
        let challenge = format!("{}", rand::random::<u32>());
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("hub.mode", "subscribe")
            .append_pair("hub.challenge", &challenge)
            .append_pair("hub.verify_token", verify_token)
            .finish();
        let separator = if url.contains('?') { '&' } else { '?' };
        let response = http
            .get(format!("{url}{separator}{query}"))
            .send()
            .await
            .map_err(|e| format!("verification request failed: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| format!("verification answer unreadable: {e}"))?;
        if status != 200 || body.trim() != challenge {
            return Err(format!(
                "callback URL did not verify: HTTP {status}, body {body:?}"
            ));
        }
        self.lock().target = Some(Target {
            url: url.to_owned(),
            signing: Signing::Facebook {
                app_secret: app_secret.to_owned(),
            },
        });
        Ok(())
    }

    /// Trustpilot: deliveries go to `url` from now on (`None`: nowhere).
    pub(crate) fn set_url_target(&self, url: Option<&str>) {
        self.lock().target = url.map(|url| Target {
            url: url.to_owned(),
            signing: Signing::Url,
        });
    }

    /// Stops delivering.
    pub(crate) fn unsubscribe(&self) {
        self.lock().target = None;
    }

    /// Sends `body` to the subscriber, if any, on a task of the current
    /// runtime. Without a runtime the delivery is recorded as failed.
    pub(crate) fn fire(&self, body: String) {
        let Some(target) = self.lock().target.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.record(WebhookDelivery {
                body,
                status: None,
                error: Some("no tokio runtime to deliver on".into()),
            });
            return;
        };
        self.lock().in_flight += 1;
        let sender = self.clone();
        runtime.spawn(async move {
            let delivery = sender.deliver(&target, body).await;
            let mut state = sender.lock();
            state.in_flight -= 1;
            state.deliveries.push(delivery);
        });
    }

    async fn deliver(&self, target: &Target, body: String) -> WebhookDelivery {
        let Some(http) = self.http() else {
            return WebhookDelivery {
                body,
                status: None,
                error: Some("no HTTP client".into()),
            };
        };
        let mut request = http
            .post(&target.url)
            .header("Content-Type", "application/json")
            .body(body.clone());
        if let Signing::Facebook { app_secret } = &target.signing {
            request = request.header("X-Hub-Signature-256", facebook_signature(app_secret, &body));
        }
        match request.send().await {
            Ok(response) => WebhookDelivery {
                body,
                status: Some(response.status().as_u16()),
                error: None,
            },
            Err(e) => WebhookDelivery {
                body,
                status: None,
                error: Some(e.to_string()),
            },
        }
    }

    fn record(&self, delivery: WebhookDelivery) {
        self.lock().deliveries.push(delivery);
    }

    /// Every finished delivery, oldest first.
    pub(crate) fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.lock().deliveries.clone()
    }

    /// Deliveries fired and not yet answered.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().in_flight
    }
}

/// `sha256=<lowercase hex HMAC-SHA256 of body keyed with app_secret>`, the
/// `X-Hub-Signature-256` value Meta sends.
pub fn facebook_signature(app_secret: &str, body: &str) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Control routes relative to `/_sandbox/webhooks`: subscribe a receiver
/// to the Facebook and Trustpilot webhooks, and see what was delivered.
pub(crate) fn control_router(
    facebook: crate::facebook::FacebookEmulator,
    trustpilot: crate::trustpilot::TrustpilotEmulator,
) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/facebook", post(control_facebook))
        .route("/trustpilot", post(control_trustpilot))
        .route("/deliveries", get(control_deliveries))
        .with_state((facebook, trustpilot))
}

type ControlState = (
    crate::facebook::FacebookEmulator,
    crate::trustpilot::TrustpilotEmulator,
);

#[derive(serde::Deserialize)]
struct FacebookSubscription {
    callback_url: String,
    verify_token: String,
    app_secret: String,
}

async fn control_facebook(
    axum::extract::State((facebook, _)): axum::extract::State<ControlState>,
    axum::Json(body): axum::Json<FacebookSubscription>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match facebook
        .subscribe_webhook(&body.callback_url, &body.verify_token, &body.app_secret)
        .await
    {
        Ok(()) => axum::Json(serde_json::json!({"subscribed": true})).into_response(),
        Err(e) => (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": e})),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct TrustpilotSubscription {
    url: Option<String>,
}

async fn control_trustpilot(
    axum::extract::State((_, trustpilot)): axum::extract::State<ControlState>,
    axum::Json(body): axum::Json<TrustpilotSubscription>,
) -> axum::Json<serde_json::Value> {
    trustpilot.set_webhook_url(body.url.as_deref());
    axum::Json(serde_json::json!({"url": body.url}))
}

async fn control_deliveries(
    axum::extract::State((facebook, trustpilot)): axum::extract::State<ControlState>,
) -> axum::Json<serde_json::Value> {
    let show = |deliveries: Vec<WebhookDelivery>| -> Vec<serde_json::Value> {
        deliveries
            .into_iter()
            .map(|d| serde_json::json!({"status": d.status, "error": d.error, "body": d.body}))
            .collect()
    };
    axum::Json(serde_json::json!({
        "facebook": show(facebook.webhook_deliveries()),
        "trustpilot": show(trustpilot.webhook_deliveries()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            facebook_signature("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
