//! `review-sync check [--online]`: validates the config; online, also
//! fetches each token and lists each location once.

use review_sync::app::http_client;
use review_sync::config::{Config, TravtusAuth};
use review_sync::oauth::{Grant, TokenCache};
use review_sync::platforms::SourceClient;
use std::path::Path;
use std::process::ExitCode;

/// Validates, and with `online` tries every credential and location.
pub async fn check(config_path: &Path, online: bool) -> anyhow::Result<ExitCode> {
    // Not `load_config`: that logs the warnings, and `check` prints them
    // below as its own output (once).
    let config = review_sync::config::load(config_path)?;
    let locations: usize = config.sources.iter().map(|s| s.locations.len()).sum();
    println!(
        "{}: ok: {} source(s), {} location(s), ledger {}",
        config_path.display(),
        config.sources.len(),
        locations,
        config.ledger.path.display()
    );
    for warning in &config.warnings {
        println!("warning: {warning}");
    }
    if !online {
        return Ok(ExitCode::SUCCESS);
    }
    let ok = check_online(&config).await?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn check_online(config: &Config) -> anyhow::Result<bool> {
    let http = http_client()?;
    let mut ok = true;
    match &config.travtus.auth {
        TravtusAuth::ClientCredentials {
            token_url,
            client_id,
            client_secret,
        } => {
            let cache = TokenCache::new(
                Grant::ClientCredentials {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                },
                token_url.clone(),
                http.clone(),
            );
            match cache.get().await {
                Ok(_) => println!("travtus: token ok ({token_url})"),
                Err(e) => {
                    ok = false;
                    println!("travtus: token FAILED: {e}");
                }
            }
        }
        TravtusAuth::StaticToken(_) => {
            println!("travtus: static token (checked on first delivery)")
        }
    }
    for source in &config.sources {
        let client = SourceClient::new(source, http.clone());
        // Discovered locations are listed too: they are polled like the others.
        let plan = review_sync::locations::plan(source, &client).await;
        if let Some(d) = &plan.discovery {
            println!(
                "{}: discovered {} location(s) in {} account(s), {} without a store code (their reviews would be held)",
                source.name,
                d.found,
                d.accounts,
                d.unmapped.len()
            );
            for (account, error) in &d.failures {
                ok = false;
                println!("{} {account}: discovery FAILED: {error}", source.name);
            }
        }
        let ids: Vec<_> = plan.targets.iter().map(|t| t.id.clone()).collect();
        for (location, result) in client.check_online(&ids).await {
            match result {
                Ok(line) => println!("{} {location}: {line}", source.name),
                Err(e) => {
                    ok = false;
                    println!("{} {location}: FAILED: {e}", source.name);
                }
            }
        }
    }
    Ok(ok)
}
