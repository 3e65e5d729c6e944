//! The sandbox's integration tests: one binary, real HTTP over loopback with
//! a plain reqwest client, one module per emulator or concern.

mod control;
mod faults;
mod google;
mod helpers;
mod pubsub;
mod quota;
mod travtus;
