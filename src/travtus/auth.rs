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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use sandbox::{Sandbox, SandboxOptions};
    use std::time::Duration;
    use url::Url;

    fn travtus(base: &str, auth: TravtusAuth) -> TravtusConfig {
        TravtusConfig {
            base_url: Url::parse(base).unwrap(),
            auth,
            timeout: Duration::from_secs(5),
            concurrency: std::num::NonZeroUsize::new(1).unwrap(),
        }
    }

    /// A static token is used as is: nothing is fetched, from anywhere.
    #[tokio::test]
    async fn a_static_token_is_the_bearer_and_nothing_is_fetched() {
        // A closed port: any fetch would fail.
        let config = travtus(
            "http://127.0.0.1:9/",
            TravtusAuth::StaticToken(Secret::new("s3cret")),
        );
        let tokens = token_cache(&config, reqwest::Client::new());
        let token = tokens.get().await.expect("a static token");
        assert_eq!(token.bearer(), "Bearer s3cret");
        assert_eq!(tokens.fetch_count(), 0);
    }

    /// client_credentials fetch from `token_url` (not the API's base URL),
    /// once, and the token is reused.
    #[tokio::test]
    async fn client_credentials_are_fetched_from_the_token_url_once() {
        let sb = Sandbox::start(SandboxOptions::default()).await.unwrap();
        let config = travtus(
            // The API's base URL is not where tokens come from.
            "http://127.0.0.1:9/",
            TravtusAuth::ClientCredentials {
                token_url: Url::parse(&format!("{}/oauth2/token", sb.travtus_base_url())).unwrap(),
                client_id: sandbox::TRAVTUS_CLIENT_ID.into(),
                client_secret: Secret::new(sandbox::TRAVTUS_CLIENT_SECRET),
            },
        );
        let tokens = token_cache(&config, reqwest::Client::new());
        let first = tokens.get().await.expect("a token");
        let again = tokens.get().await.expect("the same token");
        assert_eq!(first.bearer(), again.bearer());
        assert_eq!(tokens.fetch_count(), 1);
        assert_eq!(sb.travtus().token_requests(), 1);
    }
}
