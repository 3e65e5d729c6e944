//! The PostgreSQL engine's own behaviour, against the throwaway server:
//! claims that skip rows another daemon holds, migrations of daemons that
//! start together, reconnection after the server dropped the connection,
//! error classes, and TLS (always verified; client
//! certificates). Each test prints SKIPPED when the machine has no server.

use super::*;
use sandbox::postgres::{CERT_USER, PgServer, server};
use std::sync::{Arc, Barrier};

/// The server, or `None` after printing why `test` is skipped.
fn pg(test: &str) -> Option<&'static PgServer> {
    match server() {
        Ok(s) => Some(s),
        Err(reason) => {
            eprintln!("SKIPPED ledger::tests::postgres::{test}: {reason}");
            None
        }
    }
}

fn reviews(n: usize) -> Vec<IncomingReview> {
    (0..n)
        .map(|i| review(&format!("r{i:03}"), &format!("h{i}")))
        .collect()
}

/// A row another daemon's claim holds is skipped, not waited for, and
/// never claimed twice.
#[test]
fn a_claim_skips_rows_another_transaction_holds() {
    let Some((mut ledger, db)) = Probe::postgres("a_claim_skips_rows_another_transaction_holds")
    else {
        return;
    };
    ledger.record_page(&page(reviews(5)), t0()).unwrap();
    let mut other = db.pg_client();
    let mut held = other.transaction().unwrap();
    held.query(
        "SELECT 1 FROM reviews WHERE review_id IN ('r000', 'r001') FOR UPDATE",
        &[],
    )
    .unwrap();
    let claimed: Vec<String> = ledger
        .claim_due(t0(), t0() + Duration::seconds(40), 10)
        .unwrap()
        .into_iter()
        .map(|d| d.review_id)
        .collect();
    assert_eq!(claimed, ["r002", "r003", "r004"]);
    held.rollback().unwrap();
    let rest: Vec<String> = ledger
        .claim_due(t0(), t0() + Duration::seconds(40), 10)
        .unwrap()
        .into_iter()
        .map(|d| d.review_id)
        .collect();
    assert_eq!(
        rest,
        ["r000", "r001"],
        "free again, and not the leased ones"
    );
}

/// Two daemons claiming from one ledger at the same time split the due
/// rows between them: every row claimed once, none twice.
#[test]
fn two_daemons_never_claim_the_same_row() {
    let Some((mut ledger, db)) = Probe::postgres("two_daemons_never_claim_the_same_row") else {
        return;
    };
    for chunk in reviews(400).chunks(100) {
        ledger.record_page(&page(chunk.to_vec()), t0()).unwrap();
    }
    let start = Arc::new(Barrier::new(2));
    let daemons: Vec<_> = (0..2)
        .map(|_| {
            let (target, start) = (db.target.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                let mut ledger = Ledger::open(&target).unwrap();
                start.wait();
                let mut mine = Vec::new();
                loop {
                    let batch = ledger
                        .claim_due(t0(), t0() + Duration::seconds(40), 7)
                        .unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|d| d.review_id));
                }
            })
        })
        .collect();
    let claims: Vec<Vec<String>> = daemons.into_iter().map(|d| d.join().unwrap()).collect();
    let mut all: Vec<&String> = claims.iter().flatten().collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(total, 400, "every row claimed");
    assert_eq!(all.len(), 400, "no row claimed twice");
}

/// Daemons starting together on an empty database each migrate it; the
/// advisory lock makes them take turns, so every one opens (without it,
/// two would create the same tables at once and one would fail).
#[test]
fn daemons_starting_together_migrate_once() {
    let Some(server) = pg("daemons_starting_together_migrate_once") else {
        return;
    };
    for _ in 0..3 {
        let database = server.create_database().unwrap();
        let target = pg_target(server, &database, None);
        let start = Arc::new(Barrier::new(4));
        let daemons: Vec<_> = (0..4)
            .map(|_| {
                let (target, start) = (target.clone(), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    Ledger::open(&target).map(|l| l.schema_version().unwrap())
                })
            })
            .collect();
        for daemon in daemons {
            let version = daemon.join().unwrap().expect("every daemon opens");
            assert_eq!(
                version,
                crate::ledger::postgres::migrations::latest_version()
            );
        }
        let migrated = server
            .psql(&database, "SELECT version FROM ledger_schema")
            .unwrap();
        assert_eq!(
            migrated,
            crate::ledger::postgres::migrations::latest_version().to_string()
        );
    }
}

/// A migration that fails leaves the database at the version before it
/// (PostgreSQL's DDL is transactional).
#[test]
fn a_failing_migration_leaves_the_previous_version() {
    let Some(db) = Probe::empty(
        Kind::Postgres,
        "a_failing_migration_leaves_the_previous_version",
    ) else {
        return;
    };
    let path = std::path::Path::new("test");
    let v1 = "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)";
    let broken = "CREATE TABLE half (x BIGINT); THIS IS NOT SQL;";
    crate::ledger::postgres::migrations::migrate(&mut db.pg_client(), path, &[v1]).unwrap();
    let e = crate::ledger::postgres::migrations::migrate(&mut db.pg_client(), path, &[v1, broken])
        .unwrap_err();
    assert!(matches!(e, LedgerError::Postgres { .. }), "{e}");
    assert_eq!(db.version(), 1);
    assert_eq!(
        db.int(
            "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'half'",
            &[]
        ),
        0,
        "the failed migration's first statement was rolled back"
    );
}

/// A read-only command on a database no daemon has opened yet says what
/// to run; it creates nothing.
#[test]
fn read_only_open_refuses_a_database_without_a_ledger() {
    let Some(db) = Probe::empty(
        Kind::Postgres,
        "read_only_open_refuses_a_database_without_a_ledger",
    ) else {
        return;
    };
    let Err(LedgerError::NotCreated { reason, .. }) = db.readonly() else {
        panic!("expected NotCreated");
    };
    assert!(reason.contains("read-write"), "{reason}");
    assert_eq!(
        db.int(
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'",
            &[]
        ),
        0
    );
}

/// The server dropping the connection (a restart, a failover) costs one
/// failed call, classed `unreachable` (a storage fault `/healthz` shows);
/// the next call connects again.
#[test]
fn a_dropped_connection_is_made_again_by_the_next_call() {
    let Some((mut ledger, db)) =
        Probe::postgres("a_dropped_connection_is_made_again_by_the_next_call")
    else {
        return;
    };
    ledger.record_page(&page(reviews(2)), t0()).unwrap();
    let killed = db.int(
        "SELECT COUNT(pg_terminate_backend(pid))::bigint FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'review-sync'",
        &[],
    );
    assert_eq!(killed, 1);
    let e = ledger.pending_count().unwrap_err();
    assert_eq!(e.error_type(), "unreachable", "{e}");
    assert!(e.is_storage_fault());
    assert_eq!(ledger.pending_count().unwrap(), 2);
    ledger.probe_writable().unwrap();
}

#[test]
fn errors_have_an_engine_neutral_class() {
    let Some((mut ledger, db)) = Probe::postgres("errors_have_an_engine_neutral_class") else {
        return;
    };
    ledger.record_page(&page(reviews(1)), t0()).unwrap();
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let nowhere = PostgresTarget::new(PostgresSettings {
        url: &format!("postgres://review_sync@127.0.0.1:{port}/x"),
        sslmode: Some("disable"),
        ..PostgresSettings::default()
    })
    .unwrap();
    let e = Ledger::open(&Target::Postgres(Box::new(nowhere)))
        .err()
        .unwrap();
    assert_eq!(e.error_type(), "unreachable", "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");

    let wrong_password = match &db.target {
        Target::Postgres(t) => PostgresTarget::new(PostgresSettings {
            url: t.url(),
            password: Some(Secret::new("not the password")),
            sslmode: Some("disable"),
            ..PostgresSettings::default()
        })
        .unwrap(),
        Target::Sqlite(_) => unreachable!(),
    };
    let e = Ledger::open(&Target::Postgres(Box::new(wrong_password)))
        .err()
        .unwrap();
    assert_eq!(e.error_type(), "unreachable", "{e}");
    assert!(!e.to_string().contains("not the password"), "{e}");

    // A row another session holds longer than the lock timeout.
    let mut other = db.pg_client();
    let mut held = other.transaction().unwrap();
    held.query("SELECT 1 FROM reviews FOR UPDATE", &[]).unwrap();
    let e = ledger
        .record_page(&page(vec![review("r000", "edited")]), t0())
        .unwrap_err();
    assert_eq!(e.error_type(), "busy", "{e}");
    assert!(!e.is_storage_fault());
    held.rollback().unwrap();

    let mut auditor = db.readonly().unwrap();
    let e = auditor.probe_writable().unwrap_err();
    assert_eq!(e.error_type(), "read_only", "{e}");
    ledger.probe_writable().unwrap();
}

// ------------------------------------------------------------------- TLS

/// A target of a new database over TLS with these settings.
fn tls_target(
    server: &PgServer,
    host: &str,
    settings: PostgresSettings<'_>,
) -> Result<Target, SettingError> {
    let database = server.create_database().unwrap();
    let url = format!(
        "postgres://{}@{host}:{}/{database}",
        settings
            .password
            .as_ref()
            .map_or(CERT_USER, |_| sandbox::postgres::USER),
        server.port()
    );
    PostgresTarget::new(PostgresSettings {
        url: &url,
        ..settings
    })
    .map(|t| Target::Postgres(Box::new(t)))
}

fn pem(path: &std::path::Path) -> Secret {
    Secret::new(std::fs::read_to_string(path).unwrap())
}

fn password() -> Option<Secret> {
    Some(Secret::new(sandbox::postgres::PASSWORD))
}

/// Verification is on by default, and cannot be turned down: the server's
/// certificate must chain to `sslrootcert` (else to the system's roots,
/// which do not know the test CA) and name the host.
#[test]
fn tls_verifies_the_server_by_default() {
    let Some(server) = pg("tls_verifies_the_server_by_default") else {
        return;
    };
    let Some(tls) = server.tls() else {
        eprintln!(
            "SKIPPED tls_verifies_the_server_by_default: openssl could not make certificates"
        );
        return;
    };
    let opens = |host: &str, settings: PostgresSettings<'_>| {
        let target = tls_target(server, host, settings).unwrap();
        Ledger::open(&target).map(|l| l.schema_version().unwrap())
    };
    // The test CA, the right name: connected, encrypted.
    let target = tls_target(
        server,
        "localhost",
        PostgresSettings {
            password: password(),
            sslrootcert: Some(pem(&tls.ca)),
            ..PostgresSettings::default()
        },
    )
    .unwrap();
    let ledger = Ledger::open(&target).unwrap();
    let database = target.display().rsplit('/').next().unwrap().to_owned();
    let encrypted = server
        .psql(
            "postgres",
            &format!(
                "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE a.datname = '{database}' AND a.application_name = 'review-sync'"
            ),
        )
        .unwrap();
    assert_eq!(encrypted, "t");
    drop(ledger);
    // The default: the system's roots, which do not know the test CA.
    let e = opens(
        "localhost",
        PostgresSettings {
            password: password(),
            ..PostgresSettings::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("sslrootcert"), "{e}");
    assert_eq!(e.error_type(), "unreachable");
    // Another CA.
    assert!(
        opens(
            "127.0.0.1",
            PostgresSettings {
                password: password(),
                sslrootcert: Some(pem(&tls.other_ca)),
                ..PostgresSettings::default()
            },
        )
        .is_err()
    );
    // A name the certificate does not hold (the same server, on another
    // loopback address).
    let e = opens(
        "127.0.0.2",
        PostgresSettings {
            password: password(),
            sslrootcert: Some(pem(&tls.ca)),
            ..PostgresSettings::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("TLS handshake"), "{e}");
}

/// A client certificate authenticates a role that has no password.
#[test]
fn tls_client_certificates_authenticate() {
    let Some(server) = pg("tls_client_certificates_authenticate") else {
        return;
    };
    let Some(tls) = server.tls() else {
        eprintln!(
            "SKIPPED tls_client_certificates_authenticate: openssl could not make certificates"
        );
        return;
    };
    let target = tls_target(
        server,
        "localhost",
        PostgresSettings {
            sslrootcert: Some(pem(&tls.ca)),
            sslcert: Some(pem(&tls.client_cert)),
            sslkey: Some(pem(&tls.client_key)),
            ..PostgresSettings::default()
        },
    )
    .unwrap();
    let mut ledger = Ledger::open(&target).unwrap();
    ledger.record_page(&page(reviews(1)), t0()).unwrap();
    assert_eq!(ledger.pending_count().unwrap(), 1);
    let without = tls_target(
        server,
        "localhost",
        PostgresSettings {
            sslrootcert: Some(pem(&tls.ca)),
            ..PostgresSettings::default()
        },
    )
    .unwrap();
    assert!(Ledger::open(&without).is_err(), "no certificate, no entry");
}
