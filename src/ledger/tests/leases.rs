//! Leases, as every engine grants them to a daemon alone (on PostgreSQL,
//! where daemons compete for them: `postgres.rs`).

both_engines! {
    /// A daemon alone takes, renews and ends its leases.
    fn a_lone_daemon_holds_its_leases(ledger, db) {
        ledger.set_holder("web-1 pid 1");
        let ttl = std::time::Duration::from_secs(30);
        assert!(ledger.take_lease("pass:google", ttl).unwrap());
        assert!(ledger.renew_lease("pass:google", ttl).unwrap());
        ledger.end_lease("pass:google", None).unwrap();
        assert!(ledger.take_lease("pass:google", ttl).unwrap());
        let rows = db.int("SELECT COUNT(*) FROM leases", &[]);
        assert_eq!(rows, i64::from(ledger.shared()), "SQLite writes none");
    }
}
