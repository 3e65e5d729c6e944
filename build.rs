//! Build facts for `--version` and `review_sync_build_info`: the git commit
//! of the checkout (`REVIEW_SYNC_COMMIT` overrides it, e.g. for a build
//! from a source tarball; `unknown` when neither is there) and the target
//! triple.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=REVIEW_SYNC_COMMIT");
    let commit = std::env::var("REVIEW_SYNC_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=REVIEW_SYNC_COMMIT={}", commit.trim());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=REVIEW_SYNC_TARGET={target}");
}

/// The short commit of HEAD, and a rerun of this script when HEAD moves.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // HEAD, and the branch it points to, live in the git dir (a worktree
    // has its own HEAD; the refs are in the common dir). Only files that
    // exist: cargo reruns the script on every build for a missing one.
    let common = git(&["rev-parse", "--git-common-dir"]);
    let mut watched = Vec::new();
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        watched.push(PathBuf::from(dir).join("HEAD"));
    }
    if let Some(dir) = &common {
        watched.push(PathBuf::from(dir).join("packed-refs"));
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(PathBuf::from(dir).join(branch));
        }
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(commit)
}
