//! Several daemons on one (PostgreSQL) ledger: the work only one of them
//! may do at a time runs under a lease row of the ledger (`leases`). A
//! source's pass is `pass:SOURCE`; a cluster-wide job (retention) is
//! `job:NAME`, kept after it ran so that the other daemons do not run it
//! again before its next turn.
//!
//! **Invariant:** work under a lease runs only while the lease is this
//! daemon's. It is renewed every third of `[ledger] lease`; when a renewal
//! is refused (another daemon took it) or none succeeded within five sixths
//! of the lease since the last good one was sent, the work is stopped
//! (dropped) before the lease can expire on the server, so no two daemons
//! read one source at once. A daemon that dies leaves its lease to expire:
//! another takes the source over within `lease`.
//!
//! On a SQLite ledger (one daemon) nothing here writes or waits: the work
//! just runs, as it always has.

use crate::ledger::LedgerHandle;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How a piece of work under a lease ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Leased<T> {
    /// It ran to its end.
    Done(T),
    /// Another daemon holds the lease: not run here.
    Elsewhere,
    /// The lease could not be taken or was lost while it ran (refused, or
    /// not renewed in time): stopped, or not started.
    Lost(String),
    /// The daemon is stopping.
    Stopped,
}

/// The lease name of a source's passes.
pub(crate) fn pass_lease(source: &str) -> String {
    format!("pass:{source}")
}

/// Runs `work` while this daemon holds the lease `name` (of `ttl`),
/// renewing it, and ends the lease afterwards: released, or, when `keep`
/// is given and the work ran to its end, kept for `keep` more so that no
/// daemon starts the same job again before then. On a ledger no other
/// daemon shares, runs `work` until `cancel` with no lease at all.
pub(crate) async fn exclusive<F: Future>(
    ledger: &LedgerHandle,
    name: &str,
    ttl: Duration,
    keep: Option<Duration>,
    cancel: &CancellationToken,
    work: F,
) -> Leased<F::Output> {
    if !ledger.shared() {
        return tokio::select! {
            _ = cancel.cancelled() => Leased::Stopped,
            out = work => Leased::Done(out),
        };
    }
    let sent = Instant::now();
    let owned = name.to_owned();
    match ledger.run(move |l| l.take_lease(&owned, ttl)).await {
        Ok(true) => {}
        Ok(false) => return Leased::Elsewhere,
        Err(e) => return Leased::Lost(format!("lease not taken: {e}")),
    }
    let outcome = tokio::select! {
        _ = cancel.cancelled() => Leased::Stopped,
        out = work => Leased::Done(out),
        reason = keep_renewed(ledger, name, ttl, sent) => Leased::Lost(reason),
    };
    let end = match (&outcome, keep) {
        (Leased::Done(_), Some(keep)) => Some(keep),
        (Leased::Lost(_), _) => return outcome,
        _ => None,
    };
    let owned = name.to_owned();
    if let Err(e) = ledger.run(move |l| l.end_lease(&owned, end)).await {
        tracing::warn!(lease = name, error = %e, "lease not ended; it expires by itself");
    }
    outcome
}

/// Renews the lease `name` every third of `ttl` until it is lost; returns
/// why. `taken` is when the request that took it was sent: the server's
/// expiry is at least `ttl` after it.
async fn keep_renewed(ledger: &LedgerHandle, name: &str, ttl: Duration, taken: Instant) -> String {
    let every = ttl / 3;
    // Stop this much before the server could see the lease expire: room
    // for the work to be dropped and a request in flight to be cut.
    let margin = ttl / 6;
    let mut good = taken;
    let mut next = taken + every;
    loop {
        let deadline = good + ttl - margin;
        tokio::time::sleep_until(next.min(deadline)).await;
        let now = Instant::now();
        if now >= deadline {
            return format!(
                "lease not renewed within {}s",
                (ttl - margin).as_secs_f32().round()
            );
        }
        let owned = name.to_owned();
        let renewal = ledger.run(move |l| l.renew_lease(&owned, ttl));
        match tokio::time::timeout(deadline - now, renewal).await {
            Ok(Ok(true)) => {
                good = now;
                next = now + every;
            }
            Ok(Ok(false)) => return "lease taken over by another daemon".to_owned(),
            Ok(Err(e)) => {
                tracing::warn!(lease = name, error = %e, "lease renewal failed; trying again");
                next = Instant::now() + Duration::from_secs(1).min(every);
            }
            Err(_) => {
                return format!(
                    "lease not renewed within {}s",
                    (ttl - margin).as_secs_f32().round()
                );
            }
        }
    }
}

/// Claims one tick of a source's schedule for this daemon: `false` when
/// another daemon sharing the ledger already took this tick (so a source
/// is read once per tick by the cluster, not once per daemon). The claim
/// is a lease `tick:SOURCE:KIND` that is never renewed or released: it
/// expires shortly before the next fire time (`until_next` from now), when
/// whichever daemon ticks first takes the next one. Always `true` on a
/// ledger no other daemon shares, or when the schedule fires no more.
pub(crate) async fn claim_tick(
    ledger: &LedgerHandle,
    source: &str,
    kind: &str,
    until_next: Option<Duration>,
) -> bool {
    if !ledger.shared() {
        return true;
    }
    // Room for the daemons' clocks to disagree by a little (NTP keeps them
    // within milliseconds): the next tick is never refused.
    let Some(ttl) = until_next
        .map(|d| d.mul_f32(0.8))
        .filter(|d| *d >= Duration::from_millis(100))
    else {
        return true;
    };
    let name = format!("tick:{source}:{kind}");
    let owned = name.clone();
    match ledger.run(move |l| l.take_lease(&owned, ttl)).await {
        Ok(taken) => taken,
        Err(e) => {
            tracing::warn!(source, pass = kind, error = %e, "tick not claimed; pass skipped");
            false
        }
    }
}

/// Says what became of a pass under its lease; true when it ran.
pub(crate) fn log_pass<T>(source: &str, pass: &str, outcome: &Leased<T>) -> bool {
    match outcome {
        Leased::Done(_) => true,
        Leased::Elsewhere => {
            tracing::info!(
                source,
                pass,
                "another daemon is running this source's pass; tick skipped"
            );
            false
        }
        Leased::Lost(reason) => {
            tracing::warn!(source, pass, reason, "pass stopped or not started");
            false
        }
        Leased::Stopped => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;

    #[tokio::test]
    async fn on_sqlite_the_work_just_runs() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = LedgerHandle::new(Ledger::open(&dir.path().join("ledger.db")).unwrap());
        let cancel = CancellationToken::new();
        let out = exclusive(
            &ledger,
            "pass:s",
            Duration::from_secs(3),
            None,
            &cancel,
            async { 7 },
        )
        .await;
        assert_eq!(out, Leased::Done(7));
        cancel.cancel();
        let out = exclusive(
            &ledger,
            "pass:s",
            Duration::from_secs(3),
            None,
            &cancel,
            std::future::pending::<()>(),
        )
        .await;
        assert_eq!(out, Leased::Stopped);
    }
}
