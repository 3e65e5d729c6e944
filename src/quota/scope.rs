//! Quota scopes: what each platform counts requests by, as a key that never
//! holds a credential.
//!
//! Google Business Profile counts per Cloud project, that is per OAuth
//! client (`client_id`); Places, Yelp and Trustpilot per API key; Facebook
//! (Page tokens, Business Use Case limits) per Page. Two sources with the
//! same client or key share one scope and so one budget
//! ([`super::Quotas`]).
//!
//! **Invariant:** a scope key holds a salted SHA-256 digest of a client id
//! or key, never the value: its display (log lines) shows 8 hex digits of
//! the digest, its metric label ([`ScopeKey::label`]) the platform and
//! those digits, or only `facebook:page` for the per-Page scopes (one
//! series per source, not per Page).

use sha2::{Digest, Sha256};
use std::fmt;

/// A platform whose requests count against a quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    /// Google Business Profile (v4 reviews): per OAuth client.
    GoogleBusinessProfile,
    /// Google Places (New): per API key.
    GooglePlaces,
    /// Yelp Fusion / Places API: per API key.
    Yelp,
    /// Facebook Graph Page ratings: per Page.
    Facebook,
    /// Trustpilot: per API key.
    Trustpilot,
}

impl Platform {
    /// The `kind` name of the config.
    pub fn name(self) -> &'static str {
        match self {
            Platform::GoogleBusinessProfile => "google_business_profile",
            Platform::GooglePlaces => "google_places",
            Platform::Yelp => "yelp",
            Platform::Facebook => "facebook",
            Platform::Trustpilot => "trustpilot",
        }
    }
}

/// What a scope is counted by: a digest of a credential, or a Page id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Counted {
    /// An OAuth client id or an API key, as a salted digest.
    Credential([u8; 32]),
    /// A Facebook Page id (not a secret: it is the location's id).
    Page(String),
}

/// A quota scope: the platform and what it counts by.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeKey {
    platform: Platform,
    counted: Counted,
}

/// Salted so that a digest shown in a log cannot be looked up in a table
/// of digests of known keys made for another purpose.
fn digest(platform: Platform, value: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"review-sync quota scope\n");
    hasher.update(platform.name().as_bytes());
    hasher.update(b"\n");
    hasher.update(value.as_bytes());
    hasher.finalize().into()
}

impl ScopeKey {
    fn credential(platform: Platform, value: &str) -> ScopeKey {
        ScopeKey {
            platform,
            counted: Counted::Credential(digest(platform, value)),
        }
    }

    /// Google Business Profile: the Cloud project of this OAuth client.
    pub fn google_client(client_id: &str) -> ScopeKey {
        ScopeKey::credential(Platform::GoogleBusinessProfile, client_id)
    }

    /// Google Places: this API key (its project).
    pub fn places_key(api_key: &str) -> ScopeKey {
        ScopeKey::credential(Platform::GooglePlaces, api_key)
    }

    /// Yelp: this API key.
    pub fn yelp_key(api_key: &str) -> ScopeKey {
        ScopeKey::credential(Platform::Yelp, api_key)
    }

    /// Trustpilot: this API key.
    pub fn trustpilot_key(api_key: &str) -> ScopeKey {
        ScopeKey::credential(Platform::Trustpilot, api_key)
    }

    /// Facebook: this Page (Business Use Case limits of Page tokens).
    pub fn facebook_page(page_id: &str) -> ScopeKey {
        ScopeKey {
            platform: Platform::Facebook,
            counted: Counted::Page(page_id.to_owned()),
        }
    }

    /// The platform.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The Page id of a Facebook scope.
    pub fn page(&self) -> Option<&str> {
        match &self.counted {
            Counted::Page(page) => Some(page),
            Counted::Credential(_) => None,
        }
    }

    /// 8 hex digits of the credential's digest: enough to tell a config's
    /// keys apart, far too few to test a guess of the key against.
    fn short(&self) -> Option<String> {
        match &self.counted {
            Counted::Credential(d) => Some(hex::encode(&d[..4])),
            Counted::Page(_) => None,
        }
    }

    /// The `scope` label of metrics: `yelp:1a2b3c4d`, or `facebook:page`
    /// for every Page (Pages are locations: one series each would be
    /// unbounded). Never a key.
    pub fn label(&self) -> String {
        match self.short() {
            Some(short) => format!("{}:{short}", self.platform.name()),
            None => format!("{}:page", self.platform.name()),
        }
    }
}

/// `yelp API key #1a2b3c4d`, `google_business_profile OAuth client
/// #1a2b3c4d`, `facebook Page 1000001`: for log lines and `check`.
impl fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.platform.name();
        match (&self.counted, self.short()) {
            (Counted::Page(page), _) => write!(f, "{name} Page {page}"),
            (Counted::Credential(_), Some(short)) => {
                let what = match self.platform {
                    Platform::GoogleBusinessProfile => "OAuth client",
                    _ => "API key",
                };
                write!(f, "{name} {what} #{short}")
            }
            (Counted::Credential(_), None) => write!(f, "{name}"),
        }
    }
}

/// Same as the display: the digest, never the credential.
impl fmt::Debug for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_never_shows_its_key_and_the_same_key_is_the_same_scope() {
        let key = "yelp-secret-api-key-0123456789";
        let scope = ScopeKey::yelp_key(key);
        for shown in [scope.to_string(), format!("{scope:?}"), scope.label()] {
            assert!(!shown.contains(key), "{shown}");
            assert!(!shown.contains("0123456789"), "{shown}");
        }
        assert_eq!(scope, ScopeKey::yelp_key(key));
        assert_ne!(scope, ScopeKey::yelp_key("another key"));
        // Same value, other platform: another scope.
        assert_ne!(scope, ScopeKey::trustpilot_key(key));
        let label = scope.label();
        assert!(
            label.starts_with("yelp:") && label.len() == "yelp:".len() + 8,
            "{label}"
        );
        assert!(scope.to_string().starts_with("yelp API key #"), "{scope}");
        assert!(
            ScopeKey::google_client("123.apps.googleusercontent.com")
                .to_string()
                .starts_with("google_business_profile OAuth client #")
        );
    }

    #[test]
    fn pages_share_one_label_and_are_named_in_full() {
        let a = ScopeKey::facebook_page("100000000000001");
        let b = ScopeKey::facebook_page("100000000000002");
        assert_ne!(a, b);
        assert_eq!(a.label(), "facebook:page");
        assert_eq!(a.label(), b.label());
        assert_eq!(a.to_string(), "facebook Page 100000000000001");
        assert_eq!(a.page(), Some("100000000000001"));
        assert_eq!(ScopeKey::places_key("k").page(), None);
    }
}
