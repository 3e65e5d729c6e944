//! `review-sync sandbox`: serves the emulators on loopback for trying a
//! config by hand, and prints a config that points at them. Stdout is
//! exactly that config (`review-sync sandbox > cfg.toml` is valid TOML);
//! what the operator should read goes to stderr.

use std::io::Write;
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
# Or let discovery find every location (drop the [[source.location]]s below):
# discover_accounts = [{accounts}]
# group_external_ref_from = "store_code"
# business_information_base_url = "{base}/google-bi"
"#,
        client_id = sandbox::TRAVTUS_CLIENT_ID,
        client_secret = sandbox::TRAVTUS_CLIENT_SECRET,
        g_id = sandbox::GOOGLE_CLIENT_ID,
        g_secret = sandbox::GOOGLE_CLIENT_SECRET,
        g_refresh = sandbox::GOOGLE_REFRESH_TOKEN,
        accounts = sb
            .google()
            .accounts()
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for (i, location) in sb.google().locations().iter().enumerate() {
        toml.push_str(&format!(
            "\n  [[source.location]]\n  id = \"{location}\"\n  group_external_ref = \"portfolio-{}\"\n",
            i % 10 + 1
        ));
    }
    toml.push_str(&other_platforms_config(sb));
    toml
}

/// The `google_places`, `yelp`, `facebook` and `trustpilot` sources of the
/// sandbox config. Their budgets are raised: the sandbox has no quota, and
/// Facebook's real one (3 a minute) would make a demo wait.
fn other_platforms_config(sb: &sandbox::Sandbox) -> String {
    let base = sb.base_url();
    let mut toml = format!(
        r#"
[[source]]
name = "sandbox-places"
kind = "google_places"
schedule = "0 0 * * * *"
requests_per_minute = 600
api_key = "{places_key}"
api_base_url = "{base}/places"
"#,
        places_key = sandbox::PLACES_API_KEY,
    );
    // Each platform's locations go to their own groups, after Google's.
    let mut group = 3;
    let mut locations = |toml: &mut String, ids: Vec<String>| {
        for id in ids {
            toml.push_str(&format!(
                "
  [[source.location]]
  id = \"{id}\"
  group_external_ref = \"portfolio-{}\"
",
                group % 10 + 1
            ));
            group += 1;
        }
    };
    locations(&mut toml, sb.places().place_ids());
    toml.push_str(&format!(
        r#"
[[source]]
name = "sandbox-yelp"
kind = "yelp"
schedule = "0 0 * * * *"
requests_per_minute = 600
api_key = "{yelp_key}"
api_base_url = "{base}/yelp"
"#,
        yelp_key = sandbox::YELP_API_KEY,
    ));
    locations(&mut toml, sb.yelp().business_ids());
    toml.push_str(&format!(
        r#"
[[source]]
name = "sandbox-facebook"
kind = "facebook"
schedule = "0 0 * * * *"
requests_per_minute = 600
access_token = "{fb_token}"
graph_version = "v21.0"
api_base_url = "{base}/facebook"
"#,
        fb_token = sandbox::FACEBOOK_ACCESS_TOKEN,
    ));
    locations(&mut toml, sb.facebook().page_ids());
    toml.push_str(&format!(
        r#"
[[source]]
name = "sandbox-trustpilot"
kind = "trustpilot"
schedule = "0 */30 * * * *"
requests_per_minute = 600
api_key = "{tp_key}"
api_base_url = "{base}/trustpilot"
# The private endpoint, with a business-user token (drop these four lines
# for the public one):
api_secret = "{tp_secret}"
username = "{tp_user}"
password = "{tp_password}"
token_url = "{tp_token_url}"
"#,
        tp_key = sandbox::TRUSTPILOT_API_KEY,
        tp_secret = sandbox::TRUSTPILOT_API_SECRET,
        tp_user = sandbox::TRUSTPILOT_USERNAME,
        tp_password = sandbox::TRUSTPILOT_PASSWORD,
        tp_token_url = sb.trustpilot_token_url(),
    ));
    locations(&mut toml, sb.trustpilot().business_unit_ids());
    toml
}
