//! review-sync: polls review platforms on a schedule, records every review in
//! a SQLite ledger, and delivers each one to Travtus (`POST /messages/`),
//! losing nothing. See ARCHITECTURE.md for the map.

pub mod app;
pub mod build;
pub(crate) mod clock;
pub(crate) mod cluster;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod domain;
pub mod dry_run;
pub mod escape;
pub(crate) mod health;
pub(crate) mod held_log;
pub mod ledger;
mod local_file;
pub mod locations;
pub mod metrics;
pub mod oauth;
pub mod platforms;
pub mod poll;
pub mod push;
pub mod quota;
pub(crate) mod reconcile;
pub(crate) mod redirect;
pub(crate) mod retry;
pub(crate) mod schedule;
pub mod telemetry;
pub mod timestamps;
pub mod travtus;
