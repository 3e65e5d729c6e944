//! The quotas each platform publishes (or, for Meta, the least it
//! promises), per scope: what a budget starts from before the platform's
//! own answers say more.

use super::scope::Platform;
use super::window::{DAY, Window};

/// Google Business Profile: 300 requests per minute per Cloud project
/// (developers.google.com/my-business/content/limits); the v4 reviews
/// methods are assumed to share it.
pub const GOOGLE_PER_MINUTE: u32 = 300;

/// Places API (New): per minute, per method, per project; the Cloud Console
/// shows 600 a minute for Place Details (New)
/// (developers.google.com/maps/documentation/places/web-service/usage-and-billing).
pub const PLACES_PER_MINUTE: u32 = 600;

/// Yelp's Starter plan: 300 calls per 24 hours per API key, reset at
/// midnight UTC (docs.developer.yelp.com/docs/places-rate-limiting). Other
/// plans differ: the `RateLimit-DailyLimit` of the first answer replaces it.
pub const YELP_PER_DAY: u32 = 300;

/// Yelp publishes a per-second limit without a number: one call a second
/// stays under it (the budget review-sync always used for Yelp).
pub const YELP_PER_SECOND: u32 = 1;

/// Pages under Business Use Case limits: 4,800 calls per engaged user per
/// 24 hours (a sliding window) per Page; one engaged user is the least a
/// Page can have and still be read
/// (developers.facebook.com/blog/post/2016/06/16/page-level-rate-limits/).
/// `X-Business-Use-Case-Usage` reports the real usage.
pub const FACEBOOK_PAGE_PER_DAY: u32 = 4_800;

/// Trustpilot asks for at most 833 calls per 5 minutes and 10,000 per hour
/// (documentation-apidocumentation.trustpilot.com/get-started/rate-limiting).
pub const TRUSTPILOT_PER_5_MINUTES: u32 = 833;

/// See [`TRUSTPILOT_PER_5_MINUTES`].
pub const TRUSTPILOT_PER_HOUR: u32 = 10_000;

/// The windows of a scope of `platform`, as published.
pub fn windows(platform: Platform) -> Vec<Window> {
    match platform {
        Platform::GoogleBusinessProfile => vec![Window::per_minute(GOOGLE_PER_MINUTE)],
        Platform::GooglePlaces => vec![Window::per_minute(PLACES_PER_MINUTE)],
        Platform::Yelp => vec![
            Window::daily_from_midnight(YELP_PER_DAY),
            Window::per_second(YELP_PER_SECOND),
        ],
        Platform::Facebook => vec![Window::rolling(FACEBOOK_PAGE_PER_DAY, DAY)],
        Platform::Trustpilot => vec![
            Window::per_minutes(TRUSTPILOT_PER_5_MINUTES, 5),
            Window::per_hour(TRUSTPILOT_PER_HOUR),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_has_the_published_windows() {
        let shown = |p| {
            windows(p)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        assert_eq!(shown(Platform::GoogleBusinessProfile), "300 per minute");
        assert_eq!(shown(Platform::GooglePlaces), "600 per minute");
        assert_eq!(
            shown(Platform::Yelp),
            "300 per day (resets 00:00 UTC), 1 per second"
        );
        assert_eq!(shown(Platform::Facebook), "4800 per 24 hours");
        assert_eq!(
            shown(Platform::Trustpilot),
            "833 per 5 minutes, 10000 per hour"
        );
    }
}
