//! `review-sync check [--online] [--credentials-directory DIR]`: validates
//! the config (credentials read from DIR, as the unit would provide them)
//! and says what each file location matches now; online, also fetches each
//! token and lists each location once, naming the URL of whatever fails.
//! What it prints quotes the config and the platforms' answers: escaped for
//! the terminal.

use review_sync::app::http_client;
use review_sync::config::{Config, LoadOptions, TravtusAuth};
use review_sync::escape::Escaped;
use review_sync::oauth::{Grant, TokenCache};
use review_sync::platforms::http::shown_url;
use std::path::Path;
use std::process::ExitCode;

/// Validates, and with `online` tries every credential and location.
pub async fn check(
    config_path: &Path,
    online: bool,
    options: &LoadOptions,
) -> anyhow::Result<ExitCode> {
    // Not `load_config`: that logs the warnings, and `check` prints them
    // below as its own output (once).
    let config = review_sync::config::load_with(config_path, options)?;
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
    file_matches(&config, !online);
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

/// What each location says without asking its platform (a `file`
/// location: what it matches now, relative ids starting at the config's
/// folder), and, when `warn`, every problem a poll would meet (online, the
/// read itself reports them).
fn file_matches(config: &Config, warn: bool) {
    for source in &config.sources {
        for location in &source.locations {
            let Some((summary, problems)) = source.kind.inspect(&location.id) else {
                continue;
            };
            println!("{} {}: {summary}", source.name, location.id);
            if warn {
                for problem in &problems {
                    println!("warning: {} {}: {problem}", source.name, location.id);
                }
            }
        }
    }
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
            let shown = shown_url(token_url);
            match cache.get().await {
                Ok(_) => println!("travtus: token ok ({})", Escaped(&shown)),
                Err(e) => {
                    ok = false;
                    println!(
                        "travtus: token FAILED (POST {}): {}",
                        Escaped(&shown),
                        Escaped(e)
                    );
                }
            }
        }
        TravtusAuth::StaticToken(_) => {
            println!("travtus: static token (checked on first delivery)")
        }
    }
    for source in &config.sources {
        let client = review_sync::platforms::client(source, http.clone());
        // Discovered locations are listed too: they are polled like the others.
        let plan = review_sync::locations::plan(source, client.as_ref()).await;
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
        for (location, result) in
            review_sync::poll::location::check_online(client.as_ref(), &ids).await
        {
            let (name, location) = (Escaped(&source.name), Escaped(location));
            match result {
                Ok(line) => println!("{name} {location}: {}", Escaped(line)),
                Err(e) => {
                    ok = false;
                    println!("{name} {location}: FAILED: {}", Escaped(e));
                }
            }
        }
        match review_sync::push::check::check_online(config, source).await {
            None => {}
            Some(Ok(line)) => println!("{}: {}", Escaped(&source.name), Escaped(line)),
            Some(Err(e)) => {
                ok = false;
                println!("{}: FAILED: {}", Escaped(&source.name), Escaped(e));
            }
        }
    }
    Ok(ok)
}
