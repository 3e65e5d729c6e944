//! The integration tests: the real library and the real binary against the
//! sandbox emulators on loopback, with real SQLite files in temp dirs.

mod audit;
mod auditor;
mod batch;
mod budgets;
mod chaos;
mod cli;
mod clock;
mod cluster;
mod config_errors;
mod crash;
mod daemon;
mod delivery;
mod discovery;
mod docs;
mod helpers;
mod hostile;
mod inputs;
mod monitoring;
mod ops;
mod package;
mod paging;
mod platforms;
mod progress;
mod push;
mod push_daemon;
mod push_notify;
mod quota;
mod reconcile;
mod redirects;
mod regressions;
mod security;
mod storage;
mod walkthrough;
