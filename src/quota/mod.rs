//! Request budgets where the platforms keep them (issue 12). **Not wired
//! yet**: `platforms::http` still paces each source with its own
//! `requests_per_minute`; this module is the machinery that replaces it.
//!
//! - [`ScopeKey`] (`scope.rs`): what a platform counts by — Google Business
//!   Profile per OAuth client (one Cloud project), Places, Yelp and
//!   Trustpilot per API key, Facebook per Page — never holding a key.
//! - [`Quotas`] and [`Budget`] (`budget.rs`): one budget per scope, shared
//!   by every source using it; [`Budget::take`] waits for a call (visibly:
//!   an info line past [`LOG_AFTER`], [`waits`], the
//!   `review_sync_budget_wait_seconds_total{source,scope}` metric), and
//!   [`Budget::follow`] applies what the platform's answers say.
//! - `window.rs` and `meter.rs`: the windows (per second, minute, 5
//!   minutes, hour, rolling day, or a calendar day resetting at a UTC time)
//!   and their counting, pure and tested with a fake clock; the daily
//!   spread ([`spread_interval`]) and the usage pace ([`usage_pace`]).
//! - [`known`]: each platform's published windows.
//! - [`headers`]: Yelp's `RateLimit-*` headers, Meta's
//!   `X-Business-Use-Case-Usage`/`X-Page-Usage`/`X-App-Usage`, refusals
//!   and 429s, as [`Adjustment`]s.
//! - [`plan`]: the quota plan `check` prints.
//!
//! **Invariant:** a budget never lets more calls through than any of its
//! windows allows in any interval of the window's length (rolling windows
//! err on the safe side by at most 1/60 of their period), and a daily
//! window never more than its limit between two resets; what the platform
//! reports replaces our count only when it says more was used.
//!
//! **Invariant:** no key or client id reaches a log line, a metric label,
//! an error or the plan: scopes show 8 hex digits of a salted digest.

mod budget;
pub mod headers;
pub mod known;
mod meter;
pub mod plan;
mod scope;
pub mod waits;
mod window;

pub use budget::{Budget, LOG_AFTER, OverBudget, Quotas, SourceBudget};
pub use headers::Adjustment;
pub use meter::{PACE_AT_FULL, SLOW_FROM_PERCENT, Why, usage_pace};
pub use scope::{Platform, ScopeKey};
pub use window::{BUCKETS, Span, Window, spread_interval};
