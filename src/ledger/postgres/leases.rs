//! Leases in a shared PostgreSQL ledger: a row of `leases` per piece of
//! work one daemon at a time may do (a source's pass, a cluster-wide job),
//! naming its holder and when it expires.
//!
//! **Invariant:** every lease time is the server's clock
//! (`clock_timestamp()`), written as the ledger's timestamp text, so the
//! daemons' own clocks (and their steps) never decide who holds a lease. A
//! lease is taken only when there is no row or its row has expired; a
//! renewal or an end only touches a row this holder still holds, so a
//! daemon whose lease expired and was taken over cannot renew or delete
//! the new holder's row.

use super::super::LedgerError;
use super::super::engine::Leases;
use super::Postgres;
use std::time::Duration;

/// `clock_timestamp() + $ms` milliseconds as the ledger's timestamp text.
fn server_time(ms_param: &str) -> String {
    format!(
        "to_char((clock_timestamp() + {ms_param}::bigint * interval '1 millisecond') \
         AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    )
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Leases for Postgres {
    fn shared(&self) -> bool {
        true
    }

    fn set_holder(&mut self, holder: &str) {
        holder.clone_into(&mut self.holder);
    }

    fn take_lease(&mut self, name: &str, ttl: Duration) -> Result<bool, LedgerError> {
        let sql = format!(
            "INSERT INTO leases AS l (name, holder, acquired_at, expires_at)
             VALUES ($1, $2, {now}, {until})
             ON CONFLICT (name) DO UPDATE
                 SET holder = EXCLUDED.holder, acquired_at = EXCLUDED.acquired_at,
                     expires_at = EXCLUDED.expires_at
                 WHERE l.expires_at <= EXCLUDED.acquired_at",
            now = server_time("0"),
            until = server_time("$3"),
        );
        let (mut client, mut st) = self.session()?;
        let taken = st.execute(&mut *client, &sql, &[&name, &self.holder, &millis(ttl)])?;
        drop((client, st));
        self.wrote();
        Ok(taken == 1)
    }

    fn renew_lease(&mut self, name: &str, ttl: Duration) -> Result<bool, LedgerError> {
        let sql = format!(
            "UPDATE leases SET expires_at = {until} WHERE name = $1 AND holder = $2",
            until = server_time("$3"),
        );
        let (mut client, mut st) = self.session()?;
        let renewed = st.execute(&mut *client, &sql, &[&name, &self.holder, &millis(ttl)])?;
        drop((client, st));
        self.wrote();
        Ok(renewed == 1)
    }

    fn end_lease(&mut self, name: &str, keep: Option<Duration>) -> Result<(), LedgerError> {
        let (mut client, mut st) = self.session()?;
        match keep {
            None => st.execute(
                &mut *client,
                "DELETE FROM leases WHERE name = $1 AND holder = $2",
                &[&name, &self.holder],
            )?,
            Some(keep) => {
                let sql = format!(
                    "UPDATE leases SET expires_at = {until} WHERE name = $1 AND holder = $2",
                    until = server_time("$3"),
                );
                st.execute(&mut *client, &sql, &[&name, &self.holder, &millis(keep)])?
            }
        };
        drop((client, st));
        self.wrote();
        Ok(())
    }
}
