//! review-sync: polls review platforms on a schedule, records every review in
//! a SQLite ledger, and delivers each one to Travtus (`POST /messages/`),
//! losing nothing. See ARCHITECTURE.md for the map.

pub mod config;
pub mod domain;
pub mod ledger;
