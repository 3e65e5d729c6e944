//! Which locations a pass reads, and where their reviews go: the configured
//! `[[source.location]]` mapping, plus, for a source with
//! `discover_accounts`, every location the platform lists.
//!
//! The rules (SPEC section 3, "Discovery"):
//! - an explicit `[[source.location]]` always wins over a discovered mapping;
//! - a discovered location with a store code maps to the group whose external
//!   reference is that store code (`group_external_ref_from = "store_code"`);
//! - a discovered location without one is reported (a warning naming it, and
//!   a count in the pass report) and still read: its reviews are recorded
//!   `held` with the reason, never dropped, until it is mapped;
//! - a discovery failure is reported, and the configured locations are read
//!   all the same.
//!
//! `poll`, `dry_run`, `check --online` and `ledger retry` all resolve
//! locations here, so they agree on where a review goes.

use crate::config::{Config, SourceConfig};
use crate::domain::{GroupRef, LocationId};
use crate::platforms::{DiscoveredLocation, Discovery, PlatformError, SourceClient};
use std::collections::{HashMap, HashSet};

/// One location a pass reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The platform's location id.
    pub id: LocationId,
    /// Where its reviews go; `None` when it is not mapped.
    pub group: Option<GroupRef>,
    /// Why its reviews are held, when `group` is `None` (the rows'
    /// `last_error`).
    pub hold_reason: Option<String>,
}

/// A discovered location without a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmappedLocation {
    /// `accounts/{a}/locations/{l}`.
    pub id: String,
    /// Its title on the platform, when it has one.
    pub title: Option<String>,
}

/// What discovery found for one source in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryReport {
    /// Accounts listed (`discover_accounts`).
    pub accounts: usize,
    /// Locations the platform listed.
    pub found: usize,
    /// Of those, mapped by an explicit `[[source.location]]`.
    pub configured: usize,
    /// Of those, mapped by their store code.
    pub by_store_code: usize,
    /// Of those, without any mapping: read, their reviews held.
    pub unmapped: Vec<UnmappedLocation>,
    /// Accounts that could not be listed, with why.
    pub failures: Vec<(String, String)>,
}

/// The locations of one pass.
#[derive(Debug, Default)]
pub struct Plan {
    /// Configured locations first (file order), then discovered ones
    /// (the platform's order).
    pub targets: Vec<Target>,
    /// `Some` for a source that discovers.
    pub discovery: Option<DiscoveryReport>,
    /// Set when discovery found that the credential needs new consent: the
    /// whole source stops (every request would be refused the same way).
    pub needs_consent: Option<String>,
}

/// The locations `source` reads now: discovery (when configured) runs here,
/// through the source's own client (its token, rate limit and retries).
pub async fn plan(source: &SourceConfig, client: &dyn SourceClient) -> Plan {
    let discovery = match client.discover() {
        Some(discovering) => Some(discovering.await),
        None => None,
    };
    plan_from(source, discovery)
}

/// [`plan`] once discovery has answered (`None`: the source does not
/// discover).
pub fn plan_from(source: &SourceConfig, discovery: Option<Discovery>) -> Plan {
    let mut targets: Vec<Target> = source
        .locations
        .iter()
        .map(|l| Target {
            id: l.id.clone(),
            group: Some(l.group.clone()),
            hold_reason: None,
        })
        .collect();
    let Some(discovery) = discovery else {
        return Plan {
            targets,
            ..Plan::default()
        };
    };
    let configured: HashSet<&LocationId> = source.locations.iter().map(|l| &l.id).collect();
    let mut report = DiscoveryReport {
        accounts: discovery.accounts,
        found: discovery.locations.len(),
        ..DiscoveryReport::default()
    };
    let mut needs_consent = None;
    for (account, error) in discovery.failures {
        if let PlatformError::NeedsConsent(reason) = &error {
            needs_consent = Some(reason.clone());
        }
        report.failures.push((account, error.to_string()));
    }
    for location in discovery.locations {
        if configured.contains(&location.id) {
            report.configured += 1;
            continue;
        }
        match discovered_group(&location) {
            Some(group) => {
                report.by_store_code += 1;
                targets.push(Target {
                    id: location.id,
                    group: Some(group),
                    hold_reason: None,
                });
            }
            None => {
                tracing::warn!(
                    source = %source.name,
                    location = %location.id,
                    title = location.title.as_deref().unwrap_or(""),
                    "discovered location has no store code: its reviews are held until it gets one or a [[source.location]]"
                );
                report.unmapped.push(UnmappedLocation {
                    id: location.id.to_string(),
                    title: location.title.clone(),
                });
                targets.push(Target {
                    hold_reason: Some(hold_reason(&location)),
                    id: location.id,
                    group: None,
                });
            }
        }
    }
    Plan {
        targets,
        discovery: Some(report),
        needs_consent,
    }
}

/// The group a discovered location maps to by itself (its store code), if any.
pub fn discovered_group(location: &DiscoveredLocation) -> Option<GroupRef> {
    location
        .store_code
        .as_ref()
        .map(|code| GroupRef::ExternalRef(code.clone()))
}

/// The `last_error` of the reviews of an unmapped discovered location.
pub fn hold_reason(location: &DiscoveredLocation) -> String {
    match &location.title {
        Some(title) => format!(
            "unmapped: discovered location {} ({title:?}) has no store code",
            location.id
        ),
        None => format!(
            "unmapped: discovered location {} has no store code",
            location.id
        ),
    }
}

/// The groups that discovery gives now, for `ledger retry`: a held review
/// of a discovered location goes back to `pending` once the location has a
/// store code on the platform (an explicit mapping still wins: the caller
/// asks the config first).
#[derive(Debug, Default)]
pub struct DiscoveredGroups {
    groups: HashMap<(String, String), GroupRef>,
    /// (source, account, error) of every account that could not be listed.
    pub failures: Vec<(String, String, String)>,
}

impl DiscoveredGroups {
    /// Discovers the locations of every source with `discover_accounts`
    /// (only those in `only`, when it is `Some`).
    pub async fn fetch(
        config: &Config,
        only: Option<&str>,
        http: reqwest::Client,
    ) -> DiscoveredGroups {
        let mut out = DiscoveredGroups::default();
        // Its own budgets: a one-off listing, not the daemon's.
        let quotas = std::sync::Arc::new(crate::quota::Quotas::new());
        for source in &config.sources {
            if !source.kind.discovers() || only.is_some_and(|name| name != source.name.as_str()) {
                continue;
            }
            let client = crate::platforms::client(source, http.clone(), &quotas);
            let Some(discovering) = client.discover() else {
                continue;
            };
            let discovery = discovering.await;
            for (account, error) in discovery.failures {
                out.failures
                    .push((source.name.to_string(), account, error.to_string()));
            }
            for location in discovery.locations {
                if let Some(group) = discovered_group(&location) {
                    out.groups
                        .insert((source.name.to_string(), location.id.to_string()), group);
                }
            }
        }
        out
    }

    /// The group of a discovered location of `source`, when it has a store code.
    pub fn group_of(&self, source: &str, location: &str) -> Option<&GroupRef> {
        self.groups.get(&(source.to_owned(), location.to_owned()))
    }

    /// Whether any source of `config` discovers (so `ledger retry` should ask).
    pub fn wanted(config: &Config) -> bool {
        config.sources.iter().any(|s| s.kind.discovers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::test_support::source_from_toml;

    /// A discovering source with these (location, `group_id`) mappings.
    fn source(locations: &[(&str, &str)]) -> SourceConfig {
        let mut toml = String::from(
            "[[source]]\nname = \"g\"\nkind = \"google_business_profile\"\nschedule = \"0 * * * * *\"\nclient_id = \"id\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\ndiscover_accounts = [\"accounts/1\", \"accounts/2\"]\ngroup_external_ref_from = \"store_code\"\n",
        );
        for (id, group) in locations {
            toml.push_str(&format!(
                "\n  [[source.location]]\n  id = \"{id}\"\n  group_id = \"{group}\"\n"
            ));
        }
        source_from_toml(&toml)
    }

    fn found(id: &str, title: Option<&str>, store_code: Option<&str>) -> DiscoveredLocation {
        DiscoveredLocation {
            id: LocationId::new(id),
            title: title.map(str::to_owned),
            store_code: store_code.map(str::to_owned),
        }
    }

    #[test]
    fn explicit_mappings_win_store_codes_map_and_the_rest_is_held() {
        let discovery = Discovery {
            accounts: 2,
            locations: vec![
                found("accounts/1/locations/1", Some("Oak"), Some("portfolio-1")),
                found("accounts/1/locations/2", Some("Elm \"House\""), None),
                found("accounts/1/locations/3", Some("Ash"), Some("portfolio-3")),
                found("accounts/1/locations/4", None, None),
            ],
            failures: vec![(
                "accounts/2".into(),
                PlatformError::Unauthorized("accounts/2: PERMISSION_DENIED: no".into()),
            )],
        };
        let plan = plan_from(
            &source(&[
                ("accounts/1/locations/3", "explicit"),
                ("accounts/9/locations/9", "x"),
            ]),
            Some(discovery),
        );
        let targets: Vec<(&str, Option<String>, Option<&str>)> = plan
            .targets
            .iter()
            .map(|t| {
                (
                    t.id.as_str(),
                    t.group.as_ref().map(ToString::to_string),
                    t.hold_reason.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            targets,
            [
                (
                    "accounts/1/locations/3",
                    Some("group_id=explicit".into()),
                    None
                ),
                ("accounts/9/locations/9", Some("group_id=x".into()), None),
                (
                    "accounts/1/locations/1",
                    Some("group_external_ref=portfolio-1".into()),
                    None
                ),
                (
                    "accounts/1/locations/2",
                    None,
                    Some(
                        "unmapped: discovered location accounts/1/locations/2 (\"Elm \\\"House\\\"\") has no store code"
                    )
                ),
                (
                    "accounts/1/locations/4",
                    None,
                    Some("unmapped: discovered location accounts/1/locations/4 has no store code")
                ),
            ]
        );
        let report = plan.discovery.expect("a discovery report");
        assert_eq!(report.accounts, 2);
        assert_eq!(report.found, 4);
        assert_eq!(report.configured, 1);
        assert_eq!(report.by_store_code, 1);
        assert_eq!(report.unmapped.len(), 2);
        assert_eq!(report.failures.len(), 1);
        assert!(report.failures[0].1.contains("PERMISSION_DENIED"));
        assert_eq!(plan.needs_consent, None);
    }

    #[test]
    fn a_refused_credential_stops_the_source_and_no_discovery_means_config_only() {
        let discovery = Discovery {
            accounts: 1,
            locations: Vec::new(),
            failures: vec![(
                "accounts/1".into(),
                PlatformError::NeedsConsent("invalid_grant".into()),
            )],
        };
        let plan = plan_from(&source(&[]), Some(discovery));
        assert_eq!(plan.needs_consent.as_deref(), Some("invalid_grant"));

        let plan = plan_from(&source(&[("accounts/1/locations/1", "g")]), None);
        assert_eq!(plan.targets.len(), 1);
        assert!(plan.discovery.is_none());
    }
}
