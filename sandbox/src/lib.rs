//! The sandbox: loopback emulators of Travtus and of the review platforms,
//! on one TCP listener, with fault injection and deterministic seed data.
//!
//! Used in-process by review-sync's tests, its `demo` command and
//! benchmarks, and served by `review-sync sandbox --listen ADDR`.
//!
//! Code map:
//! - `server`: accept loop, one task per connection, connection drops.
//! - `faults`: scripted and probabilistic fault plans shared by all emulators.
//! - `auth`: bearer / Basic / token-form parsing shared by all emulators.
//! - `travtus`: the Travtus API under `/travtus`.
//! - `google`: Google OAuth + Business Profile v4 reviews under `/google`.
//! - `seed`: deterministic groups, accounts, locations and reviews.
//! - `control`: the HTTP control API under `/_sandbox`.
//!
//! Adding a platform = one module with its state, handlers and a
//! `router()`, plus one `nest` line in [`Sandbox::start`].

#![warn(missing_docs)]

mod auth;
mod control;
mod faults;
mod google;
mod seed;
mod server;
mod travtus;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use faults::{Endpoint, Fault, FaultRates, Faults};
pub use google::{
    GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET, GOOGLE_REFRESH_TOKEN, GoogleEmulator, NewGoogleReview,
};
pub use seed::seed_base_time;
pub use travtus::{
    Group, ReceivedMessage, RequestLogEntry, TRAVTUS_CLIENT_ID, TRAVTUS_CLIENT_SECRET,
    TRAVTUS_STATIC_TOKEN, TravtusEmulator,
};

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
    faults: Faults,
    /// Cancelled on shutdown or drop; the accept loop and every connection watch it.
    shutdown: CancellationToken,
    /// The accept loop; `None` once `shutdown` has awaited it.
    server: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Binds `opts.listen`, spawns the server task and returns once listening.
    pub async fn start(opts: SandboxOptions) -> std::io::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        let faults = Faults::new(opts.seed);
        let travtus = TravtusEmulator::new(opts.seed, opts.travtus_token_lifetime, &faults);
        let google =
            GoogleEmulator::new(opts.seed, &opts.google, opts.google_token_lifetime, &faults);
        let control = control::Control {
            travtus: travtus.clone(),
            google: google.clone(),
            faults: faults.clone(),
        };
        let router = Router::new()
            .nest("/travtus", travtus::router(travtus.clone()))
            .nest("/google", google::router(google.clone()))
            .nest("/_sandbox", control::router(control))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(serde_json::json!({"error": "no such sandbox route"})),
                )
                    .into_response()
            });
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(server::serve(listener, router, shutdown.clone()));
        tracing::debug!(%addr, seed = opts.seed, "sandbox listening");
        Ok(Sandbox {
            addr,
            travtus,
            google,
            faults,
            shutdown,
            server: Some(server),
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

    /// The Travtus emulator.
    pub fn travtus(&self) -> &TravtusEmulator {
        &self.travtus
    }

    /// The Google emulator.
    pub fn google(&self) -> &GoogleEmulator {
        &self.google
    }

    /// The fault plan of every endpoint (counts and `clear` cover all).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Stops accepting, lets in-flight requests finish (bounded to a couple
    /// of seconds, then aborts them) and waits for the server to stop.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
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
