//! `review-sync sandbox`: serves the emulators on loopback for trying a
//! config by hand, and prints a config that points at them. Stdout is
//! exactly that config (`review-sync sandbox > cfg.toml` is valid TOML);
//! what the operator should read goes to stderr.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

/// Serves until Ctrl-C / SIGTERM.
pub(super) async fn sandbox(listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let sb = sandbox::Sandbox::start(sandbox::SandboxOptions {
        listen,
        ..sandbox::SandboxOptions::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let base = sb.base_url();
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(sandbox_config(&sb, "./ledger.db").as_bytes())?;
    stdout.flush()?;
    drop(stdout);
    // After the config: once this is on stderr, stdout holds all of it.
    eprintln!(
        "sandbox listening on {base}: the config on stdout points every source at it\n\
         control API: {base}/_sandbox/state (every endpoint: sandbox/README.md)\n\
         its secrets are the sandbox's public test values: `chmod 600` the file you save it to, or `check` warns about each plain-string secret\n\
         stop with Ctrl-C"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sb.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// A config (TOML text) that points every source at the sandbox, with
/// plain-string secrets: they are the sandbox's public test values. Each
/// platform writes its own sources (`review_sync::platforms::sandbox_sources`).
pub(super) fn sandbox_config(sb: &sandbox::Sandbox, ledger_path: &str) -> String {
    let base = sb.base_url();
    let mut toml = format!(
        r#"# review-sync config for the sandbox at {base}
[travtus]
base_url = "{base}/travtus"
token_url = "{base}/travtus/oauth2/token"
client_id = "{client_id}"
client_secret = "{client_secret}"
timeout = "10s"
concurrency = 4

[ledger]
path = "{ledger_path}"
"#,
        client_id = sandbox::TRAVTUS_CLIENT_ID,
        client_secret = sandbox::TRAVTUS_CLIENT_SECRET,
    );
    toml.push_str(&review_sync::platforms::sandbox_sources(sb));
    toml
}
