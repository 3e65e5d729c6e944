//! What the platforms share in reading pages of records: finding the array
//! of records in an answer, mapping the records one by one so that a bad one
//! is quarantined (raw, with the reason) while the rest of the page goes on,
//! and following next-page tokens without looping.

use super::{FetchedPage, PlatformError, json_kind, plausible_time, review_time_problem};
use crate::domain::{Rejected, Review};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Why a record could not become a review: its id when it had a readable
/// one, and "<field>: <what is wrong>".
pub(crate) type Refusal = (Option<String>, String);

/// The object `json` (`what` names it in the error) and its `key` array of
/// records. Platforms omit empty arrays, so an absent or null `key` is no
/// records; anything else but an array is an error for the whole answer.
pub(crate) fn record_array<'a>(
    json: &'a Value,
    what: &str,
    key: &str,
) -> Result<(&'a Map<String, Value>, &'a [Value]), PlatformError> {
    let Value::Object(top) = json else {
        return Err(PlatformError::InvalidResponse(format!(
            "{what} is {}, not an object",
            json_kind(json)
        )));
    };
    match top.get(key) {
        None | Some(Value::Null) => Ok((top, &[])),
        Some(Value::Array(items)) => Ok((top, items)),
        Some(other) => Err(PlatformError::InvalidResponse(format!(
            "{key} is {}, not an array",
            json_kind(other)
        ))),
    }
}

/// The records of one answer, mapped.
#[derive(Debug, Default)]
pub(crate) struct MappedRecords {
    /// The reviews and the rejected records (no reported total).
    pub page: FetchedPage,
    /// The oldest creation time on the page, rejected records included when
    /// theirs is readable and plausible (the incremental stop compares it
    /// with the high-water mark).
    pub oldest: Option<DateTime<Utc>>,
    /// The newest one, likewise.
    pub newest: Option<DateTime<Utc>>,
}

/// Maps `items` with `map`. A review whose times are implausible is refused
/// too ([`review_time_problem`]). A refused record is kept raw, named by its
/// id, or by `unnamed(index)` (0-based) when it has none, and counts for
/// `oldest`/`newest` with the time `refused_time` reads from it, when
/// plausible.
pub(crate) fn map_records(
    items: &[Value],
    map: impl Fn(&Value) -> Result<Review, Refusal>,
    unnamed: impl Fn(usize) -> String,
    refused_time: impl Fn(&Value) -> Option<DateTime<Utc>>,
) -> MappedRecords {
    let mut out = MappedRecords::default();
    for (index, item) in items.iter().enumerate() {
        let checked = map(item).and_then(|r| match review_time_problem(&r) {
            None => Ok(r),
            Some(reason) => Err((Some(r.review_id.to_string()), reason)),
        });
        let created = match checked {
            Ok(review) => {
                let created = review.created_at;
                out.page.reviews.push(review);
                Some(created)
            }
            Err((id, reason)) => {
                out.page.rejected.push(Rejected {
                    reference: id.unwrap_or_else(|| unnamed(index)),
                    reason,
                    raw: item.to_string(),
                });
                refused_time(item).and_then(plausible_time)
            }
        };
        if let Some(t) = created {
            out.oldest = Some(out.oldest.map_or(t, |o| o.min(t)));
            out.newest = Some(out.newest.map_or(t, |n| n.max(t)));
        }
    }
    out
}

/// The bookkeeping of a poll that follows next-page tokens (Google's
/// `nextPageToken`, Graph's `after` cursor): a bound on pages, a check for a
/// token that comes round again, and an error held back until the page that
/// revealed it has been handed out (its records are good).
#[derive(Debug)]
pub(crate) struct TokenPaging {
    /// What a token is called in errors ("page token", "cursor").
    what: &'static str,
    max_pages: u32,
    /// The token of the next page; `None` for the first.
    next: Option<String>,
    /// Every token received in this poll.
    seen: std::collections::HashSet<String>,
    pages: u32,
    done: bool,
    held_back: Option<PlatformError>,
}

impl TokenPaging {
    /// A poll that has read nothing yet and reads at most `max_pages`.
    pub(crate) fn new(what: &'static str, max_pages: u32) -> TokenPaging {
        TokenPaging {
            what,
            max_pages,
            next: None,
            seen: std::collections::HashSet::new(),
            pages: 0,
            done: false,
            held_back: None,
        }
    }

    /// Before asking for a page: `Ok(Some(token))` to ask (`None` is the
    /// first page), `Ok(None)` when the poll is over, or the error that ends
    /// it (held back from the last page, or the page bound).
    pub(crate) fn next_request(&mut self) -> Result<Option<Option<&str>>, PlatformError> {
        if let Some(error) = self.held_back.take() {
            self.done = true;
            return Err(error);
        }
        if self.done {
            return Ok(None);
        }
        if self.pages >= self.max_pages {
            self.done = true;
            return Err(PlatformError::InvalidResponse(format!(
                "more than {} pages in one poll",
                self.max_pages
            )));
        }
        Ok(Some(self.next.as_deref()))
    }

    /// A page was read: its number (1-based).
    pub(crate) fn page_read(&mut self) -> u32 {
        self.pages += 1;
        self.pages
    }

    /// Whether the poll is over (once the last page read is handed out).
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// No more pages: the old reviews are reached, or there is no next one.
    pub(crate) fn stop(&mut self) {
        self.done = true;
    }

    /// The poll ends with `error` after the page just read is handed out.
    pub(crate) fn fail_after_this_page(&mut self, error: PlatformError) {
        self.held_back = Some(error);
    }

    /// Follows the token the page gave: none ends the poll; one seen before
    /// in this poll ends it with a paging-loop error after this page.
    pub(crate) fn follow(&mut self, token: Option<String>) {
        match token {
            None => self.done = true,
            Some(token) if self.seen.insert(token.clone()) => self.next = Some(token),
            Some(_) => {
                self.held_back = Some(PlatformError::InvalidResponse(format!(
                    "paging loop: {} repeated after {} pages",
                    self.what, self.pages
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_paging_follows_stops_and_catches_loops_and_the_bound() {
        let mut paging = TokenPaging::new("cursor", 3);
        assert_eq!(paging.next_request().unwrap(), Some(None), "first page");
        assert_eq!(paging.page_read(), 1);
        paging.follow(Some("a".into()));
        assert_eq!(paging.next_request().unwrap(), Some(Some("a")));
        assert_eq!(paging.page_read(), 2);
        // A token seen before: this page is good, the next call fails.
        paging.follow(Some("a".into()));
        assert!(!paging.is_done());
        let e = paging.next_request().unwrap_err().to_string();
        assert!(
            e.contains("paging loop: cursor repeated after 2 pages"),
            "{e}"
        );
        assert_eq!(paging.next_request().unwrap(), None, "then over");

        let mut bounded = TokenPaging::new("page token", 1);
        bounded.next_request().unwrap();
        bounded.page_read();
        bounded.follow(Some("b".into()));
        let e = bounded.next_request().unwrap_err().to_string();
        assert!(e.contains("more than 1 pages in one poll"), "{e}");

        let mut last = TokenPaging::new("page token", 10);
        last.next_request().unwrap();
        last.page_read();
        last.follow(None);
        assert!(last.is_done());
        assert_eq!(last.next_request().unwrap(), None);
    }
}
