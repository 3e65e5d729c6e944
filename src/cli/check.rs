//! `review-sync check [--online [--set-notifications]]
//! [--credentials-directory DIR] [--format text|json]`: validates the config
//! (credentials read from DIR, as the unit would provide them) and says what
//! each file location matches now; online, also fetches each token and
//! lists each location once, naming the URL of whatever fails, checks each
//! push channel and, with `--set-notifications`, points the Business
//! Profile accounts' notifications at their subscription's topic; then the quota plan (`quota::plan`: the requests
//! a day each quota scope needs against its quota, what cannot fit, the
//! tightest schedule that does). What it prints quotes the config and the
//! platforms' answers: escaped for the terminal. `--format json` prints the
//! whole check as one JSON object instead. The plan's warnings do not
//! change the exit status: only a failed online check does.

use clap::ValueEnum;
use review_sync::app::http_client;
use review_sync::config::{Config, LoadOptions, TravtusAuth};
use review_sync::escape::Escaped;
use review_sync::oauth::{Grant, TokenCache};
use review_sync::platforms::http::shown_url;
use review_sync::quota::plan::{self, PassKind, PlannedPass, PlannedSource, QuotaPlan};
use review_sync::quota::{QuotaScope, Quotas, ScopeKey};
use serde_json::{Value, json};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// How `check` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CheckFormat {
    /// Lines for a person.
    Text,
    /// One JSON object: the summary, warnings, locations, online results
    /// and the quota plan.
    Json,
}

/// What `--online` asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Online {
    /// `--set-notifications`.
    pub(crate) set_notifications: bool,
}

/// Validates, and with `online` tries every credential and location.
pub(super) async fn check(
    config_path: &Path,
    online: Option<Online>,
    format: CheckFormat,
    options: &LoadOptions,
) -> anyhow::Result<ExitCode> {
    // Not `load_config`: that logs the warnings, and `check` prints them
    // below as its own output (once).
    let config = review_sync::config::load_with(config_path, options)?;
    let text = format == CheckFormat::Text;
    let locations: usize = config.sources.iter().map(|s| s.locations.len()).sum();
    if text {
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
    }
    let inspected = file_matches(&config, online.is_none(), text);
    let mut online_lines: Vec<Value> = Vec::new();
    let ok = if let Some(online) = online {
        check_online(&config, online, &mut |line: Line| {
            if text {
                println!("{}", line.text);
            } else {
                online_lines.push(line.json);
            }
        })
        .await?
    } else {
        true
    };
    let plan = quota_plan(&config, chrono::Utc::now());
    if text {
        match &plan {
            Ok(plan) => print!("{}", plan.render_table()),
            Err(e) => println!("warning: no quota plan: {}", Escaped(e)),
        }
    } else {
        let whole = json!({
            "config": config_path.display().to_string(),
            "ok": ok,
            "sources": config.sources.len(),
            "locations": locations,
            "ledger": config.ledger.path.display().to_string(),
            "warnings": config.warnings,
            "inspected": inspected,
            "online": online.is_some().then_some(online_lines),
            "quota_plan": match &plan {
                Ok(plan) => plan.to_json(),
                Err(e) => json!({"error": e.to_string()}),
            },
        });
        // Escaped for a terminal with JSON's own escapes: still exact JSON.
        println!("{}", review_sync::escape::escape(&whole.to_string()));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The quota plan of `config` from the day after `now`: each source's
/// schedules against its scope (a Facebook source: one per Page), each
/// scope's quota raised as its budget would be by `requests_per_minute`.
pub(super) fn quota_plan(
    config: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<QuotaPlan, plan::PlanError> {
    // The budgets a daemon would make, for their windows.
    let quotas = Quotas::new();
    let mut planned: Vec<PlannedSource> = Vec::new();
    for source in &config.sources {
        let kind = &source.kind;
        let mut passes = vec![PlannedPass {
            kind: PassKind::Incremental,
            schedule: source.schedule.as_str().to_owned(),
            cost: kind.pass_cost(PassKind::Incremental),
        }];
        if let Some(reconcile) = &source.reconcile_schedule {
            passes.push(PlannedPass {
                kind: PassKind::Reconcile,
                schedule: reconcile.as_str().to_owned(),
                cost: kind.pass_cost(PassKind::Reconcile),
            });
        }
        let scope = kind.quota_scope();
        let scoped: Vec<(ScopeKey, u32)> = match &scope {
            QuotaScope::None => Vec::new(),
            QuotaScope::Source(key) => vec![(
                key.clone(),
                u32::try_from(source.locations.len()).unwrap_or(u32::MAX),
            )],
            QuotaScope::PerLocation(_) => source
                .locations
                .iter()
                .filter_map(|l| scope.key(Some(l.id.as_str())).map(|key| (key, 1)))
                .collect(),
        };
        for (key, locations) in scoped {
            quotas.budget(&key, &kind.quota_windows(), source.requests_per_minute);
            planned.push(PlannedSource {
                source: source.name.to_string(),
                scope: key,
                locations,
                passes: passes.clone(),
            });
        }
    }
    let windows_of = |key: &ScopeKey| quotas.budget(key, &[], None).windows();
    plan::plan(&planned, &windows_of, now)
}

/// What each location says without asking its platform (a `file`
/// location: what it matches now, relative ids starting at the config's
/// folder), and, when `warn`, every problem a poll would meet (online, the
/// read itself reports them); printed when `print`, returned as JSON.
fn file_matches(config: &Config, warn: bool, print: bool) -> Vec<Value> {
    let mut out = Vec::new();
    for source in &config.sources {
        for location in &source.locations {
            let Some((summary, problems)) = source.kind.inspect(&location.id) else {
                continue;
            };
            if print {
                println!("{} {}: {summary}", source.name, location.id);
                if warn {
                    for problem in &problems {
                        println!("warning: {} {}: {problem}", source.name, location.id);
                    }
                }
            }
            out.push(json!({
                "source": source.name.to_string(),
                "location": location.id.to_string(),
                "summary": summary,
                "problems": if warn { problems } else { Vec::new() },
            }));
        }
    }
    out
}

/// One result of the online check, as a line and as JSON.
struct Line {
    text: String,
    json: Value,
}

async fn check_online(
    config: &Config,
    online: Online,
    emit: &mut dyn FnMut(Line),
) -> anyhow::Result<bool> {
    let http = http_client()?;
    // One set of budgets, as in one daemon: the sources of a scope share it.
    let quotas = Arc::new(Quotas::new());
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
                Ok(_) => emit(Line {
                    text: format!("travtus: token ok ({})", Escaped(&shown)),
                    json: json!({"check": "travtus_token", "ok": true, "url": shown}),
                }),
                Err(e) => {
                    ok = false;
                    emit(Line {
                        text: format!(
                            "travtus: token FAILED (POST {}): {}",
                            Escaped(&shown),
                            Escaped(&e)
                        ),
                        json: json!({"check": "travtus_token", "ok": false, "url": shown, "error": e.to_string()}),
                    });
                }
            }
        }
        TravtusAuth::StaticToken(_) => emit(Line {
            text: "travtus: static token (checked on first delivery)".to_owned(),
            json: json!({"check": "travtus_token", "ok": true, "static": true}),
        }),
    }
    for source in &config.sources {
        let client = review_sync::platforms::client(source, http.clone(), &quotas);
        let name = source.name.to_string();
        // Discovered locations are listed too: they are polled like the others.
        let plan = review_sync::locations::plan(source, client.as_ref()).await;
        if let Some(d) = &plan.discovery {
            emit(Line {
                text: format!(
                    "{}: discovered {} location(s) in {} account(s), {} without a store code (their reviews would be held)",
                    Escaped(&name),
                    d.found,
                    d.accounts,
                    d.unmapped.len()
                ),
                json: json!({"check": "discovery", "source": name, "found": d.found, "accounts": d.accounts, "without_store_code": d.unmapped.len()}),
            });
            for (account, error) in &d.failures {
                ok = false;
                emit(Line {
                    text: format!(
                        "{} {}: discovery FAILED: {}",
                        Escaped(&name),
                        Escaped(account),
                        Escaped(error)
                    ),
                    json: json!({"check": "discovery", "source": name, "account": account, "ok": false, "error": error.to_string()}),
                });
            }
        }
        let ids: Vec<_> = plan.targets.iter().map(|t| t.id.clone()).collect();
        for (location, result) in
            review_sync::poll::location::check_online(client.as_ref(), &ids).await
        {
            let shown = (Escaped(&name), Escaped(&location));
            let location = location.to_string();
            match result {
                Ok(line) => emit(Line {
                    text: format!("{} {}: {}", shown.0, shown.1, Escaped(&line)),
                    json: json!({"check": "location", "source": name, "location": location, "ok": true, "result": line}),
                }),
                Err(e) => {
                    ok = false;
                    emit(Line {
                        text: format!("{} {}: FAILED: {}", shown.0, shown.1, Escaped(&e)),
                        json: json!({"check": "location", "source": name, "location": location, "ok": false, "error": e}),
                    });
                }
            }
        }
        for line in
            review_sync::push::check::check_online(config, source, online.set_notifications).await
        {
            ok &= line.ok;
            emit(Line {
                text: format!("{}: {}", Escaped(&name), Escaped(&line.text)),
                json: json!({"check": "push", "source": name, "ok": line.ok, "result": line.text}),
            });
        }
    }
    Ok(ok)
}
