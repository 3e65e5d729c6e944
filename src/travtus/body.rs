//! The one place where the Travtus `POST /messages/` body is built from a
//! domain [`Review`]. Field order is fixed (group key, `channel`, `review`)
//! so that the stored payload reads naturally; fields a platform lacks are
//! left out, never sent as `null`.

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
