//! The config loader's fuzzing entry point: the `config_load` target in
//! `fuzz/` and the kept inputs in `tests/it/regressions/` feed it bytes.
//! Not part of the API.

use super::{Config, TravtusAuth, load_str_with_env};
use std::path::Path;
use url::Url;

/// Where the fuzzed config "lives": a directory that does not exist, so
/// relative `{ file = .. }` secrets and the permission check find nothing.
const FUZZ_PATH: &str = "/nonexistent/review-sync-fuzz/config.toml";

/// The value of every environment variable a fuzzed config asks for. It must
/// never appear in a problem, a warning or the config's `Debug`.
pub const FUZZ_ENV_SECRET: &str = "fuzz-env-s3cret-value";

/// Loads `bytes` (when UTF-8) as a config at a fixed path with a fixed fake
/// environment, and checks what the loader promises: a refusal lists at
/// least one problem, each as `file:line:column: message`; an accepted
/// config has unique source names and only https or loopback http URLs; and
/// no secret from the environment shows anywhere.
///
/// Device files (`/dev/...`) named as secret files are skipped: reading
/// a terminal would wait for input, which says nothing about the loader.
///
/// # Panics
/// On the first broken promise.
#[doc(hidden)]
pub fn fuzz_load(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if text.contains("/dev/") || text.contains("/proc/") {
        return;
    }
    let env = |name: &str| match name {
        // Credentials come from a directory that does not exist.
        "CREDENTIALS_DIRECTORY" => Some("/nonexistent/review-sync-fuzz/credentials".to_owned()),
        "EMPTY" => Some(String::new()),
        "UNSET" => None,
        _ => Some(FUZZ_ENV_SECRET.to_owned()),
    };
    let path = Path::new(FUZZ_PATH);
    match load_str_with_env(text, path, &env) {
        Err(e) => {
            assert!(!e.problems.is_empty(), "a refusal without a problem");
            for problem in &e.lines() {
                let position = problem
                    .strip_prefix(FUZZ_PATH)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .unwrap_or_else(|| panic!("no file:line:column in {problem:?}"));
                let mut parts = position.splitn(3, ':');
                for what in ["line", "column"] {
                    let n = parts.next().and_then(|n| n.parse::<usize>().ok());
                    assert!(n.is_some_and(|n| n >= 1), "no {what} in {problem:?}");
                }
                assert!(
                    !problem.contains(FUZZ_ENV_SECRET),
                    "a secret in {problem:?}"
                );
            }
            assert!(!format!("{e:?}").contains(FUZZ_ENV_SECRET));
        }
        Ok(config) => {
            let shown = format!("{config:?}");
            assert!(
                !shown.contains(FUZZ_ENV_SECRET),
                "a secret in the Debug output"
            );
            for warning in &config.warnings {
                assert!(
                    !warning.contains(FUZZ_ENV_SECRET),
                    "a secret in {warning:?}"
                );
            }
            let mut names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
            let count = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), count, "duplicate source names accepted");
            assert!(
                names.iter().all(|n| !n.trim().is_empty()),
                "a blank source name"
            );
            for url in urls(&config) {
                let loopback = match url.host() {
                    Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    None => false,
                };
                assert!(
                    url.scheme() == "https" || (url.scheme() == "http" && loopback),
                    "{url} accepted"
                );
            }
        }
    }
}

/// Every URL of a config: Travtus's and each source's.
fn urls(config: &Config) -> Vec<&Url> {
    let mut urls = vec![&config.travtus.base_url];
    if let TravtusAuth::ClientCredentials { token_url, .. } = &config.travtus.auth {
        urls.push(token_url);
    }
    for source in &config.sources {
        urls.extend(source.kind.urls());
    }
    urls
}
