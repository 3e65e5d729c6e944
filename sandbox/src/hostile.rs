//! Hostile and broken platforms: misbehaviour modes for the Google emulator's
//! reviews list, per location (and for the batchGetReviews calls naming it:
//! see `google::batch_get_reviews`), for tests that prove a misbehaving
//! platform costs one location's poll (with a specific error) and nothing
//! else.
//!
//! Faults (`faults`) are what a healthy platform does on a bad day: error
//! statuses, throttling, dropped connections, slowness. Misbehaviours are
//! what a broken one does with a 200: answers that never end, bodies of
//! hundreds of megabytes, bytes that are not JSON or not UTF-8, JSON of the
//! wrong shape, and paging that never ends or repeats itself. A misbehaving
//! location keeps misbehaving on every request until
//! [`GoogleEmulator::behave`] is called, as a broken platform would.
//!
//! Malformed *records* (bad ids, times, ratings, text) need no mode here: put
//! them in a location with [`GoogleEmulator::insert_raw_review`].
//!
//! Streaming bodies are generated as they are sent, one chunk at a time, so
//! a [`Misbehaviour::HugeBody`] of any size costs the emulator one static
//! 64 KiB buffer, never the whole body.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use serde_json::{Map, Value, json};
use tokio::time::Sleep;

use crate::google::{GoogleEmulator, encode_page_token};

/// One way the reviews list of a location misbehaves (always with HTTP 200).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// The headers and the start of a page, then one space every
    /// [`TRICKLE_EVERY`], forever: only the client's timeout ends it.
    EndlessBody,
    /// A page padded with whitespace to `bytes` bytes (valid JSON if read
    /// whole), streamed in 64 KiB chunks without a `Content-Length`, so the
    /// client cannot refuse it from the headers and must stop reading itself.
    HugeBody {
        /// Total body size.
        bytes: u64,
    },
    /// `application/json` that is not JSON: the page cut off half way.
    InvalidJson,
    /// A page whose first review's `comment` holds bytes that are not UTF-8
    /// (Latin-1 `é` and a stray `0xFF`), as a server that mixes encodings sends.
    InvalidUtf8,
    /// Valid JSON of the wrong shape: `reviews` is an object keyed by review
    /// id instead of an array.
    WrongShape,
    /// The last page's `nextPageToken` leads back to the first page, so
    /// following tokens never ends.
    LoopingPageToken,
    /// Every answer is the first page with a fresh, never repeated
    /// `nextPageToken`: paging never ends and no token repeats.
    EndlessPaging,
    /// [`Misbehaviour::EndlessPaging`] without `totalReviewCount` (nor
    /// `averageRating`): nothing in the answers says how many reviews there
    /// should be, so only the client's own bounds end the paging.
    EndlessPagingWithoutTotal,
    /// Each page after the first starts with the last review of the page
    /// before it: the same review on two pages.
    DuplicateAcrossPages,
}

/// How often an [`Misbehaviour::EndlessBody`] sends its next byte: often
/// enough that an idle-read timeout never fires, so only a total timeout can
/// end the request.
pub const TRICKLE_EVERY: Duration = Duration::from_millis(100);

/// The chunk a huge body is streamed in.
const CHUNK: usize = 64 * 1024;
static SPACES: [u8; CHUNK] = [b' '; CHUNK];

/// Marks the comment whose bytes [`Misbehaviour::InvalidUtf8`] replaces.
const UTF8_MARKER: &str = "__sandbox_invalid_utf8__";
/// What replaces it: Latin-1 "café" and a byte no UTF-8 text contains.
const NOT_UTF8: &[u8] = b"caf\xe9 \xff";

/// The misbehaviours of one Google emulator (cheap to clone; clones share).
#[derive(Clone, Default)]
pub(crate) struct Hostile {
    by_location: Arc<Mutex<HashMap<String, Misbehaviour>>>,
    /// Bytes of streamed bodies produced so far, for tests that check a
    /// client stopped reading early.
    streamed: Arc<AtomicU64>,
}

impl Hostile {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Misbehaviour>> {
        self.by_location
            .lock()
            .expect("misbehaviour map mutex poisoned")
    }

    /// The misbehaviour of `location`, if any.
    pub(crate) fn get(&self, location: &str) -> Option<Misbehaviour> {
        self.lock().get(location).cloned()
    }

    /// The slice of reviews to serve for a request at `offset` of
    /// `page_size`: (offset, size).
    pub(crate) fn window(m: &Misbehaviour, offset: usize, page_size: usize) -> (usize, usize) {
        match m {
            Misbehaviour::EndlessPaging | Misbehaviour::EndlessPagingWithoutTotal => (0, page_size),
            Misbehaviour::DuplicateAcrossPages if offset > 0 => (offset - 1, page_size + 1),
            _ => (offset, page_size),
        }
    }

    /// The answer for a misbehaving location, from the page it would have
    /// served (built from [`Hostile::window`]) and the request's own offset.
    pub(crate) fn respond(
        &self,
        m: &Misbehaviour,
        mut page: Value,
        offset: usize,
        page_size: usize,
    ) -> Response {
        match m {
            Misbehaviour::EndlessBody => streamed(Streamed::endless(self.streamed.clone())),
            Misbehaviour::HugeBody { bytes } => {
                streamed(Streamed::huge(*bytes, self.streamed.clone()))
            }
            Misbehaviour::InvalidJson => {
                let mut text = page.to_string().into_bytes();
                text.truncate(text.len() / 2);
                raw_json(text)
            }
            Misbehaviour::InvalidUtf8 => {
                if let Some(first) = page
                    .get_mut("reviews")
                    .and_then(|r| r.get_mut(0))
                    .and_then(Value::as_object_mut)
                {
                    first.insert("comment".into(), json!(UTF8_MARKER));
                }
                let text = page.to_string();
                let mut body = Vec::with_capacity(text.len());
                match text.split_once(UTF8_MARKER) {
                    Some((before, after)) => {
                        body.extend_from_slice(before.as_bytes());
                        body.extend_from_slice(NOT_UTF8);
                        body.extend_from_slice(after.as_bytes());
                    }
                    // An empty location: the bytes go where a page would be.
                    None => {
                        body.extend_from_slice(b"{\"comment\":\"");
                        body.extend_from_slice(NOT_UTF8);
                        body.extend_from_slice(b"\"}");
                    }
                }
                raw_json(body)
            }
            Misbehaviour::WrongShape => {
                if let Some(Value::Array(reviews)) = page.get_mut("reviews").map(Value::take) {
                    let keyed: Map<String, Value> = reviews
                        .into_iter()
                        .enumerate()
                        .map(|(i, r)| {
                            let id = r
                                .get("reviewId")
                                .and_then(Value::as_str)
                                .map_or_else(|| i.to_string(), str::to_owned);
                            (id, r)
                        })
                        .collect();
                    page["reviews"] = Value::Object(keyed);
                } else {
                    page["reviews"] = json!({});
                }
                axum::Json(page).into_response()
            }
            Misbehaviour::LoopingPageToken => {
                if let Value::Object(map) = &mut page
                    && !map.contains_key("nextPageToken")
                {
                    map.insert("nextPageToken".into(), json!(encode_page_token(0)));
                }
                axum::Json(page).into_response()
            }
            Misbehaviour::EndlessPaging => {
                page["nextPageToken"] =
                    json!(encode_page_token(offset.saturating_add(page_size.max(1))));
                axum::Json(page).into_response()
            }
            Misbehaviour::EndlessPagingWithoutTotal => {
                if let Value::Object(map) = &mut page {
                    map.remove("totalReviewCount");
                    map.remove("averageRating");
                }
                page["nextPageToken"] =
                    json!(encode_page_token(offset.saturating_add(page_size.max(1))));
                axum::Json(page).into_response()
            }
            Misbehaviour::DuplicateAcrossPages => axum::Json(page).into_response(),
        }
    }
}

impl GoogleEmulator {
    /// Makes every reviews list request for `location`, and every
    /// batchGetReviews call naming it, misbehave (after authentication and
    /// any scripted fault), until [`GoogleEmulator::behave`].
    pub fn misbehave(&self, location: &str, misbehaviour: Misbehaviour) {
        self.hostile
            .lock()
            .insert(location.to_owned(), misbehaviour);
    }

    /// Makes `location` answer normally again.
    pub fn behave(&self, location: &str) {
        self.hostile.lock().remove(location);
    }

    /// Bytes of [`Misbehaviour::EndlessBody`] and [`Misbehaviour::HugeBody`]
    /// bodies produced so far, over all locations: what clients were sent,
    /// give or take the socket buffers.
    pub fn streamed_bytes(&self) -> u64 {
        self.hostile.streamed.load(Ordering::Relaxed)
    }
}

fn raw_json(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response()
}

fn streamed(body: Streamed) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        Body::new(body),
    )
        .into_response()
}

/// A body produced as it is sent: a page's opening, then whitespace, then
/// (for a finite body) the closing brace.
struct Streamed {
    /// Sent first.
    opening: Option<Bytes>,
    /// Whitespace bytes still to send; `None`: forever, one at a time.
    left: Option<u64>,
    /// Sent last (finite bodies only).
    closing: Option<Bytes>,
    /// Paces an endless body.
    pace: Option<Pin<Box<Sleep>>>,
    counter: Arc<AtomicU64>,
}

impl Streamed {
    const OPENING: &'static [u8] = b"{\"reviews\":[]";
    const CLOSING: &'static [u8] = b"}";

    fn endless(counter: Arc<AtomicU64>) -> Streamed {
        Streamed {
            opening: Some(Bytes::from_static(Self::OPENING)),
            left: None,
            closing: None,
            pace: Some(Box::pin(tokio::time::sleep(TRICKLE_EVERY))),
            counter,
        }
    }

    fn huge(bytes: u64, counter: Arc<AtomicU64>) -> Streamed {
        let fixed = (Self::OPENING.len() + Self::CLOSING.len()) as u64;
        Streamed {
            opening: Some(Bytes::from_static(Self::OPENING)),
            left: Some(bytes.saturating_sub(fixed)),
            closing: Some(Bytes::from_static(Self::CLOSING)),
            pace: None,
            counter,
        }
    }

    fn frame(&self, data: Bytes) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(opening) = this.opening.take() {
            return this.frame(opening);
        }
        match this.left {
            None => {
                let Some(pace) = this.pace.as_mut() else {
                    return Poll::Ready(None);
                };
                if pace.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                pace.as_mut()
                    .reset(tokio::time::Instant::now() + TRICKLE_EVERY);
                this.frame(Bytes::from_static(b" "))
            }
            Some(0) => match this.closing.take() {
                Some(closing) => this.frame(closing),
                None => Poll::Ready(None),
            },
            Some(left) => {
                let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
                this.left = Some(left - n as u64);
                this.frame(Bytes::from_static(&SPACES[..n]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;

    fn drain(mut body: Streamed, limit: usize) -> (u64, Vec<u8>) {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut total = 0u64;
        let mut edges = Vec::new();
        for _ in 0..limit {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let data = frame.into_data().unwrap_or_default();
                    if data.len() < 64 {
                        edges.extend_from_slice(&data);
                    }
                    total += data.len() as u64;
                }
                Poll::Ready(None) => return (total, edges),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Pending => break,
            }
        }
        (total, edges)
    }

    #[test]
    fn a_huge_body_has_exactly_its_size_and_is_valid_json() {
        let counter = Arc::new(AtomicU64::new(0));
        let size = 3 * CHUNK as u64 + 7;
        let (total, edges) = drain(Streamed::huge(size, counter.clone()), 100);
        assert_eq!(total, size);
        assert_eq!(counter.load(Ordering::Relaxed), size);
        let text = String::from_utf8(edges).expect("ascii");
        assert!(text.starts_with("{\"reviews\":[]"), "{text}");
        assert!(text.trim_end().ends_with('}'), "{text}");
    }

    #[tokio::test]
    async fn an_endless_body_waits_between_bytes() {
        let counter = Arc::new(AtomicU64::new(0));
        // Only the opening is ready at once; the next byte waits for the pace.
        let (total, _) = drain(Streamed::endless(counter), 10);
        assert_eq!(total, Streamed::OPENING.len() as u64);
    }

    #[test]
    fn windows_shift_for_duplicates_and_pin_endless_paging() {
        assert_eq!(
            Hostile::window(&Misbehaviour::DuplicateAcrossPages, 50, 50),
            (49, 51)
        );
        assert_eq!(
            Hostile::window(&Misbehaviour::DuplicateAcrossPages, 0, 50),
            (0, 50)
        );
        assert_eq!(
            Hostile::window(&Misbehaviour::EndlessPaging, 150, 50),
            (0, 50)
        );
        assert_eq!(
            Hostile::window(&Misbehaviour::EndlessPagingWithoutTotal, 150, 50),
            (0, 50)
        );
        assert_eq!(Hostile::window(&Misbehaviour::InvalidJson, 7, 5), (7, 5));
    }
}
