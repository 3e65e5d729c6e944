//! The one place where the Travtus `POST /messages/` body is built from a
//! domain [`Review`], and rewritten later: [`regroup`] (a fixed mapping, on
//! `ledger retry` and `resend`) and [`purge_text`] (retention). Field order
//! is fixed (group key, `channel`, `review`) so that the stored payload
//! reads naturally; fields a platform lacks are left out, never sent as
//! `null`. The ledger stores bodies as opaque text and calls these two to
//! change one.

use crate::domain::{GroupRef, Review};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A body ready to send, and the hash that identifies this version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The exact JSON text to POST.
    pub json: String,
    /// Hex SHA-256 of the `review` object: the same review content always
    /// hashes the same, whatever group it is sent to, so a mapping change is
    /// not mistaken for an edit.
    pub content_hash: String,
}

/// Builds the body for `review`; `group` is `None` for an unmapped location
/// (the review is then held and this body is only stored, never sent).
pub fn build_payload(review: &Review, group: Option<&GroupRef>) -> Payload {
    let review_text = Value::Object(review_json(review)).to_string();
    let content_hash = hex::encode(Sha256::digest(review_text.as_bytes()));

    // The body is `{<group key>:<value>,"channel":"review","review":<review>}`,
    // written around the review text already serialised for the hash rather
    // than serialising the review a second time: byte for byte what
    // serde_json writes for that object (compact, keys in this order).
    let mut json = String::with_capacity(review_text.len() + 96);
    json.push('{');
    if let Some(group) = group {
        json.push_str(&Value::from(group.key()).to_string());
        json.push(':');
        json.push_str(&Value::from(group.value()).to_string());
        json.push(',');
    }
    json.push_str(r#""channel":"review","review":"#);
    json.push_str(&review_text);
    json.push('}');
    Payload { json, content_hash }
}

/// `Idempotency-Key: <platform>:<review_id>:<content_hash>`: the same on
/// every retry of one version, different for an edit.
pub fn idempotency_key(platform: &str, review_id: &str, content_hash: &str) -> String {
    format!("{platform}:{review_id}:{content_hash}")
}

/// The keys of the body's `review` object that retention removes
/// ([`purge_text`]): the text a reviewer wrote and the name they wrote it
/// under.
pub const PURGED_FIELDS: [&str; 3] = ["comment", "title", "display_name"];

/// `payload` (a stored body) with its group key replaced by `group`'s, as
/// the body's first key (where [`build_payload`] puts it), the other keys in
/// their order. `None` when the payload is not a JSON object.
pub fn regroup(payload: &str, group: &GroupRef) -> Option<String> {
    let Ok(Value::Object(old)) = serde_json::from_str(payload) else {
        return None;
    };
    // A new map rather than `remove`: with `preserve_order`, `Map::remove`
    // swaps the last key into the removed one's place.
    let mut new = Map::with_capacity(old.len() + 1);
    new.insert(
        group.key().to_owned(),
        Value::String(group.value().to_owned()),
    );
    new.extend(
        old.into_iter()
            .filter(|(k, _)| k != "group_id" && k != "group_external_ref"),
    );
    serde_json::to_string(&Value::Object(new)).ok()
}

/// What [`purge_text`] made of a stored body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purged {
    /// The body without [`PURGED_FIELDS`]; everything else kept, in order.
    Removed(String),
    /// The body holds none of them: nothing to change.
    NothingToRemove,
    /// Not a JSON object: left alone (a hand edit; `ledger show` names it).
    NotJson,
}

/// `payload` without the [`PURGED_FIELDS`] of its `review` object, the
/// other keys in their order (retention: `[ledger] retain_text_days`,
/// `ledger purge`).
pub fn purge_text(payload: &str) -> Purged {
    let Ok(Value::Object(mut body)) = serde_json::from_str::<Value>(payload) else {
        return Purged::NotJson;
    };
    let Some(Value::Object(review)) = body.get_mut("review") else {
        return Purged::NothingToRemove;
    };
    if !PURGED_FIELDS.iter().any(|f| review.contains_key(*f)) {
        return Purged::NothingToRemove;
    }
    // `shift_remove` keeps the order of the keys left (`remove` would swap
    // the last key into the removed one's place).
    for field in PURGED_FIELDS {
        review.shift_remove(field);
    }
    match serde_json::to_string(&Value::Object(body)) {
        Ok(text) => Purged::Removed(text),
        Err(_) => Purged::NotJson,
    }
}

/// Substrings of which a body that [`purge_text`] would change holds at
/// least one (the quoted keys). A cheap filter the ledger can run in SQL
/// before handing rows to [`purge_text`]; it may let through bodies that
/// only mention a key in a text, never drop one that holds it.
pub fn purge_hints() -> impl Iterator<Item = String> {
    PURGED_FIELDS.iter().map(|f| format!("\"{f}\""))
}

fn review_json(review: &Review) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("source".into(), Value::from(review.platform.as_str()));
    m.insert("review_id".into(), Value::from(review.review_id.as_str()));
    if let Some(title) = &review.title {
        m.insert("title".into(), Value::from(title.as_str()));
    }
    if let Some(comment) = &review.comment {
        m.insert("comment".into(), Value::from(comment.as_str()));
    }
    if let Some(rating) = review.rating {
        m.insert("rating".into(), Value::from(rating.get()));
    }
    if let Some(name) = &review.display_name {
        m.insert("display_name".into(), Value::from(name.as_str()));
    }
    if let Some(anonymous) = review.is_anonymous {
        m.insert("is_anonymous".into(), Value::from(anonymous));
    }
    m.insert(
        "created_datetime".into(),
        Value::from(crate::timestamps::travtus_format(review.created_at)),
    );
    if let Some(updated) = review.updated_at {
        m.insert(
            "updated_datetime".into(),
            Value::from(crate::timestamps::travtus_format(updated)),
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Platform, Rating, ReviewId};
    use chrono::{TimeZone, Utc};

    fn review() -> Review {
        Review {
            platform: Platform::new("google"),
            review_id: ReviewId::new("r-1"),
            title: None,
            comment: Some("Très bien ☀".into()),
            rating: Rating::new(5),
            display_name: Some("Ana".into()),
            is_anonymous: Some(false),
            created_at: Utc
                .with_ymd_and_hms(2023, 1, 1, 0, 0, 0)
                .single()
                .expect("valid date")
                + chrono::Duration::milliseconds(450),
            updated_at: Utc.with_ymd_and_hms(2023, 1, 2, 8, 0, 0).single(),
            notes: Default::default(),
        }
    }

    #[test]
    fn body_has_group_first_and_exact_fields() {
        let p = build_payload(
            &review(),
            Some(&GroupRef::ExternalRef("portfolio-123".into())),
        );
        assert_eq!(
            p.json,
            r#"{"group_external_ref":"portfolio-123","channel":"review","review":{"source":"google","review_id":"r-1","comment":"Très bien ☀","rating":5,"display_name":"Ana","is_anonymous":false,"created_datetime":"2023-01-01T00:00:00","updated_datetime":"2023-01-02T08:00:00"}}"#
        );
    }

    #[test]
    fn absent_fields_are_missing_keys_not_nulls() {
        let mut r = review();
        r.comment = None;
        r.rating = None;
        r.display_name = None;
        r.is_anonymous = None;
        r.updated_at = None;
        let p = build_payload(&r, Some(&GroupRef::Id("g-1".into())));
        let v: Value = serde_json::from_str(&p.json).expect("json");
        let review = v["review"].as_object().expect("object");
        let keys: Vec<&str> = review.keys().map(String::as_str).collect();
        assert_eq!(keys, vec!["source", "review_id", "created_datetime"]);
        assert_eq!(v["group_id"], "g-1");
        assert!(v.get("group_external_ref").is_none());
    }

    #[test]
    fn hash_ignores_the_group_but_not_the_content() {
        let a = build_payload(&review(), Some(&GroupRef::Id("a".into())));
        let b = build_payload(&review(), Some(&GroupRef::ExternalRef("b".into())));
        assert_eq!(a.content_hash, b.content_hash);
        let mut edited = review();
        edited.comment = Some("Changed".into());
        assert_ne!(build_payload(&edited, None).content_hash, a.content_hash);
    }

    #[test]
    fn unmapped_body_has_no_group_key() {
        let p = build_payload(&review(), None);
        let v: Value = serde_json::from_str(&p.json).expect("json");
        assert!(v.get("group_id").is_none() && v.get("group_external_ref").is_none());
    }

    #[test]
    fn regroup_puts_the_new_key_first_and_keeps_the_order() {
        let body = r#"{"channel":"review","group_id":"old","review":{"source":"google","review_id":"r1"},"z":1}"#;
        let out = regroup(body, &GroupRef::ExternalRef("p-9".into())).unwrap();
        assert_eq!(
            out,
            r#"{"group_external_ref":"p-9","channel":"review","review":{"source":"google","review_id":"r1"},"z":1}"#
        );
    }

    #[test]
    fn regroup_refuses_a_payload_that_is_not_an_object() {
        assert_eq!(regroup("[1]", &GroupRef::Id("g".into())), None);
        assert_eq!(regroup("not json", &GroupRef::Id("g".into())), None);
    }

    #[test]
    fn purge_removes_text_and_name_and_keeps_the_rest_in_order() {
        let p = build_payload(&review(), Some(&GroupRef::Id("g-1".into())));
        let Purged::Removed(out) = purge_text(&p.json) else {
            panic!("text to remove in {}", p.json);
        };
        assert_eq!(
            out,
            r#"{"group_id":"g-1","channel":"review","review":{"source":"google","review_id":"r-1","rating":5,"is_anonymous":false,"created_datetime":"2023-01-01T00:00:00","updated_datetime":"2023-01-02T08:00:00"}}"#
        );
        assert_eq!(purge_text(&out), Purged::NothingToRemove);
        assert_eq!(purge_text("{]"), Purged::NotJson);
        assert_eq!(purge_text(r#"{"review":"text"}"#), Purged::NothingToRemove);
    }

    #[test]
    fn every_body_purge_would_change_holds_a_hint() {
        let mut titled = review();
        titled.title = Some("T".into());
        for r in [review(), titled] {
            let json = build_payload(&r, None).json;
            assert!(matches!(purge_text(&json), Purged::Removed(_)));
            assert!(purge_hints().any(|h| json.contains(&h)), "{json}");
        }
    }

    #[test]
    fn idempotency_key_joins_platform_id_and_hash() {
        assert_eq!(idempotency_key("google", "r-1", "ab"), "google:r-1:ab");
    }

    /// The body written around the review text is byte for byte what
    /// serialising the whole object gives (stored payloads of older versions
    /// and new ones must not differ), escapes included.
    #[test]
    fn the_body_text_is_exactly_the_serialised_object() {
        let mut awkward = review();
        awkward.title = Some("\"Quoted\" \\ back\\slash".into());
        awkward.comment = Some("Line 1\nLine 2\t\u{1} 管理员 👍 </script>".into());
        let groups = [
            None,
            Some(GroupRef::ExternalRef("port\"folio\n1".into())),
            Some(GroupRef::Id("8f14e45f-ea3b-4c7e-9d3a-1f0e2b3c4d5e".into())),
        ];
        for r in [review(), awkward] {
            for group in &groups {
                let mut body = Map::new();
                if let Some(g) = group {
                    body.insert(g.key().to_owned(), Value::from(g.value()));
                }
                body.insert("channel".to_owned(), Value::from("review"));
                body.insert("review".to_owned(), Value::Object(review_json(&r)));
                assert_eq!(
                    build_payload(&r, group.as_ref()).json,
                    Value::Object(body).to_string()
                );
            }
        }
    }
}
