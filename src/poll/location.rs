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
//! - the incremental stop ([`StopRule`]): a read that starts from a
//!   high-water mark stops after the page on which a record older than the
//!   mark minus the platform's overlap appears;
//! - the [`Cursor`] of a location, which the ledger stores opaquely: the
//!   high-water mark, which never moves backwards, and the platform's
//!   position;
//! - the bounds of one read by pages and time (`config::PassBounds`), and a
//!   pass stopped early ([`PassStop`]);
//! - the batch read ([`BatchRead`]): several locations with a mark read
//!   together through the platform's batch call ([`BatchReads`]), newest
//!   first across them, under the same rules: token paging, the stop (each
//!   location's own, so the read ends once the page passes the oldest mark
//!   minus the overlap), one set of bounds for the whole read, and each
//!   location's cursor moved forward only when the whole read completed.
//!
//! An error found on a page whose records are good (a paging loop) is held
//! back until that page has been handed out, so its reviews are recorded.

use crate::config::PassBounds;
use crate::domain::LocationId;
use crate::platforms::{
    BatchError, BatchReads, BatchRequest, FetchedPage, Next, Page, PageAt, PageRequest, PageStream,
    Paging, PagingStyle, PlatformError, SourceClient,
};
use chrono::{DateTime, TimeDelta, Utc};
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

/// The incremental stop of one location: a read from its high-water mark
/// goes on until a page holds a record older than the mark minus the
/// platform's overlap (reviews the platform lists late, behind newer ones,
/// are still within reach), and that page is the last it needs. A location
/// without a mark, or a platform whose answers have no order, needs every
/// page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StopRule {
    /// `high_water - overlap`.
    before: Option<DateTime<Utc>>,
}

impl StopRule {
    /// The stop of a read from `cursor` on a platform with `overlap`.
    pub(crate) fn new(cursor: &Cursor, overlap: Option<TimeDelta>) -> StopRule {
        StopRule {
            before: cursor
                .high_water
                .zip(overlap)
                .and_then(|(mark, o)| mark.checked_sub_signed(o)),
        }
    }

    /// Whether a page whose oldest record time is `oldest` is the last one
    /// this location needs: every record it could still be missing sorts
    /// above that page's oldest (in a batch read, every location's records
    /// sort together, so the same test holds for each).
    pub(crate) fn reached(&self, oldest: Option<DateTime<Utc>>) -> bool {
        match (self.before, oldest) {
            (Some(stop), Some(oldest)) => oldest < stop,
            _ => false,
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

/// The bounds of one read in progress (a location's, or a batch's as a
/// whole): the pages handed out and the instant its time runs out.
struct ReadClock {
    bound: ReadBound,
    until: Instant,
    pages: u64,
}

impl ReadClock {
    /// Starts the clock of a read bounded by `bound` now.
    fn start(bound: ReadBound) -> ReadClock {
        ReadClock {
            until: Instant::now() + bound.time,
            bound,
            pages: 0,
        }
    }

    /// Past the page bound, an error when `more` pages remain (a read
    /// that is over is never failed by its bound).
    fn check_pages(&self, more: bool) -> Result<(), ReadError> {
        if more && self.pages >= u64::from(self.bound.pages) {
            return Err(ReadError::Bounded(self.bound.pages_message()));
        }
        Ok(())
    }

    /// Runs one request of the read unless `stop` or the time bound comes
    /// first (then the request is dropped: its page is not handed out).
    async fn request<T>(
        &self,
        stop: &PassStop,
        request: impl std::future::Future<Output = T>,
    ) -> Result<T, ReadError> {
        tokio::select! {
            biased;
            () = stop.stopped() => {
                let reason = stop.reason().unwrap_or_else(|| "stopped".to_owned());
                Err(ReadError::Stopped(format!(
                    "{STOPPED_PREFIX}{reason} after {} page(s)",
                    self.pages
                )))
            }
            () = tokio::time::sleep_until(self.until) => {
                Err(ReadError::Bounded(self.bound.time_message(self.pages)))
            }
            // The budget may wait only as long as the read has left.
            out = crate::platforms::http::reading_until(self.until, request) => Ok(out),
        }
    }
}

/// One location's read in progress: pages handed out one at a time, within
/// the read's bounds, and the cursor to store once every page is read.
pub struct LocationRead<'c> {
    poll: LocationPoll<'c>,
    clock: ReadClock,
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
            clock: ReadClock::start(bound),
        }
    }

    /// Pages handed out so far.
    pub fn pages(&self) -> u64 {
        self.clock.pages
    }

    /// The next page, or `None` when the location is read up to date. Past
    /// the page or time bound, or once `stop` says so, the read ends with an
    /// error; only the request is cut short (a page read is handed out).
    pub(crate) async fn next_page(
        &mut self,
        stop: &PassStop,
    ) -> Result<Option<FetchedPage>, ReadError> {
        self.clock.check_pages(!self.poll.is_done())?;
        let next = self.clock.request(stop, self.poll.next_page()).await??;
        if next.is_some() {
            self.clock.pages += 1;
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
    /// Next-page tokens.
    Tokens(TokenPaging),
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

/// Token paging between two pages: the token of the next page (`None`:
/// the first), every token seen, and the records read (the reported
/// total's check).
struct TokenPaging {
    what: &'static str,
    page_size: u32,
    next: Option<String>,
    seen: HashSet<String>,
    records: u64,
}

/// What a page means for a token paging.
enum TokenStep {
    /// Another page follows, at the token kept.
    More,
    /// The read is over.
    Done,
    /// The read is looping: this error ends it once the page is handed out.
    Loop(PlatformError),
}

impl TokenPaging {
    fn new(what: &'static str, page_size: u32) -> TokenPaging {
        TokenPaging {
            what,
            page_size,
            next: None,
            seen: HashSet::new(),
            records: 0,
        }
    }

    /// Asks from the first page again (a batch read whose locations
    /// changed: a token is only good for the request it came with).
    fn restart(&mut self) {
        self.next = None;
        self.seen.clear();
        self.records = 0;
    }

    /// After page `number` with `records` records, the reported total (if
    /// any), what it says of the next page, and whether the read reached
    /// its stop.
    fn after(
        &mut self,
        number: u32,
        records: usize,
        reported_total: Option<u64>,
        next: Next,
        reached_old: bool,
    ) -> TokenStep {
        self.records += records as u64;
        let slack = 10 * u64::from(self.page_size);
        let endless = reported_total
            .filter(|total| self.records > total.saturating_mul(2).saturating_add(slack));
        match (next, endless) {
            _ if reached_old => TokenStep::Done,
            (Next::Token(_), Some(total)) => {
                TokenStep::Loop(PlatformError::InvalidResponse(format!(
                    "paging loop: {} records in {number} pages, but the location reports {total} reviews",
                    self.records
                )))
            }
            (Next::Token(token), None) if self.seen.insert(token.clone()) => {
                self.next = Some(token);
                TokenStep::More
            }
            (Next::Token(_), None) => TokenStep::Loop(PlatformError::InvalidResponse(format!(
                "paging loop: {} repeated after {number} pages",
                self.what
            ))),
            _ => TokenStep::Done,
        }
    }
}

/// The paging state machine of one location (no bounds: [`LocationRead`]
/// adds them).
pub(crate) struct LocationPoll<'c> {
    client: &'c dyn SourceClient,
    location: LocationId,
    /// The cursor the read started from (its position passed through).
    start: Cursor,
    /// The incremental stop (none on a first read, or for a platform
    /// without an order: read everything).
    stop: StopRule,
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
            PagingStyle::Tokens { what, page_size } => {
                PagingState::Tokens(TokenPaging::new(what, page_size))
            }
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
            stop: StopRule::new(&cursor, overlap),
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
                PagingState::Tokens(TokenPaging {
                    next: Some(token), ..
                }),
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
        let reached_old = self.stop.reached(page.oldest);
        match &mut self.state {
            PagingState::Single => self.done = true,
            PagingState::Tokens(paging) => {
                let reported_total = page.fetched.reported_total;
                match paging.after(
                    number,
                    page.records,
                    reported_total,
                    page.next.clone(),
                    reached_old,
                ) {
                    TokenStep::More => {}
                    TokenStep::Done => self.done = true,
                    TokenStep::Loop(error) => self.held_back = Some(error),
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

/// One step of a batch read.
#[derive(Debug)]
pub(crate) enum BatchStep {
    /// A page: each member's records on it, by the member's index (the
    /// order the read was started with).
    Page(Vec<(usize, FetchedPage)>),
    /// The call was refused because of this member: it is out of the
    /// batch, to be read on its own; the others are asked again.
    Refused {
        /// The member.
        member: usize,
        /// The platform's refusal.
        error: PlatformError,
    },
    /// The platform will not serve the call as a whole: every member not
    /// refused is to be read on its own. The batch read is over.
    Unserved(PlatformError),
    /// Every member is read up to date: [`BatchRead::finish`] has the
    /// cursors.
    End,
}

/// One member of a batch read.
struct Member {
    location: LocationId,
    /// The cursor its read started from.
    start: Cursor,
    stop: StopRule,
    /// The newest record time seen of it in this read.
    newest: Option<DateTime<Utc>>,
    /// Refused by the batch call: read on its own, no cursor from here.
    refused: bool,
}

/// The paging state machine of a batch read (no bounds: [`BatchRead`] adds
/// them). Pages come newest first across every member, so the read needs
/// pages until each member's own [`StopRule`] is reached: it ends after
/// the page that passes the oldest mark minus the overlap. A member whose
/// stop is reached while more pages follow is read up to date; when such
/// members hold at least half of a page, the call is narrowed to the
/// others (asked again from the first page) so that one location far
/// behind does not make the read page through every other location's
/// reviews down to its mark.
pub(crate) struct BatchPoll<'c> {
    reads: &'c dyn BatchReads,
    members: Vec<Member>,
    /// The members the next call names (indices into `members`), and their
    /// locations in that order.
    asking: Vec<usize>,
    names: Vec<LocationId>,
    paging: TokenPaging,
    /// Calls that gave a page, narrowed calls included.
    pages: u32,
    max_pages: u32,
    done: bool,
    held_back: Option<PlatformError>,
}

impl<'c> BatchPoll<'c> {
    /// A batch read of `members` (each with the cursor it starts from, a
    /// high-water mark), paging as the client's `paging` says. Nothing is
    /// asked until the first page is.
    fn new(
        reads: &'c dyn BatchReads,
        paging: Paging,
        members: Vec<(LocationId, Cursor)>,
    ) -> BatchPoll<'c> {
        let (what, page_size) = match paging.style {
            PagingStyle::Tokens { what, page_size } => (what, page_size),
            _ => ("page token", 50),
        };
        let members: Vec<Member> = members
            .into_iter()
            .map(|(location, start)| Member {
                stop: StopRule::new(&start, paging.overlap),
                location,
                start,
                newest: None,
                refused: false,
            })
            .collect();
        let mut poll = BatchPoll {
            reads,
            asking: (0..members.len()).collect(),
            names: Vec::new(),
            members,
            paging: TokenPaging::new(what, page_size),
            pages: 0,
            max_pages: paging.max_pages,
            done: false,
            held_back: None,
        };
        poll.ask(|_| true);
        poll
    }

    /// Names only the members `keep` keeps in the next call, from the first
    /// page.
    fn ask(&mut self, keep: impl Fn(&Member) -> bool) {
        let members = &self.members;
        self.asking.retain(|&m| keep(&members[m]));
        self.names = self
            .asking
            .iter()
            .map(|&m| self.members[m].location.clone())
            .collect();
        self.paging.restart();
        if self.asking.is_empty() {
            self.done = true;
        }
    }

    /// Whether the read is over.
    fn is_done(&self) -> bool {
        self.done && self.held_back.is_none()
    }

    /// The next step.
    async fn next_page(&mut self) -> Result<BatchStep, PlatformError> {
        if let Some(error) = self.held_back.take() {
            self.done = true;
            return Err(error);
        }
        if self.done {
            return Ok(BatchStep::End);
        }
        if self.pages >= self.max_pages {
            self.done = true;
            return Err(PlatformError::InvalidResponse(format!(
                "more than {} pages in one poll",
                self.max_pages
            )));
        }
        let number = self.pages + 1;
        let answer = self
            .reads
            .fetch_batch(BatchRequest {
                locations: &self.names,
                number,
                token: self.paging.next.as_deref(),
            })
            .await;
        let page = match answer {
            Ok(page) => page,
            Err(BatchError::Refused { index, error }) => {
                let Some(&member) = self.asking.get(index) else {
                    self.done = true;
                    return Err(error);
                };
                self.members[member].refused = true;
                self.ask(|m| !m.refused);
                return Ok(BatchStep::Refused { member, error });
            }
            Err(BatchError::Unserved(error)) => {
                self.done = true;
                return Ok(BatchStep::Unserved(error));
            }
            Err(BatchError::Failed(error)) => {
                self.done = true;
                return Err(error);
            }
        };
        self.pages = number;
        let oldest = page.oldest;
        let mut parts = Vec::with_capacity(page.parts.len());
        let mut read_up_to_date = 0usize;
        for (index, part) in page.parts {
            let Some(&m) = self.asking.get(index) else {
                self.done = true;
                return Err(PlatformError::InvalidResponse(format!(
                    "a batch page part for location {} of {}",
                    index + 1,
                    self.asking.len()
                )));
            };
            let member = &mut self.members[m];
            if let Some(newest) = part.newest {
                member.newest = Some(member.newest.map_or(newest, |n| n.max(newest)));
            }
            if member.stop.reached(oldest) {
                read_up_to_date += part.fetched.reviews.len() + part.fetched.rejected.len();
            }
            parts.push((m, part.fetched));
        }
        let members = &self.members;
        let reached = |m: &Member| m.stop.reached(oldest);
        let all_reached = self.asking.iter().all(|&m| reached(&members[m]));
        match self
            .paging
            .after(number, page.records, None, page.next, all_reached)
        {
            TokenStep::Done => self.done = true,
            TokenStep::Loop(error) => self.held_back = Some(error),
            TokenStep::More if read_up_to_date > 0 && read_up_to_date * 2 >= page.records => {
                let before = self.asking.len();
                self.ask(|m| !reached(m));
                tracing::debug!(
                    page = number,
                    read_up_to_date = before - self.asking.len(),
                    still_read = self.asking.len(),
                    "batch read narrowed to the locations not yet read up to date"
                );
            }
            TokenStep::More => {}
        }
        Ok(BatchStep::Page(parts))
    }

    /// Each member's cursor after a complete read: its mark moved to the
    /// newest time seen of it (never backwards); `None` for a member the
    /// call refused (its own read keeps its own cursor).
    fn finish(self) -> Vec<Option<Cursor>> {
        self.members
            .into_iter()
            .map(|m| (!m.refused).then(|| m.start.advanced_to(m.newest)))
            .collect()
    }
}

/// A batch read in progress: several locations with a high-water mark read
/// together ([`BatchReads`]), bounded as one incremental read
/// (`max_pages_per_pass`, `max_pass_time`) and stopped with the pass.
pub(crate) struct BatchRead<'c> {
    poll: BatchPoll<'c>,
    clock: ReadClock,
}

impl<'c> BatchRead<'c> {
    /// Starts reading `members` (locations of one batch group, each with
    /// the cursor it starts from) through `reads`, paging as `client` says;
    /// the clock of the time bound starts now.
    pub(crate) fn start(
        client: &'c dyn SourceClient,
        reads: &'c dyn BatchReads,
        members: Vec<(LocationId, Cursor)>,
        bounds: &PassBounds,
    ) -> BatchRead<'c> {
        BatchRead {
            poll: BatchPoll::new(reads, client.paging(), members),
            clock: ReadClock::start(ReadBound::of(bounds, false)),
        }
    }

    /// Pages handed out so far.
    pub(crate) fn pages(&self) -> u64 {
        self.clock.pages
    }

    /// The next step. Past the page or time bound, or once `stop` says so,
    /// the read ends with an error, as a location's does.
    pub(crate) async fn next_page(&mut self, stop: &PassStop) -> Result<BatchStep, ReadError> {
        self.clock.check_pages(!self.poll.is_done())?;
        let step = self.clock.request(stop, self.poll.next_page()).await??;
        if let BatchStep::Page(_) = step {
            self.clock.pages += 1;
        }
        Ok(step)
    }

    /// Whether the read's failure `e` is one of its answers (a paging
    /// loop, an answer of the wrong shape or size, past the page bound),
    /// which a location of the batch may cause on every call: its members
    /// are then worth reading one by one, so that the one at fault fails
    /// alone. A failure of the platform (5xx or 429 after the retries, a
    /// transport error, a refused credential), the time bound or a stop is
    /// not: the next pass tries the batch again.
    pub(crate) fn failed_on_its_answers(&self, e: &ReadError) -> bool {
        match e {
            ReadError::Platform(PlatformError::InvalidResponse(_)) => true,
            ReadError::Bounded(_) => self.clock.pages >= u64::from(self.clock.bound.pages),
            _ => false,
        }
    }

    /// Each member's cursor once every page was read (never after an
    /// error: a failed read leaves every mark where it was).
    pub(crate) fn finish(self) -> Vec<Option<Cursor>> {
        self.poll.finish()
    }
}

#[cfg(test)]
mod tests {
    //! The paging rules over pages given in advance (each platform's own
    //! tests read real pages over loopback, through this same poll).

    use super::*;
    use crate::domain::{Platform, Review, ReviewId};
    use crate::platforms::{BatchPage, BatchPart, FetchedPage};
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

    /// A batch platform over records given in advance: `(location, hour)`,
    /// served newest first across the locations a call names, two to a
    /// page, the token being the offset; a location in `refuse` makes
    /// every call naming it refused for it.
    struct ScriptedBatch {
        records: Vec<(&'static str, u32)>,
        refuse: Option<&'static str>,
        calls: Mutex<Vec<(Vec<String>, Option<String>)>>,
    }

    impl BatchReads for ScriptedBatch {
        fn max_locations(&self) -> usize {
            50
        }

        fn batch_group(&self, _: &LocationId) -> Option<String> {
            Some("accounts/1".into())
        }

        fn fetch_batch<'a>(
            &'a self,
            request: BatchRequest<'a>,
        ) -> BoxFuture<'a, Result<BatchPage, BatchError>> {
            let names: Vec<String> = request
                .locations
                .iter()
                .map(|l| l.as_str().to_owned())
                .collect();
            self.calls
                .lock()
                .expect("lock")
                .push((names.clone(), request.token.map(str::to_owned)));
            if let Some(index) = self
                .refuse
                .and_then(|r| names.iter().position(|n| n.as_str() == r))
            {
                let error = PlatformError::InvalidResponse("not verified".into());
                return Box::pin(std::future::ready(Err(BatchError::Refused {
                    index,
                    error,
                })));
            }
            let mut all: Vec<(usize, u32)> = self
                .records
                .iter()
                .filter_map(|(l, h)| names.iter().position(|n| n == l).map(|i| (i, *h)))
                .collect();
            all.sort_by_key(|r| std::cmp::Reverse(r.1));
            let from: usize = request.token.map_or(0, |t| t.parse().expect("token"));
            let on_page: Vec<(usize, u32)> = all.iter().skip(from).take(2).copied().collect();
            let mut parts: Vec<(usize, BatchPart)> = Vec::new();
            for (i, h) in &on_page {
                let mut one = page(&[*h], Next::Last);
                match parts.iter_mut().find(|(index, _)| index == i) {
                    Some((_, part)) => {
                        part.fetched.reviews.append(&mut one.fetched.reviews);
                        part.newest = part.newest.max(one.newest);
                    }
                    None => parts.push((
                        *i,
                        BatchPart {
                            fetched: one.fetched,
                            newest: one.newest,
                        },
                    )),
                }
            }
            let next = if from + 2 < all.len() {
                Next::Token((from + 2).to_string())
            } else {
                Next::Last
            };
            Box::pin(std::future::ready(Ok(BatchPage {
                parts,
                records: on_page.len(),
                oldest: on_page.iter().map(|(_, h)| at(*h)).min(),
                next,
            })))
        }
    }

    fn marked(hour: u32) -> Cursor {
        Cursor {
            high_water: Some(at(hour)),
            position: None,
        }
    }

    /// Every step of a batch read until it ends.
    async fn read_batch(
        reads: &ScriptedBatch,
        members: &[(&str, u32)],
    ) -> (Vec<BatchStep>, Vec<Option<Cursor>>) {
        let paging = Paging {
            style: TOKENS,
            overlap: Some(TimeDelta::hours(1)),
            max_pages: 10,
        };
        let mut poll = BatchPoll::new(
            reads,
            paging,
            members
                .iter()
                .map(|(l, h)| (LocationId::new(*l), marked(*h)))
                .collect(),
        );
        let mut steps = Vec::new();
        loop {
            match poll.next_page().await.expect("step") {
                BatchStep::End => return (steps, poll.finish()),
                step => steps.push(step),
            }
        }
    }

    #[tokio::test]
    async fn a_batch_read_stops_past_each_mark_and_narrows_to_the_locations_behind() {
        // a: mark 12:00, a new review at 13:00 and many older ones; b: far
        // behind, mark 3:00.
        let mut records: Vec<(&'static str, u32)> =
            [13, 12, 10, 9, 8, 7, 6, 5].map(|h| ("a", h)).to_vec();
        records.extend([("b", 3), ("b", 2)]);
        let reads = ScriptedBatch {
            records,
            refuse: None,
            calls: Mutex::new(Vec::new()),
        };
        let (steps, cursors) = read_batch(&reads, &[("a", 12), ("b", 3)]).await;
        // Page 2 [a10, a9] passes a's 11:00 and is all a's: rather than
        // page through a's older reviews down to b's 2:00, the call is
        // narrowed to b, asked from its first page, [b3, b2], the last.
        let calls = reads.calls.lock().expect("lock").clone();
        let names: Vec<Vec<String>> = calls.iter().map(|c| c.0.clone()).collect();
        assert_eq!(names, [vec!["a", "b"], vec!["a", "b"], vec!["b"]]);
        let tokens: Vec<Option<String>> = calls.into_iter().map(|c| c.1).collect();
        assert_eq!(tokens, [None, Some("2".to_owned()), None]);
        assert_eq!(steps.len(), 3);
        let marks: Vec<_> = cursors
            .into_iter()
            .map(|c| c.and_then(|c| c.high_water))
            .collect();
        assert_eq!(marks, [Some(at(13)), Some(at(3))], "moved forward only");
    }

    #[tokio::test]
    async fn a_batch_read_ends_after_the_page_past_the_oldest_mark_minus_the_overlap() {
        let reads = ScriptedBatch {
            records: vec![
                ("a", 13),
                ("a", 12),
                ("a", 4),
                ("b", 9),
                ("b", 8),
                ("b", 3),
                ("b", 1),
            ],
            refuse: None,
            calls: Mutex::new(Vec::new()),
        };
        // Pages [a13, a12], [b9, b8] (8:00 is not before b's 8:00), then
        // [a4, b3], past both stops: [b1] is never asked for.
        let (steps, cursors) = read_batch(&reads, &[("a", 12), ("b", 9)]).await;
        assert_eq!(steps.len(), 3);
        assert_eq!(reads.calls.lock().expect("lock").len(), 3);
        assert!(cursors.iter().all(Option::is_some));
    }

    #[tokio::test]
    async fn a_location_the_batch_refuses_leaves_it_and_the_others_are_asked_again() {
        let reads = ScriptedBatch {
            records: vec![("a", 10), ("a", 2), ("b", 9), ("c", 11), ("c", 1)],
            refuse: Some("b"),
            calls: Mutex::new(Vec::new()),
        };
        let (steps, cursors) = read_batch(&reads, &[("a", 10), ("b", 9), ("c", 11)]).await;
        assert!(
            matches!(steps.first(), Some(BatchStep::Refused { member: 1, .. })),
            "{steps:?}"
        );
        let names: Vec<Vec<String>> = reads
            .calls
            .lock()
            .expect("lock")
            .iter()
            .map(|c| c.0.clone())
            .collect();
        assert_eq!(names[0], ["a", "b", "c"]);
        assert!(names[1..].iter().all(|n| n == &["a", "c"]), "{names:?}");
        assert!(cursors[1].is_none(), "the refused one keeps its own cursor");
        assert!(cursors[0].is_some() && cursors[2].is_some());
    }
}
