//! Push: notifications from the platforms as *hints* that a location has
//! something new, so it is read at once instead of at the next scheduled
//! poll. A hint names a location (and maybe a review); it never carries
//! review data that would be sent on: the location is read back through the
//! platform's API, the same way a scheduled pass reads it.
//!
//! The daemon runs them through [`run`] (one generation's push tasks);
//! the components are tested on their own and against the sandbox.
//!
//! - [`pubsub`]: a Cloud Pub/Sub REST client (pull, acknowledge,
//!   modifyAckDeadline, get subscription) for Google Business Profile's
//!   notifications, outbound only.
//! - [`service_account`]: a service-account key file and the JWT bearer
//!   grant (RS256) that gets the Pub/Sub client its tokens through
//!   [`crate::oauth::TokenCache`].
//! - [`notification`]: a Business Profile notification (the Pub/Sub
//!   message's data) → location, review and type.
//! - [`webhook`]: the HTTP receiver for Facebook Page and Trustpilot
//!   webhooks: handshake, signature or secret, size cap, hint, 200.
//! - [`hints`]: the coalescing queue between hints and reads, which also
//!   holds Pub/Sub ack ids until the read they triggered is committed.
//! - [`source`]: a source's push settings and their config keys.
//! - [`run`]: the daemon's push tasks (pull loops, leases, the webhook
//!   listener, the readers) and [`run::PushStatus`] for `/healthz`.
//! - [`metrics`]: push's series and the push-to-delivered latency.
//! - [`notifications`]: the Business Profile Notifications API client
//!   that points an account's review notifications at the topic.
//! - [`check`]: what `check --online` says of a source's push channel, and
//!   `--set-notifications`.

pub mod check;
pub mod hints;
pub mod metrics;
pub mod notification;
pub mod notifications;
pub mod pubsub;
pub mod run;
pub mod service_account;
pub mod source;
pub mod webhook;

pub use source::{NotificationSettings, PubSubCredentials, PubSubSettings, SourcePush};

pub use hints::{
    Hint, HintChannel, HintQueue, HintQueueLimits, PushOutcome, ReadOutcome, ReadTicket, Settlement,
};
