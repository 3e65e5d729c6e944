//! `review-sync sandbox`: serves the emulators on loopback for trying a
//! config by hand, and prints a config that points at them.

use std::net::SocketAddr;
use std::process::ExitCode;

/// Serves until Ctrl-C / SIGTERM.
pub async fn sandbox(listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let sb = sandbox::Sandbox::start(sandbox::SandboxOptions {
        listen,
        ..sandbox::SandboxOptions::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let base = sb.base_url();
    println!("sandbox listening on {base} (control API: {base}/_sandbox/state)\n");
    println!("{}", sandbox_config(&sb, "./ledger.db"));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sb.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// A config (TOML text) that points every source at the sandbox, with
/// plain-string secrets: they are the sandbox's public test values.
pub fn sandbox_config(sb: &sandbox::Sandbox, ledger_path: &str) -> String {
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

[[source]]
name = "sandbox-google"
kind = "google_business_profile"
schedule = "0 */5 * * * *"
client_id = "{g_id}"
client_secret = "{g_secret}"
refresh_token = "{g_refresh}"
api_base_url = "{base}/google"
token_url = "{base}/google/token"
"#,
        client_id = sandbox::TRAVTUS_CLIENT_ID,
        client_secret = sandbox::TRAVTUS_CLIENT_SECRET,
        g_id = sandbox::GOOGLE_CLIENT_ID,
        g_secret = sandbox::GOOGLE_CLIENT_SECRET,
        g_refresh = sandbox::GOOGLE_REFRESH_TOKEN,
    );
    for (i, location) in sb.google().locations().iter().enumerate() {
        toml.push_str(&format!(
            "\n  [[source.location]]\n  id = \"{location}\"\n  group_external_ref = \"portfolio-{}\"\n",
            i % 10 + 1
        ));
    }
    toml
}
