//! Stage two for `[[source]]` and `[[source.location]]`: the keys every
//! source takes (its kind, schedules parsed once with the scheduler's own
//! cron parser, request budget, pass bounds), the location-to-group mapping
//! rules the Travtus API enforces, and, through the platform registry, each
//! kind's own keys and location ids, checked in its platform's folder.

use super::keys::SourceKeys;
use super::raw::{Field, RawLocation, RawSource};
use super::span::Span;
use super::validate::Validator;
use super::{
    DEFAULT_RECONCILE_SCHEDULE, LocationConfig, MAX_PAGES_PER_READ, PassBounds, SourceConfig,
    SourceKind,
};
use crate::domain::{GroupRef, LocationId, SourceName};
use crate::platforms::registry::{self, Platform};
use crate::schedule::Schedule;
use std::collections::HashMap;
use std::num::NonZeroU32;

/// The longest `max_pass_time` or `max_full_read_time`: a week, far beyond
/// any real read, and well inside what deadline arithmetic can hold.
const MAX_PASS_TIME: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 60 * 60);
/// Keys every kind takes.
const COMMON_KEYS: &[&str] = &[
    "name",
    "kind",
    "schedule",
    "requests_per_minute",
    "timeout",
    "max_pages_per_pass",
    "max_pass_time",
    "max_pages_per_full_read",
    "max_full_read_time",
    "reconcile_schedule",
    "location",
];

impl Validator<'_> {
    /// Every `[[source]]`; names are unique.
    pub(super) fn sources(
        &mut self,
        raw: Option<Field<Vec<RawSource>>>,
    ) -> Option<Vec<SourceConfig>> {
        let raw = raw.map(|field| field.value).unwrap_or_default();
        if raw.is_empty() {
            self.warnings
                .push(&(0..0), "no [[source]]: nothing will be polled");
        }
        self.duplicate_names(&raw);
        let sources: Vec<Option<SourceConfig>> = raw
            .iter()
            .enumerate()
            .map(|(index, source)| self.source(index, source))
            .collect();
        sources.into_iter().collect()
    }

    /// A repeated source name, reported at the repeat and naming the first.
    fn duplicate_names(&mut self, raw: &[RawSource]) {
        let mut first: HashMap<&str, Span> = HashMap::new();
        for field in raw.iter().filter_map(|source| source.name.as_ref()) {
            match first.get(field.value.as_str()) {
                Some(span) => {
                    let message = format!(
                        "duplicate source name {:?} (first used at {})",
                        field.value,
                        self.lines.describe(span.start)
                    );
                    self.problems.push(&field.span, message);
                }
                None => {
                    first.insert(&field.value, field.span.clone());
                }
            }
        }
    }

    /// One `[[source]]`.
    fn source(&mut self, index: usize, raw: &RawSource) -> Option<SourceConfig> {
        const PLACE: &str = "in [[source]]";
        let name = self
            .require(&raw.name, "name", PLACE, &raw.span, &raw.invalid)
            .and_then(|field| self.non_empty("name", field));
        let kind = self
            .require(&raw.kind, "kind", PLACE, &raw.span, &raw.invalid)
            .and_then(|field| self.kind(field));
        let schedule = self
            .require(&raw.schedule, "schedule", PLACE, &raw.span, &raw.invalid)
            .and_then(|field| self.cron("schedule", field));
        let reconcile_schedule = self.reconcile_schedule(raw, kind);
        let requests_per_minute = self.requests_per_minute(raw.requests_per_minute.as_ref());
        let timeout = self.timeout(raw.timeout.as_ref());
        let pass_bounds = self.pass_bounds(raw);
        let settings = kind.and_then(|platform| self.settings(platform, raw));
        let label = match &name {
            Some(name) => format!("{name:?}"),
            None => format!("#{}", index + 1),
        };
        let locations = self.locations(raw, kind, &label);
        Some(SourceConfig {
            name: SourceName::new(name?),
            schedule: schedule?,
            reconcile_schedule: reconcile_schedule?,
            requests_per_minute: requests_per_minute?,
            timeout: timeout?,
            pass_bounds: pass_bounds?,
            kind: settings?,
            locations: locations?,
        })
    }

    /// `kind`: one of the registry's, or unknown.
    fn kind(&mut self, field: &Field<String>) -> Option<&'static Platform> {
        match registry::by_kind(&field.value) {
            Some(platform) => Some(platform),
            None => self.problem(
                &field.span,
                format!(
                    "unknown kind {:?} (expected one of {})",
                    field.value,
                    registry::kinds()
                ),
            ),
        }
    }

    /// `reconcile_schedule`: its default on kinds that can reconcile, refused
    /// on the others. `Some(None)` is "valid, and this kind never reconciles".
    fn reconcile_schedule(
        &mut self,
        raw: &RawSource,
        kind: Option<&'static Platform>,
    ) -> Option<Option<Schedule>> {
        let Some(kind) = kind else {
            // The kind is refused (and reported): nothing to say about the key.
            return Some(None);
        };
        let reconcilable = kind.reconciles;
        match &raw.reconcile_schedule {
            Some(field) if reconcilable => self.cron("reconcile_schedule", field).map(Some),
            None if reconcilable && raw.written("reconcile_schedule") => None,
            None if reconcilable => Schedule::parse(DEFAULT_RECONCILE_SCHEDULE).ok().map(Some),
            Some(field) => self.problem(
                &field.key,
                format!(
                    "kind {} cannot list every review; reconciliation is not possible (remove `reconcile_schedule`)",
                    kind.kind
                ),
            ),
            None => Some(None),
        }
    }

    /// A cron expression (`schedule`, `reconcile_schedule`), parsed once:
    /// the scheduler follows what `check` accepted.
    fn cron(&mut self, key: &str, field: &Field<String>) -> Option<Schedule> {
        match Schedule::parse(&field.value) {
            Ok(schedule) => Some(schedule),
            Err(e) => {
                let message = format!(
                    "{key}: invalid cron expression {:?}: {} (six fields, seconds first, e.g. \"0 */15 * * * *\")",
                    field.value, e.reason,
                );
                self.problem(&field.span, message)
            }
        }
    }

    /// `requests_per_minute`: an explicit cap on the source's own requests
    /// (and a raise of its scope's minute window), or none: the scope's
    /// budget alone, from the platform's published quota.
    fn requests_per_minute(&mut self, field: Option<&Field<i64>>) -> Option<Option<NonZeroU32>> {
        let Some(field) = field else {
            return Some(None);
        };
        match u32::try_from(field.value).ok().and_then(NonZeroU32::new) {
            Some(budget) => Some(Some(budget)),
            None => self.problem(
                &field.span,
                format!(
                    "requests_per_minute: must be between 1 and {} (got {})",
                    u32::MAX,
                    field.value
                ),
            ),
        }
    }

    /// `max_pages_per_pass`, `max_pass_time`, `max_pages_per_full_read` and
    /// `max_full_read_time`, each defaulting to [`PassBounds::default`].
    fn pass_bounds(&mut self, raw: &RawSource) -> Option<PassBounds> {
        let default = PassBounds::default();
        let incremental_pages = self.page_bound(
            "max_pages_per_pass",
            raw.max_pages_per_pass.as_ref(),
            default.incremental_pages,
        );
        let incremental_time = self.duration(
            "max_pass_time",
            raw.max_pass_time.as_ref(),
            default.incremental_time,
            MAX_PASS_TIME,
        );
        let full_read_pages = self.page_bound(
            "max_pages_per_full_read",
            raw.max_pages_per_full_read.as_ref(),
            default.full_read_pages,
        );
        let full_read_time = self.duration(
            "max_full_read_time",
            raw.max_full_read_time.as_ref(),
            default.full_read_time,
            MAX_PASS_TIME,
        );
        Some(PassBounds {
            incremental_pages: incremental_pages?,
            incremental_time: incremental_time?,
            full_read_pages: full_read_pages?,
            full_read_time: full_read_time?,
        })
    }

    /// A page bound: 1 to [`MAX_PAGES_PER_READ`] (the platforms' own limit).
    fn page_bound(&mut self, key: &str, field: Option<&Field<i64>>, default: u32) -> Option<u32> {
        let Some(field) = field else {
            return Some(default);
        };
        match u32::try_from(field.value) {
            Ok(pages) if (1..=MAX_PAGES_PER_READ).contains(&pages) => Some(pages),
            _ => self.problem(
                &field.span,
                format!(
                    "{key}: must be between 1 and {MAX_PAGES_PER_READ} (got {})",
                    field.value
                ),
            ),
        }
    }

    /// The kind-specific part, validated by its platform; keys of other
    /// kinds are refused first.
    fn settings(&mut self, platform: &'static Platform, raw: &RawSource) -> Option<SourceKind> {
        self.kind_keys(platform, raw);
        let settings = (platform.settings)(&mut SourceKeys::new(self, raw, platform.kind))?;
        Some(SourceKind { platform, settings })
    }

    /// Every key present that this kind does not use.
    fn kind_keys(&mut self, platform: &Platform, raw: &RawSource) {
        for (key, span) in raw.present() {
            if COMMON_KEYS.contains(&key) {
                continue;
            }
            if !platform.keys.iter().any(|k| k.name == key) {
                let message = format!("key `{key}` is not used by kind {}", platform.kind);
                self.problems.push(&span, message);
            }
        }
    }

    /// Every `[[source.location]]`: at least one, ids unique.
    fn locations(
        &mut self,
        raw: &RawSource,
        kind: Option<&'static Platform>,
        label: &str,
    ) -> Option<Vec<LocationConfig>> {
        let items = raw
            .location
            .as_ref()
            .map_or(&[][..], |field| field.value.as_slice());
        // A source that discovers its locations may list none itself (its
        // kind's discovery key; any kind's, when the kind is refused).
        let discovers = match kind {
            Some(platform) => platform.discovery_key.is_some_and(|k| raw.written(k)),
            None => registry::PLATFORMS
                .iter()
                .filter_map(|p| p.discovery_key)
                .any(|k| raw.written(k)),
        };
        if items.is_empty() && !raw.invalid.contains(&"location") && !discovers {
            return self.problem(
                &raw.span,
                format!("source {label} has no [[source.location]]"),
            );
        }
        self.duplicate_locations(items, label);
        let locations: Vec<Option<LocationConfig>> = items
            .iter()
            .enumerate()
            .map(|(index, location)| self.location(index, location, kind))
            .collect();
        locations.into_iter().collect()
    }

    /// A repeated location id within one source.
    fn duplicate_locations(&mut self, items: &[RawLocation], label: &str) {
        let mut first: HashMap<&str, Span> = HashMap::new();
        for field in items.iter().filter_map(|location| location.id.as_ref()) {
            match first.get(field.value.as_str()) {
                Some(span) => {
                    let message = format!(
                        "duplicate location id {:?} in source {label} (first used at {})",
                        field.value,
                        self.lines.describe(span.start)
                    );
                    self.problems.push(&field.span, message);
                }
                None => {
                    first.insert(&field.value, field.span.clone());
                }
            }
        }
    }

    /// One `[[source.location]]`.
    fn location(
        &mut self,
        index: usize,
        raw: &RawLocation,
        kind: Option<&'static Platform>,
    ) -> Option<LocationConfig> {
        let id = self
            .require(
                &raw.id,
                "id",
                "in [[source.location]]",
                &raw.span,
                &raw.invalid,
            )
            .and_then(|field| self.location_id(field, kind));
        if let Some(platform) = kind {
            // A platform's own location keys are read by its settings.
            for (key, value) in &raw.platform {
                if !platform.location_keys.iter().any(|k| k.name == *key) {
                    let message = format!("key `{key}` is not used by kind {}", platform.kind);
                    self.problems.push(value.key_span(), message);
                }
            }
        }
        let label = match &id {
            Some(id) => format!("{id:?}"),
            None => format!("#{}", index + 1),
        };
        let group = self.group(raw, &label);
        Some(LocationConfig {
            id: LocationId::new(id?),
            group: group?,
        })
    }

    /// `id`: not blank, and one of its kind's (its platform says what that
    /// is: a resource name, one URL path segment, a path or a glob).
    fn location_id(
        &mut self,
        field: &Field<String>,
        kind: Option<&'static Platform>,
    ) -> Option<String> {
        let id = self.non_empty("id", field)?;
        if let Some(platform) = kind
            && let Err(message) = (platform.location_id)(&id)
        {
            return self.problem(&field.span, message);
        }
        Some(id)
    }

    /// Exactly one of `group_external_ref` / `group_id`.
    fn group(&mut self, raw: &RawLocation, label: &str) -> Option<GroupRef> {
        let message = || {
            format!(
                "location {label} needs exactly one of group_external_ref and group_id (the Travtus API refuses both and neither)"
            )
        };
        match (&raw.group_external_ref, &raw.group_id) {
            (Some(field), None) => self
                .non_empty("group_external_ref", field)
                .map(GroupRef::ExternalRef),
            (None, Some(field)) => self.non_empty("group_id", field).map(GroupRef::Id),
            (None, None) if raw.written("group_external_ref") || raw.written("group_id") => None,
            (None, None) => self.problem(&raw.span, message()),
            (Some(a), Some(b)) => {
                // Point at the second of the two, the one to delete or keep.
                let later = if a.key.start > b.key.start {
                    &a.key
                } else {
                    &b.key
                };
                self.problem(later, message())
            }
        }
    }
}
