//! `review-sync check [--online]`: validates the config; online, also
//! fetches each token and lists each location once. What it prints quotes
//! the config and the platforms' answers: escaped for the terminal.

use review_sync::app::http_client;
use review_sync::config::{Config, TravtusAuth};
use review_sync::escape::Escaped;
use review_sync::oauth::{Grant, TokenCache};
use review_sync::platforms::SourceClient;
use std::path::Path;
use std::process::ExitCode;

/// Validates, and with `online` tries every credential and location.
pub async fn check(config_path: &Path, online: bool) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    let locations: usize = config.sources.iter().map(|s| s.locations.len()).sum();
    println!(
        "{}: ok: {} source(s), {} location(s), ledger {}",
        Escaped(config_path.display()),
        config.sources.len(),
        locations,
        Escaped(config.ledger.path.display())
    );
    for warning in &config.warnings {
        println!("warning: {}", Escaped(warning));
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
                Ok(_) => println!("travtus: token ok ({})", Escaped(token_url)),
                Err(e) => {
                    ok = false;
                    println!("travtus: token FAILED: {}", Escaped(e));
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
                Escaped(&source.name),
                d.found,
                d.accounts,
                d.unmapped.len()
            );
            for (account, error) in &d.failures {
                ok = false;
                println!(
                    "{} {}: discovery FAILED: {}",
                    Escaped(&source.name),
                    Escaped(account),
                    Escaped(error)
                );
            }
        }
        let ids: Vec<_> = plan.targets.iter().map(|t| t.id.clone()).collect();
        for (location, result) in client.check_online(&ids).await {
            let (name, location) = (Escaped(&source.name), Escaped(location));
            match result {
                Ok(line) => println!("{name} {location}: {}", Escaped(line)),
                Err(e) => {
                    ok = false;
                    println!("{name} {location}: FAILED: {}", Escaped(e));
                }
            }
        }
    }
    Ok(ok)
}
