//! Facebook Graph: one page of a Page's ratings.
//! The entry point reads the input as the program does and panics only on a
//! broken promise (see `review_sync::platforms::fuzzing::check_page`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| review_sync::platforms::facebook::fuzz_parse_page(data));
