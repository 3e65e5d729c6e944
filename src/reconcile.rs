//! Full reconciliation passes (SPEC section 5): a periodic read of every
//! review of every location, so that reviews that vanished from the platform
//! are marked removed in the ledger (`reviews.removed_at`), and reviews that
//! came back are un-marked.
//!
//! A full pass is an ordinary poll started from an empty polling state, so
//! the platform cursor reads every page instead of stopping at the
//! high-water mark; nothing here knows a platform. Recording goes through
//! the same `record_page` as any pass, so an unchanged review is never sent
//! again, and a review seen again gets its `removed_at` cleared there.
//!
//! **Invariant:** reviews of a location are marked removed only after a
//! reconciliation pass read every page of that location without an error;
//! an incremental pass never marks anything removed (it stops early by
//! design, so "not seen" means nothing).

use crate::config::SourceConfig;
use crate::ledger::{LedgerError, LedgerHandle};
use crate::poll::Cursor;
use chrono::{DateTime, Utc};

/// Which kind of pass over a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PassKind {
    /// Reads each location from its high-water mark (minus an overlap).
    #[default]
    Incremental,
    /// Reads every review of each location, then marks the vanished ones.
    Reconcile,
}

impl PassKind {
    /// Whether this is a full reconciliation pass.
    pub fn is_reconcile(self) -> bool {
        self == PassKind::Reconcile
    }

    /// The word used in logs (and `polls.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            PassKind::Incremental => "incremental",
            PassKind::Reconcile => "reconcile",
        }
    }

    /// Whether its pages stamp `last_seen_at` on the reviews they list
    /// unchanged: only a reconciliation compares against the stamps.
    pub fn sightings(self) -> crate::ledger::Sightings {
        match self {
            PassKind::Incremental => crate::ledger::Sightings::Skip,
            PassKind::Reconcile => crate::ledger::Sightings::Stamp,
        }
    }

    /// The cursor a location's read starts from: the stored one, or, for a
    /// full read, none at all.
    pub fn start_cursor(self, stored: &Cursor) -> Cursor {
        match self {
            PassKind::Incremental => stored.clone(),
            PassKind::Reconcile => Cursor::default(),
        }
    }

    /// The cursor to store after every page was read: what the read ended
    /// with, except that a full read never moves the high-water mark
    /// backwards (the newest review may have been deleted since it was read).
    pub fn end_cursor(self, stored: &Cursor, read: Cursor) -> Cursor {
        match self {
            PassKind::Incremental => read,
            PassKind::Reconcile => {
                let newest = read.high_water;
                Cursor {
                    high_water: stored.high_water,
                    position: read.position,
                }
                .advanced_to(newest)
            }
        }
    }
}

/// Whether `source` can be reconciled: its kind lists every review of a
/// location (the config gives exactly those kinds a `reconcile_schedule`).
pub(crate) fn can_reconcile(source: &SourceConfig) -> bool {
    source.reconcile_schedule.is_some()
}

/// What a reconciliation pass changed at one location.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Settled {
    /// Reviews marked removed: in the ledger, but not on the platform.
    pub removed: u64,
    /// Reviews marked removed before that the platform lists again (their
    /// mark was cleared when their page was recorded).
    pub returned: u64,
}

/// The bookkeeping of one location's reconciliation, opened before its
/// first page is recorded and settled after its last.
#[derive(Debug)]
pub(crate) struct LocationTally {
    source: String,
    location: String,
    /// When the location's read started: a review not sighted since was
    /// not on any page.
    started_at: DateTime<Utc>,
    /// Reviews of the location not marked removed, before the read.
    present_before: u64,
}

impl LocationTally {
    /// Opens the tally of a location whose read starts at `started_at`.
    pub(crate) async fn open(
        ledger: &LedgerHandle,
        source: &str,
        location: &str,
        started_at: DateTime<Utc>,
    ) -> Result<LocationTally, LedgerError> {
        let (s, l) = (source.to_owned(), location.to_owned());
        let present_before = ledger.run(move |x| x.location_review_count(&s, &l)).await?;
        Ok(LocationTally {
            source: source.to_owned(),
            location: location.to_owned(),
            started_at,
            present_before,
        })
    }

    /// After every page was recorded: marks what was not seen, and counts
    /// what came back. `new` is the number of reviews the read inserted.
    ///
    /// Returned reviews are counted from the ledger rather than per row: the
    /// reviews present after the read are those present before, plus the
    /// new ones, plus those whose mark the read cleared. The source's pass
    /// lock keeps any other writer off this location meanwhile.
    pub(crate) async fn settle(
        self,
        ledger: &LedgerHandle,
        new: u64,
    ) -> Result<Settled, LedgerError> {
        let LocationTally {
            source,
            location,
            started_at,
            present_before,
        } = self;
        ledger
            .run(move |x| {
                let present_after = x.location_review_count(&source, &location)?;
                let returned = present_after
                    .saturating_sub(present_before)
                    .saturating_sub(new);
                let removed = x.mark_removed(&source, &location, started_at, Utc::now())?;
                Ok(Settled { removed, returned })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0).single()
    }

    #[test]
    fn a_full_read_starts_from_nothing() {
        let stored = Cursor {
            high_water: at(5),
            position: Some("c".into()),
        };
        assert_eq!(PassKind::Incremental.start_cursor(&stored), stored);
        assert_eq!(PassKind::Reconcile.start_cursor(&stored), Cursor::default());
    }

    #[test]
    fn a_full_read_never_moves_the_high_water_mark_back() {
        let stored = Cursor {
            high_water: at(5),
            position: None,
        };
        let read = |h| Cursor {
            high_water: h,
            position: Some("new".into()),
        };
        let end = |r| PassKind::Reconcile.end_cursor(&stored, r);
        assert_eq!(end(read(at(3))).high_water, at(5));
        assert_eq!(end(read(at(7))).high_water, at(7));
        assert_eq!(end(read(None)).high_water, at(5));
        assert_eq!(end(read(at(3))).position.as_deref(), Some("new"));
        assert_eq!(
            PassKind::Incremental.end_cursor(&stored, read(at(3))),
            read(at(3))
        );
    }
}
