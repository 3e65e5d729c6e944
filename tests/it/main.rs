//! The integration tests: the real library and the real binary against the
//! sandbox emulators on loopback, with real SQLite files in temp dirs.

mod audit;
mod chaos;
mod cli;
mod config_errors;
mod crash;
mod daemon;
mod delivery;
mod discovery;
mod helpers;
mod hostile;
mod monitoring;
mod ops;
mod package;
mod platforms;
mod reconcile;
mod regressions;
mod security;
mod storage;
