//! Credential parsing shared by every emulator: bearer tokens, HTTP Basic
//! client credentials and form-encoded OAuth token requests.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use base64::Engine as _;

/// The token after `Bearer ` (scheme case-insensitive, as Travtus's own
/// examples send `bearer`), if the header is present and non-empty.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `(client_id, client_secret)` from HTTP Basic auth, if present and well formed.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The fields of a form-encoded token request, with `client_id` and
/// `client_secret` taken from HTTP Basic auth when the client sent them there
/// (OAuth 2.0 allows either).
pub(crate) fn token_form(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let mut form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    if let Some((id, secret)) = basic_credentials(headers) {
        form.insert("client_id".into(), id);
        form.insert("client_secret".into(), secret);
    }
    form
}

/// `headers[name]` as an owned string, if present and visible ASCII.
pub(crate) fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().expect("header value"));
        headers
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(&HeaderMap::new()), None);
        assert_eq!(bearer_token(&with_auth("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&with_auth("BEARER  abc ")), Some("abc"));
        assert_eq!(bearer_token(&with_auth("Basic abc")), None);
        assert_eq!(bearer_token(&with_auth("Bearer ")), None);
    }

    #[test]
    fn basic_credentials_fill_the_form() {
        // base64("id:se:cret")
        let form = token_form(
            &with_auth("Basic aWQ6c2U6Y3JldA=="),
            b"grant_type=x&client_id=other",
        );
        assert_eq!(form["client_id"], "id");
        assert_eq!(form["client_secret"], "se:cret");
        assert_eq!(form["grant_type"], "x");
    }
}
