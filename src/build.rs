//! What this binary is: its version, the git commit it was built from and
//! its target triple (set by `build.rs`), for `--version` and
//! `review_sync_build_info`.

/// The package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit of the build (12 hex digits), or `unknown` when built
/// outside a git checkout without `REVIEW_SYNC_COMMIT`.
pub const COMMIT: &str = env!("REVIEW_SYNC_COMMIT");

/// The target triple, e.g. `x86_64-unknown-linux-gnu`.
pub const TARGET: &str = env!("REVIEW_SYNC_TARGET");

/// What `review-sync --version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("REVIEW_SYNC_COMMIT"),
    ", target ",
    env!("REVIEW_SYNC_TARGET"),
    ")"
);
