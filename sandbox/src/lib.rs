//! The sandbox: loopback emulators of Travtus and of the review platforms,
//! on one TCP listener, with fault injection and deterministic seed data.
//!
//! Used in-process by review-sync's tests, its `demo` command and
//! benchmarks, and served by `review-sync sandbox --listen ADDR`.
//!
//! Code map:
//! - `server`: accept loop, one task per connection, connection drops.
//! - `faults`: scripted and probabilistic fault plans shared by all emulators,
//!   redirects and foreign answers included.
//! - `elsewhere`: another origin (a second listener) that records every
//!   request it gets, for redirect tests.
//! - `hostile`: misbehaviour modes of the Google reviews list (endless and
//!   huge bodies, bad JSON, bad paging) for hostile-platform tests.
//! - `auth`: bearer / Basic / token-form parsing shared by all emulators.
//! - `limits`: rate windows the emulators enforce when told to (off by default).
//! - `travtus`: the Travtus API under `/travtus`.
//! - `google`: Google OAuth + Business Profile v4 reviews under `/google`.
//! - `business_info`: Google Business Information (location listing, for
//!   discovery) under `/google-bi`, over the `google` emulator's state.
//! - `places`: Google Places API (New) Place Details under `/places`.
//! - `yelp`: Yelp Fusion business reviews under `/yelp`.
//! - `facebook`: Graph API Page ratings under `/facebook`.
//! - `trustpilot`: Trustpilot reviews and business-user tokens under `/trustpilot`.
//! - `pubsub`: Cloud Pub/Sub topics and pull subscriptions under `/pubsub`
//!   (control routes under `/_sandbox/pubsub`).
//! - `service_account`: Google's JWT bearer grant for service accounts
//!   under `/google-sa` (a committed test key pair).
//! - `notifications`: the Business Profile Notifications API under
//!   `/google-notifications`, and the hub through which `google` publishes
//!   `NEW_REVIEW`/`UPDATED_REVIEW` to `pubsub`.
//! - `webhooks`: the Facebook and Trustpilot webhook senders (control
//!   routes under `/_sandbox/webhooks`).
//! - `seed`: deterministic groups, accounts, locations and reviews.
//! - `control`: the HTTP control API under `/_sandbox`.
//! - `postgres`: not an emulator: a throwaway PostgreSQL server from the
//!   distribution's binaries, for tests of the PostgreSQL ledger.
//!
//! Adding a platform = one module with its state, handlers and a
//! `router()`, plus one `nest` line in [`Sandbox::start`].

#![warn(missing_docs)]

mod auth;
mod business_info;
mod control;
mod elsewhere;
mod facebook;
mod faults;
mod google;
mod hostile;
mod limits;
mod notifications;
mod places;
pub mod postgres;
mod pubsub;
mod seed;
mod server;
mod service_account;
mod travtus;
mod trustpilot;
mod webhooks;
mod yelp;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use business_info::BusinessInfoEmulator;
pub use elsewhere::{ELSEWHERE_DEFAULT_BODY, Elsewhere, RecordedRequest};
pub use facebook::{
    DEFAULT_PAGE_CALLS_PER_DAY, FACEBOOK_ACCESS_TOKEN, FacebookEmulator, NewRecommendation,
    PageUsage,
};
pub use faults::{Endpoint, Fault, FaultRates, Faults};
pub use google::{
    GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET, GOOGLE_REFRESH_TOKEN, GoogleEmulator, NewGoogleReview,
};
pub use hostile::{Misbehaviour, TRICKLE_EVERY};
pub use limits::RateWindow;
pub use notifications::{NotificationStyle, NotificationsEmulator};
pub use places::{NewPlacesReview, PLACES_API_KEY, PlacesEmulator};
pub use pubsub::{
    DEFAULT_ACK_DEADLINE, PubSubEmulator, PubSubMessage, SANDBOX_PUBSUB_SUBSCRIPTION,
    SANDBOX_PUBSUB_TOPIC,
};
pub use seed::seed_base_time;
pub use service_account::{
    CLOUD_PLATFORM_SCOPE, FORGED_PRIVATE_KEY_PEM, PUBSUB_SCOPE, SERVICE_ACCOUNT_EMAIL,
    SERVICE_ACCOUNT_KEY_ID, SERVICE_ACCOUNT_PRIVATE_KEY_PEM, ServiceAccountEmulator,
    key_json_with as service_account_key_json,
};
pub use travtus::{
    Group, ReceivedMessage, RequestLogEntry, TRAVTUS_CLIENT_ID, TRAVTUS_CLIENT_SECRET,
    TRAVTUS_STATIC_TOKEN, TravtusEmulator,
};
pub use trustpilot::{
    NewTrustpilotReview, TRUSTPILOT_API_KEY, TRUSTPILOT_API_SECRET, TRUSTPILOT_PASSWORD,
    TRUSTPILOT_USERNAME, TrustpilotEmulator,
};
pub use webhooks::{WebhookDelivery, facebook_signature};
pub use yelp::{NewYelpReview, YELP_API_KEY, YelpEmulator, pacific_wall_clock};

/// How to start a [`Sandbox`].
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Seed for the data and for probabilistic faults.
    pub seed: u64,
    /// Shape of the seeded Google data.
    pub google: GoogleSeed,
    /// Lifetime of Travtus access tokens.
    pub travtus_token_lifetime: Duration,
    /// Lifetime of Google access tokens.
    pub google_token_lifetime: Duration,
    /// Shape of the seeded Google Places data.
    pub places: PlacesSeed,
    /// Shape of the seeded Yelp data.
    pub yelp: YelpSeed,
    /// Shape of the seeded Facebook data.
    pub facebook: FacebookSeed,
    /// Shape of the seeded Trustpilot data.
    pub trustpilot: TrustpilotSeed,
    /// Lifetime of Trustpilot business-user access tokens.
    pub trustpilot_token_lifetime: Duration,
}

impl Default for SandboxOptions {
    fn default() -> SandboxOptions {
        SandboxOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 42,
            google: GoogleSeed::default(),
            // Both real APIs issue one-hour tokens.
            travtus_token_lifetime: Duration::from_secs(3600),
            google_token_lifetime: Duration::from_secs(3600),
            places: PlacesSeed::default(),
            yelp: YelpSeed::default(),
            facebook: FacebookSeed::default(),
            trustpilot: TrustpilotSeed::default(),
            // Trustpilot's business-user tokens last 100 hours.
            trustpilot_token_lifetime: Duration::from_secs(100 * 3600),
        }
    }
}

/// Shape of the seeded Google Places data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacesSeed {
    /// Number of places.
    pub places: u32,
    /// Reviews held per place (at most five are served).
    pub reviews_per_place: u32,
}

impl Default for PlacesSeed {
    fn default() -> PlacesSeed {
        PlacesSeed {
            places: 2,
            reviews_per_place: 8,
        }
    }
}

/// Shape of the seeded Yelp data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YelpSeed {
    /// Number of businesses.
    pub businesses: u32,
    /// Reviews held per business (at most three are served).
    pub reviews_per_business: u32,
}

impl Default for YelpSeed {
    fn default() -> YelpSeed {
        YelpSeed {
            businesses: 2,
            reviews_per_business: 6,
        }
    }
}

/// Shape of the seeded Facebook data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FacebookSeed {
    /// Number of Pages.
    pub pages: u32,
    /// Positive/negative recommendations per Page.
    pub recommendations_per_page: u32,
    /// Legacy 1..5 star ratings (no `open_graph_story`) per Page.
    pub legacy_ratings_per_page: u32,
    /// The most ratings one page of the edge holds, whatever `limit` asks.
    pub page_size: u32,
}

impl Default for FacebookSeed {
    fn default() -> FacebookSeed {
        FacebookSeed {
            pages: 2,
            recommendations_per_page: 30,
            legacy_ratings_per_page: 8,
            page_size: 25,
        }
    }
}

/// Shape of the seeded Trustpilot data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustpilotSeed {
    /// Number of business units.
    pub business_units: u32,
    /// Reviews per business unit.
    pub reviews_per_unit: u32,
}

impl Default for TrustpilotSeed {
    fn default() -> TrustpilotSeed {
        TrustpilotSeed {
            business_units: 2,
            reviews_per_unit: 120,
        }
    }
}

/// Shape of the seeded Google data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoogleSeed {
    /// Number of accounts (`accounts/1000`, `accounts/1001`, ...).
    pub accounts: u32,
    /// Locations per account; location numbers are unique across accounts.
    pub locations_per_account: u32,
    /// Reviews per location.
    pub reviews_per_location: u32,
}

impl Default for GoogleSeed {
    fn default() -> GoogleSeed {
        GoogleSeed {
            accounts: 1,
            locations_per_account: 3,
            reviews_per_location: 40,
        }
    }
}

/// A running sandbox. Dropping it starts a graceful shutdown in the
/// background; [`Sandbox::shutdown`] waits for it.
pub struct Sandbox {
    addr: SocketAddr,
    travtus: TravtusEmulator,
    google: GoogleEmulator,
    business_info: BusinessInfoEmulator,
    places: PlacesEmulator,
    yelp: YelpEmulator,
    facebook: FacebookEmulator,
    trustpilot: TrustpilotEmulator,
    elsewhere: Elsewhere,
    pubsub: PubSubEmulator,
    service_account: ServiceAccountEmulator,
    notifications: NotificationsEmulator,
    faults: Faults,
    /// Cancelled on shutdown or drop; the accept loop and every connection watch it.
    shutdown: CancellationToken,
    /// The accept loop; `None` once `shutdown` has awaited it.
    server: Option<JoinHandle<()>>,
    /// The accept loop of [`Elsewhere`], likewise.
    elsewhere_server: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Binds `opts.listen`, spawns the server task and returns once listening.
    pub async fn start(opts: SandboxOptions) -> std::io::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        // Another port of the same IP: another origin, for redirects.
        let elsewhere_listener =
            tokio::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await?;
        let elsewhere = Elsewhere::new(elsewhere_listener.local_addr()?);
        let faults = Faults::new(opts.seed);
        let travtus = TravtusEmulator::new(opts.seed, opts.travtus_token_lifetime, &faults);
        let google =
            GoogleEmulator::new(opts.seed, &opts.google, opts.google_token_lifetime, &faults);
        let business_info = BusinessInfoEmulator::new(google.clone(), &faults);
        let places = PlacesEmulator::new(opts.seed, &opts.places, &faults);
        let yelp = YelpEmulator::new(opts.seed, &opts.yelp, &faults);
        let facebook = FacebookEmulator::new(opts.seed, &opts.facebook, &faults);
        let trustpilot = TrustpilotEmulator::new(
            opts.seed,
            &opts.trustpilot,
            opts.trustpilot_token_lifetime,
            &faults,
        );
        let service_account = ServiceAccountEmulator::new(
            format!("http://{addr}{}", service_account::TOKEN_PATH),
            &faults,
        );
        let pubsub = PubSubEmulator::new(&faults, service_account.clone(), google.clone());
        let notifications = NotificationsEmulator::new(google.clone(), pubsub.clone());
        let control = control::Control {
            travtus: travtus.clone(),
            google: google.clone(),
            places: places.clone(),
            yelp: yelp.clone(),
            facebook: facebook.clone(),
            trustpilot: trustpilot.clone(),
            elsewhere: elsewhere.clone(),
            faults: faults.clone(),
        };
        let router = Router::new()
            .nest("/travtus", travtus::router(travtus.clone()))
            .nest("/google", google::router(google.clone()))
            .nest("/google-bi", business_info::router(business_info.clone()))
            .nest("/places", places::router(places.clone()))
            .nest("/yelp", yelp::router(yelp.clone()))
            .nest("/facebook", facebook::router(facebook.clone()))
            .nest("/trustpilot", trustpilot::router(trustpilot.clone()))
            .nest("/pubsub", pubsub::router(pubsub.clone()))
            .nest(
                "/google-sa",
                service_account::router(service_account.clone()),
            )
            .nest(
                "/google-notifications",
                notifications::router(notifications.clone()),
            )
            .nest("/_sandbox/pubsub", pubsub::control_router(pubsub.clone()))
            .nest(
                "/_sandbox/webhooks",
                webhooks::control_router(facebook.clone(), trustpilot.clone()),
            )
            .nest("/_sandbox", control::router(control))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(serde_json::json!({"error": "no such sandbox route"})),
                )
                    .into_response()
            })
            .layer(axum::middleware::from_fn(faults::redirect_location));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(server::serve(listener, router, shutdown.clone()));
        let elsewhere_server = tokio::spawn(server::serve(
            elsewhere_listener,
            elsewhere.router(),
            shutdown.clone(),
        ));
        tracing::debug!(%addr, seed = opts.seed, "sandbox listening");
        Ok(Sandbox {
            addr,
            travtus,
            google,
            business_info,
            places,
            yelp,
            facebook,
            trustpilot,
            elsewhere,
            pubsub,
            service_account,
            notifications,
            faults,
            shutdown,
            server: Some(server),
            elsewhere_server: Some(elsewhere_server),
        })
    }

    /// The address the sandbox listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base URL of the Travtus API (`POST {this}/messages/`).
    pub fn travtus_base_url(&self) -> String {
        format!("{}/travtus", self.base_url())
    }

    /// The Travtus token URL.
    pub fn travtus_token_url(&self) -> String {
        format!("{}/travtus/oauth2/token", self.base_url())
    }

    /// Base URL of the Google Business Profile API (`GET {this}/v4/...`).
    pub fn google_base_url(&self) -> String {
        format!("{}/google", self.base_url())
    }

    /// The Google OAuth token URL.
    pub fn google_token_url(&self) -> String {
        format!("{}/google/token", self.base_url())
    }

    /// Base URL of the Google Business Information API
    /// (`GET {this}/v1/accounts/{a}/locations`).
    pub fn google_business_info_base_url(&self) -> String {
        format!("{}/google-bi", self.base_url())
    }

    /// The Travtus emulator.
    pub fn travtus(&self) -> &TravtusEmulator {
        &self.travtus
    }

    /// The Google emulator.
    pub fn google(&self) -> &GoogleEmulator {
        &self.google
    }

    /// The Google Business Information emulator (its data is the Google
    /// emulator's: add locations and store codes there).
    pub fn business_info(&self) -> &BusinessInfoEmulator {
        &self.business_info
    }

    /// Base URL of the Places API (`GET {this}/v1/places/{id}`).
    pub fn places_base_url(&self) -> String {
        format!("{}/places", self.base_url())
    }

    /// Base URL of the Yelp API (`GET {this}/v3/businesses/{id}/reviews`).
    pub fn yelp_base_url(&self) -> String {
        format!("{}/yelp", self.base_url())
    }

    /// Base URL of the Graph API (`GET {this}/{version}/{page}/ratings`).
    pub fn facebook_base_url(&self) -> String {
        format!("{}/facebook", self.base_url())
    }

    /// Base URL of the Trustpilot API (`GET {this}/v1/business-units/...`).
    pub fn trustpilot_base_url(&self) -> String {
        format!("{}/trustpilot", self.base_url())
    }

    /// The Trustpilot business-user token URL.
    pub fn trustpilot_token_url(&self) -> String {
        format!(
            "{}/trustpilot/v1/oauth/oauth-business-users-for-applications/accesstoken",
            self.base_url()
        )
    }

    /// The Google Places emulator.
    pub fn places(&self) -> &PlacesEmulator {
        &self.places
    }

    /// The Yelp emulator.
    pub fn yelp(&self) -> &YelpEmulator {
        &self.yelp
    }

    /// The Facebook emulator.
    pub fn facebook(&self) -> &FacebookEmulator {
        &self.facebook
    }

    /// The Trustpilot emulator.
    pub fn trustpilot(&self) -> &TrustpilotEmulator {
        &self.trustpilot
    }

    /// Another origin that records every request it receives: the target of
    /// [`Fault::Redirect`]s in redirect tests.
    pub fn elsewhere(&self) -> &Elsewhere {
        &self.elsewhere
    }

    /// Base URL of the Pub/Sub API (`POST {this}/v1/{subscription}:pull`).
    pub fn pubsub_base_url(&self) -> String {
        format!("{}/pubsub", self.base_url())
    }

    /// The service-account token URL (JWT bearer grant), the `token_uri`
    /// of [`ServiceAccountEmulator::key_json`].
    pub fn service_account_token_url(&self) -> String {
        self.service_account.token_url().to_owned()
    }

    /// Base URL of the Business Profile Notifications API
    /// (`{this}/v1/accounts/{a}/notificationSetting`).
    pub fn google_notifications_base_url(&self) -> String {
        format!("{}/google-notifications", self.base_url())
    }

    /// The Pub/Sub emulator.
    pub fn pubsub(&self) -> &PubSubEmulator {
        &self.pubsub
    }

    /// The service-account token endpoint.
    pub fn service_account(&self) -> &ServiceAccountEmulator {
        &self.service_account
    }

    /// The Business Profile Notifications API emulator.
    pub fn notifications(&self) -> &NotificationsEmulator {
        &self.notifications
    }

    /// The fault plan of every endpoint (counts and `clear` cover all).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Stops accepting, lets in-flight requests finish (bounded to a couple
    /// of seconds, then aborts them) and waits for the server to stop.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for server in [self.server.take(), self.elsewhere_server.take()]
            .into_iter()
            .flatten()
        {
            // A panicked or aborted server task has stopped all the same.
            let _ = server.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
