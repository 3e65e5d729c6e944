//! Yelp Fusion: one business reviews answer.
//! The entry point reads the input as the program does and panics only on a
//! broken promise (see `review_sync::platforms::fuzzing::check_page`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| review_sync::platforms::yelp::fuzz_parse_page(data));
