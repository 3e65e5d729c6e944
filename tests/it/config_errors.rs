//! Every config error of SPEC section 3, through the real binary: exit 78
//! and `file:line:column: message` naming the line.

use std::path::Path;

const VALID: &str = r#"[travtus]
base_url = "https://api.travtus.com"
token = "static-token-value"

[ledger]
path = "ledger.db"

[[source]]
name = "a"
kind = "google_business_profile"
schedule = "0 */15 * * * *"
client_id = "cid"
client_secret = "csecret"
refresh_token = "rtoken"

  [[source.location]]
  id = "accounts/1/locations/1"
  group_external_ref = "portfolio-1"
"#;

async fn check(dir: &Path, text: &str) -> (i32, String) {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
        .args(["--config"])
        .arg(&path)
        .arg("check")
        .output()
        .await
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn every_config_error_exits_78_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stderr) = check(dir.path(), VALID).await;
    assert_eq!(code, 0, "the valid base config passes: {stderr}");
    let file = dir.path().join("config.toml").display().to_string();

    // (what is wrong, the edited config, the lines the error may name: the
    // offending key, or for a location-wide rule any line of that location)
    let cases: Vec<(&str, String, std::ops::RangeInclusive<usize>)> = vec![
        (
            "unknown key",
            VALID.replace("schedule =", "shedule ="),
            11..=11,
        ),
        (
            "both group keys",
            VALID.replace(
                "group_external_ref = \"portfolio-1\"",
                "group_external_ref = \"p\"\n  group_id = \"g\"",
            ),
            16..=19,
        ),
        (
            "no group key",
            VALID.replace("  group_external_ref = \"portfolio-1\"\n", ""),
            16..=17,
        ),
        (
            "duplicate source name",
            format!(
                "{VALID}\n[[source]]\nname = \"a\"\nkind = \"file\"\nschedule = \"0 * * * * *\"\n  [[source.location]]\n  id = \"x.jsonl\"\n  group_id = \"g\"\n"
            ),
            21..=21,
        ),
        (
            "duplicate location id",
            format!(
                "{VALID}\n  [[source.location]]\n  id = \"accounts/1/locations/1\"\n  group_id = \"g\"\n"
            ),
            21..=21,
        ),
        (
            "bad cron",
            VALID.replace("0 */15 * * * *", "every fifteen minutes"),
            11..=11,
        ),
        (
            "cron without seconds",
            VALID.replace("0 */15 * * * *", "*/15 * * * *"),
            11..=11,
        ),
        (
            "bad duration",
            VALID.replace(
                "token = \"static-token-value\"",
                "token = \"t\"\ntimeout = \"soon\"",
            ),
            4..=4,
        ),
        (
            "unreadable secret",
            VALID.replace("\"csecret\"", "{ file = \"/nonexistent/secret\" }"),
            13..=13,
        ),
        (
            "unset env secret",
            VALID.replace(
                "\"csecret\"",
                "{ env = \"REVIEW_SYNC_TEST_UNSET_VARIABLE\" }",
            ),
            13..=13,
        ),
        (
            "plain http to a remote host",
            VALID.replace("https://api.travtus.com", "http://api.travtus.com"),
            2..=2,
        ),
        (
            "unknown kind",
            VALID.replace("google_business_profile", "tripadvisor"),
            10..=10,
        ),
        (
            "zero concurrency",
            VALID.replace(
                "token = \"static-token-value\"",
                "token = \"t\"\nconcurrency = 0",
            ),
            4..=4,
        ),
        (
            "zero requests_per_minute",
            VALID.replace(
                "refresh_token = \"rtoken\"",
                "refresh_token = \"rtoken\"\nrequests_per_minute = 0",
            ),
            15..=15,
        ),
        (
            "TOML syntax",
            VALID.replace("name = \"a\"", "name = \"a"),
            9..=9,
        ),
    ];
    for (what, text, lines) in cases {
        let (code, stderr) = check(dir.path(), &text).await;
        assert_eq!(code, 78, "{what}: exit 78 expected, stderr:\n{stderr}");
        let named = stderr.lines().any(|l| {
            lines
                .clone()
                .any(|line| l.starts_with(&format!("{file}:{line}:")))
        });
        assert!(
            named,
            "{what}: no problem at {file}:{lines:?} in:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn several_problems_are_reported_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = VALID
        .replace("schedule = \"0 */15 * * * *\"", "schedule = \"nope\"")
        .replace("  group_external_ref = \"portfolio-1\"\n", "");
    let (code, stderr) = check(dir.path(), &text).await;
    assert_eq!(code, 78);
    let problems = stderr
        .lines()
        .filter(|l| l.contains("config.toml:"))
        .count();
    assert!(problems >= 2, "both problems listed:\n{stderr}");
}

#[tokio::test]
async fn the_example_config_is_valid() {
    let example = include_str!("../../config.example.toml");
    assert!(example.contains("[[source.location]]"));
}
