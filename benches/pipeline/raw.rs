//! Scenario 2, the raw-POST baseline: the backfill's bodies POSTed again
//! from a bare reqwest client with the daemon's concurrency, no ledger: the
//! ceiling the daemon's rate is compared with.

use crate::measure::own_cpu_time;
use crate::setup::open_reader;
use crate::{BenchResult, CONCURRENCY};
use sandbox::Sandbox;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// What the raw client did.
pub(crate) struct Raw {
    pub(crate) rate: f64,
    /// CPU time of this process (client and emulator) during the run.
    pub(crate) cpu_s: f64,
    pub(crate) failures: usize,
}

/// POSTs every body of the backfill's ledger again, from a bare client with
/// the daemon's concurrency: the ceiling of what the emulator, the loopback
/// and one HTTP/1.1 pool allow on this machine.
pub(crate) async fn raw_ceiling(sb: &Sandbox, ledger: &Path) -> BenchResult<Raw> {
    let reader = open_reader(ledger)?;
    let mut work: Vec<(String, String)> = Vec::new();
    {
        let mut st = reader
            .prepare(
                "SELECT platform, review_id, content_hash, payload FROM reviews ORDER BY rowid",
            )
            .map_err(|e| format!("ledger: {e}"))?;
        let mut rows = st.query([]).map_err(|e| format!("ledger: {e}"))?;
        while let Some(row) = rows.next().map_err(|e| format!("ledger: {e}"))? {
            let get = |i| row.get::<_, String>(i).map_err(|e| format!("ledger: {e}"));
            let key = review_sync::travtus::idempotency_key(&get(0)?, &get(1)?, &get(2)?);
            work.push((get(3)?, key));
        }
    }
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let url = format!("{}/messages/", sb.travtus_base_url());
    let bearer = format!("Bearer {}", sb.travtus().issue_token());

    let started = Instant::now();
    let cpu_before = own_cpu_time();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (work, next, failures) = (work.clone(), next.clone(), failures.clone());
            let (client, url, bearer) = (client.clone(), url.clone(), bearer.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((body, key)) = work.get(i) else {
                        break;
                    };
                    let sent = client
                        .post(&url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .header(reqwest::header::AUTHORIZATION, &bearer)
                        .header("Idempotency-Key", key)
                        .body(body.clone())
                        .send()
                        .await;
                    let ok = match sent {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| format!("raw client task: {e}"))?;
    }
    let wall = started.elapsed().as_secs_f64();
    Ok(Raw {
        cpu_s: (own_cpu_time() - cpu_before).as_secs_f64(),
        rate: work.len() as f64 / wall,
        failures: failures.load(Ordering::Relaxed),
    })
}
