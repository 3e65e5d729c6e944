//! Recording fetched reviews: insert new ones, queue edits again, skip
//! repeats, quarantine bad records; one transaction per page.
//!
//! **Invariant:** storing a review and queueing it for delivery are the same
//! write (a `pending` row with `next_attempt_at`), so a review is committed
//! before any attempt to send it.
//!
//! The page's known rows are read in one statement and locked (`FOR
//! UPDATE`) until the page commits, so another daemon recording the same
//! review waits and then sees this page's version. A review another daemon
//! inserted between that read and this insert (`ON CONFLICT DO NOTHING`
//! inserts nothing) is read again, locked, and treated as known.

use super::super::common::{Change, PageContext, raw_hash};
use super::super::engine::Reviews;
use super::super::{IncomingReview, LedgerError, PageCounts, PageRecord, Sightings, time};
use super::{Postgres, Statements};
use ::postgres::Transaction;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// A known review's stored version and whether it is marked removed.
type Stored = HashMap<(String, String), (String, bool)>;

impl Reviews for Postgres {
    fn record_page_as(
        &mut self,
        page: &PageRecord,
        now: DateTime<Utc>,
        sightings: Sightings,
    ) -> Result<PageCounts, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let mut tx = client.transaction().map_err(st.err())?;
        let ctx = PageContext::new(page, now, sightings);
        let mut stored = known(&mut tx, &mut st, &page.reviews)?;
        let mut counts = PageCounts::default();
        for review in &page.reviews {
            let key = (review.platform.clone(), review.review_id.clone());
            let mut change = record_review(&mut tx, &mut st, &ctx, review, stored.get(&key))?;
            if change.is_none() {
                // Inserted by another session since `known` read the page.
                stored.extend(known(&mut tx, &mut st, std::slice::from_ref(review))?);
                change = record_review(&mut tx, &mut st, &ctx, review, stored.get(&key))?;
            }
            match change {
                Some(Change::New) => counts.new += 1,
                Some(Change::Edited) => counts.edited += 1,
                Some(Change::Unchanged) => counts.unchanged += 1,
                None => {
                    return Err(LedgerError::Task(format!(
                        "review {} {} is neither stored nor insertable",
                        review.platform, review.review_id
                    )));
                }
            }
            // A repeat later in the same page finds this version.
            stored.insert(key, (review.content_hash.clone(), false));
        }
        for record in &page.quarantined {
            st.execute(
                &mut tx,
                "INSERT INTO quarantine (source_name, location_id, platform, reference, reason,
                     raw, raw_hash, first_seen_at, last_seen_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
                 ON CONFLICT (source_name, location_id, raw_hash) DO UPDATE
                     SET last_seen_at = EXCLUDED.last_seen_at,
                         seen_count = quarantine.seen_count + 1",
                &[
                    &page.source_name,
                    &page.location_id,
                    &record.platform,
                    &record.reference,
                    &record.reason,
                    &record.raw,
                    &raw_hash(&record.raw),
                    &ctx.now,
                ],
            )?;
            counts.quarantined += 1;
        }
        tx.commit().map_err(st.err())?;
        drop(client);
        self.wrote();
        Ok(counts)
    }

    fn mark_removed(
        &mut self,
        source: &str,
        location: &str,
        pass_started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let changed = st.execute(
            &mut *client,
            "UPDATE reviews SET removed_at = $1
             WHERE source_name = $2 AND location_id = $3
               AND last_seen_at < $4 AND removed_at IS NULL",
            &[
                &time::to_text(now),
                &source,
                &location,
                &time::to_text(pass_started),
            ],
        )?;
        drop(client);
        self.wrote();
        Ok(changed)
    }

    fn mark_first_seen_by_push(
        &mut self,
        source: &str,
        location: &str,
        read_started: DateTime<Utc>,
        hint_at: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, LedgerError> {
        let (mut client, mut st) = self.session()?;
        let rows = st.query(
            &mut *client,
            "UPDATE reviews SET first_seen_via = 'push', push_hint_at = $1
             WHERE source_name = $2 AND location_id = $3
               AND first_seen_at >= $4 AND first_seen_via = 'poll'
             RETURNING platform, review_id",
            &[
                &time::to_text(hint_at),
                &source,
                &location,
                &time::to_text(read_started),
            ],
        )?;
        drop(client);
        self.wrote();
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// The stored versions of `reviews` that exist, locked until the
/// transaction ends.
fn known(
    tx: &mut Transaction<'_>,
    st: &mut Statements<'_>,
    reviews: &[IncomingReview],
) -> Result<Stored, LedgerError> {
    let platforms: Vec<&str> = reviews.iter().map(|r| r.platform.as_str()).collect();
    let ids: Vec<&str> = reviews.iter().map(|r| r.review_id.as_str()).collect();
    let rows = st.query(
        tx,
        "SELECT r.platform, r.review_id, r.content_hash, r.removed_at IS NOT NULL
         FROM reviews r
         JOIN unnest($1::text[], $2::text[]) AS k(platform, review_id)
           ON r.platform = k.platform AND r.review_id = k.review_id
         ORDER BY r.platform, r.review_id
         FOR UPDATE OF r",
        &[&platforms, &ids],
    )?;
    let mut stored = Stored::with_capacity(rows.len());
    for row in rows {
        let get = |i| row.try_get::<_, String>(i).map_err(st.err());
        let removed: bool = row.try_get(3).map_err(st.err())?;
        stored.insert((get(0)?, get(1)?), (get(2)?, removed));
    }
    Ok(stored)
}

/// Records one review given its stored version; `None` when it was not
/// stored and could not be inserted (another session inserted it).
fn record_review(
    tx: &mut Transaction<'_>,
    st: &mut Statements<'_>,
    ctx: &PageContext<'_>,
    review: &IncomingReview,
    stored: Option<&(String, bool)>,
) -> Result<Option<Change>, LedgerError> {
    let (change, write) = Change::of(
        stored.map(|(hash, removed)| (hash.as_str(), *removed)),
        review,
        ctx.sightings,
    );
    let updated = review.source_updated_at.map(time::to_text);
    match change {
        Change::New => {
            let inserted = st.execute(
                tx,
                "INSERT INTO reviews (platform, review_id, source_name, location_id, group_id,
                     group_external_ref, status, payload, content_hash, first_seen_at,
                     source_updated_at, last_error, last_seen_at, next_attempt_at, notes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $10, $13, $14)
                 ON CONFLICT (platform, review_id) DO NOTHING",
                &[
                    &review.platform,
                    &review.review_id,
                    &ctx.page.source_name,
                    &ctx.page.location_id,
                    &ctx.group_id,
                    &ctx.group_external_ref,
                    &ctx.status.as_str(),
                    &review.payload,
                    &review.content_hash,
                    &ctx.now,
                    &updated,
                    &ctx.hold_reason,
                    &ctx.next_attempt_at,
                    &review.notes,
                ],
            )?;
            if inserted == 0 {
                return Ok(None);
            }
        }
        Change::Edited => {
            // A new version: queued again. `delivered_at`/`request_id`
            // stay, describing the last version the API accepted.
            st.execute(
                tx,
                "UPDATE reviews SET source_name = $3, location_id = $4,
                     group_id = $5, group_external_ref = $6,
                     status = $7, payload = $8, content_hash = $9,
                     source_updated_at = $11, last_error = $12,
                     last_seen_at = $10, removed_at = NULL, next_attempt_at = $13,
                     retry_count = 0, versions = versions + 1, notes = $14,
                     text_purged_at = NULL
                 WHERE platform = $1 AND review_id = $2",
                &[
                    &review.platform,
                    &review.review_id,
                    &ctx.page.source_name,
                    &ctx.page.location_id,
                    &ctx.group_id,
                    &ctx.group_external_ref,
                    &ctx.status.as_str(),
                    &review.payload,
                    &review.content_hash,
                    &ctx.now,
                    &updated,
                    &ctx.hold_reason,
                    &ctx.next_attempt_at,
                    &review.notes,
                ],
            )?;
        }
        Change::Unchanged if write => {
            st.execute(
                tx,
                "UPDATE reviews SET last_seen_at = $3, removed_at = NULL
                 WHERE platform = $1 AND review_id = $2",
                &[&review.platform, &review.review_id, &ctx.now],
            )?;
        }
        Change::Unchanged => {}
    }
    Ok(Some(change))
}
