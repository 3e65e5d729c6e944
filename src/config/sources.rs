//! Stage two for `[[source]]` and `[[source.location]]`: kinds and their
//! keys, schedules (checked with the scheduler's own cron parser), request
//! budgets, and the location-to-group mapping rules the Travtus API enforces.

use super::raw::{Field, RawLocation, RawSource};
use super::span::Span;
use super::validate::{DEFAULT_TIMEOUT, Validator};
use super::{FileConfig, GoogleConfig, LocationConfig, SourceConfig, SourceKind};
use crate::domain::{GroupRef, LocationId, SourceName};
use croner::parser::{CronParser, Seconds};
use std::collections::HashMap;
use std::num::NonZeroU32;

/// Every kind, for "unknown kind" messages.
const KINDS: &str = "google_business_profile, google_places, yelp, facebook, trustpilot, file";
/// Kinds the SPEC names whose platform clients do not exist yet.
const NOT_YET_KINDS: &[&str] = &["google_places", "yelp", "facebook", "trustpilot"];
/// Keys every kind takes.
const COMMON_KEYS: &[&str] = &[
    "name",
    "kind",
    "schedule",
    "requests_per_minute",
    "timeout",
    "location",
];
/// Keys of `google_business_profile`.
const GOOGLE_KEYS: &[&str] = &[
    "client_id",
    "client_secret",
    "refresh_token",
    "api_base_url",
    "token_url",
    "discover_accounts",
    "group_external_ref_from",
    "business_information_base_url",
    "reconcile_schedule",
];
/// Keys of `google_business_profile` that the SPEC describes but the
/// platform client cannot honour yet: refused rather than silently ignored.
const GOOGLE_NOT_YET: &[&str] = &[
    "discover_accounts",
    "group_external_ref_from",
    "business_information_base_url",
    "reconcile_schedule",
];
/// Keys of `file`.
const FILE_KEYS: &[&str] = &["platform"];
/// Google Business Profile's API host.
const DEFAULT_GOOGLE_API_BASE_URL: &str = "https://mybusiness.googleapis.com";
/// Google's OAuth2 token endpoint.
const DEFAULT_GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google Business Profile's published default quota, requests per minute.
const GOOGLE_REQUESTS_PER_MINUTE: NonZeroU32 = NonZeroU32::new(300).unwrap();
/// `file` makes no platform requests; the budget only paces file reads.
const FILE_REQUESTS_PER_MINUTE: NonZeroU32 = NonZeroU32::new(600).unwrap();

/// A supported kind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `google_business_profile`.
    GoogleBusinessProfile,
    /// `file`.
    File,
}

impl Kind {
    /// The name as written in the config.
    fn name(self) -> &'static str {
        match self {
            Kind::GoogleBusinessProfile => "google_business_profile",
            Kind::File => "file",
        }
    }

    /// The kind's own keys, beyond [`COMMON_KEYS`].
    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::GoogleBusinessProfile => GOOGLE_KEYS,
            Kind::File => FILE_KEYS,
        }
    }

    /// `requests_per_minute` when not set.
    fn default_requests_per_minute(self) -> NonZeroU32 {
        match self {
            Kind::GoogleBusinessProfile => GOOGLE_REQUESTS_PER_MINUTE,
            Kind::File => FILE_REQUESTS_PER_MINUTE,
        }
    }
}

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
            .and_then(|field| self.schedule(field));
        let requests_per_minute = self.requests_per_minute(raw.requests_per_minute.as_ref(), kind);
        let timeout = self.duration("timeout", raw.timeout.as_ref(), DEFAULT_TIMEOUT);
        let settings = kind.and_then(|kind| self.settings(kind, raw));
        let label = match &name {
            Some(name) => format!("{name:?}"),
            None => format!("#{}", index + 1),
        };
        let locations = self.locations(raw, kind, &label);
        Some(SourceConfig {
            name: SourceName::new(name?),
            schedule: schedule?,
            requests_per_minute: requests_per_minute?,
            timeout: timeout?,
            kind: settings?,
            locations: locations?,
        })
    }

    /// `kind`: supported, known but refused, or unknown.
    fn kind(&mut self, field: &Field<String>) -> Option<Kind> {
        match field.value.as_str() {
            "google_business_profile" => Some(Kind::GoogleBusinessProfile),
            "file" => Some(Kind::File),
            other if NOT_YET_KINDS.contains(&other) => {
                self.problem(&field.span, format!("kind {other:?} is not supported yet"))
            }
            other => self.problem(
                &field.span,
                format!("unknown kind {other:?} (expected one of {KINDS})"),
            ),
        }
    }

    /// `schedule`, parsed exactly as the scheduler will parse it, so that
    /// `check` accepts only what `run` can schedule.
    fn schedule(&mut self, field: &Field<String>) -> Option<String> {
        let parser = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build();
        match parser.parse(&field.value) {
            Ok(_) => Some(field.value.clone()),
            Err(e) => {
                let reason = e.to_string();
                let message = format!(
                    "schedule: invalid cron expression {:?}: {} (six fields, seconds first, e.g. \"0 */15 * * * *\")",
                    field.value,
                    reason.trim_end_matches('.'),
                );
                self.problem(&field.span, message)
            }
        }
    }

    /// `requests_per_minute`, or the kind's default.
    fn requests_per_minute(
        &mut self,
        field: Option<&Field<i64>>,
        kind: Option<Kind>,
    ) -> Option<NonZeroU32> {
        let Some(field) = field else {
            return kind.map(Kind::default_requests_per_minute);
        };
        match u32::try_from(field.value).ok().and_then(NonZeroU32::new) {
            Some(budget) => Some(budget),
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

    /// The kind-specific part; keys of other kinds are refused first.
    fn settings(&mut self, kind: Kind, raw: &RawSource) -> Option<SourceKind> {
        self.kind_keys(kind, raw);
        match kind {
            Kind::GoogleBusinessProfile => self.google(raw).map(SourceKind::GoogleBusinessProfile),
            Kind::File => self.file(raw).map(SourceKind::File),
        }
    }

    /// Every key present that this kind does not use, or not yet.
    fn kind_keys(&mut self, kind: Kind, raw: &RawSource) {
        for (key, span) in raw.present() {
            if COMMON_KEYS.contains(&key) {
                continue;
            }
            if !kind.keys().contains(&key) {
                let message = format!("key `{key}` is not used by kind {}", kind.name());
                self.problems.push(&span, message);
            } else if GOOGLE_NOT_YET.contains(&key) {
                self.problems
                    .push(&span, format!("`{key}` is not supported yet"));
            }
        }
    }

    /// `google_business_profile`.
    fn google(&mut self, raw: &RawSource) -> Option<GoogleConfig> {
        const PLACE: &str = "in [[source]] (kind google_business_profile)";
        let client_id = self
            .require(&raw.client_id, "client_id", PLACE, &raw.span, &raw.invalid)
            .and_then(|field| self.non_empty("client_id", field));
        let client_secret = self
            .require(
                &raw.client_secret,
                "client_secret",
                PLACE,
                &raw.span,
                &raw.invalid,
            )
            .and_then(|field| self.secret("client_secret", field));
        let refresh_token = self
            .require(
                &raw.refresh_token,
                "refresh_token",
                PLACE,
                &raw.span,
                &raw.invalid,
            )
            .and_then(|field| self.secret("refresh_token", field));
        let api_base_url = self.url(
            "api_base_url",
            raw.api_base_url.as_ref(),
            DEFAULT_GOOGLE_API_BASE_URL,
        );
        let token_url = self.url(
            "token_url",
            raw.token_url.as_ref(),
            DEFAULT_GOOGLE_TOKEN_URL,
        );
        Some(GoogleConfig {
            client_id: client_id?,
            client_secret: client_secret?,
            refresh_token: refresh_token?,
            api_base_url: api_base_url?,
            token_url: token_url?,
        })
    }

    /// `file`.
    fn file(&mut self, raw: &RawSource) -> Option<FileConfig> {
        let platform = match &raw.platform {
            Some(field) => Some(self.non_empty("platform", field)?),
            None => None,
        };
        Some(FileConfig { platform })
    }

    /// Every `[[source.location]]`: at least one, ids unique.
    fn locations(
        &mut self,
        raw: &RawSource,
        kind: Option<Kind>,
        label: &str,
    ) -> Option<Vec<LocationConfig>> {
        let items = raw
            .location
            .as_ref()
            .map_or(&[][..], |field| field.value.as_slice());
        if items.is_empty() && !raw.invalid.contains(&"location") {
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
        kind: Option<Kind>,
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
        if let (Some(kind), Some(token)) = (kind, &raw.access_token) {
            // Only facebook takes a per-location token, and it is not supported yet.
            let message = format!("key `access_token` is not used by kind {}", kind.name());
            self.problems.push(&token.key, message);
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

    /// `id`: not blank; for Google, a location resource name, since that is
    /// what the reviews API is called with.
    fn location_id(&mut self, field: &Field<String>, kind: Option<Kind>) -> Option<String> {
        let id = self.non_empty("id", field)?;
        if kind == Some(Kind::GoogleBusinessProfile) && !is_google_location_name(&id) {
            let message = format!(
                "id: {id:?} is not a Google Business Profile location (expected accounts/{{account}}/locations/{{location}})"
            );
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

/// `accounts/{a}/locations/{l}`.
fn is_google_location_name(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    matches!(parts.as_slice(), ["accounts", account, "locations", location]
        if !account.is_empty() && !location.is_empty())
}
