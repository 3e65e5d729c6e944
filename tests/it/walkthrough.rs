//! The README's procedures, run as written (issue 13, "Done when"): the
//! operators' and admins' Quick start, the auditors' commands, the
//! "Auditing" queries, backups and a restore, retention, on an install laid
//! out as `/etc/review-sync` + `/var/lib/review-sync` under a temporary root
//! that stands in for `/`.
//!
//! The commands are read from README.md's fenced `sh` blocks under their
//! headings and run with `sh -c`, with only the root substituted
//! (`/etc/review-sync/...` becomes `ROOT/etc/review-sync/...`, and the
//! default `--config` is the rooted `/etc/review-sync/config.toml`, through
//! `$REVIEW_SYNC_CONFIG`). Every line of those blocks must be one the walk
//! knows, so a README change that breaks a procedure breaks this test;
//! commands given inline in the README's prose are quoted in `QUOTED` and
//! checked to be still there word for word.
//!
//! systemd is simulated from the installed unit file itself: `ExecStart=`
//! and `ExecReload=` are run as written (rooted), each `LoadCredential=` is
//! copied into a credentials directory (a listed file that is missing stops
//! the start, as systemd does), `StateDirectory=`/`StateDirectoryMode=`,
//! `UMask=`, `WatchdogSec=`, `$NOTIFY_SOCKET`, an environment with nothing
//! but those and `PATH`, and `/` as the working directory. The daemon's
//! stderr is the journal.
//!
//! The sandbox stands in for Travtus and every platform. The example config
//! is installed as shipped and then edited as an operator trying it against
//! `review-sync sandbox` would (see `point_at_sandbox`): its URLs, OAuth
//! client ids, location ids and one group id become the sandbox's, its paths
//! are rooted, `/metrics` listens on a free port, and the file source is
//! polled every 2 s so the daemon polls while the test watches; the admin
//! then maps the import to `portfolio-typo`, the slip the held-review
//! procedure repairs. Every other line stays as shipped: schedules, request
//! budgets, timeouts, the secrets' forms, the Google account to discover,
//! the other group references.
//!
//! Two more tests put the daemon where only the unit puts it, in a private
//! mount namespace (`unshare -m`; skipped where that is refused): stderr as
//! the journal stream, with `/run/systemd/journal/socket` a socket the test
//! reads ("Logs"); and `/proc` mounted as `ProcSubset=pid` makes it (every
//! promised metric still exported).

use crate::helpers::text;
use crate::monitoring::{get, sample, which};
use sandbox::{
    FacebookEmulator, FacebookSeed, GoogleSeed, NewGoogleReview, Sandbox, SandboxOptions,
    TrustpilotSeed,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::net::UnixDatagram;

const WAIT: Duration = Duration::from_secs(60);

/// The paths the README names that live under the root (everything else,
/// such as `/bin/kill` or `/usr/bin/env`, is the host's).
const ROOTED: [&str; 6] = [
    "/etc/review-sync",
    "/etc/systemd/system",
    "/usr/bin/review-sync",
    "/usr/share/man/man1",
    "/var/lib/review-sync",
    "/var/backups/review-sync",
];

/// Commands the README gives inline (in prose or bullets, not in a
/// block), run here as written.
const SYNC_FROM_A_SHELL: &str =
    "CREDENTIALS_DIRECTORY=/etc/review-sync/credentials review-sync sync";
const SHOW: &str = "review-sync ledger show google <review_id>";
const PURGE: &str = "review-sync ledger purge --before 2026-01-01";
const RESEND: &str = "ledger resend PLATFORM REVIEW_ID";
const SQLITE3: &str = "sqlite3 -readonly /var/lib/review-sync/ledger.db";

/// What the README says in prose that the walk relies on (the commands
/// above included): each must still be in README.md word for word.
const QUOTED: [&str; 9] = [
    SYNC_FROM_A_SHELL,
    SHOW,
    PURGE,
    RESEND,
    SQLITE3,
    "`check --online` fetches every token and lists every",
    "(`serving /metrics and /healthz listen=...`)",
    "`/healthz` answers `200 ok`",
    "held or rejected reviews of the synced sources left from an earlier pass",
];

/// The group the admin meant, and the slip they made.
const GROUP: &str = "portfolio-123";
const TYPO: &str = "portfolio-typo";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("README.md")
}

/// The text under `heading` (a whole line, e.g. `### Operators`), up to the
/// next heading of the same or a higher level outside a fenced block.
fn section(readme: &str, heading: &str) -> String {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no {heading:?} heading"));
    let body = &readme[start + heading.len() + 2..];
    let mut end = 0;
    let mut fenced = false;
    for line in body.split_inclusive('\n') {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            let hashes = line.chars().take_while(|c| *c == '#').count();
            if hashes <= level && line[hashes..].starts_with(' ') {
                break;
            }
        }
        end += line.len();
    }
    body[..end].to_owned()
}

/// Each fenced block of `lang` in `section`, as its lines.
fn blocks(section: &str, lang: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in section.lines() {
        match (&mut current, line.trim()) {
            (None, l) if l == format!("```{lang}") => current = Some(Vec::new()),
            (Some(_), "```") => out.extend(current.take()),
            (Some(lines), _) => lines.push(line.to_owned()),
            (None, _) => {}
        }
    }
    out
}

/// The commands of the `sh` blocks under `heading`: trailing comments
/// (`  # ...`) and comment-only lines dropped.
fn commands(readme: &str, heading: &str) -> Vec<String> {
    let found: Vec<String> = blocks(&section(readme, heading), "sh")
        .concat()
        .into_iter()
        .map(|l| match l.find(" #") {
            Some(i) => l[..i].trim().to_owned(),
            None => l.trim().to_owned(),
        })
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(!found.is_empty(), "no commands under {heading:?}");
    found
}

/// The statements of the `sql` blocks under `heading`.
fn statements(readme: &str, heading: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in blocks(&section(readme, heading), "sql").concat() {
        let l = line.trim();
        if l.is_empty() || l.starts_with("--") {
            continue;
        }
        current.push_str(&line);
        current.push('\n');
        if l.ends_with(';') {
            out.push(std::mem::take(&mut current));
        }
    }
    assert!(
        current.trim().is_empty(),
        "unterminated statement: {current}"
    );
    out
}

/// `line` with the output's exit status, stdout and stderr, for failures.
fn shown(line: &str, out: &Output) -> String {
    let (stdout, stderr) = text(out);
    format!(
        "`{line}` exited {:?}\n{stdout}\n{stderr}",
        out.status.code()
    )
}

/// A review the sandbox's Google emulator serves.
fn google_review(comment: &str) -> NewGoogleReview {
    NewGoogleReview {
        star_rating: Some(4),
        comment: Some(comment.into()),
        display_name: "Resident".into(),
        is_anonymous: false,
    }
}

/// A `review-sync run` started as systemd would start the installed unit.
struct Unit {
    child: tokio::process::Child,
    notify: UnixDatagram,
    exec_reload: String,
}

/// The install: a root standing in for `/`, the sandbox, the unit when started.
struct Walk {
    sb: Sandbox,
    dir: tempfile::TempDir,
    /// `ROOT/usr/bin` first, then the host's.
    path: String,
    unit: Option<Unit>,
    /// Where the daemon's stderr goes: the journal of `review-sync.service`.
    journal: PathBuf,
    /// The sandbox's id of the group the example names by `group_id`.
    group_id: String,
    /// Where the journal of the running unit starts.
    since_start: usize,
}

impl Walk {
    async fn new() -> Walk {
        let sb = Sandbox::start(SandboxOptions {
            // The example's account, accounts/123, is added below.
            google: GoogleSeed {
                accounts: 1,
                locations_per_account: 0,
                reviews_per_location: 0,
            },
            facebook: FacebookSeed {
                pages: 2,
                recommendations_per_page: 4,
                legacy_ratings_per_page: 1,
                page_size: 25,
            },
            trustpilot: TrustpilotSeed {
                business_units: 1,
                reviews_per_unit: 5,
            },
            ..SandboxOptions::default()
        })
        .await
        .expect("sandbox starts");
        // What the example maps to exists at the sandbox's Travtus and Google.
        sb.travtus().add_group(GROUP, true);
        let group_id = sb.travtus().add_group("acme-hq", true).id;
        for _ in 0..2 {
            let location = sb.google().add_location("accounts/123");
            for n in 0..3 {
                sb.google()
                    .add_review(&location, google_review(&format!("review {n}")));
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        for d in [
            "usr/bin",
            "etc/systemd/system",
            "usr/share/man/man1",
            "var/lib",
            "run",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let path = format!(
            "{}:{}",
            dir.path().join("usr/bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let journal = dir.path().join("run/journal.log");
        Walk {
            sb,
            dir,
            path,
            unit: None,
            journal,
            group_id,
            since_start: 0,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `text` with the README's absolute paths moved under the root.
    fn rooted(&self, text: &str) -> String {
        let root = self.root().display().to_string();
        ROOTED
            .iter()
            .fold(text.to_owned(), |t, p| t.replace(p, &format!("{root}{p}")))
    }

    fn config(&self) -> PathBuf {
        self.root().join("etc/review-sync/config.toml")
    }

    fn state(&self) -> PathBuf {
        self.root().join("var/lib/review-sync")
    }

    fn ledger(&self) -> PathBuf {
        self.state().join("ledger.db")
    }

    /// Runs a README line with `sh -c`, rooted, from the checkout (where
    /// `config.example.toml` and `systemd/` are), as root at a shell would.
    async fn sh(&self, line: &str, env: &[(&str, &str)]) -> Output {
        let rooted = self.rooted(line);
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(&rooted)
            .current_dir(repo())
            .env("PATH", &self.path)
            .env(
                "REVIEW_SYNC_CONFIG",
                self.rooted("/etc/review-sync/config.toml"),
            )
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .env_remove("EDITOR")
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().await.expect("sh runs")
    }

    /// [`Walk::sh`], which must succeed.
    async fn ok(&self, line: &str) -> Output {
        let out = self.sh(line, &[]).await;
        assert!(out.status.success(), "{}", shown(line, &out));
        out
    }

    fn journal(&self) -> String {
        std::fs::read_to_string(&self.journal).unwrap_or_default()
    }

    /// Waits until the journal, from byte `from` on, has a line containing
    /// every one of `needles`.
    async fn journal_has(&self, from: usize, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let journal = self.journal();
            if let Some(line) = journal
                .get(from..)
                .unwrap_or_default()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return line.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no journal line with {needles:?}:\n{journal}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The active `KEY=` values of the installed unit.
    fn unit_values(&self, key: &str) -> Vec<String> {
        let unit =
            std::fs::read_to_string(self.root().join("etc/systemd/system/review-sync.service"))
                .expect("the unit is installed");
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    }

    fn unit_value(&self, key: &str) -> String {
        let values = self.unit_values(key);
        assert_eq!(values.len(), 1, "one {key}= in the unit: {values:?}");
        values[0].clone()
    }

    /// `systemctl start review-sync`, from the installed unit; returns at
    /// READY=1.
    async fn start(&mut self) {
        assert!(self.unit.is_none(), "started twice");
        // LoadCredential=NAME:PATH: systemd copies each file, as root, to a
        // directory only the service reads; a missing one fails the start.
        let credentials = self.root().join("run/credentials/review-sync.service");
        let _ = std::fs::remove_dir_all(&credentials);
        std::fs::create_dir_all(&credentials).expect("mkdir");
        for entry in self.unit_values("LoadCredential") {
            let (name, source) = entry.split_once(':').expect("NAME:PATH");
            let source = self.rooted(source);
            let target = credentials.join(name);
            std::fs::copy(&source, &target).unwrap_or_else(|e| {
                panic!("systemd would not start the unit: LoadCredential={entry}: {source}: {e}")
            });
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o400))
                .expect("chmod");
        }
        // StateDirectory=review-sync with StateDirectoryMode=.
        let state = self
            .root()
            .join("var/lib")
            .join(self.unit_value("StateDirectory"));
        std::fs::create_dir_all(&state).expect("state directory");
        let mode = u32::from_str_radix(&self.unit_value("StateDirectoryMode"), 8).expect("mode");
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let watchdog: u64 = self
            .unit_value("WatchdogSec")
            .parse()
            .expect("WatchdogSec in seconds");
        let socket = self.root().join("run/notify.sock");
        let _ = std::fs::remove_file(&socket);
        let notify = UnixDatagram::bind(&socket).expect("notify socket");
        let journal = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.journal)
            .expect("journal");
        self.since_start = self.journal().len();
        let exec_start = self.rooted(&self.unit_value("ExecStart"));
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {}; exec {exec_start}",
                self.unit_value("UMask")
            ))
            .current_dir("/")
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("CREDENTIALS_DIRECTORY", &credentials)
            .env("STATE_DIRECTORY", &state)
            .env("NOTIFY_SOCKET", &socket)
            .env("WATCHDOG_USEC", (watchdog * 1_000_000).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::from(journal))
            .kill_on_drop(true)
            .spawn()
            .expect("the daemon starts");
        let unit = Unit {
            child,
            notify,
            exec_reload: self.unit_value("ExecReload"),
        };
        self.unit = Some(unit);
        let seen = self.notified("READY=1").await;
        assert!(
            !seen.iter().any(|m| m.contains("STOPPING=1")),
            "{seen:?}\n{}",
            self.journal()
        );
    }

    /// Waits for the notification `state`; every message up to it.
    async fn notified(&self, state: &str) -> Vec<String> {
        let unit = self.unit.as_ref().expect("started");
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match tokio::time::timeout(WAIT, unit.notify.recv(&mut buf)).await {
                Ok(r) => r.expect("recv"),
                Err(_) => panic!("no {state} from the daemon: {seen:?}\n{}", self.journal()),
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.lines().any(|l| l == state);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }

    /// `systemctl reload review-sync`: the unit's ExecReload= with
    /// `$MAINPID`; returns at the READY=1 that ends the reload.
    async fn reload(&self) {
        let unit = self.unit.as_ref().expect("started");
        let pid = unit.child.id().expect("running").to_string();
        let out = self.sh(&unit.exec_reload, &[("MAINPID", &pid)]).await;
        assert!(out.status.success(), "{}", shown(&unit.exec_reload, &out));
        let seen = self.notified("READY=1").await;
        assert!(seen.iter().any(|m| m.contains("RELOADING=1")), "{seen:?}");
    }

    /// `systemctl stop review-sync`: SIGTERM (systemd's default
    /// KillSignal=), then at most TimeoutStopSec= for a clean exit.
    async fn stop(&mut self) {
        let timeout: u64 = self
            .unit_value("TimeoutStopSec")
            .parse()
            .expect("TimeoutStopSec in seconds");
        let pid = self
            .unit
            .as_ref()
            .expect("started")
            .child
            .id()
            .expect("running")
            .to_string();
        let sent = std::process::Command::new("kill")
            .args(["-s", "TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        self.notified("STOPPING=1").await;
        let mut unit = self.unit.take().expect("started");
        let status = tokio::time::timeout(Duration::from_secs(timeout), unit.child.wait())
            .await
            .expect("stops within TimeoutStopSec")
            .expect("wait");
        assert!(
            status.success(),
            "clean stop: {status:?}\n{}",
            self.journal()
        );
    }

    /// `http://ADDR` of `/metrics` and `/healthz`, as the journal says.
    async fn endpoint(&self) -> String {
        let line = self
            .journal_has(
                self.since_start,
                &["serving /metrics and /healthz", "listen="],
            )
            .await;
        let addr = line
            .split("listen=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("an address");
        format!("http://{addr}")
    }

    /// `SELECT` on the ledger, read-only, while the daemon runs.
    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let conn = rusqlite::Connection::open_with_flags(
            self.ledger(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open read-only");
        let mut st = conn.prepare(sql).expect("prepare");
        let columns = st.column_count();
        st.query_map([], |r| {
            (0..columns)
                .map(|c| {
                    r.get::<_, rusqlite::types::Value>(c).map(|v| match v {
                        rusqlite::types::Value::Text(s) => s,
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        other => format!("{other:?}"),
                    })
                })
                .collect()
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
    }

    fn count(&self, sql: &str) -> i64 {
        self.query(sql)[0][0].parse().expect("a count")
    }
}

/// The example config as an operator points it at the sandbox: each value
/// that names a host, an OAuth client, a location, a group id or a path
/// becomes the sandbox's (or is rooted); anything else that looks like one
/// and is not in the tables fails the test, so the walk keeps up with the
/// example. Every other line is kept as shipped.
fn point_at_sandbox(example: &str, walk: &Walk) -> String {
    let sb = &walk.sb;
    let urls = [
        ("https://api.travtus.com", sb.travtus_base_url()),
        (
            "https://api.travtus.com/oauth2/token",
            sb.travtus_token_url(),
        ),
        ("https://mybusiness.googleapis.com", sb.google_base_url()),
        ("https://oauth2.googleapis.com/token", sb.google_token_url()),
        (
            "https://mybusinessbusinessinformation.googleapis.com",
            sb.google_business_info_base_url(),
        ),
        ("https://places.googleapis.com", sb.places_base_url()),
        ("https://api.yelp.com", sb.yelp_base_url()),
        ("https://graph.facebook.com", sb.facebook_base_url()),
        ("https://api.trustpilot.com", sb.trustpilot_base_url()),
        (
            "https://api.trustpilot.com/v1/oauth/oauth-business-users-for-applications/accesstoken",
            sb.trustpilot_token_url(),
        ),
    ];
    let google = sb.google().locations();
    let google: Vec<&String> = google
        .iter()
        .filter(|l| l.starts_with("accounts/123/"))
        .collect();
    let pages = sb.facebook().page_ids();
    let values = [
        ("review-sync-acme", sandbox::TRAVTUS_CLIENT_ID.to_owned()),
        (
            "1234567890-acme.apps.googleusercontent.com",
            sandbox::GOOGLE_CLIENT_ID.to_owned(),
        ),
        ("accounts/123/locations/456", google[0].clone()),
        ("accounts/123/locations/789", google[1].clone()),
        (
            "ChIJN1t_tDeuEmsRUsoyG83frY4",
            sb.places().place_ids()[0].clone(),
        ),
        (
            "gary-danko-san-francisco",
            sb.yelp().business_aliases()[0].clone(),
        ),
        ("123456789012345", pages[0].clone()),
        ("123456789012346", pages[1].clone()),
        (
            "46d6a890000064000500e0c3",
            sb.trustpilot().business_unit_ids()[0].clone(),
        ),
        (
            "8f14e45f-ea3b-4c7e-9d3a-1f0e2b3c4d5e",
            walk.group_id.clone(),
        ),
        // Tests run side by side: any free port.
        ("127.0.0.1:9187", "127.0.0.1:0".to_owned()),
    ];
    let mut out = String::new();
    for line in example.lines() {
        // Only `key = "string"` lines: secrets (`{ credential = .. }`),
        // numbers, arrays and comments are kept.
        let string = line
            .split_once(" = \"")
            .filter(|(key, rest)| !key.contains('#') && !key.contains('{') && rest.ends_with('"'))
            .filter(|(key, _)| !key.trim_start().starts_with('#'));
        let edited = if let Some((key, value)) = string {
            let value = &value[..value.len() - 1];
            let key_name = key.trim();
            let new = if value.starts_with("https://") || value.starts_with("http://") {
                urls.iter()
                    .find(|(from, _)| *from == value)
                    .map(|(_, to)| to.clone())
                    .unwrap_or_else(|| panic!("a URL the walk does not know: {line}"))
            } else if let Some((_, to)) = values.iter().find(|(from, _)| *from == value) {
                to.clone()
            } else if value.starts_with('/') {
                walk.rooted(value)
            } else {
                assert!(
                    !["id", "client_id", "group_id", "listen", "path"].contains(&key_name),
                    "a {key_name} the walk does not know: {line}"
                );
                value.to_owned()
            };
            format!("{key} = \"{new}\"")
        } else {
            line.to_owned()
        };
        out.push_str(&edited);
        out.push('\n');
    }
    out
}

/// Replaces the first `old` line after the line `anchor`; both must exist.
fn edit_after(text: &str, anchor: &str, old: &str, new: &str) -> String {
    let at = text
        .find(anchor)
        .unwrap_or_else(|| panic!("no {anchor:?} in the config"));
    let offset = text[at..]
        .find(old)
        .unwrap_or_else(|| panic!("no {old:?} after {anchor:?}"));
    let mut out = text.to_owned();
    out.replace_range(at + offset..at + offset + old.len(), new);
    out
}

/// The secret each credential name of the example holds at the sandbox.
fn credential_value(name: &str, walk: &Walk) -> String {
    match name {
        "travtus_client_secret" => sandbox::TRAVTUS_CLIENT_SECRET.to_owned(),
        "google_client_secret" => sandbox::GOOGLE_CLIENT_SECRET.to_owned(),
        "google_refresh_token" => sandbox::GOOGLE_REFRESH_TOKEN.to_owned(),
        "google_places_api_key" => sandbox::PLACES_API_KEY.to_owned(),
        "yelp_api_key" => sandbox::YELP_API_KEY.to_owned(),
        "facebook_page_token" => sandbox::FACEBOOK_ACCESS_TOKEN.to_owned(),
        // The example's second Page has its own token.
        "facebook_page_token_789" => {
            FacebookEmulator::page_token(&walk.sb.facebook().page_ids()[1])
        }
        "trustpilot_api_key" => sandbox::TRUSTPILOT_API_KEY.to_owned(),
        "trustpilot_api_secret" => sandbox::TRUSTPILOT_API_SECRET.to_owned(),
        "trustpilot_username" => sandbox::TRUSTPILOT_USERNAME.to_owned(),
        "trustpilot_password" => sandbox::TRUSTPILOT_PASSWORD.to_owned(),
        other => panic!("a credential the walk does not know: {other}"),
    }
}

/// The `{ credential = "NAME" }` names of a config.
fn credential_names(config: &str) -> Vec<String> {
    config
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once("{ credential = \"").map(|(_, r)| r))
        .filter_map(|r| r.split_once('"').map(|(name, _)| name.to_owned()))
        .collect()
}

/// The import the example's file source reads: two rows.
const IMPORT_IDS: [&str; 2] = ["walk-import-1", "walk-import-2"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_procedures_run_as_written_on_an_etc_and_var_lib_install() {
    let readme = readme();
    for line in QUOTED {
        assert!(readme.contains(line), "README.md no longer says {line:?}");
    }
    let mut walk = Walk::new().await;
    let secrets = operators(&mut walk, &readme).await;
    operators_bullets(&walk).await;
    admins(&walk, &readme).await;
    auditors(&walk, &readme).await;
    auditing(&walk, &readme).await;
    retention_and_backups(&mut walk, &readme).await;
    walk.stop().await;

    // The journal: one summary line per pass and source, and no secret.
    let journal = walk.journal();
    let passes: Vec<&str> = journal
        .lines()
        .filter(|l| l.contains("poll pass finished"))
        .collect();
    assert!(!passes.is_empty(), "{journal}");
    for line in passes {
        assert_eq!(line.matches(" source=").count(), 1, "{line}");
    }
    for secret in &secrets {
        assert!(
            !journal.contains(secret.as_str()),
            "a secret in the journal"
        );
    }
}

/// README "Quick start" > "Operators": the block, line by line. Returns the
/// secrets written, so the journal can be checked for them.
async fn operators(walk: &mut Walk, readme: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    for line in commands(readme, "### Operators") {
        match line.as_str() {
            // The test's binary is that build: it is what gets installed.
            "cargo build --release --locked" => {}
            "install -m 0755 target/release/review-sync /usr/bin/review-sync" => {
                std::os::unix::fs::symlink(
                    env!("CARGO_BIN_EXE_review-sync"),
                    walk.root().join("usr/bin/review-sync"),
                )
                .expect("symlink");
            }
            l if l.starts_with("install ") => {
                walk.ok(l).await;
                if l.contains("docs/man/") {
                    man_page(walk).await;
                }
            }
            l if l.starts_with("review-sync ") && l.contains(" check ") => {
                secrets = check(walk, l).await;
            }
            "systemctl daemon-reload && systemctl enable --now review-sync" => {
                walk.start().await;
                let mode = std::fs::metadata(walk.ledger())
                    .expect("the daemon created the ledger")
                    .permissions()
                    .mode();
                assert_eq!(
                    mode & 0o077,
                    0,
                    "UMask=0077: the ledger is private: {mode:o}"
                );
            }
            "journalctl -u review-sync -f" => {
                // The daemon polls the import every 2 s from `/`: the glob
                // starts at the config's folder, so it finds both rows, which
                // go to the mistyped group and are held.
                walk.journal_has(
                    walk.since_start,
                    &["poll pass finished", "source=acme-imports", "new=2"],
                )
                .await;
                held_by_the_daemon(walk).await;
            }
            "systemctl reload review-sync" => reloads(walk).await,
            other => panic!("README Operators: a line the walkthrough does not know: {other}"),
        }
    }
    assert!(walk.unit.is_some(), "the Quick start starts the service");
    secrets
}

/// `man review-sync` from the installed pages, where `man` is installed.
async fn man_page(walk: &Walk) {
    if which("man").is_none() {
        eprintln!("SKIPPED: man is not installed; the pages are only copied");
        return;
    }
    let out = walk
        .sh(
            "man -P cat review-sync",
            &[(
                "MANPATH",
                &walk.root().join("usr/share/man").display().to_string(),
            )],
        )
        .await;
    assert!(out.status.success(), "{}", shown("man review-sync", &out));
    assert!(
        text(&out).0.contains("review-sync-ledger"),
        "{}",
        text(&out).0
    );
}

/// The Quick start's `check` line: refused (78, file:line:col) as
/// installed and without credentials; then the operator's edits, the
/// credentials, and the same line again, now ok; `check --online` too.
async fn check(walk: &Walk, line: &str) -> Vec<String> {
    let out = walk.sh(line, &[]).await;
    assert_eq!(out.status.code(), Some(78), "{}", shown(line, &out));
    let config = walk.config().display().to_string();
    let stderr = text(&out).1;
    let problems: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&config)).collect();
    assert!(!problems.is_empty(), "{}", shown(line, &out));
    for p in &problems {
        let rest = &p[config.len()..];
        let mut parts = rest.splitn(4, ':');
        assert_eq!(parts.next(), Some(""), "{p}");
        let line_no = parts.next().and_then(|n| n.parse::<u32>().ok());
        let col = parts.next().and_then(|n| n.parse::<u32>().ok());
        assert!(line_no.is_some() && col.is_some(), "file:line:col: {p}");
    }

    // The operator points the example at the sandbox; the admin maps the
    // import, and slips.
    let example = std::fs::read_to_string(walk.config()).expect("installed config");
    assert_eq!(
        example,
        std::fs::read_to_string(repo().join("config.example.toml")).expect("example"),
        "installed as shipped"
    );
    let mut config_text = point_at_sandbox(&example, walk);
    config_text = edit_after(
        &config_text,
        "name = \"acme-imports\"",
        "schedule = \"0 0 * * * *\"",
        "schedule = \"*/2 * * * * *\"",
    );
    let import = walk.rooted("/var/lib/review-sync/import/acme-*.jsonl");
    config_text = edit_after(
        &config_text,
        &format!("id = \"{import}\""),
        &format!("group_external_ref = \"{GROUP}\""),
        &format!("group_external_ref = \"{TYPO}\""),
    );
    std::fs::write(walk.config(), &config_text).expect("edit the config");

    // One file per secret, mode 0600, where LoadCredential= reads them.
    let mut secrets = Vec::new();
    for name in credential_names(&config_text) {
        let value = credential_value(&name, walk);
        let path = walk.root().join("etc/review-sync/credentials").join(&name);
        std::fs::write(&path, format!("{value}\n")).expect("write credential");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        secrets.push(value);
    }
    let out = walk.sh(line, &[]).await;
    assert!(out.status.success(), "{}", shown(line, &out));
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains(": ok: 6 source(s), 8 location(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("acme-imports") && stdout.contains("0 file(s)"),
        "{stdout}"
    );
    assert!(
        !stderr.contains("warn"),
        "no warning on this install: {stderr}"
    );

    let online = line.replace(" check ", " check --online ");
    let out = walk.sh(&online, &[]).await;
    assert!(out.status.success(), "{}", shown(&online, &out));
    let stdout = text(&out).0;
    assert!(stdout.contains("travtus: token ok"), "{stdout}");
    assert!(
        stdout.contains("discovered 2 location(s) in 1 account(s)"),
        "{stdout}"
    );
    for secret in &secrets {
        assert!(!stdout.contains(secret.as_str()) && !text(&out).1.contains(secret.as_str()));
    }
    // The admin drops a first export where the file source reads.
    let import_dir = walk.state().join("import");
    std::fs::create_dir_all(&import_dir).expect("mkdir");
    let rows: String = IMPORT_IDS
        .iter()
        .map(|id| {
            format!(
                "{{\"review_id\":\"{id}\",\"created_datetime\":\"2026-11-30T12:00:00Z\",\"rating\":5,\"comment\":\"Quiet and clean\",\"display_name\":\"A resident\"}}\n"
            )
        })
        .collect();
    std::fs::write(import_dir.join("acme-2026-11.jsonl"), rows).expect("import");

    secrets
}

/// The daemon's first polls of the import: both rows held (group_not_found).
async fn held_by_the_daemon(walk: &Walk) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while walk.count("SELECT COUNT(*) FROM reviews WHERE status = 'held'") < 2 {
        assert!(tokio::time::Instant::now() < deadline, "{}", walk.journal());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = walk.endpoint().await;
    let (status, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(
        (status, body.trim()),
        (200, "ok"),
        "healthy: a mapping is no outage"
    );
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(
            &metrics,
            "review_sync_ledger_reviews",
            &[("status", "held")]
        ),
        Some(2.0),
        "{metrics}"
    );
    assert!(metrics.contains("review_sync_build_info{"), "{metrics}");
    walk.journal_has(
        walk.since_start,
        &[
            "reviews not delivered",
            "outcome=\"held\"",
            TYPO,
            "reviews=2",
        ],
    )
    .await;
}

/// "systemctl reload review-sync  # SIGHUP: a bad new config is refused, the
/// old one kept": a good reload, a bad one, the good one back.
async fn reloads(walk: &Walk) {
    let mark = walk.journal().len();
    walk.reload().await;
    walk.journal_has(mark, &["config reloaded", "sources=6"])
        .await;
    let good = std::fs::read_to_string(walk.config()).expect("config");
    std::fs::write(
        walk.config(),
        good.replace("concurrency = 4", "concurrency = 0"),
    )
    .expect("a bad edit");
    let mark = walk.journal().len();
    walk.reload().await;
    walk.journal_has(mark, &["new config refused", "concurrency"])
        .await;
    let base = walk.endpoint().await;
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(&metrics, "review_sync_config_last_reload_successful", &[]),
        Some(0.0)
    );
    // The old config runs on: it still polls the import.
    let polls = walk.count("SELECT COUNT(*) FROM polls WHERE source_name = 'acme-imports'");
    let deadline = tokio::time::Instant::now() + WAIT;
    while walk.count("SELECT COUNT(*) FROM polls WHERE source_name = 'acme-imports'") <= polls {
        assert!(tokio::time::Instant::now() < deadline, "{}", walk.journal());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(walk.config(), good).expect("restore");
    walk.reload().await;
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(&metrics, "review_sync_config_last_reload_successful", &[]),
        Some(1.0)
    );
}

/// The bullets under the Operators block: `sync` from a shell, with the
/// unit's credentials, reads every source once and delivers. (The daemon
/// runs meanwhile on the example's schedules, so a quarter-hour may have
/// it read a source first: the ledger and Travtus are what is checked.)
async fn operators_bullets(walk: &Walk) {
    let line = SYNC_FROM_A_SHELL;
    let out = walk.sh(line, &[]).await;
    let (stdout, stderr) = text(&out);
    for source in [
        "acme-google",
        "acme-imports",
        "acme-places",
        "acme-yelp",
        "acme-facebook",
        "acme-trustpilot",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(source)),
            "{}",
            shown(line, &out)
        );
    }
    assert!(!stderr.contains("credentials directory"), "{stderr}");
    // 6 Google reviews, 5 places, 3 Yelp, 10 Facebook, 5 Trustpilot: each
    // delivered once. The held import is the admins' business.
    assert!(
        stdout.contains("; pending 0, held 2, rejected 0"),
        "{stdout}"
    );
    assert_eq!(walk.sb.travtus().message_count(), 29, "{stdout}\n{stderr}");
    assert_eq!(
        walk.count("SELECT COUNT(*) FROM reviews WHERE status = 'delivered'"),
        29
    );
    // Not everything is delivered: the held import needs a person.
    assert_eq!(out.status.code(), Some(1), "{}", shown(line, &out));
    assert!(
        stderr.contains(
            "not everything was delivered: 0 pending, 2 held, 0 rejected, 0 location(s) failed"
        ),
        "{stderr}"
    );
}

/// README "Admins: the mapping": the held-review procedure, line by line.
async fn admins(walk: &Walk, readme: &str) {
    let editor = walk.root().join("fix-mapping");
    std::fs::write(
        &editor,
        format!("#!/bin/sh\nsed -i 's/\"{TYPO}\"/\"{GROUP}\"/' \"$1\"\n"),
    )
    .expect("editor");
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let editor = editor.display().to_string();
    let travtus = walk.sb.travtus().clone();
    for line in commands(readme, "### Admins: the mapping") {
        match line.as_str() {
            "review-sync ledger list --status held" => {
                let stdout = text(&walk.ok(&line).await).0;
                for id in IMPORT_IDS {
                    let row = stdout
                        .lines()
                        .find(|l| l.contains(id))
                        .unwrap_or_else(|| panic!("{id} not listed: {stdout}"));
                    assert!(
                        row.contains(TYPO) && row.contains("group_not_found"),
                        "{row}"
                    );
                }
            }
            "$EDITOR /etc/review-sync/config.toml" => {
                let out = walk.sh(&line, &[("EDITOR", &editor)]).await;
                assert!(out.status.success(), "{}", shown(&line, &out));
                let config = std::fs::read_to_string(walk.config()).expect("config");
                assert!(!config.contains(TYPO), "the mapping is fixed");
            }
            "review-sync ledger retry --status held" => {
                let stdout = text(&walk.ok(&line).await).0;
                assert!(
                    stdout.contains("2 review(s) put back to pending"),
                    "{stdout}"
                );
            }
            "systemctl reload review-sync" => {
                walk.reload().await;
                let group = travtus.group_by_ref(GROUP).expect("group").id;
                wait_for("the held reviews to reach their group", || {
                    let sent: Vec<String> = travtus
                        .messages()
                        .iter()
                        .filter(|m| m.group_id == group)
                        .filter_map(|m| m.body["review"]["review_id"].as_str().map(str::to_owned))
                        .collect();
                    IMPORT_IDS.iter().all(|id| sent.iter().any(|s| s == id))
                })
                .await;
            }
            other => panic!("README Admins: a line the walkthrough does not know: {other}"),
        }
    }
    assert_eq!(
        walk.count("SELECT COUNT(*) FROM reviews WHERE status = 'held'"),
        0
    );
    let base = walk.endpoint().await;
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(
            &metrics,
            "review_sync_ledger_reviews",
            &[("status", "held")]
        ),
        Some(0.0)
    );
}

/// Waits (bounded) until `cond` holds.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `sqlite3 -readonly LEDGER SQL` (the CLI when installed, else the
/// same SQL through rusqlite): its rows, `|`-separated.
async fn sqlite3(walk: &Walk, sql: &str) -> Vec<String> {
    if which("sqlite3").is_some() {
        let out = tokio::process::Command::new("sqlite3")
            .arg("-readonly")
            .arg(walk.ledger())
            .arg(sql)
            .output()
            .await
            .expect("sqlite3 runs");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            shown(sql, &out)
        );
        text(&out).0.lines().map(str::to_owned).collect()
    } else {
        walk.query(sql).into_iter().map(|r| r.join("|")).collect()
    }
}

/// README "Auditors: the ledger": the block, line by line, while the
/// daemon runs.
async fn auditors(walk: &Walk, readme: &str) {
    let review_id = IMPORT_IDS[0];
    for line in commands(readme, "### Auditors: the ledger") {
        if let Some(rest) = line.strip_prefix("sqlite3 -readonly ") {
            let (path, sql) = rest
                .split_once(" \"")
                .expect("sqlite3 -readonly PATH \"SQL\"");
            assert_eq!(
                walk.rooted(path),
                walk.ledger().display().to_string(),
                "the ledger's path: {line}"
            );
            let rows = sqlite3(walk, sql.trim_end_matches('"')).await;
            assert!(rows.iter().any(|r| r.starts_with("delivered|")), "{rows:?}");
            continue;
        }
        assert!(
            line.starts_with("review-sync ledger "),
            "README Auditors: {line}"
        );
        let line = line.replace("<review_id>", review_id);
        let stdout = text(&walk.ok(&line).await).0;
        let args: Vec<&str> = line.split_whitespace().skip(2).collect();
        match args.as_slice() {
            ["stats"] => assert!(stdout.contains("held                0"), "{stdout}"),
            ["list", "--status", "held,pending", "--format", "csv"] => {
                assert!(stdout.starts_with("platform,review_id,"), "{stdout}");
            }
            ["show", id] => {
                assert_eq!(*id, review_id);
                // Both attempts: the 404 at the mistyped group, the delivery.
                assert!(stdout.contains("exact body sent"), "{stdout}");
                assert!(
                    stdout.contains(TYPO) && stdout.contains("group_not_found"),
                    "{stdout}"
                );
                assert!(stdout.contains(GROUP), "{stdout}");
            }
            ["export", "--format", "jsonl", "--since", _, "--until", _] => {
                for row in stdout.lines() {
                    serde_json::from_str::<serde_json::Value>(row).expect("JSON lines");
                }
            }
            [
                "export",
                "--table",
                "attempts",
                "--format",
                "csv",
                "--group",
                group,
            ] => {
                // "What was sent to portfolio-typo?": the two refusals.
                assert_eq!(*group, TYPO, "{line}");
                let rows: Vec<&str> = stdout.lines().skip(1).collect();
                assert_eq!(rows.len(), 2, "{stdout}");
                assert!(rows.iter().all(|r| r.contains("404")), "{stdout}");
            }
            ["quarantine"] | ["polls", "--errors"] => {}
            other => panic!("README Auditors: a command the walkthrough does not know: {other:?}"),
        }
    }
}

/// README "Auditing": every query through `sqlite3 -readonly` on the live
/// ledger, `ledger show google ID` (and `--format json`), `resend`.
async fn auditing(walk: &Walk, readme: &str) {
    assert_eq!(
        walk.rooted(SQLITE3),
        format!("sqlite3 -readonly {}", walk.ledger().display())
    );
    let queries = statements(readme, "## Auditing");
    assert_eq!(queries.len(), 10, "{queries:#?}");
    for sql in &queries {
        sqlite3(walk, sql).await;
    }
    let first = sqlite3(walk, &queries[0]).await;
    assert!(
        first.iter().any(|r| r.starts_with("delivered|")),
        "{first:?}"
    );

    let google_id = walk.query(
        "SELECT review_id FROM reviews WHERE source_name = 'acme-google' ORDER BY review_id LIMIT 1",
    )[0][0]
        .clone();
    let show = SHOW.replace("<review_id>", &google_id);
    let stdout = text(&walk.ok(&show).await).0;
    assert!(
        stdout.contains("exact body sent") && stdout.contains(&google_id),
        "{stdout}"
    );
    let json = text(&walk.ok(&format!("{show} --format json")).await).0;
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(value["review_id"], google_id.as_str(), "{json}");

    // Sending a delivered review again, on purpose.
    let resend = format!("review-sync {RESEND}")
        .replace("PLATFORM", "google")
        .replace("REVIEW_ID", &google_id);
    let travtus = walk.sb.travtus().clone();
    let sent = |id: &str| {
        travtus
            .messages()
            .iter()
            .filter(|m| m.body["review"]["review_id"] == id)
            .count()
    };
    assert_eq!(sent(&google_id), 1);
    let stdout = text(&walk.ok(&resend).await).0;
    assert!(stdout.contains("put back to pending"), "{stdout}");
    wait_for("the daemon to send it again", || sent(&google_id) == 2).await;
    let delivered_twice = format!(
        "SELECT COUNT(*) FROM attempts WHERE review_id = '{google_id}' AND outcome = 'delivered'"
    );
    wait_for("the ledger to record it", || {
        walk.count(&delivered_twice) == 2
    })
    .await;
}

/// README "Retention" and "Backups": a purge on demand, a backup while the
/// daemon runs, and a restore.
async fn retention_and_backups(walk: &mut Walk, readme: &str) {
    walk.ok(PURGE).await;
    assert_eq!(
        walk.count("SELECT COUNT(*) FROM purges WHERE purged_by = 'cli' AND rows_purged = 0"),
        1,
        "recorded, though nothing was delivered before 2026"
    );

    let date = text(&walk.ok("date +%F").await).0.trim().to_owned();
    let backup = walk.rooted("/var/backups/review-sync/").to_owned() + &format!("ledger-{date}.db");
    let mut restored = false;
    let mut counts = None;
    for line in commands(readme, "### Backups") {
        let line = line.replace("<date>", &date);
        match line.as_str() {
            l if l.starts_with("install -d ") => {
                walk.ok(l).await;
            }
            l if l.starts_with("review-sync ledger backup ") => {
                walk.ok(l).await;
                let mode = std::fs::metadata(&backup)
                    .expect("the backup")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{mode:o}");
            }
            "systemctl stop review-sync" => {
                walk.stop().await;
                assert!(
                    !walk.state().join("ledger.db-wal").exists(),
                    "a clean stop leaves no WAL"
                );
                // (A read-only look leaves an empty WAL and its index: the
                // restore's `rm -f` takes them away.)
                counts = Some((
                    walk.count("SELECT COUNT(*) FROM reviews"),
                    walk.count("SELECT COUNT(*) FROM attempts"),
                ));
                // What a restore is for: the ledger lost.
                std::fs::remove_file(walk.ledger()).expect("lose the ledger");
            }
            "systemctl start review-sync" => {
                walk.start().await;
                restored = true;
            }
            l if l.starts_with("cp ") || l.starts_with("rm ") || l.starts_with("chown ") => {
                assert!(walk.unit.is_none(), "restore with the service stopped: {l}");
                walk.ok(l).await;
            }
            other => panic!("README Backups: a line the walkthrough does not know: {other}"),
        }
    }
    assert!(
        restored,
        "README Backups: the restore starts the service again"
    );
    // Nothing happened between the backup and the stop (the example's
    // schedules aside, which this walk does not wait for): the restored
    // ledger is the one that was stopped.
    assert_eq!(
        Some((
            walk.count("SELECT COUNT(*) FROM reviews"),
            walk.count("SELECT COUNT(*) FROM attempts"),
        )),
        counts
    );
    let base = walk.endpoint().await;
    crate::monitoring::health_becomes(&base, 200, "ok").await;
}

/// The fields of each entry sent to the journal's native socket.
fn journal_entries(datagrams: &[Vec<u8>]) -> Vec<Vec<(String, String)>> {
    datagrams
        .iter()
        // tracing-journald probes the socket with an empty datagram.
        .filter(|d| !d.is_empty())
        .map(|d| {
            let mut fields = Vec::new();
            let mut rest = d.as_slice();
            while !rest.is_empty() {
                let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
                let head = String::from_utf8_lossy(&rest[..end]).into_owned();
                if let Some((name, value)) = head.split_once('=') {
                    fields.push((name.to_owned(), value.to_owned()));
                    rest = rest.get(end + 1..).unwrap_or_default();
                } else {
                    // NAME\n, a little-endian u64 length, the value, \n.
                    let len_at = end + 1;
                    let len =
                        u64::from_le_bytes(rest[len_at..len_at + 8].try_into().expect("8 bytes"))
                            as usize;
                    let value = &rest[len_at + 8..len_at + 8 + len];
                    fields.push((head, String::from_utf8_lossy(value).into_owned()));
                    rest = rest.get(len_at + 8 + len + 1..).unwrap_or_default();
                }
            }
            fields
        })
        .collect()
}

/// README "Logs": under systemd (stderr is the journal stream), entries go
/// to the journal with the fields its `journalctl` lines filter on. The
/// journal's socket is `/run/systemd/journal/socket`, a fixed path: the
/// binary runs in a private mount namespace whose `/run` is a temporary
/// folder where the test listens (skipped where `unshare` cannot do that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_gets_the_fields_the_readme_filters_on() {
    let env = crate::helpers::spawn_env(crate::helpers::seed(2)).await;
    let run = env.dir.path().join("run");
    std::fs::create_dir_all(run.join("systemd/journal")).expect("mkdir");
    let probe = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "mount", "--bind"])
        .arg(&run)
        .arg("/run")
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: unshare -m cannot bind a private /run here");
        return;
    }
    let socket = UnixDatagram::bind(run.join("systemd/journal/socket")).expect("journal socket");
    // systemd sets JOURNAL_STREAM to the device and inode of stderr.
    let stderr_path = env.dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr");
    let meta = std::fs::metadata(&stderr_path).expect("stat");
    let stream = {
        use std::os::unix::fs::MetadataExt;
        format!("{}:{}", meta.dev(), meta.ino())
    };
    let mut child = tokio::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" /run && exec \"$1\" --config \"$2\" sync")
        .arg(&run)
        .arg(env!("CARGO_BIN_EXE_review-sync"))
        .arg(&env.config_path)
        .env("JOURNAL_STREAM", &stream)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .expect("unshare runs");
    let mut datagrams = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let status = loop {
        tokio::select! {
            got = socket.recv(&mut buf) => {
                let n = got.expect("recv");
                datagrams.push(buf[..n].to_vec());
            }
            status = child.wait() => break status.expect("wait"),
        }
    };
    while let Ok(n) = socket.try_recv(&mut buf) {
        datagrams.push(buf[..n].to_vec());
    }
    let logged = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(status.success(), "{logged}");
    let entries = journal_entries(&datagrams);
    let field = |entry: &[(String, String)], name: &str| {
        entry
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert!(
        entries
            .iter()
            .any(|e| field(e, "MESSAGE").as_deref() == Some("poll pass finished")),
        "{entries:?}\nstderr: {logged}"
    );
    assert!(
        !logged.contains("poll pass finished"),
        "to the journal, not as text"
    );
    for entry in &entries {
        assert_eq!(
            field(entry, "SYSLOG_IDENTIFIER").as_deref(),
            Some("review-sync")
        );
        assert!(field(entry, "PRIORITY").is_some(), "{entry:?}");
    }
    let readme = readme();
    for line in commands(&readme, "### Logs") {
        let filter = line
            .strip_prefix("journalctl -u review-sync ")
            .unwrap_or_else(|| panic!("README Logs: a line the test does not know: {line}"));
        if filter == "-p warning" {
            continue; // PRIORITY, checked on every entry above
        }
        if filter == "-o json | jq -r .MESSAGE" {
            assert!(entries.iter().all(|e| field(e, "MESSAGE").is_some()));
            continue;
        }
        let (name, value) = filter
            .split_once('=')
            .unwrap_or_else(|| panic!("README Logs: {line}"));
        let matching = entries
            .iter()
            .filter(|e| field(e, name).as_deref() == Some(value))
            .count();
        assert!(
            matching > 0,
            "`{line}` selects nothing: the fields are {:?}",
            entries
                .iter()
                .flat_map(|e| e.iter().map(|(n, _)| n.clone()))
                .collect::<std::collections::BTreeSet<_>>()
        );
    }
}

/// The unit's `ProcSubset=pid` and `ProtectProc=invisible` give the daemon
/// a `/proc` with only processes in it (no `/proc/stat`, where the boot time
/// is): every series the daemon promises (`METRIC_NAMES`, the process ones
/// included) is still exported there. The daemon runs in a private mount
/// namespace with such a `/proc` (skipped where `unshare` cannot mount it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_units_proc_subset_every_promised_series_is_exported() {
    let mount = "mount -t proc -o subset=pid,hidepid=invisible proc /proc";
    let probe = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!("{mount} && test ! -e /proc/stat"))
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: unshare -m cannot mount a /proc with subset=pid here");
        return;
    }
    let env = crate::helpers::spawn_env(crate::helpers::seed(1)).await;
    let config = crate::monitoring::config_with_metrics(&env, "metrics.toml", "ledger.db");
    let log = env.dir.path().join("daemon.log");
    let started = chrono::Utc::now().timestamp();
    let mut child = tokio::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!("{mount} && exec \"$0\" --config \"$1\" run"))
        .arg(env!("CARGO_BIN_EXE_review-sync"))
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .kill_on_drop(true)
        .spawn()
        .expect("unshare runs");
    let deadline = tokio::time::Instant::now() + WAIT;
    let base = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find(|l| l.contains("serving /metrics and /healthz"))
            .and_then(|l| l.split("listen=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
        {
            break format!("http://{addr}");
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    child.start_kill().expect("kill");
    let _ = child.wait().await;
    for name in review_sync::metrics::METRIC_NAMES {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{"))),
            "{name} is not exported under ProcSubset=pid:\n{metrics}"
        );
    }
    let start = sample(&metrics, "process_start_time_seconds", &[]).expect("a start time");
    let now = chrono::Utc::now().timestamp();
    assert!(
        (started - 5..=now + 5).contains(&(start as i64)),
        "process_start_time_seconds {start} is not between {started} and {now}"
    );
}
