//! What a platform's validation reads of its `[[source]]`: its own keys,
//! as written and with their positions, through the same checks as every
//! other key (secrets, URLs, required and non-empty values), so that its
//! problems are reported with the rest, at `file:line:column`. Each platform
//! declares its keys ([`Key`]) and validates them in its own folder
//! (`src/platforms/<name>/settings.rs`); nothing here knows a platform.

use super::Secret;
pub(crate) use super::raw::{Field, Key};
use super::raw::{RawLocation, RawSource, RawValue};
pub(crate) use super::span::Span;
use super::validate::Validator;
use std::path::Path;
use url::Url;

/// One `[[source]]`'s platform keys, being validated.
pub(crate) struct SourceKeys<'v, 'a> {
    validator: &'v mut Validator<'a>,
    raw: &'v RawSource,
    kind: &'static str,
}

impl<'v, 'a> SourceKeys<'v, 'a> {
    /// The keys of `raw`, a source of `kind`.
    pub(super) fn new(
        validator: &'v mut Validator<'a>,
        raw: &'v RawSource,
        kind: &'static str,
    ) -> SourceKeys<'v, 'a> {
        SourceKeys {
            validator,
            raw,
            kind,
        }
    }

    /// Whether `key` was written, even with a refused value.
    pub(crate) fn written(&self, key: &str) -> bool {
        self.raw.written(key)
    }

    /// Where `key` is written, when it is (with a value of its type).
    pub(crate) fn key_span(&self, key: &str) -> Option<Span> {
        self.raw
            .present()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, span)| span)
    }

    /// The `[[source]]` header.
    pub(crate) fn source_span(&self) -> Span {
        self.raw.span.clone()
    }

    /// The string `key`, as written.
    pub(crate) fn string(&self, key: &str) -> Option<&'v Field<String>> {
        match self.raw.platform_value(key) {
            Some(RawValue::String(field)) => Some(field),
            _ => None,
        }
    }

    /// The string list `key`, as written.
    pub(crate) fn list(&self, key: &str) -> Option<&'v Field<Vec<String>>> {
        match self.raw.platform_value(key) {
            Some(RawValue::StringList(field)) => Some(field),
            _ => None,
        }
    }

    /// The integer `key`, as written.
    pub(crate) fn integer(&self, key: &str) -> Option<&'v Field<i64>> {
        match self.raw.platform_value(key) {
            Some(RawValue::Integer(field)) => Some(field),
            _ => None,
        }
    }

    /// Records a problem at `span`; `None`, so that callers can end with it.
    pub(crate) fn problem<T>(&mut self, span: &Span, message: impl Into<String>) -> Option<T> {
        self.validator.problem(span, message)
    }

    /// "missing key `key` in [[source]] (kind ...)" unless written (a
    /// refused value is reported already).
    fn require(&mut self, key: &str) -> bool {
        let written = self.written(key);
        if !written {
            let message = format!("missing key `{key}` in [[source]] (kind {})", self.kind);
            self.validator.problems.push(&self.raw.span, message);
        }
        written
    }

    /// A string `key` that must be written and not blank.
    pub(crate) fn required_string(&mut self, key: &str) -> Option<String> {
        if !self.require(key) {
            return None;
        }
        let field = self.string(key)?;
        self.validator.non_empty(key, field)
    }

    /// An optional string `key` that is not blank when written: `Some(None)`
    /// when absent (or written with another type, which stage one
    /// reported), `None` when blank.
    pub(crate) fn non_empty(&mut self, key: &str) -> Option<Option<String>> {
        match self.string(key) {
            Some(field) => self.validator.non_empty(key, field).map(Some),
            None => Some(None),
        }
    }

    /// A secret `key` that must be written.
    pub(crate) fn required_secret(&mut self, key: &str) -> Option<Secret> {
        if !self.require(key) {
            return None;
        }
        self.optional_secret(key)?
    }

    /// An optional secret `key`: `Some(None)` when absent (or written
    /// with another type, which stage one reported), `None` when it cannot
    /// be read.
    pub(crate) fn optional_secret(&mut self, key: &str) -> Option<Option<Secret>> {
        match self.raw.platform_value(key) {
            Some(RawValue::Secret(field)) => self.validator.secret(key, field).map(Some),
            _ => Some(None),
        }
    }

    /// The URL `key` (https, or http to a loopback host), or `default`.
    pub(crate) fn url(&mut self, key: &str, default: &str) -> Option<Url> {
        let field = self.string(key);
        self.validator.url(key, field, default)
    }

    /// An optional language tag `key`: `en`, or `en{sep}US` (Places writes
    /// `en-US`, Yelp `en_US`). `Some(None)` when absent.
    pub(crate) fn language_tag(&mut self, key: &str, sep: char) -> Option<Option<String>> {
        let Some(field) = self.string(key) else {
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

    /// The config file's folder: where relative paths start.
    pub(crate) fn config_dir(&self) -> &Path {
        self.validator.secrets.dir
    }

    /// Every `[[source.location]]` as written.
    pub(crate) fn locations(&self) -> Vec<LocationKeys<'v>> {
        self.raw
            .location
            .as_ref()
            .map_or(&[][..], |field| field.value.as_slice())
            .iter()
            .map(|raw| LocationKeys { raw })
            .collect()
    }

    /// The secret `key` of a location: `Some(None)` when absent (or
    /// written with another type, which stage one reported), `None` when it
    /// cannot be read.
    pub(crate) fn location_secret(
        &mut self,
        location: &LocationKeys<'v>,
        key: &str,
    ) -> Option<Option<Secret>> {
        match location.raw.platform_value(key) {
            Some(RawValue::Secret(field)) => self.validator.secret(key, field).map(Some),
            _ => Some(None),
        }
    }
}

/// One `[[source.location]]` as written, for a platform's own location keys.
#[derive(Clone, Copy)]
pub(crate) struct LocationKeys<'v> {
    raw: &'v RawLocation,
}

impl<'v> LocationKeys<'v> {
    /// Its `id`, when written as a string.
    pub(crate) fn id(&self) -> Option<&'v str> {
        self.raw.id.as_ref().map(|field| field.value.as_str())
    }

    /// Whether `key` was written, even with a refused value.
    pub(crate) fn written(&self, key: &str) -> bool {
        self.raw.written(key)
    }

    /// The `[[source.location]]` header.
    pub(crate) fn span(&self) -> Span {
        self.raw.span.clone()
    }
}
