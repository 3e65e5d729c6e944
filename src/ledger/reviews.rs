//! Recording fetched reviews: insert new ones, queue edits again, skip
//! repeats, quarantine bad records; one transaction per page.
//!
//! **Invariant:** storing a review and queueing it for delivery are the same
//! write (a `pending` row with `next_attempt_at`), so a review is committed
//! before any attempt to send it.

use super::{
    IncomingReview, Ledger, LedgerError, PageCounts, PageRecord, QuarantineRecord, Status, sql_err,
    time,
};
use crate::domain::GroupRef;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, named_params};
use sha2::{Digest, Sha256};

impl Ledger {
    /// Records one page in one transaction and returns what changed.
    ///
    /// For each review: unknown (platform, review_id) -> insert `pending`
    /// (or `held` with `hold_reason` when `group` is `None`), `first_seen_at`
    /// = `now`, `next_attempt_at` = `now`; known with the same `content_hash`
    /// -> unchanged (only `removed_at` cleared if set); known with another
    /// hash -> edited: new payload/hash/source_updated_at, status `pending`
    /// (or `held` if unmapped), `next_attempt_at` = `now`, `retry_count` = 0,
    /// `last_error` cleared, `delivered_at`/`request_id` kept (they describe
    /// the last delivered version). Quarantined records are inserted with
    /// `now`; an identical (source, location, raw) one is not stored twice.
    ///
    /// Every sighting also sets the internal `last_seen_at` to `now` (what
    /// [`Ledger::mark_removed`] compares against). A `held` row has no
    /// `next_attempt_at`: it is never due until `ledger retry`.
    pub fn record_page(
        &mut self,
        page: &PageRecord,
        now: DateTime<Utc>,
    ) -> Result<PageCounts, LedgerError> {
        self.record_page_as(page, now, Sightings::Stamp)
    }

    /// [`Ledger::record_page`], stamping `last_seen_at` on unchanged reviews
    /// only when `sightings` says so. New and edited rows are always
    /// stamped, and a review marked removed is always un-marked.
    pub fn record_page_as(
        &mut self,
        page: &PageRecord,
        now: DateTime<Utc>,
        sightings: Sightings,
    ) -> Result<PageCounts, LedgerError> {
        let err = sql_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let ctx = PageContext::new(page, now, sightings);
        let mut counts = PageCounts::default();
        for review in &page.reviews {
            match record_review(&tx, &ctx, review).map_err(&err)? {
                Change::New => counts.new += 1,
                Change::Edited => counts.edited += 1,
                Change::Unchanged => counts.unchanged += 1,
            }
        }
        for record in &page.quarantined {
            quarantine(&tx, &ctx, record).map_err(&err)?;
            counts.quarantined += 1;
        }
        tx.commit().map_err(&err)?;
        Ok(counts)
    }

    /// Marks as removed (`removed_at` = `now`) every review of a location
    /// that a full reconciliation pass did not see: rows whose `last_seen_at`
    /// is before `pass_started` and that are not already marked. Call it only
    /// after a pass that read the location completely. Returns rows marked.
    pub fn mark_removed(
        &mut self,
        source: &str,
        location: &str,
        pass_started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, LedgerError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE reviews SET removed_at = :now
                 WHERE source_name = :source AND location_id = :location
                   AND last_seen_at < :started AND removed_at IS NULL",
            )
            .and_then(|mut st| {
                st.execute(named_params! {
                    ":now": time::to_text(now),
                    ":source": source,
                    ":location": location,
                    ":started": time::to_text(pass_started),
                })
            })
            .map_err(|e| self.err(e))?;
        Ok(changed as u64)
    }
}

/// Whether recording a page stamps `last_seen_at` on the reviews it saw
/// unchanged.
///
/// Only a reconciliation pass needs the stamps: [`Ledger::mark_removed`]
/// runs after one and compares against its start. An incremental pass sees
/// the same overlap page on every tick, and stamping it rewrote dozens of
/// rows per location for nothing (a quiet pass over 1,000 locations wrote
/// 26 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sightings {
    /// Stamp every review seen (a reconciliation pass, and the default).
    Stamp,
    /// Leave unchanged reviews as they are (an incremental pass).
    Skip,
}

/// What recording one review did.
enum Change {
    New,
    Edited,
    Unchanged,
}

/// The per-page values every row of the page shares, computed once.
struct PageContext<'a> {
    page: &'a PageRecord,
    now: String,
    status: Status,
    group_id: Option<&'a str>,
    group_external_ref: Option<&'a str>,
    /// `last_error` of new/edited rows: the hold reason when unmapped.
    hold_reason: Option<&'a str>,
    /// `next_attempt_at` of new/edited rows: now, or none for held rows.
    next_attempt_at: Option<String>,
    sightings: Sightings,
}

impl<'a> PageContext<'a> {
    fn new(page: &'a PageRecord, now: DateTime<Utc>, sightings: Sightings) -> Self {
        let now = time::to_text(now);
        let (status, next_attempt_at, hold_reason) = match page.group {
            Some(_) => (Status::Pending, Some(now.clone()), None),
            None => (Status::Held, None, page.hold_reason.as_deref()),
        };
        let (group_id, group_external_ref) = group_columns(page.group.as_ref());
        PageContext {
            page,
            now,
            status,
            group_id,
            group_external_ref,
            hold_reason,
            next_attempt_at,
            sightings,
        }
    }
}

/// The (`group_id`, `group_external_ref`) column values of a group.
pub(super) fn group_columns(group: Option<&GroupRef>) -> (Option<&str>, Option<&str>) {
    match group {
        Some(GroupRef::Id(v)) => (Some(v), None),
        Some(GroupRef::ExternalRef(v)) => (None, Some(v)),
        None => (None, None),
    }
}

fn record_review(
    conn: &Connection,
    ctx: &PageContext<'_>,
    review: &IncomingReview,
) -> rusqlite::Result<Change> {
    let stored: Option<(String, bool)> = conn
        .prepare_cached(
            "SELECT content_hash, removed_at IS NOT NULL FROM reviews
             WHERE platform = ?1 AND review_id = ?2",
        )?
        .query_row((&review.platform, &review.review_id), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match stored {
        None => {
            insert_review(conn, ctx, review)?;
            Ok(Change::New)
        }
        Some((hash, removed)) if hash == review.content_hash => {
            if removed || ctx.sightings == Sightings::Stamp {
                touch_review(conn, ctx, review)?;
            }
            Ok(Change::Unchanged)
        }
        Some(_) => {
            edit_review(conn, ctx, review)?;
            Ok(Change::Edited)
        }
    }
}

fn insert_review(
    conn: &Connection,
    ctx: &PageContext<'_>,
    review: &IncomingReview,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO reviews (platform, review_id, source_name, location_id, group_id,
             group_external_ref, status, payload, content_hash, first_seen_at,
             source_updated_at, last_error, last_seen_at, next_attempt_at, notes)
         VALUES (:platform, :review_id, :source, :location, :group_id,
             :group_external_ref, :status, :payload, :hash, :now,
             :source_updated_at, :last_error, :now, :next_attempt_at, :notes)",
    )?
    .execute(named_params! {
        ":platform": review.platform,
        ":review_id": review.review_id,
        ":source": ctx.page.source_name,
        ":location": ctx.page.location_id,
        ":group_id": ctx.group_id,
        ":group_external_ref": ctx.group_external_ref,
        ":status": ctx.status.as_str(),
        ":payload": review.payload,
        ":hash": review.content_hash,
        ":now": ctx.now,
        ":source_updated_at": review.source_updated_at.map(time::to_text),
        ":last_error": ctx.hold_reason,
        ":next_attempt_at": ctx.next_attempt_at,
        ":notes": review.notes,
    })?;
    Ok(())
}

/// A repeat (the overlap behind the high-water mark): only the sighting is
/// recorded, and a review that came back after reconciliation is un-removed.
fn touch_review(
    conn: &Connection,
    ctx: &PageContext<'_>,
    review: &IncomingReview,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE reviews SET last_seen_at = ?3, removed_at = NULL
         WHERE platform = ?1 AND review_id = ?2",
    )?
    .execute((&review.platform, &review.review_id, &ctx.now))?;
    Ok(())
}

/// A new version: queued again. `delivered_at`/`request_id` stay, describing
/// the last version the API accepted. The location and group are the page's,
/// so the row names the mapping its payload was built with.
fn edit_review(
    conn: &Connection,
    ctx: &PageContext<'_>,
    review: &IncomingReview,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE reviews SET source_name = :source, location_id = :location,
             group_id = :group_id, group_external_ref = :group_external_ref,
             status = :status, payload = :payload, content_hash = :hash,
             source_updated_at = :source_updated_at, last_error = :last_error,
             last_seen_at = :now, removed_at = NULL, next_attempt_at = :next_attempt_at,
             retry_count = 0, versions = versions + 1, notes = :notes,
             text_purged_at = NULL
         WHERE platform = :platform AND review_id = :review_id",
    )?
    .execute(named_params! {
        ":platform": review.platform,
        ":review_id": review.review_id,
        ":source": ctx.page.source_name,
        ":location": ctx.page.location_id,
        ":group_id": ctx.group_id,
        ":group_external_ref": ctx.group_external_ref,
        ":status": ctx.status.as_str(),
        ":payload": review.payload,
        ":hash": review.content_hash,
        ":now": ctx.now,
        ":source_updated_at": review.source_updated_at.map(time::to_text),
        ":last_error": ctx.hold_reason,
        ":next_attempt_at": ctx.next_attempt_at,
        ":notes": review.notes,
    })?;
    Ok(())
}

/// Stores a bad record once per (source, location, raw text); seeing it
/// again only bumps `last_seen_at` and `seen_count`, so a platform that keeps
/// returning the same broken record does not grow the file on every poll.
fn quarantine(
    conn: &Connection,
    ctx: &PageContext<'_>,
    record: &QuarantineRecord,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO quarantine (source_name, location_id, platform, reference, reason,
             raw, raw_hash, first_seen_at, last_seen_at)
         VALUES (:source, :location, :platform, :reference, :reason, :raw, :raw_hash, :now, :now)
         ON CONFLICT (source_name, location_id, raw_hash) DO UPDATE
             SET last_seen_at = excluded.last_seen_at, seen_count = seen_count + 1",
    )?
    .execute(named_params! {
        ":source": ctx.page.source_name,
        ":location": ctx.page.location_id,
        ":platform": record.platform,
        ":reference": record.reference,
        ":reason": record.reason,
        ":raw": record.raw,
        ":raw_hash": raw_hash(&record.raw),
        ":now": ctx.now,
    })?;
    Ok(())
}

/// `quarantine.raw_hash`: hex SHA-256 of the raw text.
fn raw_hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}
