//! The redirect policy of every HTTP request the daemon makes (SPEC §5).
//!
//! The shared pool never follows a redirect by itself ([`policy`]): reqwest's
//! default follows up to 10, turns a 301/302 POST into a body-less GET (which
//! an endpoint elsewhere can answer with a fake `request_id`), re-sends a 307
//! POST body to any host, and strips only `Authorization` when the host
//! changes, so an `X-Goog-Api-Key`, an `apikey` header or a key in the query
//! would go along. Instead each caller sees the 3xx and decides here:
//!
//! - a POST (Travtus `/messages/`) and every token request: never followed;
//! - a GET (platform reads): followed at most [`MAX_REDIRECTS`] times, and
//!   only to the same origin (scheme, host and port), where its credentials
//!   were meant to go anyway. A redirect to another origin is refused, not
//!   followed without credentials: an endpoint that moved is a config
//!   change for a person to make, not something to guess.
//!
//! A refusal is a [`RedirectRefused`] naming the status and the target's
//! origin only (never its path or query, which could carry a secret).
//!
//! **Invariant:** no request of the daemon reaches an origin other than the
//! configured one through a redirect.

use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

/// The most redirects one GET follows (all to its own origin). A real API
/// redirects at most once or twice (a trailing slash, a moved version); more
/// is a loop.
pub(crate) const MAX_REDIRECTS: usize = 3;

/// The policy of the shared HTTP pool: follow nothing, so every 3xx reaches
/// the caller, which applies this module's rules.
pub(crate) fn policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::none()
}

/// Why a redirect was not followed, for a POST, a token request, a GET
/// leaving its origin, or one redirect too many.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status} redirect to {target} refused: {why}")]
pub struct RedirectRefused {
    /// The 3xx status.
    pub status: u16,
    /// The target's origin (`https://host:port`), or what was wrong with
    /// the `Location` (`no Location`, `an invalid Location`).
    pub target: String,
    /// Why it was not followed.
    pub why: &'static str,
}

/// Why a POST is not redirected.
pub(crate) const WHY_POST: &str =
    "a POST is never redirected (its body goes only where it was sent)";
/// Why a token request is not redirected.
pub(crate) const WHY_TOKEN: &str =
    "a token request is never redirected (its credentials go only to the token_url)";

/// A 3xx answer to `from` that is not followed, for `why`.
pub(crate) fn refused(
    from: &Url,
    status: StatusCode,
    headers: &HeaderMap,
    why: &'static str,
) -> RedirectRefused {
    RedirectRefused {
        status: status.as_u16(),
        target: match location(from, headers) {
            Ok(target) => origin_text(&target),
            Err(what) => what.to_owned(),
        },
        why,
    }
}

/// What to do with a 3xx answer to `method from`, after `hops` redirects
/// already followed: the URL to request next, or why not.
pub(crate) fn follow(
    method: &Method,
    from: &Url,
    status: StatusCode,
    headers: &HeaderMap,
    hops: usize,
) -> Result<Url, RedirectRefused> {
    if *method != Method::GET {
        return Err(refused(from, status, headers, WHY_POST));
    }
    let refuse = |target: String, why| RedirectRefused {
        status: status.as_u16(),
        target,
        why,
    };
    let target = location(from, headers).map_err(|what| {
        refuse(
            what.to_owned(),
            "a redirect is only followed to a valid Location",
        )
    })?;
    if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
        return Err(refuse(
            origin_text(&target),
            "not a redirect status this client follows",
        ));
    }
    if target.origin() != from.origin() {
        return Err(refuse(
            origin_text(&target),
            "another origin (credentials never leave for another scheme, host or port)",
        ));
    }
    if hops >= MAX_REDIRECTS {
        return Err(refuse(
            origin_text(&target),
            "more than 3 redirects in a row",
        ));
    }
    Ok(target)
}

/// The `Location` of an answer to `from`, resolved against it.
fn location(from: &Url, headers: &HeaderMap) -> Result<Url, &'static str> {
    let value = headers.get(LOCATION).ok_or("no Location")?;
    let text = value.to_str().map_err(|_| "an invalid Location")?;
    from.join(text.trim()).map_err(|_| "an invalid Location")
}

/// `scheme://host[:port]` of `url`: what a refusal names. Path, query,
/// fragment and user info are left out (any of them could carry a secret).
pub(crate) fn origin_text(url: &Url) -> String {
    let mut text = match url.host_str() {
        Some(host) => match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        },
        None => format!("a {}: URL", url.scheme()),
    };
    // A host is at most 253 bytes; anything longer is noise from a hostile
    // server, kept out of logs and the ledger.
    if text.len() > 300 {
        let mut end = 300;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn at(location: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            LOCATION,
            HeaderValue::from_str(location).expect("header value"),
        );
        headers
    }

    fn url(text: &str) -> Url {
        Url::parse(text).expect("url")
    }

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).expect("status")
    }

    #[test]
    fn a_get_follows_its_own_origin_only() {
        let from = url("https://api.example.com/v1/x?key=s3cret");
        for code in [301, 302, 303, 307, 308] {
            assert_eq!(
                follow(&Method::GET, &from, status(code), &at("/v2/x?page=2"), 0),
                Ok(url("https://api.example.com/v2/x?page=2")),
                "{code}"
            );
            assert_eq!(
                follow(
                    &Method::GET,
                    &from,
                    status(code),
                    &at("https://api.example.com:443/y"),
                    2
                ),
                Ok(url("https://api.example.com/y")),
                "the default port is the same origin"
            );
        }
        for other in [
            "https://evil.example.net/v1/x?key=s3cret",
            "http://api.example.com/v1/x",
            "https://api.example.com:8443/v1/x",
            "//evil.example.net/v1/x",
            "data:text/plain,hi",
        ] {
            let refused = follow(&Method::GET, &from, status(302), &at(other), 0)
                .expect_err("another origin");
            assert!(
                refused.why.starts_with("another origin"),
                "{other}: {refused}"
            );
            let text = refused.to_string();
            assert!(
                !text.contains("s3cret") && !text.contains("/v1/x"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_status_and_the_target_origin_only() {
        let from = url("http://127.0.0.1:8080/travtus/messages/");
        let refusal = refused(
            &from,
            status(307),
            &at("http://user:pw@127.0.0.1:9999/steal?apikey=k3y#frag"),
            WHY_POST,
        );
        assert_eq!(
            refusal.to_string(),
            format!("HTTP 307 redirect to http://127.0.0.1:9999 refused: {WHY_POST}")
        );
        let none = refused(&from, status(302), &HeaderMap::new(), WHY_TOKEN);
        assert_eq!(none.target, "no Location");
    }

    #[test]
    fn posts_loops_and_odd_statuses_are_never_followed() {
        let from = url("https://api.example.com/a");
        let same = at("/b");
        let post = follow(&Method::POST, &from, status(307), &same, 0).expect_err("POST");
        assert_eq!(post.why, WHY_POST);
        let loop_ =
            follow(&Method::GET, &from, status(301), &same, MAX_REDIRECTS).expect_err("too many");
        assert!(loop_.why.starts_with("more than 3"), "{loop_}");
        for code in [300, 304, 305, 306] {
            assert!(follow(&Method::GET, &from, status(code), &same, 0).is_err());
        }
        let missing = follow(&Method::GET, &from, status(302), &HeaderMap::new(), 0)
            .expect_err("no Location");
        assert_eq!(missing.target, "no Location");
    }
}
