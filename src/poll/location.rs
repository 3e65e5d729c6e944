//! One location's read, whatever its platform: the generic location poll.
//!
//! A platform says how its pages follow each other ([`Paging`]) and reads
//! one page where it is asked to ([`SourceClient::fetch`]); everything else
//! about reading a location is here, once:
//! - the paging styles: a single request (Places, Yelp); next-page tokens
//!   (Google, Facebook), with a check for a token that comes round again and
//!   for more records than the reported total allows; page numbers or the
//!   page's own next link (Trustpilot), with a check for a page served again
//!   and for a link back to a page already read; and a platform that reads
//!   on by itself from a stored position (files);
//! - the incremental stop: a read that starts from a high-water mark stops
//!   after the page on which a record older than the mark minus the
//!   platform's overlap appears;
//! - the [`Cursor`] of a location, which the ledger stores opaquely: the
//!   high-water mark, which never moves backwards, and the platform's
//!   position;
//! - the bounds of one read by pages and time (`config::PassBounds`), and a
//!   pass stopped early ([`PassStop`]).
//!
//! An error found on a page whose records are good (a paging loop) is held
//! back until that page has been handed out, so its reviews are recorded.

use crate::config::PassBounds;
use crate::domain::LocationId;
use crate::platforms::{
    FetchedPage, Next, Page, PageAt, PageRequest, PageStream, Paging, PagingStyle, PlatformError,
    SourceClient,
};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

/// How far a location has been read: what the ledger stores for it, as a
/// high-water mark and a string it never looks into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The newest platform time seen at this location (update or creation,
    /// by the platform's order).
    pub high_water: Option<DateTime<Utc>>,
    /// Where a platform that reads on by itself left off (a file source's
    /// content fingerprints); passed through for the others.
    pub position: Option<String>,
}

impl Cursor {
    /// This cursor with `newest` seen: the high-water mark moves forward,
    /// never backwards (the newest review may have been deleted since, and a
    /// later read must not take the same reviews again as new).
    pub fn advanced_to(self, newest: Option<DateTime<Utc>>) -> Cursor {
        let high_water = match (self.high_water, newest) {
            (Some(old), Some(new)) => Some(old.max(new)),
            (old, new) => old.or(new),
        };
        Cursor {
            high_water,
            position: self.position,
        }
    }
}

/// What stops a pass early, beyond each location's own bounds: `sync`'s
/// `--wait` (a deadline) and Ctrl-C (a token). A location being read stops
/// between two requests (a request in flight is dropped: its page was not
/// recorded); locations not started yet are not read. Either way the pages
/// recorded stay and the high-water mark does not move.
#[derive(Debug, Clone, Default)]
pub struct PassStop {
    /// Stops the pass when cancelled.
    pub cancel: CancellationToken,
    /// Stops the pass at this instant; the duration is the limit it stands
    /// for (`sync --wait`), for messages.
    pub deadline: Option<(Instant, Duration)>,
}

impl PassStop {
    /// Never stops (the daemon's passes).
    pub fn never() -> PassStop {
        PassStop::default()
    }

    /// Why the pass is stopped, if it is.
    pub fn reason(&self) -> Option<String> {
        match self.deadline {
            Some((at, limit)) if Instant::now() >= at => Some(format!(
                "sync --wait {} ran out",
                humantime::format_duration(limit)
            )),
            _ if self.cancel.is_cancelled() => Some("interrupted".to_owned()),
            _ => None,
        }
    }

    /// Completes once the pass must stop.
    pub(crate) async fn stopped(&self) {
        let deadline = async {
            match self.deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.cancel.cancelled() => {}
            () = deadline => {}
        }
    }
}

/// The bounds of one location's read, by kind of read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadBound {
    pub(crate) pages: u32,
    pub(crate) time: Duration,
    /// The config keys, for errors.
    pages_key: &'static str,
    time_key: &'static str,
    what: &'static str,
}

impl ReadBound {
    /// A full read (a first read, with no high-water mark, or a
    /// reconciliation) or an incremental one.
    pub(crate) fn of(bounds: &PassBounds, full_read: bool) -> ReadBound {
        if full_read {
            ReadBound {
                pages: bounds.full_read_pages,
                time: bounds.full_read_time,
                pages_key: "max_pages_per_full_read",
                time_key: "max_full_read_time",
                what: "full read",
            }
        } else {
            ReadBound {
                pages: bounds.incremental_pages,
                time: bounds.incremental_time,
                pages_key: "max_pages_per_pass",
                time_key: "max_pass_time",
                what: "incremental pass",
            }
        }
    }

    /// Past the page bound: what it is.
    fn pages_message(&self) -> String {
        format!(
            "pass bound: more than {} pages in one {} ({} = {})",
            self.pages, self.what, self.pages_key, self.pages
        )
    }

    /// Past the time bound, with `pages` read: what it is.
    fn time_message(&self, pages: u64) -> String {
        format!(
            "pass bound: {} not finished after {} ({} = \"{}\"), {pages} page(s) read",
            self.what,
            humantime::format_duration(self.time),
            self.time_key,
            humantime::format_duration(self.time),
        )
    }
}

/// How the error of a location that a [`PassStop`] cut short begins.
pub(crate) const STOPPED_PREFIX: &str = "stopped: ";

/// After [`STOPPED_PREFIX`]: a location the stop came before.
pub(crate) const NOT_READ: &str = "not read: ";

/// Why a location's read ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The platform failed.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// Past its page or time bound ([`PassBounds`]).
    #[error("{0}")]
    Bounded(String),
    /// Cut short by the pass's [`PassStop`].
    #[error("{0}")]
    Stopped(String),
}

/// One location's read in progress: pages handed out one at a time, within
/// the read's bounds, and the cursor to store once every page is read.
pub struct LocationRead<'c> {
    poll: LocationPoll<'c>,
    bound: ReadBound,
    until: Instant,
    pages: u64,
}

impl<'c> LocationRead<'c> {
    /// Starts reading `location` from `cursor`. A read from no high-water
    /// mark, or a reconciliation (`full_read`), gets the wide bounds of a
    /// full read; the clock of its time bound starts now.
    pub fn start(
        client: &'c dyn SourceClient,
        location: &LocationId,
        cursor: Cursor,
        bounds: &PassBounds,
        full_read: bool,
    ) -> LocationRead<'c> {
        let bound = ReadBound::of(bounds, full_read || cursor.high_water.is_none());
        LocationRead {
            poll: LocationPoll::new(client, location, cursor),
            until: Instant::now() + bound.time,
            bound,
            pages: 0,
        }
    }

    /// Pages handed out so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The next page, or `None` when the location is read up to date. Past
    /// the page or time bound, or once `stop` says so, the read ends with an
    /// error; only the request is cut short (a page read is handed out).
    pub(crate) async fn next_page(
        &mut self,
        stop: &PassStop,
    ) -> Result<Option<FetchedPage>, ReadError> {
        if self.pages >= u64::from(self.bound.pages) && !self.poll.is_done() {
            return Err(ReadError::Bounded(self.bound.pages_message()));
        }
        let next = tokio::select! {
            biased;
            () = stop.stopped() => {
                let reason = stop.reason().unwrap_or_else(|| "stopped".to_owned());
                return Err(ReadError::Stopped(format!(
                    "{STOPPED_PREFIX}{reason} after {} page(s)",
                    self.pages
                )));
            }
            () = tokio::time::sleep_until(self.until) => {
                return Err(ReadError::Bounded(self.bound.time_message(self.pages)));
            }
            next = crate::platforms::http::reading_until(self.until, self.poll.next_page()) => next?,
        };
        if next.is_some() {
            self.pages += 1;
        }
        Ok(next)
    }

    /// The cursor to store once every page was read (never after an error:
    /// a failed read reads again from the old mark).
    pub fn finish(self) -> Cursor {
        self.poll.finish()
    }
}

/// `check --online`: asks each location for its first page (a file
/// location is read whole, and each match that cannot be read is a line of
/// its own), returning a line per location for the operator: what it found,
/// or why it failed with the URL that failed (no query: it may carry a
/// token).
pub async fn check_online(
    client: &dyn SourceClient,
    locations: &[LocationId],
) -> Vec<(LocationId, Result<String, String>)> {
    let mut out = Vec::with_capacity(locations.len());
    for location in locations {
        if let Some(whole) = client.check_whole(location) {
            match whole {
                Ok(line) => out.push((location.clone(), Ok(line))),
                Err(problems) => out.extend(
                    problems
                        .into_iter()
                        .map(|problem| (location.clone(), Err(problem))),
                ),
            }
            continue;
        }
        let mut poll = LocationPoll::new(client, location, Cursor::default());
        let result = poll.next_page().await.map(|page| match page {
            Some(p) => format!(
                "ok: {} reviews on the first page{}",
                p.reviews.len(),
                p.reported_total
                    .map(|t| format!(", {t} in total"))
                    .unwrap_or_default()
            ),
            None => "ok: no reviews".to_owned(),
        });
        drop(poll);
        let result = result.map_err(|e| match client.last_request() {
            Some(request) => format!("{e} ({request})"),
            None => e.to_string(),
        });
        out.push((location.clone(), result));
    }
    out
}

/// Where a paging style is between two pages.
enum PagingState<'c> {
    /// One request: asked for or not yet.
    Single,
    /// The token of the next page (`None`: the first), every token seen,
    /// and the records read (the reported total's check).
    Tokens {
        what: &'static str,
        page_size: u32,
        next: Option<String>,
        seen: HashSet<String>,
        records: u64,
    },
    /// The next page's link, when the last page gave one on the configured
    /// origin; every URL read; the ids of the previous page.
    Numbered {
        per_page: u32,
        next_link: Option<Url>,
        visited: HashSet<String>,
        previous_ids: Vec<String>,
    },
    /// The platform's own reader.
    Stream(Box<dyn PageStream + 'c>),
}

/// The paging state machine of one location (no bounds: [`LocationRead`]
/// adds them).
pub(crate) struct LocationPoll<'c> {
    client: &'c dyn SourceClient,
    location: LocationId,
    /// The cursor the read started from (its position passed through).
    start: Cursor,
    /// `high_water - overlap`: the page on which an older record appears is
    /// the last one read. `None` on a first read, or for a platform without
    /// an order: read everything.
    stop_before: Option<DateTime<Utc>>,
    /// The newest record time seen in this read.
    newest: Option<DateTime<Utc>>,
    /// Pages read.
    pages: u32,
    max_pages: u32,
    state: PagingState<'c>,
    done: bool,
    /// The error that ends the read once the page that revealed it (whose
    /// records are good) has been handed out.
    held_back: Option<PlatformError>,
}

impl<'c> LocationPoll<'c> {
    /// A read of `location` from `cursor`. Nothing is asked until the first
    /// page is.
    pub(crate) fn new(
        client: &'c dyn SourceClient,
        location: &LocationId,
        cursor: Cursor,
    ) -> LocationPoll<'c> {
        let Paging {
            style,
            overlap,
            max_pages,
        } = client.paging();
        let state = match style {
            PagingStyle::Single => PagingState::Single,
            PagingStyle::Tokens { what, page_size } => PagingState::Tokens {
                what,
                page_size,
                next: None,
                seen: HashSet::new(),
                records: 0,
            },
            PagingStyle::Numbered { per_page } => PagingState::Numbered {
                per_page,
                next_link: None,
                visited: HashSet::new(),
                previous_ids: Vec::new(),
            },
            PagingStyle::Stream => {
                PagingState::Stream(client.stream(location, cursor.position.as_deref()))
            }
        };
        LocationPoll {
            client,
            location: location.clone(),
            stop_before: cursor.high_water.zip(overlap).map(|(mark, o)| mark - o),
            start: cursor,
            newest: None,
            pages: 0,
            max_pages,
            state,
            done: false,
            held_back: None,
        }
    }

    /// Whether the read is over: the next page would be `None` without a
    /// request (so a pass bound is only hit when more pages remain).
    pub(crate) fn is_done(&self) -> bool {
        match &self.state {
            PagingState::Stream(stream) => stream.is_done(),
            _ => self.done && self.held_back.is_none(),
        }
    }

    /// The next page, or `None` when the location is read up to date.
    pub(crate) async fn next_page(&mut self) -> Result<Option<FetchedPage>, PlatformError> {
        if let PagingState::Stream(stream) = &mut self.state {
            return stream.next_page().await;
        }
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
        let number = self.pages + 1;
        let link = match &mut self.state {
            PagingState::Numbered { next_link, .. } => next_link.take(),
            _ => None,
        };
        let at = match (&self.state, &link) {
            (_, Some(url)) => PageAt::Link(url),
            (
                PagingState::Tokens {
                    next: Some(token), ..
                },
                _,
            ) => PageAt::Token(token),
            (PagingState::Numbered { .. }, None) => PageAt::Number,
            _ => PageAt::First,
        };
        let page = self
            .client
            .fetch(PageRequest {
                location: &self.location,
                number,
                at,
            })
            .await?;
        self.pages = number;
        let handed_out = self.after(page)?;
        if let Some(page) = &handed_out {
            tracing::debug!(
                location = %self.location,
                page = number,
                reviews = page.reviews.len(),
                rejected = page.rejected.len(),
                done = self.done,
                "location page read"
            );
        }
        Ok(handed_out)
    }

    /// What the page just read means for the read: the page to hand out
    /// (`None` past the end), where the next one is, or the error that ends
    /// the read now.
    fn after(&mut self, page: Page) -> Result<Option<FetchedPage>, PlatformError> {
        let number = self.pages;
        let reached_old = match (self.stop_before, page.oldest) {
            (Some(stop), Some(oldest)) => oldest < stop,
            _ => false,
        };
        match &mut self.state {
            PagingState::Single => self.done = true,
            PagingState::Tokens {
                what,
                page_size,
                next,
                seen,
                records,
            } => {
                *records += page.records as u64;
                let slack = 10 * u64::from(*page_size);
                let endless = page
                    .fetched
                    .reported_total
                    .filter(|total| *records > total.saturating_mul(2).saturating_add(slack));
                match (page.next.clone(), endless) {
                    _ if reached_old => self.done = true,
                    (Next::Token(_), Some(total)) => {
                        self.held_back = Some(PlatformError::InvalidResponse(format!(
                            "paging loop: {records} records in {number} pages, but the location reports {total} reviews",
                        )));
                    }
                    (Next::Token(token), None) if seen.insert(token.clone()) => {
                        *next = Some(token);
                    }
                    (Next::Token(_), None) => {
                        self.held_back = Some(PlatformError::InvalidResponse(format!(
                            "paging loop: {what} repeated after {number} pages"
                        )));
                    }
                    _ => self.done = true,
                }
            }
            PagingState::Numbered {
                per_page,
                next_link,
                visited,
                previous_ids,
            } => {
                if page.records == 0 {
                    self.done = true;
                    return Ok(None);
                }
                if page.ids == *previous_ids {
                    self.done = true;
                    return Err(PlatformError::InvalidResponse(format!(
                        "paging loop: page {number} repeats page {}",
                        number - 1
                    )));
                }
                if let Some(url) = &page.url {
                    visited.insert(url.as_str().to_owned());
                }
                match page.next.clone() {
                    _ if reached_old => self.done = true,
                    Next::Last => self.done = true,
                    Next::Unknown if page.records < *per_page as usize => self.done = true,
                    Next::Link(target) if visited.contains(target.as_str()) => {
                        self.held_back = Some(PlatformError::InvalidResponse(format!(
                            "paging loop: the next-page link of page {number} leads to a page already read"
                        )));
                    }
                    Next::Link(target) => *next_link = Some(target),
                    Next::Unknown | Next::More | Next::Token(_) => {}
                }
                *previous_ids = page.ids.clone();
            }
            PagingState::Stream(_) => {}
        }
        if let Some(newest) = page.newest {
            self.newest = Some(self.newest.map_or(newest, |n| n.max(newest)));
        }
        Ok(Some(page.fetched))
    }

    /// The cursor to store after a complete read: the high-water mark moved
    /// to the newest time seen (never backwards), and the position the
    /// platform reached (passed through for those without one).
    pub(crate) fn finish(self) -> Cursor {
        match self.state {
            PagingState::Stream(stream) => Cursor {
                high_water: self.start.high_water,
                position: stream.position(),
            },
            _ => self.start.advanced_to(self.newest),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The paging rules over pages given in advance (each platform's own
    //! tests read real pages over loopback, through this same poll).

    use super::*;
    use crate::domain::{Platform, Review, ReviewId};
    use crate::platforms::FetchedPage;
    use chrono::{TimeDelta, TimeZone};
    use futures_util::future::BoxFuture;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// A platform that answers each request with the next page of a script,
    /// and notes where each request went.
    struct Scripted {
        paging: Paging,
        pages: Mutex<VecDeque<Page>>,
        asked: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(style: PagingStyle, pages: Vec<Page>) -> Scripted {
            Scripted {
                paging: Paging {
                    style,
                    overlap: Some(TimeDelta::hours(1)),
                    max_pages: 5,
                },
                pages: Mutex::new(pages.into()),
                asked: Mutex::new(Vec::new()),
            }
        }

        fn asked(&self) -> Vec<String> {
            self.asked.lock().expect("lock").clone()
        }
    }

    impl SourceClient for Scripted {
        fn paging(&self) -> Paging {
            self.paging
        }

        fn fetch<'a>(
            &'a self,
            request: PageRequest<'a>,
        ) -> BoxFuture<'a, Result<Page, PlatformError>> {
            let at = match request.at {
                PageAt::First => "first".to_owned(),
                PageAt::Token(t) => format!("token {t}"),
                PageAt::Number => format!("number {}", request.number),
                PageAt::Link(url) => format!("link {}", url.path()),
            };
            self.asked.lock().expect("lock").push(at);
            let page = self.pages.lock().expect("lock").pop_front();
            Box::pin(std::future::ready(page.ok_or_else(|| {
                PlatformError::InvalidResponse("no more scripted pages".into())
            })))
        }
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, hour, 0, 0)
            .single()
            .expect("time")
    }

    /// A page of reviews created at these hours (ids `r{hour}`).
    fn page(hours: &[u32], next: Next) -> Page {
        let reviews: Vec<Review> = hours
            .iter()
            .map(|h| Review {
                platform: Platform::new("test"),
                review_id: ReviewId::new(format!("r{h}")),
                title: None,
                comment: None,
                rating: None,
                display_name: None,
                is_anonymous: None,
                created_at: at(*h),
                updated_at: None,
                notes: Default::default(),
            })
            .collect();
        Page {
            records: reviews.len(),
            oldest: hours.iter().min().map(|h| at(*h)),
            newest: hours.iter().max().map(|h| at(*h)),
            ids: hours.iter().map(|h| format!("r{h}")).collect(),
            fetched: FetchedPage {
                reviews,
                ..FetchedPage::default()
            },
            next,
            url: None,
        }
    }

    fn token(t: &str) -> Next {
        Next::Token(t.to_owned())
    }

    async fn read_all(
        client: &Scripted,
        cursor: Cursor,
    ) -> (Vec<FetchedPage>, Result<Cursor, PlatformError>) {
        let mut poll = LocationPoll::new(client, &LocationId::new("l"), cursor);
        let mut pages = Vec::new();
        loop {
            match poll.next_page().await {
                Ok(Some(page)) => pages.push(page),
                Ok(None) => return (pages, Ok(poll.finish())),
                Err(e) => return (pages, Err(e)),
            }
        }
    }

    const TOKENS: PagingStyle = PagingStyle::Tokens {
        what: "cursor",
        page_size: 2,
    };

    #[tokio::test]
    async fn tokens_are_followed_and_a_repeated_one_ends_the_read_after_its_page() {
        let client = Scripted::new(
            TOKENS,
            vec![page(&[9, 8], token("a")), page(&[7, 6], token("a"))],
        );
        let (pages, end) = read_all(&client, Cursor::default()).await;
        assert_eq!(
            pages.len(),
            2,
            "the page that repeats the token is handed out"
        );
        let e = end.expect_err("a paging loop").to_string();
        assert!(
            e.contains("paging loop: cursor repeated after 2 pages"),
            "{e}"
        );
        assert_eq!(client.asked(), ["first", "token a"]);
    }

    #[tokio::test]
    async fn a_read_past_the_platforms_page_bound_fails() {
        let pages = (0..6).map(|i| page(&[10 - i], token(&format!("t{i}"))));
        let client = Scripted::new(TOKENS, pages.collect());
        let (pages, end) = read_all(&client, Cursor::default()).await;
        assert_eq!(pages.len(), 5);
        let e = end.expect_err("bound").to_string();
        assert!(e.contains("more than 5 pages in one poll"), "{e}");
    }

    #[tokio::test]
    async fn more_records_than_the_reported_total_allows_is_a_loop() {
        // Total 1: twice that plus ten pages of two is 22 records.
        let pages = (0..5).map(|i| {
            let mut p = page(
                &[20 - i, 19 - i, 18 - i, 17 - i, 16 - i, 15 - i],
                token(&format!("t{i}")),
            );
            p.fetched.reported_total = Some(1);
            p.records = 6;
            p
        });
        let client = Scripted::new(TOKENS, pages.collect());
        let (pages, end) = read_all(&client, Cursor::default()).await;
        assert_eq!(pages.len(), 4, "24 records after page 4");
        let e = end.expect_err("endless").to_string();
        assert!(
            e.contains("paging loop: 24 records in 4 pages, but the location reports 1 reviews"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_incremental_read_stops_after_the_page_past_the_mark_minus_the_overlap() {
        let client = Scripted::new(
            TOKENS,
            vec![
                page(&[12, 11], token("a")),
                page(&[10, 8], token("b")),
                page(&[7, 6], Next::Last),
            ],
        );
        // Mark 9:30, overlap 1 h: page 2 holds 8:00, before 8:30, so it is
        // the last page read.
        let mark = at(9) + TimeDelta::minutes(30);
        let start = Cursor {
            high_water: Some(mark),
            position: Some("kept".into()),
        };
        let (pages, end) = read_all(&client, start).await;
        assert_eq!(pages.len(), 2, "page 2 holds 8:00, before 8:30");
        let cursor = end.expect("read");
        assert_eq!(cursor.high_water, Some(at(12)));
        assert_eq!(cursor.position.as_deref(), Some("kept"), "passed through");
    }

    #[tokio::test]
    async fn the_high_water_mark_never_moves_backwards() {
        let client = Scripted::new(PagingStyle::Single, vec![page(&[3, 2], Next::Last)]);
        let start = Cursor {
            high_water: Some(at(5)),
            position: None,
        };
        let (_, end) = read_all(&client, start).await;
        assert_eq!(end.expect("read").high_water, Some(at(5)));
        assert_eq!(client.asked(), ["first"], "one request, whatever the mark");
    }

    #[tokio::test]
    async fn numbered_pages_end_empty_short_or_repeated_and_links_are_followed_once() {
        let style = PagingStyle::Numbered { per_page: 2 };
        // An empty page is past the end, and is not handed out.
        let client = Scripted::new(
            style,
            vec![page(&[9, 8], Next::Unknown), page(&[], Next::Unknown)],
        );
        let (pages, end) = read_all(&client, Cursor::default()).await;
        assert_eq!((pages.len(), end.is_ok()), (1, true));
        assert_eq!(client.asked(), ["number 1", "number 2"]);

        // A short page that says nothing is the last.
        let client = Scripted::new(style, vec![page(&[9], Next::Unknown)]);
        let (pages, end) = read_all(&client, Cursor::default()).await;
        assert_eq!((pages.len(), end.is_ok()), (1, true));

        // A page with the previous page's ids is a loop, not handed out.
        let client = Scripted::new(
            style,
            vec![page(&[9, 8], Next::More), page(&[9, 8], Next::More)],
        );
        let (pages, end) = read_all(&client, Cursor::default()).await;
        assert_eq!(pages.len(), 1);
        let e = end.expect_err("repeat").to_string();
        assert!(e.contains("paging loop: page 2 repeats page 1"), "{e}");

        // A link is followed; one back to a page read is a loop after its page.
        let url = |p: &str| Url::parse(&format!("https://t.example/{p}")).expect("url");
        let mut one = page(&[9, 8], Next::Link(url("two")));
        one.url = Some(url("one"));
        let mut two = page(&[7, 6], Next::Link(url("one")));
        two.url = Some(url("two"));
        let client = Scripted::new(style, vec![one, two]);
        let (pages, end) = read_all(&client, Cursor::default()).await;
        assert_eq!(pages.len(), 2);
        let e = end.expect_err("link loop").to_string();
        assert!(
            e.contains("the next-page link of page 2 leads to a page already read"),
            "{e}"
        );
        assert_eq!(client.asked(), ["number 1", "link /two"]);
    }
}
