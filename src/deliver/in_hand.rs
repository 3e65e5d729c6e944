//! The reviews one pipeline holds (claimed, and not yet recorded or handed
//! back), so that no claim gives it one of them twice, and the wall-clock
//! steps it has seen, after which its next claim re-anchors every pending
//! review ([`crate::clock`]).

use crate::ledger::{AttemptRecord, Claim, DueReview, ReleasedClaim};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// The reviews a pipeline holds: claimed, and not yet recorded or handed
/// back. A claim never gives it one of them again: after a forward step of
/// the wall clock a lease "runs out" while its review is still queued or in
/// flight, and the ledger alone would let the next claim take it, sending it
/// twice. Also watches for wall-clock steps ([`crate::clock`]), after which
/// the next claim makes every pending review due.
pub(super) struct InHand {
    // (platform, review_id) of every review held.
    keys: HashSet<(String, String)>,
    // Bumped by whichever task sees a wall-clock step first.
    steps: tokio::sync::watch::Receiver<u64>,
    // A step was seen and the next claim has not re-anchored yet.
    stepped: bool,
}

impl InHand {
    pub(super) fn new() -> InHand {
        InHand {
            keys: HashSet::new(),
            steps: crate::clock::steps(),
            stepped: false,
        }
    }

    /// Looks at the clocks; true when a step (seen here or by another task)
    /// is new since the last look.
    pub(super) fn look(&mut self) -> bool {
        crate::clock::observe();
        if !self.steps.has_changed().unwrap_or(false) {
            return false;
        }
        self.steps.borrow_and_update();
        self.stepped = true;
        true
    }

    /// Waits until another task sees a step (then the next claim
    /// re-anchors, as after [`InHand::look`] found one).
    pub(super) async fn stepped_elsewhere(&mut self) {
        match self.steps.changed().await {
            Ok(()) => self.stepped = true,
            // The sender is a static: it is never dropped.
            Err(_) => std::future::pending::<()>().await,
        }
    }

    /// The claim to make now: after a step, one that re-anchors every
    /// pending review.
    pub(super) fn claim(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Claim {
        let claim = Claim::new(now, lease_until, limit);
        if std::mem::take(&mut self.stepped) {
            claim.after_step()
        } else {
            claim
        }
    }

    /// A cycle committed these outcomes and hand-backs: no longer held.
    pub(super) fn settled(&mut self, records: &[AttemptRecord], released: &[ReleasedClaim]) {
        for r in records {
            self.keys.remove(&(r.platform.clone(), r.review_id.clone()));
        }
        for r in released {
            self.keys.remove(&(r.platform.clone(), r.review_id.clone()));
        }
    }

    /// Splits what a claim returned into reviews new to the pipeline and
    /// reviews it holds already (queued, in flight or not yet recorded),
    /// which must not be sent again: the earlier claim's outcome settles
    /// the row.
    pub(super) fn take(&mut self, claimed: Vec<DueReview>) -> (Vec<DueReview>, Vec<DueReview>) {
        let (fresh, held): (Vec<DueReview>, Vec<DueReview>) = claimed
            .into_iter()
            .partition(|d| self.keys.insert((d.platform.clone(), d.review_id.clone())));
        if !held.is_empty() {
            tracing::info!(
                reviews = held.len(),
                "{} review(s) claimed again while this worker holds them (their lease ran out early: the wall clock went forward); none is sent twice",
                held.len()
            );
        }
        (fresh, held)
    }
}
