//! review-sync: polls review platforms on a schedule, records every review in
//! a SQLite ledger, and delivers each one to Travtus (`POST /messages/`),
//! losing nothing. See ARCHITECTURE.md for the map.

pub mod config;
pub mod domain;
pub mod ledger;
pub mod oauth;
pub mod platforms;
pub mod retry;
pub mod timestamps;
pub mod deliver;
pub mod poll;
pub mod travtus;
pub mod app;
pub mod daemon;
pub mod telemetry;
pub mod dry_run;
