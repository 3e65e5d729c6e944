//! Request budgets where the platforms keep them (issue 12): every platform
//! request takes a call from the budget of its quota scope
//! (`platforms::http`), and every answer tells the budget what the platform
//! said about its limits.
//!
//! - [`ScopeKey`] (`scope.rs`): what a platform counts by — Google Business
//!   Profile per OAuth client (one Cloud project), Places, Yelp and
//!   Trustpilot per API key, Facebook per Page — never holding a key. Each
//!   platform's settings name their scope; this module names no platform.
//! - [`Quotas`] and [`Budget`] (`budget.rs`): one budget per scope, shared
//!   by every source using it, one [`Quotas`] per process (kept across
//!   reloads); [`Budget::take_within`] waits for a call (visibly: an info
//!   line past [`LOG_AFTER`], [`waits`], the
//!   `review_sync_budget_wait_seconds_total{source,scope}` metric), and
//!   [`Budget::follow`] applies what the platform's answers say.
//! - `window.rs` and `meter.rs`: the windows (per second, minute, 5
//!   minutes, hour, rolling day, or a calendar day resetting at a UTC time)
//!   and their counting, pure and tested with a fake clock; the daily
//!   spread ([`spread_interval`]) and the usage pace ([`usage_pace`]). Each
//!   platform's published windows are in its registry entry.
//! - [`headers`]: the answer an observer sees, [`Adjustment`]s, the
//!   tolerant header readers, and a 429's pause; the platforms that report
//!   usage (Yelp's `RateLimit-*`, Meta's `X-Business-Use-Case-Usage`) read
//!   it in their folder.
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
mod meter;
pub mod plan;
mod scope;
pub mod waits;
mod window;

pub use budget::{Budget, LOG_AFTER, OverBudget, Quotas, SourceBudget};
pub use headers::Adjustment;
pub use meter::{PACE_AT_FULL, SLOW_FROM_PERCENT, Why, usage_pace};
pub use scope::{QuotaScope, ScopeKey};
pub use window::{BUCKETS, DAY, Span, Window, spread_interval};
