//! The config loader, with a fixed fake environment: any text is a config
//! or a list of `file:line:column` problems, and no secret shows in either
//! (see `review_sync::config::fuzzing::fuzz_load`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| review_sync::config::fuzzing::fuzz_load(data));
