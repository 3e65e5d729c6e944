//! The platform registry: what an entry says of a platform ([`Platform`]),
//! and what the rest of the program asks of the list. The list itself is
//! the one `platforms!` line in `platforms/mod.rs`, the only place outside
//! each platform's own folder that names them. Everything else reaches a
//! platform through its entry: config validation (its `kind`, keys,
//! defaults, location ids and settings), the client of a source, what
//! `ledger stats` says it cannot see, and its part of the sandbox's config.
//!
//! Adding a platform is a folder (`src/platforms/<name>/`, with a
//! `PLATFORM` entry) and its name on that line: ARCHITECTURE.md, "Adding a
//! platform".

pub(crate) use super::PLATFORMS;
use super::SourceClient;
use crate::config::SourceConfig;
use crate::config::keys::{Key, SourceKeys};
use crate::domain::LocationId;
use crate::quota::headers::{Adjustment, Answer};
use crate::quota::plan::{PassCost, PassKind};
use crate::quota::{QuotaScope, Quotas, Window};
use std::any::Any;
use std::sync::Arc;
use url::Url;

/// Declares the platforms: each name is a module (its folder) and its
/// `PLATFORM` an entry of `PLATFORMS`, in order.
macro_rules! platforms {
    ($($name:ident),* $(,)?) => {
        $(pub mod $name;)*

        /// Every platform's registry entry, in the order they are declared.
        pub(crate) static PLATFORMS: &[&registry::Platform] = &[$(&$name::PLATFORM),*];
    };
}

/// What the program knows of one platform, beyond its client: one per
/// platform folder, listed in [`PLATFORMS`].
#[derive(Debug)]
pub(crate) struct Platform {
    /// `kind` in the config.
    pub(crate) kind: &'static str,
    /// Its own `[[source]]` keys, beyond those every source takes.
    pub(crate) keys: &'static [Key],
    /// Its own `[[source.location]]` keys, beyond `id` and the group.
    pub(crate) location_keys: &'static [Key],
    /// The platform's published quota per scope (`quota::Window`s): what a
    /// scope's budget starts from before the platform's answers say more,
    /// and what `check`'s quota plan counts against. Empty: no quota.
    pub(crate) quota: fn() -> Vec<Window>,
    /// What an answer (success or error) says about the scope's limits
    /// (usage headers, refusals, a 429's `Retry-After`), for its budget to
    /// follow.
    pub(crate) observe: fn(&Answer<'_>) -> Vec<Adjustment>,
    /// Whether it lists every review of a location, so that a full pass can
    /// tell which reviews vanished: the kinds that take
    /// `reconcile_schedule`.
    pub(crate) reconciles: bool,
    /// What a source of this kind cannot see, for `ledger stats`; `None`
    /// when the platform lets us read every review of a location.
    pub(crate) coverage_note: Option<&'static str>,
    /// The key that makes a source discover its locations (it may then
    /// list none itself).
    pub(crate) discovery_key: Option<&'static str>,
    /// Checks a location `id` (already not blank): the problem, naming the
    /// key, when it cannot be one of this platform's.
    pub(crate) location_id: fn(&str) -> Result<(), String>,
    /// Validates a source's own keys into its settings; every problem is
    /// recorded through `keys`, and `None` returned.
    pub(crate) settings: fn(&mut SourceKeys<'_, '_>) -> Option<Arc<dyn Settings>>,
    /// Its sources in the sandbox's config (`review-sync sandbox`, `demo`),
    /// as TOML pointing at the sandbox's emulator.
    pub(crate) sandbox: fn(&sandbox::Sandbox, &mut SandboxGroups) -> String,
}

/// A source's validated settings of its platform: what `[[source]]` said
/// beyond the keys every source takes.
pub(crate) trait Settings: std::fmt::Debug + Send + Sync + Any {
    /// The platform client of `source`, on the shared pool `http`, taking
    /// its requests from the process's budgets `quotas`.
    fn client(
        &self,
        source: &SourceConfig,
        http: reqwest::Client,
        quotas: &Arc<Quotas>,
    ) -> Box<dyn SourceClient>;
    /// The `review.source` its reviews and quarantined records are
    /// recorded under.
    fn review_platform(&self) -> &str;
    /// Whether the source discovers its locations on the platform.
    fn discovers(&self) -> bool {
        false
    }
    /// Every URL a credential of this source is sent to.
    fn urls(&self) -> Vec<&Url>;
    /// What its requests count against: the scope of its OAuth client or
    /// API key, one per location, or none.
    fn quota_scope(&self) -> QuotaScope {
        QuotaScope::None
    }
    /// Requests of one pass of `kind` per location, for the quota plan:
    /// one request per location unless the platform reads several at once.
    fn pass_cost(&self, kind: PassKind) -> PassCost {
        let _ = kind;
        PassCost::PerLocation(1)
    }
    /// What offline `check` says about a location without asking the
    /// platform (`None`: nothing): a line, and problems worth a warning.
    fn inspect(&self, location: &LocationId) -> Option<(String, Vec<String>)> {
        let _ = location;
        None
    }
    /// How the platform tells this source about new reviews (SPEC §3
    /// "Push"), when the source is configured for it.
    fn push(&self) -> Option<crate::push::SourcePush> {
        None
    }
    /// Where `check --online --set-notifications` sets the accounts'
    /// notification setting, for a platform whose accounts are pointed at
    /// a Pub/Sub topic, when push is configured.
    fn push_notifications(&self) -> Option<crate::push::NotificationSettings> {
        None
    }
}

/// The platform of `kind`.
pub(crate) fn by_kind(kind: &str) -> Option<&'static Platform> {
    PLATFORMS.iter().copied().find(|p| p.kind == kind)
}

/// Every kind, for messages: `a, b, c`.
pub(crate) fn kinds() -> String {
    PLATFORMS
        .iter()
        .map(|p| p.kind)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `[[source]]` keys of every platform (each once): the config's first
/// stage reads them all, so that a key of another kind is "not used by
/// this kind" rather than a typo.
pub(crate) fn source_keys() -> Vec<Key> {
    union(|p| p.keys)
}

/// The `[[source.location]]` keys of every platform (each once).
pub(crate) fn location_keys() -> Vec<Key> {
    union(|p| p.location_keys)
}

fn union(keys: impl Fn(&Platform) -> &'static [Key]) -> Vec<Key> {
    let mut all: Vec<Key> = Vec::new();
    for key in PLATFORMS.iter().flat_map(|p| keys(p)) {
        if !all.iter().any(|k| k.name == key.name) {
            all.push(*key);
        }
    }
    all
}

/// The groups the sandbox's config maps the locations of each platform
/// after Google's to: `portfolio-4` on, wrapping after `portfolio-10`.
#[derive(Debug)]
pub(crate) struct SandboxGroups {
    next: usize,
}

impl SandboxGroups {
    /// The `[[source.location]]`s of `ids`, each to the next group.
    pub(crate) fn locations(&mut self, ids: Vec<String>) -> String {
        let mut toml = String::new();
        for id in ids {
            toml.push_str(&format!(
                "\n  [[source.location]]\n  id = \"{id}\"\n  group_external_ref = \"portfolio-{}\"\n",
                self.next % 10 + 1
            ));
            self.next += 1;
        }
        toml
    }
}

/// Every platform's sources in the sandbox's config, as TOML: each points at
/// its emulator in `sb`, with the sandbox's public test credentials.
pub fn sandbox_sources(sb: &sandbox::Sandbox) -> String {
    let mut groups = SandboxGroups { next: 3 };
    PLATFORMS
        .iter()
        .map(|p| (p.sandbox)(sb, &mut groups))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_has_its_published_quota() {
        let shown = |kind: &str| {
            let platform = by_kind(kind).expect("a platform");
            (platform.quota)()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        assert_eq!(shown("google_business_profile"), "300 per minute");
        assert_eq!(shown("google_places"), "600 per minute");
        assert_eq!(
            shown("yelp"),
            "300 per day (resets 00:00 UTC), 1 per second"
        );
        assert_eq!(shown("facebook"), "4800 per 24 hours");
        assert_eq!(shown("trustpilot"), "833 per 5 minutes, 10000 per hour");
        assert_eq!(shown("file"), "");
    }

    #[test]
    fn kinds_are_unique_and_a_key_shared_by_platforms_has_one_type() {
        let mut kinds: Vec<&str> = PLATFORMS.iter().map(|p| p.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), PLATFORMS.len());
        let every = || {
            PLATFORMS
                .iter()
                .flat_map(|p| p.keys.iter().chain(p.location_keys))
        };
        for key in every() {
            assert!(
                every().all(|k| k.name != key.name || k.ty == key.ty),
                "{} has two types",
                key.name
            );
        }
    }
}
