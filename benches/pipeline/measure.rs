//! What the bench measures and how: the daemon as a child process (its
//! stderr kept, its POSIX CPU-time clock, `/proc/PID/status`, `wait4`
//! rusage for the bytes it wrote), this process's own CPU clock, and the
//! state of the machine (cores, load, other users' compilers).

use crate::{BenchResult, SCENARIO_LIMIT};
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `review-sync` with its stderr collected (the last 64 KiB).
pub(crate) struct Child {
    child: std::process::Child,
    pid: libc::pid_t,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// How a child ended, with its resource usage (`wait4`).
pub(crate) struct Exit {
    pub(crate) status: i32,
    pub(crate) rusage: libc::rusage,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Exit {
    pub(crate) fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }

    pub(crate) fn stderr_tail(&self) -> String {
        tail(&self.stderr)
    }
}

/// How much of a child's stderr is kept.
const STDERR_KEEP: usize = 64 * 1024;

/// The last 4 KiB of a child's stderr, for error messages.
fn tail(buf: &Mutex<Vec<u8>>) -> String {
    let buf = buf.lock().unwrap_or_else(|p| p.into_inner());
    let start = buf.len().saturating_sub(4096);
    String::from_utf8_lossy(&buf[start..]).into_owned()
}

impl Child {
    pub(crate) fn spawn(
        bin: &Path,
        config: &Path,
        args: &[&str],
        notify_socket: Option<&Path>,
    ) -> BenchResult<Child> {
        let mut command = std::process::Command::new(bin);
        command
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A pipe, not a file: the quiet pass counts bytes written to storage.
            .stderr(Stdio::piped());
        if let Some(socket) = notify_socket {
            command.env("NOTIFY_SOCKET", socket);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    let mut buf = stderr.lock().unwrap_or_else(|p| p.into_inner());
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() > 2 * STDERR_KEEP {
                        let cut = buf.len() - STDERR_KEEP;
                        buf.drain(..cut);
                    }
                }
            });
        }
        Ok(Child { child, pid, stderr })
    }

    pub(crate) fn stderr_tail(&self) -> String {
        tail(&self.stderr)
    }

    /// The CPU time of the whole process so far (every thread, dead ones
    /// included), in nanoseconds: its POSIX CPU-time clock.
    pub(crate) fn cpu_time(&self) -> BenchResult<Duration> {
        let mut clock: libc::clockid_t = 0;
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: both pointers are to live locals of the right type.
        let ok = unsafe {
            libc::clock_getcpuclockid(self.pid, &mut clock) == 0
                && libc::clock_gettime(clock, &mut ts) == 0
        };
        if !ok {
            return Err(format!(
                "cannot read the CPU clock of {}: {}",
                self.pid,
                std::io::Error::last_os_error()
            ));
        }
        Ok(Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        ))
    }

    /// A `kB` line of `/proc/PID/status` (`VmHWM`, `VmRSS`).
    pub(crate) fn status_kib(&self, key: &str) -> BenchResult<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(|e| format!("/proc/{}/status: {e}", self.pid))?;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(key)?
                    .strip_prefix(':')?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .ok_or_else(|| format!("no {key} in /proc/{}/status", self.pid))
    }

    /// SIGTERM, then waits for a clean stop.
    pub(crate) async fn terminate(self) -> BenchResult<Exit> {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
        self.wait().await
    }

    /// Waits for the process to end and returns its status and rusage.
    pub(crate) async fn wait(self) -> BenchResult<Exit> {
        let pid = self.pid;
        let stderr = self.stderr;
        // The std Child is not waited on: wait4 reaps the process here.
        std::mem::forget(self.child);
        let waited = tokio::task::spawn_blocking(move || {
            let mut status = 0;
            // SAFETY: rusage is plain data; zeroed is a valid value.
            let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: pointers to live locals; pid is our unreaped child.
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
            if r == pid {
                Ok((status, rusage))
            } else {
                Err(format!("wait4: {}", std::io::Error::last_os_error()))
            }
        });
        let (status, rusage) = tokio::time::timeout(SCENARIO_LIMIT, waited)
            .await
            .map_err(|_| format!("process {pid} did not stop"))?
            .map_err(|e| format!("wait task: {e}"))??;
        // Give the reader thread a moment to see the end of the pipe.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Exit {
            status,
            rusage,
            stderr,
        })
    }
}

/// Waits (checking every 10 ms) until `done`, failing if the daemon exits
/// or the scenario takes too long.
pub(crate) async fn wait_for(
    what: &str,
    daemon: &Child,
    done: impl FnMut() -> bool,
) -> BenchResult<()> {
    wait_for_every(what, daemon, Duration::from_millis(10), done).await
}

/// [`wait_for`], checking every `every`.
pub(crate) async fn wait_for_every(
    what: &str,
    daemon: &Child,
    every: Duration,
    mut done: impl FnMut() -> bool,
) -> BenchResult<()> {
    let deadline = Instant::now() + SCENARIO_LIMIT;
    let pid = daemon.pid;
    while !done() {
        if Instant::now() > deadline {
            return Err(format!(
                "timed out waiting for {what}: {}",
                daemon.stderr_tail()
            ));
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(format!(
                "the daemon died waiting for {what}: {}",
                daemon.stderr_tail()
            ));
        }
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// CPU time of this process so far (the sandbox and the raw client).
pub(crate) fn own_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a pointer to a live local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Cores this process may use.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Compiler processes of other users of this machine (their builds skew
/// every figure; the JSON line records how many were running).
pub(crate) fn compilers_running() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    // The `cargo bench` that started us is not someone else's build.
    let parent = std::os::unix::process::parent_id().to_string();
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.bytes().all(|b| b.is_ascii_digit()) && name != parent
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .filter(|comm| {
            matches!(
                comm.trim(),
                "rustc" | "cargo" | "cc1" | "cc1plus" | "ld" | "lld"
            )
        })
        .count()
}
