//! How review-sync gets its Travtus bearer tokens: `[travtus]`'s
//! credentials (`client_id`/`client_secret` against `token_url`, or a static
//! `token`) turned into the OAuth grant and token cache the delivery worker
//! is given. The worker itself never reads the config.

use crate::config::{TravtusAuth, TravtusConfig};
use crate::oauth::{Grant, TokenCache};

/// The token cache of `travtus`'s credentials, fetching through the shared
/// `http` pool. Token requests are bounded by the API's `timeout` too (see
/// [`TokenCache::with_timeout`]), and counted under the `travtus` label.
pub fn token_cache(travtus: &TravtusConfig, http: reqwest::Client) -> TokenCache {
    let (grant, token_url) = match &travtus.auth {
        TravtusAuth::ClientCredentials {
            token_url,
            client_id,
            client_secret,
        } => (
            Grant::ClientCredentials {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            },
            token_url.clone(),
        ),
        // The URL is never used for a static token.
        TravtusAuth::StaticToken(t) => (Grant::Static(t.clone()), travtus.base_url.clone()),
    };
    TokenCache::new(grant, token_url, http)
        .labelled("travtus", None)
        .with_timeout(travtus.timeout)
}
