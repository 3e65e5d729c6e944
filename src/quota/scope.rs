//! Quota scopes: what a platform counts requests by, as a key that never
//! holds a credential.
//!
//! Each platform says what its scope is (its `settings.rs`, through the
//! registry): Google Business Profile counts per Cloud project, that is per
//! OAuth client (`client_id`); Places, Yelp and Trustpilot per API key;
//! Facebook (Page tokens, Business Use Case limits) per Page. A scope is
//! either a credential's (kept as a digest) or a location's (its id, not a
//! secret). Two sources with the same client or key share one scope and so
//! one budget ([`super::Quotas`]). This module names no platform: a scope
//! carries its platform's `kind` and the words for what it counts by.
//!
//! **Invariant:** a scope key holds a salted SHA-256 digest of a client id
//! or key, never the value: its display (log lines) shows 8 hex digits of
//! the digest, its metric label ([`ScopeKey::label`]) the kind and those
//! digits, or only `<kind>:<noun>` for the per-location scopes (one series
//! per source, not per location).

use sha2::{Digest, Sha256};
use std::fmt;

/// What a scope is counted by: a digest of a credential, or a location id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Counted {
    /// An OAuth client id or an API key, as a salted digest; `what` names
    /// it (`OAuth client`, `API key`).
    Credential {
        what: &'static str,
        digest: [u8; 32],
    },
    /// A location's id (not a secret); `what` names it (`Page`).
    Location { what: &'static str, id: String },
}

/// A quota scope: the platform's `kind` and what it counts by.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeKey {
    kind: &'static str,
    counted: Counted,
}

/// Salted so that a digest shown in a log cannot be looked up in a table
/// of digests of known keys made for another purpose.
fn digest(kind: &str, value: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"review-sync quota scope\n");
    hasher.update(kind.as_bytes());
    hasher.update(b"\n");
    hasher.update(value.as_bytes());
    hasher.finalize().into()
}

impl ScopeKey {
    /// The scope of a credential of platform `kind`: `what` names it in
    /// logs (`API key`, `OAuth client`); `value` is digested at once.
    pub fn credential(kind: &'static str, what: &'static str, value: &str) -> ScopeKey {
        ScopeKey {
            kind,
            counted: Counted::Credential {
                what,
                digest: digest(kind, value),
            },
        }
    }

    /// The scope of one location of platform `kind` (a Facebook Page):
    /// `what` names it (`Page`), `id` is the location's id.
    pub fn location(kind: &'static str, what: &'static str, id: &str) -> ScopeKey {
        ScopeKey {
            kind,
            counted: Counted::Location {
                what,
                id: id.to_owned(),
            },
        }
    }

    /// The platform's `kind`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The location id of a per-location scope.
    pub fn location_id(&self) -> Option<&str> {
        match &self.counted {
            Counted::Location { id, .. } => Some(id),
            Counted::Credential { .. } => None,
        }
    }

    /// What a per-location scope counts by (`Page`).
    pub fn location_noun(&self) -> Option<&'static str> {
        match &self.counted {
            Counted::Location { what, .. } => Some(what),
            Counted::Credential { .. } => None,
        }
    }

    /// 8 hex digits of the credential's digest: enough to tell a config's
    /// keys apart, far too few to test a guess of the key against.
    fn short(&self) -> Option<String> {
        match &self.counted {
            Counted::Credential { digest, .. } => Some(hex::encode(&digest[..4])),
            Counted::Location { .. } => None,
        }
    }

    /// The `scope` label of metrics: `yelp:1a2b3c4d`, or `facebook:page`
    /// for every Page (locations: one series each would be unbounded).
    /// Never a key.
    pub fn label(&self) -> String {
        match &self.counted {
            Counted::Credential { .. } => {
                format!("{}:{}", self.kind, self.short().unwrap_or_default())
            }
            Counted::Location { what, .. } => {
                format!("{}:{}", self.kind, what.to_ascii_lowercase())
            }
        }
    }
}

/// `yelp API key #1a2b3c4d`, `google_business_profile OAuth client
/// #1a2b3c4d`, `facebook Page 1000001`: for log lines and `check`.
impl fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.counted {
            Counted::Location { what, id } => write!(f, "{} {what} {id}", self.kind),
            Counted::Credential { what, .. } => write!(
                f,
                "{} {what} #{}",
                self.kind,
                self.short().unwrap_or_default()
            ),
        }
    }
}

/// Same as the display: the digest, never the credential.
impl fmt::Debug for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeKey({self})")
    }
}

/// The scopes a source's requests count against, as its platform's
/// settings say (`Settings::quota_scope`).
#[derive(Debug, Clone)]
pub enum QuotaScope {
    /// No platform quota (a source reading files).
    None,
    /// One scope for every request of the source (an OAuth client, an API
    /// key), discovery included.
    Source(ScopeKey),
    /// A scope per location (a Facebook Page), made from the location id.
    PerLocation(fn(&str) -> ScopeKey),
}

impl QuotaScope {
    /// The scope of a request for `location` (`None`: not for one
    /// location); `None` when nothing counts it (no quota, or a
    /// per-location scope asked without a location).
    pub fn key(&self, location: Option<&str>) -> Option<ScopeKey> {
        match (self, location) {
            (QuotaScope::None, _) | (QuotaScope::PerLocation(_), None) => None,
            (QuotaScope::Source(key), _) => Some(key.clone()),
            (QuotaScope::PerLocation(of), Some(id)) => Some(of(id.trim())),
        }
    }

    /// The metric label of its waits: one per source (a per-location
    /// scope's label names no location).
    pub fn label(&self) -> Option<String> {
        match self {
            QuotaScope::None => None,
            QuotaScope::Source(key) => Some(key.label()),
            QuotaScope::PerLocation(of) => Some(of("").label()),
        }
    }
}

/// The scopes of the platforms, as their settings make them, for the
/// module's own tests.
#[cfg(test)]
impl ScopeKey {
    pub(crate) fn google_client(client_id: &str) -> ScopeKey {
        ScopeKey::credential("google_business_profile", "OAuth client", client_id)
    }
    pub(crate) fn places_key(api_key: &str) -> ScopeKey {
        ScopeKey::credential("google_places", "API key", api_key)
    }
    pub(crate) fn yelp_key(api_key: &str) -> ScopeKey {
        ScopeKey::credential("yelp", "API key", api_key)
    }
    pub(crate) fn trustpilot_key(api_key: &str) -> ScopeKey {
        ScopeKey::credential("trustpilot", "API key", api_key)
    }
    pub(crate) fn facebook_page(page_id: &str) -> ScopeKey {
        ScopeKey::location("facebook", "Page", page_id)
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
    fn locations_share_one_label_and_are_named_in_full() {
        let a = ScopeKey::facebook_page("100000000000001");
        let b = ScopeKey::facebook_page("100000000000002");
        assert_ne!(a, b);
        assert_eq!(a.label(), "facebook:page");
        assert_eq!(a.label(), b.label());
        assert_eq!(a.to_string(), "facebook Page 100000000000001");
        assert_eq!(a.location_id(), Some("100000000000001"));
        assert_eq!(a.location_noun(), Some("Page"));
        assert_eq!(ScopeKey::places_key("k").location_id(), None);
    }
}
