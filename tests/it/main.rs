//! The integration tests: the real library and the real binary against the
//! sandbox emulators on loopback, with real SQLite files in temp dirs.

mod cli;
mod config_errors;
mod daemon;
mod delivery;
mod helpers;
