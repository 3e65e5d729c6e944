//! Stage two for `[[source]]` and `[[source.location]]`: kinds and their
//! keys, schedules (checked with the scheduler's own cron parser), request
//! budgets, and the location-to-group mapping rules the Travtus API enforces.

use super::raw::{Field, RawLocation, RawSource};
use super::span::Span;
use super::validate::Validator;
use super::{
    DEFAULT_RECONCILE_SCHEDULE, FileConfig, GoogleConfig, GroupFrom, LocationConfig,
    MAX_PAGES_PER_READ, PassBounds, SourceConfig, SourceKind,
};
use crate::domain::{GroupRef, LocationId, SourceName};
use crate::schedule::Schedule;
use std::collections::HashMap;
use std::num::NonZeroU32;

/// The longest `max_pass_time` or `max_full_read_time`: a week, far beyond
/// any real read, and well inside what deadline arithmetic can hold.
const MAX_PASS_TIME: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 60 * 60);
/// Every kind, for "unknown kind" messages.
const KINDS: &str = "google_business_profile, google_places, yelp, facebook, trustpilot, file";
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
/// Kinds whose platform lists every review of a location, so that a full
/// pass can tell which reviews vanished: the kinds that take
/// `reconcile_schedule`. Matched by name, so that a kind added later only
/// has to be listed here.
const RECONCILABLE_KINDS: &[&str] = &["google_business_profile", "trustpilot", "facebook"];
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
];
/// Keys of `file`.
const FILE_KEYS: &[&str] = &["platform"];
/// Keys of `google_places`.
const PLACES_KEYS: &[&str] = &["api_key", "api_base_url", "language_code"];
/// Keys of `yelp`.
const YELP_KEYS: &[&str] = &["api_key", "api_base_url", "locale"];
/// Keys of `facebook` (a location may also carry its own `access_token`).
const FACEBOOK_KEYS: &[&str] = &["access_token", "graph_version", "api_base_url"];
/// Keys of `trustpilot`.
const TRUSTPILOT_KEYS: &[&str] = &[
    "api_key",
    "api_secret",
    "username",
    "password",
    "api_base_url",
    "token_url",
];
/// The Places API (New) host.
const DEFAULT_PLACES_API_BASE_URL: &str = "https://places.googleapis.com";
/// The Yelp Fusion (Places API) host.
const DEFAULT_YELP_API_BASE_URL: &str = "https://api.yelp.com";
/// The Graph API host.
const DEFAULT_FACEBOOK_API_BASE_URL: &str = "https://graph.facebook.com";
/// The newest Graph version that still serves the Page ratings edge: from
/// v22.0 on, Graph answers it with error 12 (Recommendation reference).
const DEFAULT_GRAPH_VERSION: &str = "v21.0";
/// The first Graph major version without the ratings edge.
const FIRST_GRAPH_VERSION_WITHOUT_RATINGS: u32 = 22;
/// The Trustpilot API host.
const DEFAULT_TRUSTPILOT_API_BASE_URL: &str = "https://api.trustpilot.com";
/// Trustpilot's business-user token endpoint.
const DEFAULT_TRUSTPILOT_TOKEN_URL: &str =
    "https://api.trustpilot.com/v1/oauth/oauth-business-users-for-applications/accesstoken";
/// The keys that choose Trustpilot's private endpoint; all or none.
const TRUSTPILOT_LOGIN_KEYS: [&str; 3] = ["api_secret", "username", "password"];
/// Places API (New): quotas are per minute, per method, per project
/// (developers.google.com/maps/documentation/places/web-service/usage-and-billing);
/// the Cloud Console shows 600 per minute for Place Details (New) by default.
const PLACES_REQUESTS_PER_MINUTE: NonZeroU32 = NonZeroU32::new(600).unwrap();
/// Yelp publishes a per-second limit without a number and a daily limit per
/// plan (300 calls per 24 h on Starter, reset at midnight UTC;
/// docs.developer.yelp.com/docs/places-rate-limiting). A per-minute budget
/// cannot express a daily one: one call a second stays well under the QPS
/// limit, and the daily budget is the schedule's business (one call per
/// business per poll).
const YELP_REQUESTS_PER_MINUTE: NonZeroU32 = NonZeroU32::new(60).unwrap();
/// Graph's Page rate limit is 4,800 calls per engaged user per 24 h and the
/// app-level one 200 calls per user per hour
/// (developers.facebook.com/docs/graph-api/overview/rate-limiting): both come
/// to 200 an hour for one token, i.e. 3 a minute.
const FACEBOOK_REQUESTS_PER_MINUTE: NonZeroU32 = NonZeroU32::new(3).unwrap();
/// Trustpilot asks for at most 833 calls per 5 minutes and 10,000 per hour
/// (documentation-apidocumentation.trustpilot.com/get-started/rate-limiting):
/// 166 a minute keeps under both.
const TRUSTPILOT_REQUESTS_PER_MINUTE: NonZeroU32 = NonZeroU32::new(166).unwrap();
/// Google Business Profile's API host.
const DEFAULT_GOOGLE_API_BASE_URL: &str = "https://mybusiness.googleapis.com";
/// Google's OAuth2 token endpoint.
const DEFAULT_GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's Business Information API host (location discovery).
const DEFAULT_GOOGLE_BUSINESS_INFORMATION_BASE_URL: &str =
    "https://mybusinessbusinessinformation.googleapis.com";
/// The values `group_external_ref_from` accepts.
const GROUP_FROM_VALUES: &str = "\"store_code\"";
/// Google Business Profile's published default quota, requests per minute.
const GOOGLE_REQUESTS_PER_MINUTE: NonZeroU32 = NonZeroU32::new(300).unwrap();
/// `file` makes no platform requests; the budget only paces file reads.
const FILE_REQUESTS_PER_MINUTE: NonZeroU32 = NonZeroU32::new(600).unwrap();

/// A supported kind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `google_business_profile`.
    GoogleBusinessProfile,
    /// `google_places`.
    GooglePlaces,
    /// `yelp`.
    Yelp,
    /// `facebook`.
    Facebook,
    /// `trustpilot`.
    Trustpilot,
    /// `file`.
    File,
}

impl Kind {
    /// The name as written in the config.
    fn name(self) -> &'static str {
        match self {
            Kind::GoogleBusinessProfile => "google_business_profile",
            Kind::GooglePlaces => "google_places",
            Kind::Yelp => "yelp",
            Kind::Facebook => "facebook",
            Kind::Trustpilot => "trustpilot",
            Kind::File => "file",
        }
    }

    /// The kind's own keys, beyond [`COMMON_KEYS`].
    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::GoogleBusinessProfile => GOOGLE_KEYS,
            Kind::GooglePlaces => PLACES_KEYS,
            Kind::Yelp => YELP_KEYS,
            Kind::Facebook => FACEBOOK_KEYS,
            Kind::Trustpilot => TRUSTPILOT_KEYS,
            Kind::File => FILE_KEYS,
        }
    }

    /// `requests_per_minute` when not set.
    fn default_requests_per_minute(self) -> NonZeroU32 {
        match self {
            Kind::GoogleBusinessProfile => GOOGLE_REQUESTS_PER_MINUTE,
            Kind::GooglePlaces => PLACES_REQUESTS_PER_MINUTE,
            Kind::Yelp => YELP_REQUESTS_PER_MINUTE,
            Kind::Facebook => FACEBOOK_REQUESTS_PER_MINUTE,
            Kind::Trustpilot => TRUSTPILOT_REQUESTS_PER_MINUTE,
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
            .and_then(|field| self.cron("schedule", field));
        let reconcile_schedule = self.reconcile_schedule(raw, kind);
        let requests_per_minute = self.requests_per_minute(raw.requests_per_minute.as_ref(), kind);
        let timeout = self.timeout(raw.timeout.as_ref());
        let pass_bounds = self.pass_bounds(raw);
        let settings = kind.and_then(|kind| self.settings(kind, raw));
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

    /// `kind`: supported, known but refused, or unknown.
    fn kind(&mut self, field: &Field<String>) -> Option<Kind> {
        match field.value.as_str() {
            "google_business_profile" => Some(Kind::GoogleBusinessProfile),
            "google_places" => Some(Kind::GooglePlaces),
            "yelp" => Some(Kind::Yelp),
            "facebook" => Some(Kind::Facebook),
            "trustpilot" => Some(Kind::Trustpilot),
            "file" => Some(Kind::File),
            other => self.problem(
                &field.span,
                format!("unknown kind {other:?} (expected one of {KINDS})"),
            ),
        }
    }

    /// `reconcile_schedule`: its default on kinds that can reconcile, refused
    /// on the others. `Some(None)` is "valid, and this kind never reconciles".
    fn reconcile_schedule(
        &mut self,
        raw: &RawSource,
        kind: Option<Kind>,
    ) -> Option<Option<Schedule>> {
        let Some(kind) = kind else {
            // The kind is refused (and reported): nothing to say about the key.
            return Some(None);
        };
        let reconcilable = RECONCILABLE_KINDS.contains(&kind.name());
        match &raw.reconcile_schedule {
            Some(field) if reconcilable => self.cron("reconcile_schedule", field).map(Some),
            None if reconcilable && raw.written("reconcile_schedule") => None,
            None if reconcilable => Schedule::parse(DEFAULT_RECONCILE_SCHEDULE).ok().map(Some),
            Some(field) => self.problem(
                &field.key,
                format!(
                    "kind {} cannot list every review; reconciliation is not possible (remove `reconcile_schedule`)",
                    kind.name()
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

    /// The kind-specific part; keys of other kinds are refused first.
    fn settings(&mut self, kind: Kind, raw: &RawSource) -> Option<SourceKind> {
        self.kind_keys(kind, raw);
        match kind {
            Kind::GoogleBusinessProfile => self.google(raw).map(SourceKind::GoogleBusinessProfile),
            Kind::GooglePlaces => self.places(raw).map(SourceKind::GooglePlaces),
            Kind::Yelp => self.yelp(raw).map(SourceKind::Yelp),
            Kind::Facebook => self.facebook(raw).map(SourceKind::Facebook),
            Kind::Trustpilot => self.trustpilot(raw).map(SourceKind::Trustpilot),
            Kind::File => self.file(raw).map(SourceKind::File),
        }
    }

    /// Every key present that this kind does not use.
    fn kind_keys(&mut self, kind: Kind, raw: &RawSource) {
        for (key, span) in raw.present() {
            if COMMON_KEYS.contains(&key) {
                continue;
            }
            if !kind.keys().contains(&key) {
                let message = format!("key `{key}` is not used by kind {}", kind.name());
                self.problems.push(&span, message);
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
        let discovery = self.google_discovery(raw);
        let business_information_base_url = self.url(
            "business_information_base_url",
            raw.business_information_base_url.as_ref(),
            DEFAULT_GOOGLE_BUSINESS_INFORMATION_BASE_URL,
        );
        let (discover_accounts, group_external_ref_from) = discovery?;
        Some(GoogleConfig {
            client_id: client_id?,
            client_secret: client_secret?,
            refresh_token: refresh_token?,
            api_base_url: api_base_url?,
            token_url: token_url?,
            discover_accounts,
            group_external_ref_from,
            business_information_base_url: business_information_base_url?,
        })
    }

    /// `discover_accounts` (each `accounts/{id}`, at least one, no repeats)
    /// with the `group_external_ref_from` it needs; the discovery keys are
    /// refused without `discover_accounts`, where they would do nothing.
    /// `None` when a problem was reported; every key is checked first.
    fn google_discovery(&mut self, raw: &RawSource) -> Option<(Vec<String>, Option<GroupFrom>)> {
        let group_from = raw.group_external_ref_from.as_ref().map(|field| {
            if field.value == "store_code" {
                Some(GroupFrom::StoreCode)
            } else {
                let message = format!(
                    "group_external_ref_from: {:?} is not supported (expected {GROUP_FROM_VALUES}: a discovered location maps to the group whose external reference is its store code)",
                    field.value
                );
                self.problem(&field.span, message)
            }
        });
        let Some(accounts) = &raw.discover_accounts else {
            if raw.written("discover_accounts") {
                return None;
            }
            let mut ok = true;
            for key in ["group_external_ref_from", "business_information_base_url"] {
                if let Some((_, span)) = raw.present().into_iter().find(|(k, _)| *k == key) {
                    let message = format!("`{key}` is only used with `discover_accounts`");
                    self.problems.push(&span, message);
                    ok = false;
                }
            }
            return ok.then(|| (Vec::new(), None));
        };
        let mut ok = true;
        if accounts.value.is_empty() {
            self.problems.push(
                &accounts.span,
                "discover_accounts: list at least one account, e.g. [\"accounts/123\"] (or remove the key)",
            );
            ok = false;
        }
        let mut seen: Vec<&str> = Vec::new();
        for account in &accounts.value {
            if !is_google_account_name(account) {
                let message = format!(
                    "discover_accounts: {account:?} is not a Google Business Profile account (expected accounts/{{account}})"
                );
                self.problems.push(&accounts.span, message);
                ok = false;
            } else if seen.contains(&account.as_str()) {
                let message = format!("discover_accounts: {account:?} is listed twice");
                self.problems.push(&accounts.span, message);
                ok = false;
            }
            seen.push(account);
        }
        let group_from = match group_from {
            Some(group_from) => group_from,
            None if raw.written("group_external_ref_from") => None,
            None => self.problem(
                &accounts.key,
                format!(
                    "`discover_accounts` needs `group_external_ref_from = {GROUP_FROM_VALUES}`: it says which group a discovered location's reviews go to"
                ),
            ),
        };
        let group_from = group_from?;
        ok.then(|| (accounts.value.clone(), Some(group_from)))
    }

    /// The `api_key` (required, a secret) and `api_base_url` (else
    /// `default`) of a kind that authenticates with an API key. Both are
    /// checked, so every problem is reported at once.
    fn api_key_and_base(
        &mut self,
        raw: &RawSource,
        kind: &str,
        default: &str,
    ) -> (Option<super::Secret>, Option<url::Url>) {
        let place = format!("in [[source]] (kind {kind})");
        let api_key = self
            .require(&raw.api_key, "api_key", &place, &raw.span, &raw.invalid)
            .and_then(|field| self.secret("api_key", field));
        let api_base_url = self.url("api_base_url", raw.api_base_url.as_ref(), default);
        (api_key, api_base_url)
    }

    /// `google_places`.
    fn places(&mut self, raw: &RawSource) -> Option<super::PlacesConfig> {
        let (api_key, api_base_url) =
            self.api_key_and_base(raw, "google_places", DEFAULT_PLACES_API_BASE_URL);
        let language_code = self.language_tag("language_code", raw.language_code.as_ref(), '-');
        Some(super::PlacesConfig {
            api_key: api_key?,
            api_base_url: api_base_url?,
            language_code: language_code?,
        })
    }

    /// `yelp`.
    fn yelp(&mut self, raw: &RawSource) -> Option<super::YelpConfig> {
        let (api_key, api_base_url) = self.api_key_and_base(raw, "yelp", DEFAULT_YELP_API_BASE_URL);
        let locale = self.language_tag("locale", raw.locale.as_ref(), '_');
        Some(super::YelpConfig {
            api_key: api_key?,
            api_base_url: api_base_url?,
            locale: locale?,
        })
    }

    /// An optional language tag: `en`, or `en{sep}US` (Places writes
    /// `en-US`, Yelp `en_US`). `Some(None)` when absent.
    fn language_tag(
        &mut self,
        key: &str,
        field: Option<&Field<String>>,
        sep: char,
    ) -> Option<Option<String>> {
        let Some(field) = field else {
            return Some(None);
        };
        let value = field.value.as_str();
        let mut parts = value.split(sep);
        let language = parts.next().unwrap_or_default();
        let region = parts.next();
        let valid = (2..=3).contains(&language.len())
            && language.chars().all(|c| c.is_ascii_lowercase())
            && region.is_none_or(|r| {
                (r.len() == 2 && r.chars().all(|c| c.is_ascii_uppercase()))
                    || (r.len() == 3 && r.chars().all(|c| c.is_ascii_digit()))
            })
            && parts.next().is_none();
        if valid {
            Some(Some(value.to_owned()))
        } else {
            let example = if sep == '_' { "en_US" } else { "en-US" };
            self.problem(
                &field.span,
                format!("{key}: {value:?} is not a language tag such as \"en\" or \"{example}\""),
            )
        }
    }

    /// `facebook`: a Page access token for every location (its own, else
    /// the source's) and a Graph version that still serves ratings.
    fn facebook(&mut self, raw: &RawSource) -> Option<super::FacebookConfig> {
        let access_token = raw
            .access_token
            .as_ref()
            .map(|field| self.secret("access_token", field));
        let graph_version = match &raw.graph_version {
            Some(field) => self.graph_version(field),
            None => Some(DEFAULT_GRAPH_VERSION.to_owned()),
        };
        let api_base_url = self.url(
            "api_base_url",
            raw.api_base_url.as_ref(),
            DEFAULT_FACEBOOK_API_BASE_URL,
        );
        let source_has_token = raw.written("access_token");
        let items = raw
            .location
            .as_ref()
            .map_or(&[][..], |field| field.value.as_slice());
        let mut location_tokens = std::collections::BTreeMap::new();
        let mut tokens_ok = true;
        for (index, location) in items.iter().enumerate() {
            match &location.access_token {
                Some(field) => match self.secret("access_token", field) {
                    Some(token) => {
                        if let Some(id) = &location.id {
                            location_tokens.insert(LocationId::new(id.value.clone()), token);
                        }
                    }
                    None => tokens_ok = false,
                },
                None if source_has_token || location.written("access_token") => {}
                None => {
                    let label = match &location.id {
                        Some(id) => format!("{:?}", id.value),
                        None => format!("#{}", index + 1),
                    };
                    let message = format!(
                        "location {label} has no access_token: set a Page access token on the location, or `access_token` on the source"
                    );
                    self.problems.push(&location.span, message);
                    tokens_ok = false;
                }
            }
        }
        let access_token = match access_token {
            Some(token) => Some(token?),
            None => None,
        };
        tokens_ok.then_some(())?;
        Some(super::FacebookConfig {
            access_token,
            location_tokens,
            graph_version: graph_version?,
            api_base_url: api_base_url?,
        })
    }

    /// `graph_version`: `vMAJOR.MINOR`, below v22.0.
    fn graph_version(&mut self, field: &Field<String>) -> Option<String> {
        let value = field.value.as_str();
        let parsed = value.strip_prefix('v').and_then(|rest| {
            let (major, minor) = rest.split_once('.')?;
            let digits =
                |s: &str| !s.is_empty() && s.len() <= 3 && s.chars().all(|c| c.is_ascii_digit());
            (digits(major) && digits(minor)).then(|| major.parse::<u32>().ok())?
        });
        match parsed {
            None => self.problem(
                &field.span,
                format!(
                    "graph_version: {value:?} is not a Graph API version such as \"{DEFAULT_GRAPH_VERSION}\""
                ),
            ),
            Some(major) if major >= FIRST_GRAPH_VERSION_WITHOUT_RATINGS => self.problem(
                &field.span,
                format!(
                    "graph_version: {value} cannot read Page ratings: from v{FIRST_GRAPH_VERSION_WITHOUT_RATINGS}.0 on, Graph answers the ratings edge with error 12 (deprecated); pin a version below v{FIRST_GRAPH_VERSION_WITHOUT_RATINGS}.0, e.g. \"{DEFAULT_GRAPH_VERSION}\""
                ),
            ),
            Some(_) => Some(value.to_owned()),
        }
    }

    /// `trustpilot`: the public endpoint with `api_key`, or the private one
    /// when `api_secret`, `username` and `password` are all given.
    fn trustpilot(&mut self, raw: &RawSource) -> Option<super::TrustpilotConfig> {
        let (api_key, api_base_url) =
            self.api_key_and_base(raw, "trustpilot", DEFAULT_TRUSTPILOT_API_BASE_URL);
        let login = self.trustpilot_login(raw);
        Some(super::TrustpilotConfig {
            api_key: api_key?,
            api_base_url: api_base_url?,
            business_login: login?,
        })
    }

    /// `api_secret` + `username` + `password` (+ `token_url`): all three or
    /// none; `token_url` only with them. `Some(None)`: the public endpoint.
    fn trustpilot_login(&mut self, raw: &RawSource) -> Option<Option<super::TrustpilotLogin>> {
        let present: Vec<(&str, Span)> = raw
            .present()
            .into_iter()
            .filter(|(key, _)| TRUSTPILOT_LOGIN_KEYS.contains(key))
            .collect();
        let written = TRUSTPILOT_LOGIN_KEYS
            .iter()
            .filter(|key| raw.written(key))
            .count();
        if written == 0 {
            if let Some(field) = &raw.token_url {
                return self.problem(
                    &field.key,
                    "`token_url` is only used with `api_secret`, `username` and `password` (the private reviews endpoint)",
                );
            }
            return Some(None);
        }
        if written < TRUSTPILOT_LOGIN_KEYS.len() {
            let missing: Vec<String> = TRUSTPILOT_LOGIN_KEYS
                .iter()
                .filter(|key| !raw.written(key))
                .map(|key| format!("`{key}`"))
                .collect();
            let span = present
                .first()
                .map_or(raw.span.clone(), |(_, span)| span.clone());
            return self.problem(
                &span,
                format!(
                    "`api_secret`, `username` and `password` go together (they log in to the private reviews endpoint); missing {}",
                    missing.join(" and ")
                ),
            );
        }
        let api_secret = raw
            .api_secret
            .as_ref()
            .and_then(|field| self.secret("api_secret", field));
        let username = raw
            .username
            .as_ref()
            .and_then(|field| self.secret("username", field));
        let password = raw
            .password
            .as_ref()
            .and_then(|field| self.secret("password", field));
        let token_url = self.url(
            "token_url",
            raw.token_url.as_ref(),
            DEFAULT_TRUSTPILOT_TOKEN_URL,
        );
        Some(Some(super::TrustpilotLogin {
            api_secret: api_secret?,
            username: username?,
            password: password?,
            token_url: token_url?,
        }))
    }

    /// `file`.
    fn file(&mut self, raw: &RawSource) -> Option<FileConfig> {
        let platform = match &raw.platform {
            Some(field) => Some(self.non_empty("platform", field)?),
            None => None,
        };
        Some(FileConfig {
            platform,
            base_dir: self.secrets.dir.to_path_buf(),
        })
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
        // A source that discovers its locations may list none itself.
        if items.is_empty()
            && !raw.invalid.contains(&"location")
            && !raw.written("discover_accounts")
        {
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
        if let (Some(kind), Some(token)) = (kind, &raw.access_token)
            && kind != Kind::Facebook
        {
            // Only facebook takes a per-location token (read by `facebook`).
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
        let what = match kind {
            Some(Kind::GooglePlaces) => {
                Some("a Google place id such as \"ChIJN1t_tDeuEmsRUsoyG83frY4\"")
            }
            Some(Kind::Yelp) => Some("a Yelp business id or alias"),
            Some(Kind::Facebook) => Some("a Facebook Page id"),
            Some(Kind::Trustpilot) => Some("a Trustpilot business unit id"),
            _ => None,
        };
        if let Some(what) = what {
            // Places ids may be written as the resource name `places/{id}`.
            let bare = match kind {
                Some(Kind::GooglePlaces) => id.strip_prefix("places/").unwrap_or(&id),
                _ => &id,
            };
            if !is_path_segment(bare) {
                let message = format!(
                    "id: {id:?} is not {what} (one URL path segment: no '/', '?', '#', '%' or spaces)"
                );
                return self.problem(&field.span, message);
            }
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

/// `accounts/{a}`.
fn is_google_account_name(name: &str) -> bool {
    matches!(name.split('/').collect::<Vec<_>>().as_slice(), ["accounts", account]
        if !account.is_empty())
}

/// A platform id that goes into a URL path as one segment.
fn is_path_segment(id: &str) -> bool {
    !id.is_empty()
        && !id.chars().any(|c| {
            matches!(c, '/' | '?' | '#' | '%' | '\\') || c.is_whitespace() || c.is_control()
        })
}

/// `accounts/{a}/locations/{l}`.
fn is_google_location_name(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    matches!(parts.as_slice(), ["accounts", account, "locations", location]
        if !account.is_empty() && !location.is_empty())
}
