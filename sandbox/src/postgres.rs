//! A throwaway PostgreSQL server for tests: the distribution's own binaries
//! (`initdb`, `postgres`, `psql`; Debian's package `postgresql`), a data
//! directory under the system's temporary directory, a loopback port and a
//! Unix socket, one server per test process and a database per test. No
//! mock: the ledger's PostgreSQL engine is tested against the real thing.
//!
//! The server lives as long as the process that started it: it runs under
//! a small shell that waits for its standard input to close (the test
//! process's end of the pipe closes when that process exits, however it
//! exits), then stops the server and removes its directory.
//!
//! Binaries are looked for in `$REVIEW_SYNC_PG_BIN`, then `pg_config
//! --bindir`, then `/usr/lib/postgresql/*/bin` (newest first), then `$PATH`.
//! PostgreSQL refuses to run as root, so under root the server runs as the
//! `postgres` user (else `nobody`) through `setpriv`. When none of that is
//! possible, [`server`] says why, and tests print SKIPPED with the reason.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The role every test connects as (password authentication over TCP).
pub const USER: &str = "review_sync";
/// Its password.
pub const PASSWORD: &str = "sandbox-ledger-password";
/// A role that authenticates with a client certificate only (over TLS).
pub const CERT_USER: &str = "rs_cert";

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running throwaway server.
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    tls: Option<TlsFiles>,
    next_database: AtomicU32,
    // Held for the life of the process: closing it stops the server.
    watchdog: std::sync::Mutex<(Child, ChildStdin)>,
}

/// The certificates of a server started with TLS (made with `openssl`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA that signed the server's and the client's certificates (PEM).
    pub ca: PathBuf,
    /// A client certificate for [`CERT_USER`] (PEM).
    pub client_cert: PathBuf,
    /// Its private key (PEM).
    pub client_key: PathBuf,
    /// Another CA, which signed nothing the server holds (PEM).
    pub other_ca: PathBuf,
}

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();

/// The process's server, started on first use; `Err` says why there is
/// none (no binaries, no way to drop root), for a SKIPPED line.
pub fn server() -> Result<&'static PgServer, String> {
    SERVER
        .get_or_init(PgServer::start)
        .as_ref()
        .map_err(Clone::clone)
}

impl PgServer {
    fn start() -> Result<PgServer, String> {
        let bin = binaries()?;
        let run_as = unprivileged_user()?;
        let dir = std::env::temp_dir().join(format!(
            "review-sync-pg-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let result = PgServer::start_in(&bin, &dir, run_as.as_ref());
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    fn start_in(bin: &Path, dir: &Path, run_as: Option<&(u32, u32)>) -> Result<PgServer, String> {
        set_mode(dir, 0o700)?;
        let password_file = dir.join("password");
        std::fs::write(&password_file, PASSWORD).map_err(|e| e.to_string())?;
        let tls = make_certificates(dir);
        if let Some((uid, gid)) = run_as {
            chown_all(dir, *uid, *gid)?;
        }
        let data = dir.join("data");
        let initdb = as_user(run_as, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "-E", "UTF8", "--locale=C", "-N"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", password_file.display()))
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !initdb.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&initdb.stderr).trim()
            ));
        }
        let hba = format!(
            "local all all trust\n\
             hostssl all {CERT_USER} 127.0.0.0/8 cert\n\
             host all all 127.0.0.0/8 scram-sha-256\n\
             host all all ::1/128 scram-sha-256\n"
        );
        std::fs::write(data.join("pg_hba.conf"), hba).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = run_as {
            chown_all(dir, *uid, *gid)?;
        }
        let mut last_error = String::new();
        // A free port can be taken between our probe and the server's
        // bind: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            match PgServer::launch(bin, dir, &data, port, tls.as_ref(), run_as) {
                Ok(server) => return Ok(server),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    fn launch(
        bin: &Path,
        dir: &Path,
        data: &Path,
        port: u16,
        tls: Option<&TlsFiles>,
        run_as: Option<&(u32, u32)>,
    ) -> Result<PgServer, String> {
        let mut postgres = vec![
            bin.join("postgres").display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-k".into(),
            dir.display().to_string(),
        ];
        for setting in [
            // A second loopback address, whose name the server's certificate
            // does not hold (for tests of hostname verification).
            "listen_addresses=127.0.0.1,127.0.0.2",
            // A test server: durability is not what is tested here.
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=300",
            "shared_buffers=32MB",
            "log_min_messages=warning",
        ] {
            postgres.push("-c".into());
            postgres.push(setting.into());
        }
        if let Some(tls) = tls {
            for setting in [
                "ssl=on".to_owned(),
                format!("ssl_cert_file={}", dir.join("server.crt").display()),
                format!("ssl_key_file={}", dir.join("server.key").display()),
                format!("ssl_ca_file={}", tls.ca.display()),
            ] {
                postgres.push("-c".into());
                postgres.push(setting);
            }
        }
        let quoted: Vec<String> = postgres.iter().map(|a| shell_quote(a)).collect();
        let drop_root = match run_as {
            Some((uid, gid)) => format!("setpriv --reuid={uid} --regid={gid} --clear-groups -- "),
            None => String::new(),
        };
        let log = dir.join("server.log");
        let script = format!(
            "{drop_root}{} >{} 2>&1 & pg=$!\n\
             cat >/dev/null\n\
             kill -INT $pg 2>/dev/null; wait $pg\n\
             rm -rf {}\n",
            quoted.join(" "),
            shell_quote(&log.display().to_string()),
            shell_quote(&dir.display().to_string()),
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let Some(stdin) = child.stdin.take() else {
            return Err("no pipe to the server's watchdog".into());
        };
        let server = PgServer {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            port,
            tls: tls.cloned(),
            next_database: AtomicU32::new(1),
            watchdog: std::sync::Mutex::new((child, stdin)),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match server.psql("postgres", "SELECT 1") {
                Ok(_) => break,
                Err(e) => {
                    let exited = server
                        .watchdog
                        .lock()
                        .map(|mut w| matches!(w.0.try_wait(), Ok(Some(_))))
                        .unwrap_or(true);
                    if exited || Instant::now() > deadline {
                        let log = std::fs::read_to_string(&log).unwrap_or_default();
                        return Err(format!("the server did not start: {e}; log: {log}"));
                    }
                    if log_says_port_taken(&log) {
                        return Err(format!("port {port} taken"));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        server.psql(
            "postgres",
            &format!("CREATE ROLE {CERT_USER} LOGIN CREATEDB"),
        )?;
        Ok(server)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of its Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The certificates, when the server runs with TLS.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// A new, empty database (ICU's English collation where the server
    /// has ICU), usable by [`USER`] and [`CERT_USER`]; its name.
    pub fn create_database(&self) -> Result<String, String> {
        let name = format!(
            "ledger_{}",
            self.next_database.fetch_add(1, Ordering::Relaxed)
        );
        // A collation that does not sort by bytes where the server has one
        // (ICU's English: "a" before "B", punctuation ignored), so that a
        // query relying on the database's default order shows up.
        let icu = format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        );
        if self.psql("postgres", &icu).is_err() {
            self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        }
        self.psql(&name, &format!("GRANT ALL ON SCHEMA public TO {CERT_USER}"))?;
        Ok(name)
    }

    /// `postgres://review_sync@127.0.0.1:PORT/DATABASE` (the password is
    /// [`PASSWORD`], given apart).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs `sql` in `database` with `psql` over the Unix socket (no
    /// password) and returns its unaligned output (`|` between columns).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", USER, "-d", database, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

/// The directory holding `initdb`, `postgres` and `psql`.
fn binaries() -> Result<PathBuf, String> {
    let has_all = |dir: &Path| {
        ["initdb", "postgres", "psql"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("REVIEW_SYNC_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_all(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "$REVIEW_SYNC_PG_BIN={} lacks initdb, postgres or psql",
                dir.display()
            ))
        };
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_all(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if has_all(&dir) {
            return Ok(dir);
        }
    }
    Err(
        "no PostgreSQL server binaries (initdb, postgres, psql): install the Debian package \
         postgresql, or set REVIEW_SYNC_PG_BIN to their directory"
            .into(),
    )
}

/// `(uid, gid)` to run the server as when this process is root (PostgreSQL
/// refuses root); `None` when it is not.
fn unprivileged_user() -> Result<Option<(u32, u32)>, String> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id(&["-u"]) != Some(0) {
        return Ok(None);
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        return Err(
            "running as root, and setpriv (util-linux) is missing to drop root for \
                    the PostgreSQL server"
                .into(),
        );
    }
    for user in ["postgres", "nobody"] {
        if let (Some(uid), Some(gid)) = (id(&["-u", user]), id(&["-g", user])) {
            return Ok(Some((uid, gid)));
        }
    }
    Err("running as root, and there is no postgres or nobody user to run the server as".into())
}

/// Makes a CA, a server certificate for `localhost` and 127.0.0.1, a client
/// certificate for [`CERT_USER`], and an unrelated CA, with `openssl`;
/// `None` (no TLS) when it is missing or fails.
fn make_certificates(dir: &Path) -> Option<TlsFiles> {
    let run = |args: &[&str]| -> Option<()> {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(())
    };
    let key = |name: &str| {
        run(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            name,
        ])
    };
    let ca = |name: &str, cn: &str| -> Option<()> {
        key(&format!("{name}.key"))?;
        run(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "3650",
            "-subj",
            &format!("/CN={cn}"),
        ])
    };
    let signed = |name: &str, cn: &str, ext: &str| -> Option<()> {
        key(&format!("{name}.key"))?;
        run(&[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ])?;
        std::fs::write(dir.join(format!("{name}.ext")), ext).ok()?;
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "3650",
            "-extfile",
            &format!("{name}.ext"),
        ])
    };
    ca("ca", "review-sync test CA")?;
    ca("other-ca", "another CA")?;
    signed(
        "server",
        "localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )?;
    signed("client", CERT_USER, "extendedKeyUsage=clientAuth\n")?;
    set_mode(&dir.join("server.key"), 0o600).ok()?;
    Some(TlsFiles {
        ca: dir.join("ca.crt"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
        other_ca: dir.join("other-ca.crt"),
    })
}

fn as_user(run_as: Option<&(u32, u32)>, program: &Path) -> Command {
    match run_as {
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn chown_all(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(dir)
        .status()
        .map_err(|e| format!("cannot run chown: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("chown of {} failed", dir.display()))
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn log_says_port_taken(log: &Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|l| l.contains("Address already in use"))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
