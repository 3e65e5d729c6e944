//! Google Business Profile: one reviews list page, as bytes off the wire.
//! The entry point reads the input as the program does and panics only on a
//! broken promise (see `review_sync::platforms::fuzzing::check_page`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| review_sync::platforms::google::fuzz_parse_page(data));
