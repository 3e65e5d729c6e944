//! The commented example config (`config.example.toml`): it loads with the
//! values it documents, and shows every key.

use super::*;
use crate::platforms::facebook::FacebookConfig;
use crate::platforms::file::FileConfig;
use crate::platforms::google::{GoogleConfig, GroupFrom};
use crate::platforms::places::PlacesConfig;
use crate::platforms::trustpilot::TrustpilotConfig;
use crate::platforms::yelp::YelpConfig;

#[test]
fn the_example_config_loads_with_the_documented_values() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials)?;
    write_secret(
        &credentials.join("travtus_client_secret"),
        "travtus-secret\n",
    )?;
    write_secret(&credentials.join("google_client_secret"), "google-secret\n")?;
    write_secret(
        &credentials.join("google_refresh_token"),
        "google-refresh\n",
    )?;
    for name in [
        "google_places_api_key",
        "yelp_api_key",
        "facebook_page_token",
        "facebook_page_token_789",
        "trustpilot_api_key",
        "trustpilot_api_secret",
        "trustpilot_username",
        "trustpilot_password",
    ] {
        write_secret(&credentials.join(name), &format!("{name}-value\n"))?;
    }
    let credentials = credentials.display().to_string();
    let env = env_of(&[
        ("CREDENTIALS_DIRECTORY", &credentials),
        ("GOOGLE_CLIENT_SECRET", "google-secret"),
    ]);
    let text = include_str!("../../../config.example.toml");
    let config = load_in(dir.path(), text, &env).map_err(std::io::Error::other)?;

    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.travtus.base_url.as_str(), "https://api.travtus.com/");
    let TravtusAuth::ClientCredentials {
        token_url,
        client_id,
        client_secret,
    } = &config.travtus.auth
    else {
        panic!("the example uses client credentials");
    };
    assert_eq!(token_url.as_str(), "https://api.travtus.com/oauth2/token");
    assert_eq!(client_id, "review-sync-acme");
    assert_eq!(client_secret.expose(), "travtus-secret");
    assert_eq!(config.travtus.timeout, std::time::Duration::from_secs(30));
    assert_eq!(config.travtus.concurrency.get(), 4);
    assert_eq!(
        config.ledger.path,
        Path::new("/var/lib/review-sync/ledger.db")
    );
    assert_eq!(
        config.metrics.map(|m| m.listen.to_string()),
        Some("127.0.0.1:9187".to_string())
    );
    assert_eq!(config.sources.len(), 6);

    let google = &config.sources[0];
    assert_eq!(google.name.as_str(), "acme-google");
    assert_eq!(google.schedule.as_str(), "0 */15 * * * *");
    assert_eq!(
        google.reconcile_schedule.as_ref().map(|s| s.as_str()),
        Some("0 30 3 * * *")
    );
    assert_eq!(
        google.requests_per_minute, None,
        "no override: the scope\'s budget"
    );
    let Some(settings) = google.kind.settings::<GoogleConfig>() else {
        panic!("the first example source is google_business_profile");
    };
    assert_eq!(
        settings.client_id,
        "1234567890-acme.apps.googleusercontent.com"
    );
    assert_eq!(settings.client_secret.expose(), "google-secret");
    assert_eq!(settings.refresh_token.expose(), "google-refresh");
    assert_eq!(
        settings.api_base_url.as_str(),
        "https://mybusiness.googleapis.com/"
    );
    assert_eq!(
        settings.token_url.as_str(),
        "https://oauth2.googleapis.com/token"
    );
    assert_eq!(settings.discover_accounts, ["accounts/123"]);
    assert_eq!(settings.group_external_ref_from, Some(GroupFrom::StoreCode));
    assert_eq!(
        settings.business_information_base_url.as_str(),
        "https://mybusinessbusinessinformation.googleapis.com/"
    );
    // Push is shown commented out: off by default.
    assert!(settings.push.is_none() && config.push.is_none());
    let mapping: Vec<(&str, &GroupRef)> = google
        .locations
        .iter()
        .map(|l| (l.id.as_str(), &l.group))
        .collect();
    assert_eq!(
        mapping,
        [
            (
                "accounts/123/locations/456",
                &GroupRef::ExternalRef("portfolio-123".into())
            ),
            (
                "accounts/123/locations/789",
                &GroupRef::Id("8f14e45f-ea3b-4c7e-9d3a-1f0e2b3c4d5e".into())
            ),
        ]
    );

    let file = &config.sources[1];
    assert_eq!(file.name.as_str(), "acme-imports");
    assert_eq!(
        file.requests_per_minute, None,
        "no override: the scope\'s budget"
    );
    assert_eq!(file.reconcile_schedule, None, "files cannot reconcile");
    assert_eq!(
        file.kind
            .settings::<FileConfig>()
            .and_then(|f| f.platform.as_deref()),
        Some("google")
    );
    assert_eq!(
        file.locations[0].id.as_str(),
        "/var/lib/review-sync/import/acme-*.jsonl"
    );

    let places = &config.sources[2];
    assert_eq!(
        places.requests_per_minute, None,
        "no override: the scope\'s budget"
    );
    assert_eq!(
        places.reconcile_schedule, None,
        "Places cannot list every review"
    );
    let Some(settings) = places.kind.settings::<PlacesConfig>() else {
        panic!("the third example source is google_places");
    };
    assert_eq!(settings.api_key.expose(), "google_places_api_key-value");
    assert_eq!(
        settings.api_base_url.as_str(),
        "https://places.googleapis.com/"
    );
    assert_eq!(settings.language_code.as_deref(), Some("en"));
    assert_eq!(
        places.locations[0].id.as_str(),
        "ChIJN1t_tDeuEmsRUsoyG83frY4"
    );

    let yelp = &config.sources[3];
    assert_eq!(
        yelp.requests_per_minute, None,
        "no override: the scope\'s budget"
    );
    let Some(settings) = yelp.kind.settings::<YelpConfig>() else {
        panic!("the fourth example source is yelp");
    };
    assert_eq!(settings.api_key.expose(), "yelp_api_key-value");
    assert_eq!(settings.api_base_url.as_str(), "https://api.yelp.com/");
    assert_eq!(settings.locale.as_deref(), Some("en_US"));

    let facebook = &config.sources[4];
    assert_eq!(
        facebook.requests_per_minute, None,
        "no override: the scope\'s budget"
    );
    let Some(settings) = facebook.kind.settings::<FacebookConfig>() else {
        panic!("the fifth example source is facebook");
    };
    assert_eq!(settings.graph_version, "v21.0");
    assert_eq!(
        settings.api_base_url.as_str(),
        "https://graph.facebook.com/"
    );
    let tokens: Vec<Option<&str>> = facebook
        .locations
        .iter()
        .map(|l| settings.token_for(&l.id).map(Secret::expose))
        .collect();
    assert_eq!(
        tokens,
        [
            Some("facebook_page_token-value"),
            Some("facebook_page_token_789-value")
        ]
    );

    let trustpilot = &config.sources[5];
    assert_eq!(
        trustpilot.requests_per_minute, None,
        "no override: the scope\'s budget"
    );
    let Some(settings) = trustpilot.kind.settings::<TrustpilotConfig>() else {
        panic!("the sixth example source is trustpilot");
    };
    assert_eq!(settings.api_key.expose(), "trustpilot_api_key-value");
    assert_eq!(
        settings.api_base_url.as_str(),
        "https://api.trustpilot.com/"
    );
    let login = settings.business_login.as_ref().expect("private endpoint");
    assert_eq!(login.api_secret.expose(), "trustpilot_api_secret-value");
    assert_eq!(login.username.expose(), "trustpilot_username-value");
    assert_eq!(login.password.expose(), "trustpilot_password-value");
    assert_eq!(
        login.token_url.as_str(),
        "https://api.trustpilot.com/v1/oauth/oauth-business-users-for-applications/accesstoken"
    );
    Ok(())
}

#[test]
fn the_example_documents_the_static_token_alternative() {
    let text = include_str!("../../../config.example.toml");
    assert!(text.contains("# token = { file = "));
    for key in [
        "base_url",
        "token_url",
        "client_id",
        "client_secret",
        "timeout",
        "concurrency",
        "path",
        "listen",
        "name",
        "kind",
        "schedule",
        "requests_per_minute",
        "max_pages_per_pass",
        "max_pass_time",
        "max_pages_per_full_read",
        "max_full_read_time",
        "refresh_token",
        "api_base_url",
        "discover_accounts",
        "group_external_ref_from",
        "business_information_base_url",
        "reconcile_schedule",
        "platform",
        "id",
        "group_external_ref",
        "group_id",
        "api_key",
        "language_code",
        "locale",
        "access_token",
        "graph_version",
        "api_secret",
        "username",
        "password",
        "push_subscription",
        "pubsub_base_url",
        "notifications_base_url",
        "push_credentials",
        "webhook_app_secret",
        "webhook_verify_token",
        "webhook_silence_alert",
    ] {
        assert!(
            text.contains(&format!("{key} =")),
            "the example does not show `{key}`"
        );
    }
}
