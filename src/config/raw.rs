//! Stage one of two: the TOML as written, read loosely and with positions.
//!
//! Every table becomes a `Raw*` struct whose fields are all optional and keep
//! the span of their key and of their value, so that stage two (`validate`)
//! can point at the exact `line:column` of whatever it refuses. Unknown keys
//! and wrongly typed values are recorded here.
//!
//! Why not `#[derive(Deserialize)]` with `deny_unknown_fields`: serde stops
//! at the first error of a struct, and an admin fixing a config one error per
//! run is what STYLE habit 4 wants to avoid. The walker below plays the same
//! role (a closed set of keys per table, typed values) but keeps going, so an
//! unknown key never hides a bad value next to it.

use super::span::{Findings, Span, closest};
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

/// A value as written, with where its key and its value are.
pub(crate) struct Field<T> {
    /// The value, converted to the type the key expects.
    pub(crate) value: T,
    /// The key, for "this key does not belong here" messages.
    pub(crate) key: Span,
    /// The value (for a table: its `[header]` or its `{`).
    pub(crate) span: Span,
}

/// The type a platform's own key takes ([`Key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    /// A string.
    String,
    /// A secret: a string, or `{ env | file | credential = .. }`.
    Secret,
    /// An array of strings.
    StringList,
    /// An integer.
    Integer,
}

/// A key a platform takes in `[[source]]` or `[[source.location]]`, beyond
/// the keys every source takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    /// The key as written.
    pub(crate) name: &'static str,
    /// Its type.
    pub(crate) ty: KeyType,
}

impl Key {
    /// A string key.
    pub(crate) const fn string(name: &'static str) -> Key {
        Key {
            name,
            ty: KeyType::String,
        }
    }

    /// A secret key.
    pub(crate) const fn secret(name: &'static str) -> Key {
        Key {
            name,
            ty: KeyType::Secret,
        }
    }

    /// A key taking an array of strings.
    pub(crate) const fn list(name: &'static str) -> Key {
        Key {
            name,
            ty: KeyType::StringList,
        }
    }

    /// An integer key.
    pub(crate) const fn integer(name: &'static str) -> Key {
        Key {
            name,
            ty: KeyType::Integer,
        }
    }
}

/// A platform key's value as written, converted to its [`KeyType`].
pub(crate) enum RawValue {
    /// [`KeyType::String`].
    String(Field<String>),
    /// [`KeyType::Secret`].
    Secret(Field<RawSecret>),
    /// [`KeyType::StringList`].
    StringList(Field<Vec<String>>),
    /// [`KeyType::Integer`].
    Integer(Field<i64>),
}

impl RawValue {
    /// Where its key is written.
    pub(crate) fn key_span(&self) -> &Span {
        match self {
            RawValue::String(f) => &f.key,
            RawValue::Secret(f) => &f.key,
            RawValue::StringList(f) => &f.key,
            RawValue::Integer(f) => &f.key,
        }
    }

    /// Reads `value` as `key` declares it; `None` (the problem recorded)
    /// when it has another type.
    fn read(
        key: Key,
        name: Spanned<DeString<'_>>,
        value: Spanned<DeValue<'_>>,
        problems: &mut Findings,
    ) -> Option<RawValue> {
        Some(match key.ty {
            KeyType::String => RawValue::String(read_field(name, value, problems)?),
            KeyType::Secret => RawValue::Secret(read_field(name, value, problems)?),
            KeyType::StringList => RawValue::StringList(read_field(name, value, problems)?),
            KeyType::Integer => RawValue::Integer(read_field(name, value, problems)?),
        })
    }
}

/// No platform keys: a table whose keys are all its own.
fn no_platform_keys() -> Vec<Key> {
    Vec::new()
}

/// A TOML value turned into one of the raw types, or a problem recorded.
pub(super) trait FromToml: Sized {
    /// Converts `value`, written under `key` (used in messages).
    fn from_toml(key: &str, value: Spanned<DeValue<'_>>, problems: &mut Findings) -> Option<Self>;
}

/// Parses `text` into the raw config. TOML syntax errors (including
/// duplicate keys) stop here: the rest of the checks would only add noise
/// about a document that does not say what the admin meant.
pub(super) fn parse(text: &str, problems: &mut Findings) -> Option<RawConfig> {
    let document = document(text, problems)?;
    let span = document.span();
    let value = Spanned::new(span, DeValue::Table(document.into_inner()));
    RawConfig::from_toml("", value, problems)
}

/// Parses `text` for `[ledger]` alone (`ledger` commands): syntax errors
/// and problems inside `[ledger]` are recorded, the rest of the document is
/// not looked at. `Some(None)` when there is no `[ledger]`.
pub(super) fn parse_ledger(
    text: &str,
    problems: &mut Findings,
) -> Option<Option<Field<RawLedger>>> {
    for (key, value) in document(text, problems)?.into_inner() {
        if key.get_ref().as_ref() == "ledger" {
            return read_field(key, value, problems).map(Some);
        }
    }
    Some(None)
}

/// The TOML document, or its syntax errors recorded.
fn document<'i>(text: &'i str, problems: &mut Findings) -> Option<Spanned<DeTable<'i>>> {
    let (document, errors) = DeTable::parse_recoverable(text);
    if errors.is_empty() {
        return Some(document);
    }
    for error in errors {
        // A toml message may span lines; ours are one line each.
        let message = error.message().replace('\n', "; ");
        problems.push(&error.span().unwrap_or(0..0), message);
    }
    None
}

/// Declares a raw table: a struct of optional [`Field`]s, the closed list of
/// its keys, and the [`FromToml`] walker that fills it. `$platform_keys`
/// gives the keys the platforms add to the table (their union: a key of
/// another kind is then "not used by this kind" rather than a typo); their
/// values are in `platform`, converted to the type each declares.
macro_rules! raw_table {
    (
        $(#[$doc:meta])*
        $name:ident $place:literal $platform_keys:path {
            $($(#[$field_doc:meta])* $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$doc])*
        #[derive(Default)]
        pub(crate) struct $name {
            /// Where the table is written: its `[header]` or its `{`.
            #[allow(dead_code, reason = "generated for every table, read for some")]
            pub(crate) span: Span,
            $($(#[$field_doc])* pub(crate) $field: Option<Field<$ty>>,)*
            /// The platforms' keys written with a value of their type.
            #[allow(dead_code, reason = "generated for every table, used by some")]
            pub(crate) platform: Vec<(&'static str, RawValue)>,
            /// Keys written with a value that was refused (and reported):
            /// their field is `None`, but they must not be called missing.
            pub(crate) invalid: Vec<&'static str>,
        }

        impl $name {
            /// The table's own keys.
            const KEYS: &[&str] = &[$(stringify!($field)),*];

            /// Whether `key` was written, even with a refused value.
            #[allow(dead_code, reason = "generated for every table, used by some")]
            pub(crate) fn written(&self, key: &str) -> bool {
                self.present().iter().any(|(k, _)| *k == key) || self.invalid.contains(&key)
            }

            /// The keys present with a value of their type, each with the
            /// span of the key: the table's own, then the platforms'.
            #[allow(dead_code, reason = "generated for every table, used by some")]
            pub(crate) fn present(&self) -> Vec<(&'static str, Span)> {
                let mut keys = Vec::new();
                $(if let Some(field) = &self.$field {
                    keys.push((stringify!($field), field.key.clone()));
                })*
                for (key, value) in &self.platform {
                    keys.push((*key, value.key_span().clone()));
                }
                keys
            }

            /// A platform key's value, when written with its type.
            #[allow(dead_code, reason = "generated for every table, used by some")]
            pub(crate) fn platform_value(&self, key: &str) -> Option<&RawValue> {
                self.platform.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
            }
        }

        impl FromToml for $name {
            fn from_toml(
                key: &str,
                value: Spanned<DeValue<'_>>,
                problems: &mut Findings,
            ) -> Option<Self> {
                let span = value.span();
                let table = into_table(key, value, problems)?;
                let platform_keys = $platform_keys();
                let mut raw = $name { span, ..$name::default() };
                for (key, value) in table {
                    match key.get_ref().as_ref() {
                        $(stringify!($field) => {
                            raw.$field = read_field(key, value, problems);
                            if raw.$field.is_none() {
                                raw.invalid.push(stringify!($field));
                            }
                        })*
                        name => match platform_keys.iter().find(|k| k.name == name) {
                            Some(spec) => match RawValue::read(*spec, key, value, problems) {
                                Some(read) => raw.platform.push((spec.name, read)),
                                None => raw.invalid.push(spec.name),
                            },
                            None => {
                                let mut known = Self::KEYS.to_vec();
                                known.extend(platform_keys.iter().map(|k| k.name));
                                unknown_key(&key, $place, &known, problems)
                            }
                        },
                    }
                }
                Some(raw)
            }
        }
    };
}

raw_table! {
    /// The whole document.
    RawConfig "at the top level" no_platform_keys {
        /// `[travtus]`.
        travtus: RawTravtus,
        /// `[ledger]`.
        ledger: RawLedger,
        /// Every `[[source]]`.
        source: Vec<RawSource>,
        /// `[metrics]`.
        metrics: RawMetrics,
        /// `[push]`.
        push: RawPush,
    }
}

raw_table! {
    /// `[travtus]`.
    RawTravtus "in [travtus]" no_platform_keys {
        /// Where `/messages/` lives.
        base_url: String,
        /// The OAuth2 token endpoint.
        token_url: String,
        /// OAuth2 client id.
        client_id: String,
        /// OAuth2 client secret.
        client_secret: RawSecret,
        /// A static bearer token instead of client credentials.
        token: RawSecret,
        /// A duration such as `"30s"`.
        timeout: String,
        /// Deliveries in flight at once.
        concurrency: i64,
    }
}

raw_table! {
    /// `[ledger]`.
    RawLedger "in [ledger]" no_platform_keys {
        /// The SQLite file.
        path: String,
        /// A PostgreSQL database instead (`postgres://...`).
        url: String,
        /// Its password.
        password: RawSecret,
        /// `verify-full` (default) or `disable`.
        sslmode: String,
        /// PEM CA certificates the server's must chain to.
        sslrootcert: RawSecret,
        /// A PEM client certificate.
        sslcert: RawSecret,
        /// Its PEM private key.
        sslkey: RawSecret,
        /// Days after delivery that review text is kept.
        retain_text_days: i64,
        /// Days the poll log keeps a poll.
        retain_polls_days: i64,
        /// This daemon's name among those sharing the ledger.
        instance: String,
        /// How long a pass or job lease lasts unrenewed (PostgreSQL).
        lease: String,
    }
}

raw_table! {
    /// `[metrics]`.
    RawMetrics "in [metrics]" no_platform_keys {
        /// `IP:PORT` of the Prometheus endpoint.
        listen: String,
    }
}

raw_table! {
    /// `[push]`.
    RawPush "in [push]" no_platform_keys {
        /// `IP:PORT` of the webhook receiver.
        listen: String,
        /// How long a webhook source may deliver nothing before it is reported.
        webhook_silence_alert: String,
    }
}

raw_table! {
    /// One `[[source]]`: the keys every kind takes, and those of every
    /// platform (`crate::platforms::registry`).
    RawSource "in [[source]]" crate::platforms::registry::source_keys {
        /// Unique name.
        name: String,
        /// Which platform.
        kind: String,
        /// Cron with seconds.
        schedule: String,
        /// Platform request budget.
        requests_per_minute: i64,
        /// One platform request's timeout.
        timeout: String,
        /// Pages one location's incremental pass may read.
        max_pages_per_pass: i64,
        /// Time one location's incremental pass may take.
        max_pass_time: String,
        /// Pages one location's full read (first read, reconciliation) may read.
        max_pages_per_full_read: i64,
        /// Time one location's full read may take.
        max_full_read_time: String,
        /// Cron of full reconciliation passes (kinds that list every review).
        reconcile_schedule: String,
        /// Every `[[source.location]]`.
        location: Vec<RawLocation>,
    }
}

raw_table! {
    /// One `[[source.location]]`: the keys every location takes, and those
    /// the platforms add.
    RawLocation "in [[source.location]]" crate::platforms::registry::location_keys {
        /// The platform's location id (for `file`: a path or glob).
        id: String,
        /// The Travtus group's external reference.
        group_external_ref: String,
        /// The Travtus group's id.
        group_id: String,
    }
}

/// A secret as written. Holds a plain secret's value, so it is deliberately
/// not `Debug`.
pub(crate) enum RawSecret {
    /// `key = "value"`.
    Plain(String),
    /// `{ env = "NAME" }`.
    Env(Field<String>),
    /// `{ file = "PATH" }`.
    File(Field<String>),
    /// `{ credential = "NAME" }`.
    Credential(Field<String>),
}

/// The keys of a secret table.
const SECRET_KEYS: &[&str] = &["env", "file", "credential"];

impl FromToml for RawSecret {
    fn from_toml(key: &str, value: Spanned<DeValue<'_>>, problems: &mut Findings) -> Option<Self> {
        let span = value.span();
        match value.into_inner() {
            DeValue::String(s) => Some(RawSecret::Plain(s.into_owned())),
            DeValue::Table(table) => secret_table(key, &span, table, problems),
            // Only the type is named: the value may be the secret itself.
            other => {
                let found = with_article(other.type_str());
                let message = format!(
                    "{key}: expected a string or a table such as {{ env = \"NAME\" }}, found {found}"
                );
                problems.push(&span, message);
                None
            }
        }
    }
}

/// `{ env = .. }`, `{ file = .. }` or `{ credential = .. }`: exactly one.
fn secret_table(
    key: &str,
    span: &Span,
    table: DeTable<'_>,
    problems: &mut Findings,
) -> Option<RawSecret> {
    let mut forms = 0;
    let mut secret = None;
    for (name, value) in table {
        let form: fn(Field<String>) -> RawSecret = match name.get_ref().as_ref() {
            "env" => RawSecret::Env,
            "file" => RawSecret::File,
            "credential" => RawSecret::Credential,
            _ => {
                unknown_key(&name, &format!("in secret `{key}`"), SECRET_KEYS, problems);
                continue;
            }
        };
        forms += 1;
        secret = read_field(name, value, problems).map(form);
    }
    if forms != 1 {
        let message =
            format!("{key}: a secret table takes exactly one of `env`, `file` and `credential`");
        problems.push(span, message);
        return None;
    }
    secret
}

impl FromToml for String {
    fn from_toml(key: &str, value: Spanned<DeValue<'_>>, problems: &mut Findings) -> Option<Self> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => mismatch(key, "a string", &value, problems),
        }
    }
}

impl FromToml for i64 {
    fn from_toml(key: &str, value: Spanned<DeValue<'_>>, problems: &mut Findings) -> Option<Self> {
        let DeValue::Integer(int) = value.get_ref() else {
            return mismatch(key, "an integer", &value, problems);
        };
        let parsed = i64::from_str_radix(int.as_str(), int.radix()).ok();
        if parsed.is_none() {
            problems.push(&value.span(), format!("{key}: integer out of range"));
        }
        parsed
    }
}

impl<T: FromToml> FromToml for Vec<T> {
    fn from_toml(key: &str, value: Spanned<DeValue<'_>>, problems: &mut Findings) -> Option<Self> {
        let DeValue::Array(items) = value.get_ref() else {
            // `[source]` where `[[source]]` was meant is the likely slip.
            let expected = match value.get_ref() {
                DeValue::Table(_) => "an array (tables in an array are written `[[...]]`)",
                _ => "an array",
            };
            return mismatch(key, expected, &value, problems);
        };
        // Every element is converted, so each bad one is reported; the good
        // ones are kept so that stage two still checks them (the config is
        // refused anyway, but their own problems are reported in this run).
        let items = items
            .iter()
            .filter_map(|item| T::from_toml(key, item.clone(), problems))
            .collect();
        Some(items)
    }
}

/// Reads one key's value into a [`Field`].
fn read_field<T: FromToml>(
    key: Spanned<DeString<'_>>,
    value: Spanned<DeValue<'_>>,
    problems: &mut Findings,
) -> Option<Field<T>> {
    let span = value.span();
    let value = T::from_toml(key.get_ref(), value, problems)?;
    Some(Field {
        value,
        key: key.span(),
        span,
    })
}

/// The table inside `value`, or a problem.
fn into_table<'i>(
    key: &str,
    value: Spanned<DeValue<'i>>,
    problems: &mut Findings,
) -> Option<DeTable<'i>> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Table(table) => Some(table),
        other => mismatch(key, "a table", &Spanned::new(span, other), problems),
    }
}

/// Records "`key`: expected X, found Y". Never shows the value: it may be a
/// secret written under the wrong key.
fn mismatch<T>(
    key: &str,
    expected: &str,
    value: &Spanned<DeValue<'_>>,
    problems: &mut Findings,
) -> Option<T> {
    let found = with_article(value.get_ref().type_str());
    problems.push(
        &value.span(),
        format!("{key}: expected {expected}, found {found}"),
    );
    None
}

/// Records an unknown key, suggesting the closest known one.
fn unknown_key(key: &Spanned<DeString<'_>>, place: &str, known: &[&str], problems: &mut Findings) {
    let name = key.get_ref();
    let hint = match closest(name, known) {
        Some(k) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    };
    problems.push(&key.span(), format!("unknown key `{name}` {place}{hint}"));
}

/// "an integer", "a string".
fn with_article(noun: &str) -> String {
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {noun}")
}
