//! The man pages in `docs/man/`, rendered from the clap definitions: one
//! page per command (`review-sync.1`, `review-sync-ledger-list.1`, ...), the
//! main one with the sections clap does not know (exit status, files,
//! environment, signals). A test compares them with the committed files and
//! fails with instructions when they are stale; packaging installs them.

use clap::CommandFactory;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the pages live, from the crate root.
const DIR: &str = "docs/man";

/// Where the completion scripts live, from the crate root.
const COMPLETIONS_DIR: &str = "docs/completions";

/// Set to 1 to (re)write the committed pages (and completion scripts)
/// instead of comparing.
const UPDATE_VAR: &str = "REVIEW_SYNC_UPDATE_MAN";

/// Hand-written sections of the main page, in roff.
const EXTRA: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success. For \fBsync\fR: every location was read, and no review of the synced
sources is left pending, held or rejected in the ledger (held and rejected ones
of an earlier pass count too: they need a person).
.TP
\fB78\fR
The configuration is invalid (EX_CONFIG); every problem is listed on stderr as
\fIfile\fR:\fIline\fR:\fIcolumn\fR: \fImessage\fR. The systemd unit does not restart on it.
.TP
\fB65\fR
A \fBledger\fR listing or export (\fBlist\fR, \fBexport\fR, \fBquarantine\fR,
\fBpolls\fR) skipped rows it could not read (EX_DATAERR); each is named on stderr
(table, row, column) and every other row was written.
.TP
\fB1\fR
Any other failure, with a one\-line reason on stderr; also a \fBledger show\fR,
\fBretry\fR or \fBresend\fR of a review that is not in the ledger or cannot be
put back.
.SH FILES
.TP
\fI/etc/review\-sync/config.toml\fR
The configuration (see \fBconfig.example.toml\fR, installed in
\fI/usr/share/doc/review\-sync/\fR).
.TP
\fI/var/lib/review\-sync/ledger.db\fR
The SQLite ledger (WAL mode): every review, delivery attempt, quarantined
record, requeue and purge, and the poll log (kept \fBretain_polls_days\fR, 90
days by default). Read it while the daemon runs with
\fBsqlite3 \-readonly\fR or the \fBledger\fR commands.
.TP
\fI/usr/lib/systemd/system/review\-sync.service\fR
The hardened systemd unit (Type=notify, watchdog, LoadCredential=).
.SH ENVIRONMENT
.TP
\fBREVIEW_SYNC_CONFIG\fR
The config file when \fB\-\-config\fR is not given.
.TP
\fBCREDENTIALS_DIRECTORY\fR
Set by systemd's LoadCredential=; secrets written as
\fB{ credential = "NAME" }\fR are read from this directory.
.TP
\fBRUST_LOG\fR
Overrides \fB\-v\fR/\fB\-q\fR with a tracing filter (e.g. \fBreview_sync=debug\fR).
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR, \fBJOURNAL_STREAM\fR
Set by systemd: \fBrun\fR reports READY/RELOADING/STOPPING/WATCHDOG, and logs
go to the journal with fields such as SOURCE and LOCATION.
.SH SIGNALS
.TP
\fBSIGHUP\fR
\fBrun\fR reloads the configuration; an invalid one is refused and the old one kept.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
\fBrun\fR stops polling and lets in\-flight deliveries finish (at most 30 s);
anything unfinished stays pending in the ledger.
.SH "SEE ALSO"
\fBsqlite3\fR(1), \fBsystemd.exec\fR(5), \fBsystemd\-analyze\fR(1), and one page
per command: \fBreview\-sync\-run\fR(1), \fBreview\-sync\-sync\fR(1),
\fBreview\-sync\-ledger\fR(1) and the others in this directory.
"#;

/// Every page: file name -> roff.
pub(super) fn render() -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    // The plain version: the commit in `--version` would make every
    // commit's pages differ.
    let mut cmd = super::Args::command()
        .disable_help_subcommand(true)
        .long_version(None::<&str>);
    cmd.build();
    let mut pages = BTreeMap::new();
    collect(&cmd, &mut pages)?;
    let main = clap_mangen::Man::new(cmd);
    let mut page = Vec::new();
    main.render(&mut page)?;
    page.extend_from_slice(EXTRA.as_bytes());
    pages.insert(main.get_filename(), page);
    Ok(pages)
}

fn collect(cmd: &clap::Command, pages: &mut BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, pages)?;
        let man = clap_mangen::Man::new(sub.clone());
        let mut page = Vec::new();
        man.render(&mut page)?;
        pages.insert(man.get_filename(), page);
    }
    Ok(())
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR)
}

#[test]
fn the_committed_man_pages_match_the_command_line() -> std::io::Result<()> {
    let pages = render()?;
    let dir = dir();
    if std::env::var(UPDATE_VAR).is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "1") {
                std::fs::remove_file(path)?;
            }
        }
        for (name, page) in &pages {
            std::fs::write(dir.join(name), page)?;
        }
        return Ok(());
    }
    let how = format!(
        "the man pages in {DIR}/ are stale (the command line changed); regenerate them with\n    \
         {UPDATE_VAR}=1 cargo test --bin review-sync man\nand commit the result"
    );
    let mut committed = BTreeMap::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "1")
                && let Some(name) = path.file_name().and_then(|n| n.to_str())
            {
                committed.insert(name.to_owned(), std::fs::read(&path)?);
            }
        }
    }
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&committed), names(&pages), "{how}");
    for (name, page) in &pages {
        assert!(committed[name] == *page, "{name}: {how}");
    }
    Ok(())
}

#[test]
fn the_main_page_documents_exit_status_files_and_signals() -> std::io::Result<()> {
    let pages = render()?;
    let main = String::from_utf8_lossy(&pages["review-sync.1"]).into_owned();
    for needle in [
        ".TH review-sync 1",
        "EXIT STATUS",
        "78",
        "SIGHUP",
        "ledger.db",
    ] {
        assert!(main.contains(needle), "{needle}");
    }
    assert!(pages.contains_key("review-sync-ledger-backup.1"));
    assert!(pages.contains_key("review-sync-run.1"));
    Ok(())
}

#[test]
fn the_committed_completions_match_the_command_line() -> std::io::Result<()> {
    use super::completions::{Shell, script};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(COMPLETIONS_DIR);
    let update = std::env::var(UPDATE_VAR).is_ok_and(|v| v == "1");
    for shell in Shell::ALL {
        let path = dir.join(shell.file_name());
        let want = script(shell);
        assert!(
            String::from_utf8_lossy(&want).contains("ledger"),
            "{shell:?}: the script knows the subcommands"
        );
        if update {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&path, &want)?;
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == want,
            "{}: stale; regenerate with {UPDATE_VAR}=1 cargo test --bin review-sync man",
            path.display()
        );
    }
    Ok(())
}
