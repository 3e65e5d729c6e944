//! Leases on a SQLite ledger: one file, one daemon (SQLite's own lock
//! keeps a second writer out), so every lease is granted and nothing is
//! written; the `leases` table stays empty.

use super::super::LedgerError;
use super::super::engine::Leases;
use super::Sqlite;
use std::time::Duration;

impl Leases for Sqlite {
    fn shared(&self) -> bool {
        false
    }

    fn set_holder(&mut self, _holder: &str) {}

    fn take_lease(&mut self, _name: &str, _ttl: Duration) -> Result<bool, LedgerError> {
        Ok(true)
    }

    fn renew_lease(&mut self, _name: &str, _ttl: Duration) -> Result<bool, LedgerError> {
        Ok(true)
    }

    fn end_lease(&mut self, _name: &str, _keep: Option<Duration>) -> Result<(), LedgerError> {
        Ok(())
    }
}
