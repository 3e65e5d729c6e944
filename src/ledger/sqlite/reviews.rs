//! Recording fetched reviews: insert new ones, queue edits again, skip
//! repeats, quarantine bad records; one transaction per page.
//!
//! **Invariant:** storing a review and queueing it for delivery are the same
//! write (a `pending` row with `next_attempt_at`), so a review is committed
//! before any attempt to send it.

use super::super::common::{Change, PageContext, raw_hash};
use super::super::engine::Reviews;
use super::super::{
    IncomingReview, LedgerError, PageCounts, PageRecord, QuarantineRecord, Sightings, time,
};
use super::{Sqlite, sql_err};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, named_params};

impl Reviews for Sqlite {
    fn record_page_as(
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

    fn mark_removed(
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

    fn mark_first_seen_by_push(
        &mut self,
        source: &str,
        location: &str,
        read_started: DateTime<Utc>,
        hint_at: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, LedgerError> {
        let marked = self
            .conn
            .prepare_cached(
                "UPDATE reviews SET first_seen_via = 'push', push_hint_at = :hint
                 WHERE source_name = :source AND location_id = :location
                   AND first_seen_at >= :started AND first_seen_via = 'poll'
                 RETURNING platform, review_id",
            )
            .and_then(|mut st| {
                st.query_map(
                    named_params! {
                        ":hint": time::to_text(hint_at),
                        ":source": source,
                        ":location": location,
                        ":started": time::to_text(read_started),
                    },
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?
                .collect::<Result<Vec<(String, String)>, _>>()
            })
            .map_err(|e| self.err(e))?;
        Ok(marked)
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
    let (change, write) = Change::of(
        stored
            .as_ref()
            .map(|(hash, removed)| (hash.as_str(), *removed)),
        review,
        ctx.sightings,
    );
    match change {
        Change::New => write_version(conn, INSERT_REVIEW, ctx, review)?,
        Change::Edited => write_version(conn, EDIT_REVIEW, ctx, review)?,
        Change::Unchanged if write => touch_review(conn, ctx, review)?,
        Change::Unchanged => {}
    }
    Ok(change)
}

/// A review seen for the first time.
const INSERT_REVIEW: &str =
    "INSERT INTO reviews (platform, review_id, source_name, location_id, group_id,
             group_external_ref, status, payload, content_hash, first_seen_at,
             source_updated_at, last_error, last_seen_at, next_attempt_at, notes)
         VALUES (:platform, :review_id, :source, :location, :group_id,
             :group_external_ref, :status, :payload, :hash, :now,
             :source_updated_at, :last_error, :now, :next_attempt_at, :notes)";

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
const EDIT_REVIEW: &str = "UPDATE reviews SET source_name = :source, location_id = :location,
             group_id = :group_id, group_external_ref = :group_external_ref,
             status = :status, payload = :payload, content_hash = :hash,
             source_updated_at = :source_updated_at, last_error = :last_error,
             last_seen_at = :now, removed_at = NULL, next_attempt_at = :next_attempt_at,
             retry_count = 0, versions = versions + 1, notes = :notes,
             text_purged_at = NULL
         WHERE platform = :platform AND review_id = :review_id";

/// Writes a new review or a new version of one (`sql`: [`INSERT_REVIEW`] or
/// [`EDIT_REVIEW`]): both take the same parameters, from the page and the
/// review.
fn write_version(
    conn: &Connection,
    sql: &str,
    ctx: &PageContext<'_>,
    review: &IncomingReview,
) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute(named_params! {
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
