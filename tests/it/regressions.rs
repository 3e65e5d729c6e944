//! Kept fuzz inputs (README "Guarantees" > "Fuzzing"): every file under
//! `tests/it/regressions/<target>/` is an input that once broke the fuzz
//! target of that name (`fuzz/fuzz_targets/<target>.rs`), named after the
//! bug it found. Each is fed to the same entry point the fuzzer calls, so a
//! bug that comes back fails `cargo test`, with no nightly toolchain needed.

use review_sync::platforms::{facebook, file, google, places, trustpilot, yelp};
use std::path::{Path, PathBuf};

/// A fuzz target's entry point: panics only on a broken promise.
type Entry = fn(&[u8]);

/// Every fuzz target and its entry point.
const TARGETS: &[(&str, Entry)] = &[
    ("google_page", google::fuzz_parse_page),
    ("file_jsonl", file::fuzz_parse_jsonl),
    ("file_csv", file::fuzz_parse_csv),
    ("config_load", review_sync::config::fuzzing::fuzz_load),
    ("yelp_page", yelp::fuzz_parse_page),
    ("places_page", places::fuzz_parse_page),
    ("facebook_page", facebook::fuzz_parse_page),
    ("trustpilot_page", trustpilot::fuzz_parse_page),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/regressions")
}

/// The kept inputs of `target`, sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(target))
        .map(|dir| {
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, entry) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    for input in inputs(target) {
        let bytes = std::fs::read(&input).expect("readable input");
        let outcome = std::panic::catch_unwind(|| entry(&bytes));
        assert!(outcome.is_ok(), "{} fails again", input.display());
    }
}

#[test]
fn every_directory_is_a_fuzz_target_of_the_fuzz_crate() {
    let manifest = include_str!("../../fuzz/Cargo.toml");
    for (target, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "{target} is not a target of fuzz/Cargo.toml"
        );
    }
    for dir in std::fs::read_dir(root())
        .expect("regressions dir")
        .flatten()
    {
        let name = dir.file_name().to_string_lossy().into_owned();
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "tests/it/regressions/{name} is not a fuzz target"
        );
    }
}

#[test]
fn google_page() {
    replay("google_page");
}

#[test]
fn file_jsonl() {
    replay("file_jsonl");
}

#[test]
fn file_csv() {
    replay("file_csv");
}

#[test]
fn config_load() {
    replay("config_load");
}

#[test]
fn yelp_page() {
    replay("yelp_page");
}

#[test]
fn places_page() {
    replay("places_page");
}

#[test]
fn facebook_page() {
    replay("facebook_page");
}

#[test]
fn trustpilot_page() {
    replay("trustpilot_page");
}
