//! The ledger's test suite, one file per part of the ledger contract, run
//! against both engines: each test written once in [`both_engines!`] runs
//! as `sqlite::NAME` on a real SQLite file in a temporary directory and as
//! `postgres::NAME` on a database of its own in a real, throwaway
//! PostgreSQL server (`sandbox::postgres`; SKIPPED, with the reason, where
//! the machine has no server binaries). Results are checked the way
//! auditors see them: through a second, plain connection ([`Probe::rows`]).
//! Tests of one engine's own behaviour (SQLite's files and pragmas,
//! PostgreSQL's locks and TLS) are in `sqlite.rs` and `postgres.rs`.

use super::*;
use crate::config::Secret;
use crate::domain::GroupRef;
use chrono::{DateTime, Duration, Utc};
use std::path::Path;
use tempfile::TempDir;

/// Writes each test once, for both engines: `fn name(ledger, db) { ... }`
/// becomes `sqlite::name` and `postgres::name`, `ledger` being a fresh,
/// empty [`Ledger`] and `db` its [`Probe`].
macro_rules! both_engines {
    ($( $(#[$meta:meta])* fn $name:ident($ledger:ident, $db:ident) $body:block )*) => {
        mod sqlite {
            #[allow(unused_imports, reason = "each file uses some")]
            use super::*;
            $(
                $(#[$meta])*
                #[test]
                fn $name() {
                    #[allow(unused_mut, unused_variables, reason = "not every test needs both")]
                    let (mut $ledger, $db) = $crate::ledger::tests::Probe::fresh(
                        $crate::ledger::tests::Kind::Sqlite,
                    )
                    .expect("a SQLite ledger");
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports, reason = "each file uses some")]
            use super::*;
            $(
                $(#[$meta])*
                #[test]
                fn $name() {
                    let Some(fresh) = $crate::ledger::tests::Probe::postgres(stringify!($name))
                    else {
                        return;
                    };
                    #[allow(unused_mut, unused_variables, reason = "not every test needs both")]
                    let (mut $ledger, $db) = fresh;
                    $body
                }
            )*
        }
    };
}

/// [`both_engines!`] for tests that start from an empty place (no ledger
/// yet): `fn name(db) { ... }`, `db` a [`Probe`] of an empty file path or
/// an empty database.
macro_rules! both_engines_empty {
    ($( $(#[$meta:meta])* fn $name:ident($db:ident) $body:block )*) => {
        mod sqlite {
            #[allow(unused_imports, reason = "each file uses some")]
            use super::*;
            $(
                $(#[$meta])*
                #[test]
                fn $name() {
                    let $db = $crate::ledger::tests::Probe::empty(
                        $crate::ledger::tests::Kind::Sqlite,
                        stringify!($name),
                    )
                    .expect("a directory");
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports, reason = "each file uses some")]
            use super::*;
            $(
                $(#[$meta])*
                #[test]
                fn $name() {
                    let Some($db) = $crate::ledger::tests::Probe::empty(
                        $crate::ledger::tests::Kind::Postgres,
                        stringify!($name),
                    ) else {
                        return;
                    };
                    $body
                }
            )*
        }
    };
}

mod backup;
mod delivery;
mod handle;
mod leases;
mod listings;
mod migrations;
mod polls;
mod postgres;
mod queries;
mod retention;
mod reviews;
mod sqlite;

// ---------------------------------------------------------------- fixture

/// Which engine a [`Probe`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Sqlite,
    Postgres,
}

/// A value read back through the second connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Val {
    Null,
    Int(i64),
    Text(String),
}

impl Val {
    pub(super) fn int(&self) -> i64 {
        match self {
            Val::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    pub(super) fn text(&self) -> Option<String> {
        match self {
            Val::Null => None,
            Val::Text(t) => Some(t.clone()),
            other => panic!("not text: {other:?}"),
        }
    }
}

/// How a test sees a ledger from outside: what it takes to open it again,
/// and a second, plain connection for raw reads and hand edits.
pub(super) struct Probe {
    pub(super) kind: Kind,
    pub(super) target: Target,
    /// The SQLite file's directory (or an empty one).
    pub(super) dir: TempDir,
    /// The PostgreSQL database's name.
    database: Option<String>,
}

impl Probe {
    /// A fresh ledger and its probe; `Err` only for a PostgreSQL server
    /// that is missing.
    pub(super) fn fresh(kind: Kind) -> Result<(Ledger, Probe), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (target, database) = match kind {
            Kind::Sqlite => (Target::Sqlite(dir.path().join("ledger.db")), None),
            Kind::Postgres => {
                let server = sandbox::postgres::server()?;
                let database = server.create_database()?;
                (pg_target(server, &database, None), Some(database))
            }
        };
        let ledger = Ledger::open(&target).map_err(|e| e.to_string())?;
        Ok((
            ledger,
            Probe {
                kind,
                target,
                dir,
                database,
            },
        ))
    }

    /// An empty place for a ledger (a path in an empty directory, an empty
    /// database), or `None` after printing why the test is skipped (no
    /// PostgreSQL server binaries on this machine).
    pub(super) fn empty(kind: Kind, test: &str) -> Option<Probe> {
        let dir = tempfile::tempdir().expect("a directory");
        let (target, database) = match kind {
            Kind::Sqlite => (Target::Sqlite(dir.path().join("ledger.db")), None),
            Kind::Postgres => {
                let server = match sandbox::postgres::server() {
                    Ok(server) => server,
                    Err(reason) => {
                        eprintln!("SKIPPED ledger::tests::{test} on PostgreSQL: {reason}");
                        return None;
                    }
                };
                let database = server.create_database().expect("a database");
                (pg_target(server, &database, None), Some(database))
            }
        };
        Some(Probe {
            kind,
            target,
            dir,
            database,
        })
    }

    /// Creates the ledger's tables at schema version `n` (the first `n`
    /// migrations of the engine's list), as an older review-sync left them.
    pub(super) fn migrate_to(&self, n: usize) {
        match self.kind {
            Kind::Sqlite => drop(
                crate::ledger::sqlite::migrations::open_with(
                    self.target.file().expect("a file"),
                    &crate::ledger::sqlite::migrations::MIGRATIONS[..n],
                )
                .expect("migrate"),
            ),
            Kind::Postgres => crate::ledger::postgres::migrations::migrate(
                &mut self.pg_client(),
                Path::new("test"),
                &crate::ledger::postgres::migrations::MIGRATIONS[..n],
            )
            .expect("migrate"),
        }
    }

    /// The schema version, as the engine stores it.
    pub(super) fn version(&self) -> i64 {
        self.int(
            self.dialect("PRAGMA user_version", "SELECT version FROM ledger_schema"),
            &[],
        )
    }

    /// A fresh PostgreSQL ledger, or `None` after printing why the test
    /// is skipped (no server binaries on this machine).
    pub(super) fn postgres(test: &str) -> Option<(Ledger, Probe)> {
        match sandbox::postgres::server() {
            Ok(_) => Some(Probe::fresh(Kind::Postgres).expect("a PostgreSQL ledger")),
            Err(reason) => {
                eprintln!("SKIPPED ledger::tests::{test} on PostgreSQL: {reason}");
                None
            }
        }
    }

    /// Another read-write connection to the same ledger.
    pub(super) fn reopen(&self) -> Ledger {
        Ledger::open(&self.target).expect("reopen")
    }

    /// A read-only connection to the same ledger.
    pub(super) fn readonly(&self) -> Result<Ledger, LedgerError> {
        Ledger::open_readonly(&self.target)
    }

    /// `sql` (with `?1`, `?2`... placeholders, bound to `params`) through a
    /// second, plain connection: every row, every column.
    pub(super) fn rows(&self, sql: &str, params: &[&str]) -> Vec<Vec<Val>> {
        match self.kind {
            Kind::Sqlite => {
                let conn = rusqlite::Connection::open(self.target.file().expect("a file"))
                    .expect("a second connection");
                let mut st = conn.prepare(sql).expect(sql);
                let n = st.column_count();
                st.query_map(rusqlite::params_from_iter(params), |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => Val::Null,
                                rusqlite::types::ValueRef::Integer(i) => Val::Int(i),
                                rusqlite::types::ValueRef::Text(t) => {
                                    Val::Text(String::from_utf8_lossy(t).into_owned())
                                }
                                other => panic!("unexpected value {other:?}"),
                            })
                        })
                        .collect()
                })
                .expect(sql)
                .collect::<Result<_, _>>()
                .expect(sql)
            }
            Kind::Postgres => {
                let mut client = self.pg_client();
                let sql = dollar_placeholders(sql);
                let params: Vec<&(dyn ::postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn ::postgres::types::ToSql + Sync))
                    .collect();
                let rows = client.query(&sql, &params).expect(&sql);
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| match *row.columns()[i].type_() {
                                ::postgres::types::Type::INT8 => {
                                    row.get::<_, Option<i64>>(i).map_or(Val::Null, Val::Int)
                                }
                                ::postgres::types::Type::INT4 => row
                                    .get::<_, Option<i32>>(i)
                                    .map_or(Val::Null, |n| Val::Int(n.into())),
                                ::postgres::types::Type::BOOL => row
                                    .get::<_, Option<bool>>(i)
                                    .map_or(Val::Null, |b| Val::Int(b.into())),
                                _ => row.get::<_, Option<String>>(i).map_or(Val::Null, Val::Text),
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// The one value `sql` selects.
    pub(super) fn one(&self, sql: &str, params: &[&str]) -> Val {
        let mut rows = self.rows(sql, params);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        let mut row = rows.remove(0);
        assert_eq!(row.len(), 1, "{sql}: {row:?}");
        row.remove(0)
    }

    /// An integer `sql` selects.
    pub(super) fn int(&self, sql: &str, params: &[&str]) -> i64 {
        self.one(sql, params).int()
    }

    /// Text (or NULL) `sql` selects.
    pub(super) fn text(&self, sql: &str, params: &[&str]) -> Option<String> {
        self.one(sql, params).text()
    }

    /// Runs `sql` (several statements) through the second connection, as
    /// an operator's hand edit would.
    pub(super) fn exec(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => rusqlite::Connection::open(self.target.file().expect("a file"))
                .expect("a second connection")
                .execute_batch(sql)
                .expect(sql),
            Kind::Postgres => self.pg_client().batch_execute(sql).expect(sql),
        }
    }

    /// `sqlite` or `postgres`, for the places where the dialects differ.
    pub(super) fn dialect<'a>(&self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        match self.kind {
            Kind::Sqlite => sqlite,
            Kind::Postgres => postgres,
        }
    }

    /// The columns of `table`, in order.
    pub(super) fn columns(&self, table: &str) -> Vec<String> {
        let sql = self.dialect(
            "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = ?1
             ORDER BY ordinal_position",
        );
        self.rows(sql, &[table])
            .into_iter()
            .map(|mut r| r.remove(0).text().expect("a name"))
            .collect()
    }

    /// A plain client of the fixture's database.
    pub(super) fn pg_client(&self) -> ::postgres::Client {
        let server = sandbox::postgres::server().expect("the server");
        let database = self.database.as_deref().expect("a database");
        let mut config: ::postgres::Config = server.url(database).parse().expect("url");
        config.password(sandbox::postgres::PASSWORD);
        config
            .connect(::postgres::NoTls)
            .expect("a second connection")
    }
}

/// The target of a database of the test server, over loopback TCP with the
/// password, without TLS (loopback) unless `tls` says how.
pub(super) fn pg_target(
    server: &sandbox::postgres::PgServer,
    database: &str,
    tls: Option<PostgresSettings<'_>>,
) -> Target {
    let url = server.url(database);
    let settings = match tls {
        Some(s) => s,
        None => PostgresSettings {
            sslmode: Some("disable"),
            ..PostgresSettings::default()
        },
    };
    let settings = PostgresSettings {
        url: &url,
        password: settings
            .password
            .or_else(|| Some(Secret::new(sandbox::postgres::PASSWORD))),
        ..settings
    };
    Target::Postgres(Box::new(
        PostgresTarget::new(settings).expect("valid settings"),
    ))
}

/// `?1`-style placeholders as PostgreSQL's `$1`.
fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------- helpers

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const T0: &str = "2026-11-24T10:00:00Z";

fn t0() -> DateTime<Utc> {
    at(T0)
}

fn ext(g: &str) -> Option<GroupRef> {
    Some(GroupRef::ExternalRef(g.to_owned()))
}

fn review(id: &str, hash: &str) -> IncomingReview {
    IncomingReview {
        platform: "google".into(),
        review_id: id.into(),
        payload: format!(
            r#"{{"group_external_ref":"g1","channel":"review","review":{{"source":"google","review_id":"{id}","comment":"{hash}"}}}}"#
        ),
        content_hash: hash.into(),
        source_updated_at: Some(at("2026-11-01T08:00:00Z")),
        notes: None,
    }
}

fn page_at(location: &str, group: Option<GroupRef>, reviews: Vec<IncomingReview>) -> PageRecord {
    PageRecord {
        source_name: "acme-google".into(),
        location_id: location.into(),
        hold_reason: group
            .is_none()
            .then(|| format!("location {location} is not mapped to a group")),
        group,
        reviews,
        quarantined: vec![],
    }
}

fn page(reviews: Vec<IncomingReview>) -> PageRecord {
    page_at("loc-1", ext("g1"), reviews)
}

fn attempt(id: &str, hash: &str, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        platform: "google".into(),
        review_id: id.into(),
        content_hash: hash.into(),
        attempted_at: t0() + Duration::seconds(5),
        http_status: None,
        error_type: None,
        error_message: None,
        request_id: None,
        duration_ms: 42,
        outcome,
        sent: SentAs::default(),
    }
}

fn failed(id: &str, hash: &str, status: u16, kind: &str, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        http_status: Some(status),
        error_type: Some(kind.into()),
        error_message: Some("the API said no".into()),
        ..attempt(id, hash, outcome)
    }
}

fn row(ledger: &Ledger, id: &str) -> ReviewRow {
    ledger.show("google", id).unwrap().expect("row exists").0
}

fn list(ledger: &Ledger, filter: &ReviewFilter) -> Vec<String> {
    let mut ids = Vec::new();
    ledger
        .for_each_review(filter, &mut |r| {
            ids.push(r.review_id.clone());
            Ok(())
        })
        .unwrap();
    ids
}
