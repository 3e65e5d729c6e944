//! `spawn_app()`-style helpers: a sandbox on port 0, a temp dir with a real
//! config (secrets in files, as an operator would have them) and a ledger.
//!
//! The ledger is a SQLite file, or, with `REVIEW_SYNC_TEST_LEDGER=postgres`
//! in the environment, a database of its own on a throwaway PostgreSQL
//! server (`sandbox::postgres`): the one switch that runs these tests on
//! the PostgreSQL engine. Tests of what only a file can do (storage faults,
//! `sqlite3`, WAL, file modes) call [`sqlite_only`] and say they are skipped.

use review_sync::app::App;
use review_sync::ledger::{Ledger, ReviewFilter, ReviewRow, Target};
use sandbox::{GoogleSeed, Sandbox, SandboxOptions};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// A sandbox plus a config pointing at it.
pub(crate) struct TestEnv {
    pub sb: Sandbox,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    /// The SQLite file (where it would be, when the ledger is PostgreSQL).
    pub ledger_path: PathBuf,
    /// The `[ledger]` lines of the config.
    pub ledger_lines: String,
}

/// Whether the end-to-end tests run on PostgreSQL
/// (`REVIEW_SYNC_TEST_LEDGER=postgres`).
pub(crate) fn on_postgres() -> bool {
    std::env::var("REVIEW_SYNC_TEST_LEDGER").is_ok_and(|v| v == "postgres")
}

/// `true` (after printing SKIPPED with `why`) when the tests run on
/// PostgreSQL and `test` is about something only a SQLite file has.
pub(crate) fn sqlite_only(test: &str, why: &str) -> bool {
    if on_postgres() {
        eprintln!("SKIPPED {test} on PostgreSQL (SQLite only: {why})");
    }
    on_postgres()
}

/// The `[ledger]` lines (without the header) of a test whose config lives
/// in `dir`: `path = "ledger.db"`, or, on PostgreSQL, a new database of the
/// test server with its password in a file (`sslmode = "disable"`: the
/// server is on loopback).
pub(crate) fn ledger_lines(dir: &Path) -> String {
    if !on_postgres() {
        return "path = \"ledger.db\"\n".to_owned();
    }
    let server = sandbox::postgres::server()
        .unwrap_or_else(|e| panic!("REVIEW_SYNC_TEST_LEDGER=postgres, but no server: {e}"));
    let database = server.create_database().expect("a database");
    let password = dir.join("ledger_password");
    std::fs::write(&password, sandbox::postgres::PASSWORD).expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    format!(
        "url = \"{}\"\npassword = {{ file = \"ledger_password\" }}\nsslmode = \"disable\"\n",
        server.url(&database)
    )
}

/// The ledger `[ledger]` lines written in `dir` name.
pub(crate) fn ledger_target(dir: &Path, lines: &str) -> Target {
    let config = dir.join("ledger-only.toml");
    std::fs::write(&config, format!("[ledger]\n{lines}")).expect("write");
    review_sync::config::load_ledger(&config)
        .expect("valid [ledger]")
        .path
}

/// Starts a sandbox seeded with `seed` and writes a config mapping location
/// `i` to `portfolio-{i+1}` (external ref).
pub(crate) async fn spawn_env(seed: GoogleSeed) -> TestEnv {
    let sb = Sandbox::start(SandboxOptions {
        google: seed,
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.toml");
    let ledger_path = dir.path().join("ledger.db");
    std::fs::write(
        dir.path().join("travtus_secret"),
        format!("{}\n", sandbox::TRAVTUS_CLIENT_SECRET),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("google_secret"),
        sandbox::GOOGLE_CLIENT_SECRET,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("google_refresh"),
        format!("{}\n", sandbox::GOOGLE_REFRESH_TOKEN),
    )
    .expect("write");
    // Readable by their owner only, as an admin keeps them (`check` warns
    // about a secret file others can read).
    for name in ["travtus_secret", "google_secret", "google_refresh"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join(name),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
    }
    let ledger_lines = ledger_lines(dir.path());
    let env = TestEnv {
        sb,
        dir,
        config_path,
        ledger_path,
        ledger_lines,
    };
    let mapping: Vec<(String, String)> = env
        .sb
        .google()
        .locations()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                l.clone(),
                format!("group_external_ref = \"portfolio-{}\"", i % 10 + 1),
            )
        })
        .collect();
    env.write_config(&mapping, "");
    env
}

impl TestEnv {
    /// Writes the config with these (location, group line) pairs and extra
    /// `[travtus]` lines.
    pub(crate) fn write_config(&self, mapping: &[(String, String)], travtus_extra: &str) {
        let base = self.sb.base_url();
        let mut text = format!(
            r#"[travtus]
base_url = "{base}/travtus"
token_url = "{base}/travtus/oauth2/token"
client_id = "{client_id}"
client_secret = {{ file = "travtus_secret" }}
timeout = "5s"
concurrency = 4
{travtus_extra}

[ledger]
{ledger}
[[source]]
name = "acme-google"
kind = "google_business_profile"
schedule = "*/1 * * * * *"
client_id = "{g_id}"
client_secret = {{ file = "google_secret" }}
refresh_token = {{ file = "google_refresh" }}
api_base_url = "{base}/google"
token_url = "{base}/google/token"
"#,
            client_id = sandbox::TRAVTUS_CLIENT_ID,
            g_id = sandbox::GOOGLE_CLIENT_ID,
            ledger = self.ledger_lines,
        );
        for (location, group) in mapping {
            text.push_str(&format!(
                "\n  [[source.location]]\n  id = \"{location}\"\n  {group}\n"
            ));
        }
        std::fs::write(&self.config_path, text).expect("write config");
    }

    /// Loads the config and opens the app (ledger) on it.
    pub(crate) async fn app(&self) -> App {
        let config = review_sync::config::load(&self.config_path).expect("valid config");
        App::open(config).await.expect("app opens")
    }

    /// Where the ledger lives.
    pub(crate) fn ledger(&self) -> Target {
        ledger_target(self.dir.path(), &self.ledger_lines)
    }

    /// Every ledger row.
    pub(crate) fn rows(&self) -> Vec<ReviewRow> {
        rows_of(&self.ledger())
    }

    /// `f` on the ledger opened read-only, on a thread of its own: ledger
    /// calls block, and the PostgreSQL client may not block an async task.
    pub(crate) fn with_ledger<R: Send>(&self, f: impl FnOnce(&Ledger) -> R + Send) -> R {
        with_ledger(&self.ledger(), f)
    }

    /// `f` on the ledger opened read-write, on a thread of its own.
    pub(crate) fn with_ledger_mut<R: Send>(&self, f: impl FnOnce(&mut Ledger) -> R + Send) -> R {
        let target = self.ledger();
        std::thread::scope(|s| {
            s.spawn(move || f(&mut Ledger::open(&target).expect("ledger")))
                .join()
                .expect("ledger thread")
        })
    }

    /// `sql` on the ledger through a plain second connection, as an auditor
    /// would run it (`sqlite3`, `psql`): every row, every column.
    pub(crate) fn ledger_sql(&self, sql: &str) -> Vec<Vec<Sql>> {
        ledger_sql(&self.ledger(), sql)
    }

    /// Whether a ledger was created (see [`ledger_created`]).
    pub(crate) fn ledger_exists(&self) -> bool {
        ledger_created(&self.ledger())
    }

    /// Everything the ledger holds (see [`ledger_dump`]).
    pub(crate) fn ledger_dump(&self) -> String {
        ledger_dump(&self.ledger())
    }

    /// The one integer `sql` selects.
    pub(crate) fn ledger_int(&self, sql: &str) -> i64 {
        match self.ledger_sql(sql).as_slice() {
            [row] => match row.as_slice() {
                [Sql::Int(n)] => *n,
                other => panic!("{sql}: {other:?}"),
            },
            other => panic!("{sql}: {other:?}"),
        }
    }
}

/// Keeps the daemon's ledger from taking writes while it lives: on SQLite
/// another connection holds the write lock (what a `sqlite3` session left
/// inside a write transaction does); on PostgreSQL the database is closed
/// to connections and the daemon's session ended (the server restarting,
/// a failover). Dropping it lets go.
pub(crate) struct LedgerBlock {
    sqlite: Option<rusqlite::Connection>,
    postgres: Option<String>,
}

impl LedgerBlock {
    /// Blocks the ledger of `env`.
    pub(crate) fn on(env: &TestEnv) -> LedgerBlock {
        match env.ledger() {
            Target::Sqlite(path) => {
                let holder = rusqlite::Connection::open(path).expect("a second connection");
                holder
                    .execute_batch("BEGIN IMMEDIATE")
                    .expect("the write lock");
                LedgerBlock {
                    sqlite: Some(holder),
                    postgres: None,
                }
            }
            Target::Postgres(pg) => {
                let server = sandbox::postgres::server().expect("the test server");
                let database = pg.url().rsplit('/').next().expect("a database").to_owned();
                server
                    .psql(
                        "postgres",
                        &format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false"),
                    )
                    .expect("close the database");
                server
                    .psql(
                        "postgres",
                        &format!(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                             WHERE datname = '{database}'"
                        ),
                    )
                    .expect("end its sessions");
                LedgerBlock {
                    sqlite: None,
                    postgres: Some(database),
                }
            }
        }
    }
}

impl Drop for LedgerBlock {
    fn drop(&mut self) {
        if let Some(holder) = self.sqlite.take() {
            holder.execute_batch("ROLLBACK").expect("let go");
        }
        if let Some(database) = self.postgres.take() {
            sandbox::postgres::server()
                .expect("the test server")
                .psql(
                    "postgres",
                    &format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"),
                )
                .expect("open the database");
        }
    }
}

/// Whether a ledger was created at `target`: its file exists, or its
/// database holds the ledger's tables.
pub(crate) fn ledger_created(target: &Target) -> bool {
    match target {
        Target::Sqlite(path) => path.exists(),
        Target::Postgres(_) => try_ledger_sql(target, "SELECT version FROM ledger_schema").is_ok(),
    }
}

/// Every row of the ledger at `target`.
pub(crate) fn rows_of(target: &Target) -> Vec<ReviewRow> {
    with_ledger(target, |ledger| {
        let mut rows = Vec::new();
        ledger
            .for_each_review(&ReviewFilter::default(), &mut |r| {
                rows.push(r.clone());
                Ok(())
            })
            .expect("rows");
        rows
    })
}

/// `f` on the ledger at `target` opened read-only, on a thread of its own.
pub(crate) fn with_ledger<R: Send>(target: &Target, f: impl FnOnce(&Ledger) -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(move || f(&Ledger::open_readonly(target).expect("ledger")))
            .join()
            .expect("ledger thread")
    })
}

/// Everything the ledger at `target` holds, to compare before and after,
/// or to search for what must not be there: a SQLite ledger's file bytes
/// (the WAL is checkpointed when the last connection closes), or every
/// row of a PostgreSQL ledger's tables.
pub(crate) fn ledger_dump(target: &Target) -> String {
    match target {
        Target::Sqlite(path) => {
            String::from_utf8_lossy(&std::fs::read(path).expect("ledger")).into_owned()
        }
        Target::Postgres(_) => {
            let mut dump = String::new();
            dump.push_str(&format!(
                "version: {:?}\n",
                ledger_sql(target, "SELECT version FROM ledger_schema")
            ));
            for table in [
                "reviews",
                "attempts",
                "quarantine",
                "poll_state",
                "polls",
                "purges",
                "requeues",
            ] {
                let rows = ledger_sql(target, &format!("SELECT * FROM {table} ORDER BY 1, 2"));
                dump.push_str(&format!("{table}: {rows:?}\n"));
            }
            dump
        }
    }
}

/// `s` as an SQL string literal.
pub(crate) fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A value read with [`ledger_sql`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sql {
    Null,
    Int(i64),
    Text(String),
}

impl Sql {
    /// The text (`None` for NULL).
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Sql::Null => None,
            Sql::Text(t) => Some(t.clone()),
            Sql::Int(n) => Some(n.to_string()),
        }
    }
}

/// `sql` on the ledger at `target` through a plain second connection
/// (rusqlite, or the postgres client), on a thread of its own.
pub(crate) fn ledger_sql(target: &Target, sql: &str) -> Vec<Vec<Sql>> {
    try_ledger_sql(target, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// [`ledger_sql`], or why not (no ledger yet, a query error).
pub(crate) fn try_ledger_sql(target: &Target, sql: &str) -> Result<Vec<Vec<Sql>>, String> {
    let (target, sql) = (target.clone(), sql.to_owned());
    std::thread::spawn(move || match &target {
        Target::Sqlite(path) => {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
            )
            .map_err(|e| e.to_string())?;
            let mut st = conn.prepare(&sql).map_err(|e| e.to_string())?;
            let n = st.column_count();
            st.query_map([], |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Sql::Null,
                            rusqlite::types::ValueRef::Integer(i) => Sql::Int(i),
                            rusqlite::types::ValueRef::Text(t) => {
                                Sql::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            other => Sql::Text(format!("{other:?}")),
                        })
                    })
                    .collect()
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(|e| e.to_string())
        }
        Target::Postgres(pg) => {
            let server = sandbox::postgres::server()?;
            let database = pg.url().rsplit('/').next().expect("a database");
            let mut config: postgres::Config = server.url(database).parse().expect("url");
            config.password(sandbox::postgres::PASSWORD);
            let mut client = config.connect(postgres::NoTls).map_err(|e| e.to_string())?;
            let rows = client.simple_query(&sql).map_err(|e| e.to_string())?;
            Ok(rows
                .iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| match row.get(i) {
                                None => Sql::Null,
                                Some(v) => v
                                    .parse::<i64>()
                                    .map_or_else(|_| Sql::Text(v.to_owned()), Sql::Int),
                            })
                            .collect(),
                    ),
                    _ => None,
                })
                .collect())
        }
    })
    .join()
    .expect("sql thread")
}

impl TestEnv {
    /// Total reviews seeded at the Google emulator.
    pub(crate) fn google_review_count(&self) -> usize {
        self.sb
            .google()
            .locations()
            .iter()
            .map(|l| self.sb.google().reviews(l).len())
            .sum()
    }

    /// Runs the real binary with `--config` and `args`, waiting for it.
    pub(crate) async fn bin(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_review-sync"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .kill_on_drop(true)
            .output()
            .await
            .expect("binary runs")
    }
}

/// Waits (bounded) until `cond` holds, checking every 20 ms: waiting for an
/// event in another process, not sleeping in place of synchronisation.
pub(crate) async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Text of an output's stdout and stderr.
pub(crate) fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A small account: 2 accounts x 3 locations x `reviews` reviews.
/// The reads of `location` the Google emulator served: its own list calls
/// and the batchGetReviews calls naming it (a pass reads a location with a
/// high-water mark by batch).
pub(crate) fn google_reads(sb: &Sandbox, location: &str) -> u64 {
    sb.google().list_requests(location) + sb.google().batch_requests_naming(location)
}

pub(crate) fn seed(reviews: u32) -> GoogleSeed {
    GoogleSeed {
        accounts: 2,
        locations_per_account: 3,
        reviews_per_location: reviews,
    }
}
